"""The focal-plane layout of Rubin's cameras: CCD types, amplifiers, rafts.

Sources and assumptions (numbers are nominal, not the as-built metrology):

* Raw amplifier segments are 576 x 2048 pixels for both vendors, as in the real LATISS and
  LSSTCam raws (``DATASEC = [4:512,1:2000]`` for ITL): ITL has 3 prescan columns, 509 data
  columns, 64 serial-overscan columns, 2000 data rows and 48 parallel-overscan rows; e2v has
  10 prescan columns, 512 data columns, 54 serial-overscan columns, 2002 data rows and 46
  parallel-overscan rows (obs_lsst's e2v layout).  Imaging areas: ITL 4072 x 4000,
  e2v 4096 x 4004, 10 µm pixels.
* Amplifiers ``C10..C17`` read the lower half (x flipped); ``C07..C00`` the upper half
  (ITL: x and y flipped; e2v: y flipped only).  HDUs 1..8 hold ``C10..C17`` and 9..16 hold
  ``C07..C00`` (the order in the real raws' ``Segment1k``/``Segment0k`` extensions).
* Rafts ``R{row}{col}`` sit on a 127 mm pitch with ``R22`` at the centre; CCDs
  ``S{row}{col}`` on a 42.25 mm pitch within a raft; row is focal-plane y, col is x.
* LSSTCam science rafts from ITL: R01, R02, R03, R10, R20, R41, R42, R43 (8); from e2v:
  R11..R14, R21..R24, R30..R34 (13); corner rafts carry ITL sensors.  Detector ids follow
  Rubin: science rafts raft by raft (R01, R02, R03, R10, ..., R43), S00..S22 within a raft
  (ids 0..188), then the corner rafts R00, R04, R40, R44 with SG0, SG1, SW0, SW1 (189..204).
* Corner rafts (nominal): guiders SG0/SG1 are full ITL CCDs, wavefront sensors SW0/SW1 are
  ITL half-CCDs (4072 x 2000, 8 amplifiers), laid out in R00 and rotated by 90° steps for
  the other corners.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pachon.core.geom import Box
from pachon.instruments.base import Amplifier, Detector

__all__ = [
    "CcdType", "ITL", "E2V", "ITL_WAVEFRONT", "make_amplifiers", "science_raft_names",
    "ITL_RAFTS", "make_raft_detectors", "make_corner_detectors", "RAFT_PITCH_MM", "CCD_PITCH_MM",
    "PIXEL_SIZE_MM",
]

log = logging.getLogger(__name__)

RAFT_PITCH_MM = 127.0
CCD_PITCH_MM = 42.25
PIXEL_SIZE_MM = 0.010
ITL_RAFTS = frozenset({"R01", "R02", "R03", "R10", "R20", "R41", "R42", "R43"})
CORNER_RAFTS = ("R00", "R04", "R40", "R44")


@dataclass(frozen=True)
class CcdType:
    """Per-vendor amplifier geometry and nominal electronics."""

    name: str
    prescan: int
    data_width: int
    serial_overscan: int
    data_height: int
    parallel_overscan: int
    rows: int
    flip_x_top: bool
    gain: float
    read_noise: float
    saturation: float
    bias_level: float = 15000.0

    @property
    def width(self) -> int:
        """Imaging width of the assembled CCD."""
        return 8 * self.data_width

    @property
    def height(self) -> int:
        """Imaging height of the assembled CCD."""
        return self.rows * self.data_height


ITL = CcdType("ITL", 3, 509, 64, 2000, 48, 2, True, gain=1.6, read_noise=6.0, saturation=100000.0)
E2V = CcdType("E2V", 10, 512, 54, 2002, 46, 2, False, gain=1.2, read_noise=7.0, saturation=100000.0)
ITL_WAVEFRONT = CcdType("ITL_WF", 3, 509, 64, 2000, 48, 1, True, gain=1.6, read_noise=6.0,
                        saturation=100000.0)


def make_amplifiers(ccd: CcdType) -> tuple[Amplifier, ...]:
    """The amplifiers of one CCD, in HDU order (C10..C17 then C07..C00)."""
    raw_w = ccd.prescan + ccd.data_width + ccd.serial_overscan
    raw_h = ccd.data_height + ccd.parallel_overscan
    raw_bbox = Box(0, 0, raw_w, raw_h)
    common = {
        "gain": ccd.gain, "read_noise": ccd.read_noise, "saturation": ccd.saturation,
        "bias_level": ccd.bias_level, "raw_bbox": raw_bbox,
        "raw_data_bbox": Box(ccd.prescan, 0, ccd.data_width, ccd.data_height),
        "raw_serial_prescan_bbox": Box(0, 0, ccd.prescan, ccd.data_height),
        "raw_serial_overscan_bbox": Box(ccd.prescan + ccd.data_width, 0, ccd.serial_overscan,
                                        ccd.data_height),
        "raw_parallel_overscan_bbox": Box(ccd.prescan, ccd.data_height, ccd.data_width,
                                          ccd.parallel_overscan),
    }
    amps = []
    hdu = 1
    for k in range(8):
        amps.append(Amplifier(name=f"C1{k}", bbox=Box(k * ccd.data_width, 0, ccd.data_width, ccd.data_height),
                              flip_x=True, flip_y=False, hdu=hdu, **common))
        hdu += 1
    if ccd.rows == 2:
        for k in range(7, -1, -1):
            amps.append(Amplifier(
                name=f"C0{k}", bbox=Box(k * ccd.data_width, ccd.data_height, ccd.data_width, ccd.data_height),
                flip_x=ccd.flip_x_top, flip_y=True, hdu=hdu, **common))
            hdu += 1
    return tuple(amps)


_AMPS: dict[str, tuple[Amplifier, ...]] = {}


def _amps(ccd: CcdType) -> tuple[Amplifier, ...]:
    if ccd.name not in _AMPS:
        _AMPS[ccd.name] = make_amplifiers(ccd)
    return _AMPS[ccd.name]


def science_raft_names() -> list[str]:
    """The 21 science rafts in Rubin's detector-id order."""
    return [f"R{r}{c}" for r in range(5) for c in range(5) if f"R{r}{c}" not in CORNER_RAFTS]


def _detector(det_id: int, name: str, raft: str, purpose: str, ccd: CcdType,
              center: tuple[float, float], yaw: float) -> Detector:
    return Detector(id=det_id, name=name, raft=raft, purpose=purpose, physical_type=ccd.name.split("_")[0],
                    bbox=Box(0, 0, ccd.width, ccd.height), pixel_size_mm=PIXEL_SIZE_MM,
                    amplifiers=_amps(ccd), center_mm=center, yaw_deg=yaw)


def make_raft_detectors(raft: str, first_id: int, ccd: CcdType,
                        raft_center: tuple[float, float]) -> list[Detector]:
    """The nine science CCDs S00..S22 of one raft."""
    detectors = []
    for i, (r, c) in enumerate((r, c) for r in range(3) for c in range(3)):
        center = (raft_center[0] + (c - 1) * CCD_PITCH_MM, raft_center[1] + (r - 1) * CCD_PITCH_MM)
        detectors.append(_detector(first_id + i, f"{raft}_S{r}{c}", raft, "SCIENCE", ccd, center, 0.0))
    return detectors


def raft_center(raft: str) -> tuple[float, float]:
    """Focal-plane centre (mm) of raft ``R{row}{col}``."""
    row, col = int(raft[1]), int(raft[2])
    return ((col - 2) * RAFT_PITCH_MM, (row - 2) * RAFT_PITCH_MM)


# Local layout of a corner raft as seen in R00 (the raft's outer corner towards -x, -y).
_CORNER_LOCAL = {
    "SG0": ((21.125, -21.125), ITL, "GUIDER"),
    "SG1": ((-21.125, 21.125), ITL, "GUIDER"),
    "SW0": ((-21.125, -31.625), ITL_WAVEFRONT, "WAVEFRONT"),
    "SW1": ((-21.125, -10.625), ITL_WAVEFRONT, "WAVEFRONT"),
}
_CORNER_YAW = {"R00": 0.0, "R04": 90.0, "R44": 180.0, "R40": 270.0}


def make_corner_detectors(first_id: int) -> list[Detector]:
    """Guiders and wavefront sensors of the four corner rafts (Rubin id order)."""
    import math

    detectors = []
    det_id = first_id
    for raft in CORNER_RAFTS:
        cx, cy = raft_center(raft)
        yaw = _CORNER_YAW[raft]
        c, s = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
        for slot in ("SG0", "SG1", "SW0", "SW1"):
            (lx, ly), ccd, purpose = _CORNER_LOCAL[slot]
            center = (cx + c * lx - s * ly, cy + s * lx + c * ly)
            detectors.append(_detector(det_id, f"{raft}_{slot}", raft, purpose, ccd, center, yaw))
            det_id += 1
    return detectors
