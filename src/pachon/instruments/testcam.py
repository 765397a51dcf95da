"""PachonTestCam: a small simulated camera for fast tests and the demo.

Four 512 x 512 detectors (``R00_S00``, ``R00_S01``, ``R00_S10``, ``R00_S11``) in a 2 x 2 mosaic
with 0.28 mm gaps, 10 µm pixels at 0.2 arcsec (plate scale 20 arcsec/mm, LSSTCam's).  Each
detector has four 256 x 256 amplifiers read from the outer corners, one raw HDU per amplifier
(as Rubin raws): 4 serial-prescan columns, 16 serial-overscan columns and 8 parallel-overscan
rows.  Headers use the Rubin keywords (``INSTRUME = 'PachonTestCam'``, ``RAFTBAY``/``CCDSLOT``,
``FILTER``, ``MJD-BEG``...), so the Rubin translator of :mod:`pachon.instruments.lsst` reads them.
"""

from __future__ import annotations

import logging

from pachon.core.geom import Box
from pachon.instruments.base import Amplifier, Detector
from pachon.instruments.geometry import RadialDistortion
from pachon.instruments.lsst import LsstInstrument

__all__ = [
    "PachonTestCamInstrument",
    "make_testcam",
    "TESTCAM_FILTERS",
    "AMP_SIZE",
    "PRESCAN",
    "SERIAL_OVERSCAN",
    "PARALLEL_OVERSCAN",
]

log = logging.getLogger(__name__)

AMP_SIZE = 256
PRESCAN = 4
SERIAL_OVERSCAN = 16
PARALLEL_OVERSCAN = 8
PIXEL_SIZE_MM = 0.010
#: Centre-to-centre distance of neighbouring detectors (5.12 mm of pixels + 0.28 mm gap).
DETECTOR_PITCH_MM = 5.40
TESTCAM_FILTERS: dict[str, str | None] = {
    "u_sim": "u",
    "g_sim": "g",
    "r_sim": "r",
    "i_sim": "i",
    "z_sim": "z",
    "y_sim": "y",
    "empty": "white",
    "unknown": None,
}
# (name, column, row, gain e-/ADU, read noise e-) of the four amplifiers, readout at outer corners.
_AMPS = (
    ("C00", 0, 0, 1.50, 4.5),
    ("C01", 1, 0, 1.60, 5.0),
    ("C10", 0, 1, 1.45, 5.5),
    ("C11", 1, 1, 1.55, 4.8),
)


class PachonTestCamInstrument(LsstInstrument):
    """The small simulated test camera (Rubin-style headers, one HDU per amplifier)."""


def _amplifiers(detector_index: int) -> tuple[Amplifier, ...]:
    raw_w = PRESCAN + AMP_SIZE + SERIAL_OVERSCAN
    raw_h = AMP_SIZE + PARALLEL_OVERSCAN
    amps = []
    for hdu, (name, col, row, gain, noise) in enumerate(_AMPS, start=1):
        amps.append(
            Amplifier(
                name=name,
                gain=gain,
                read_noise=noise,
                saturation=60000.0,
                bias_level=5000.0 + 150.0 * hdu + 40.0 * detector_index,
                raw_bbox=Box(0, 0, raw_w, raw_h),
                raw_data_bbox=Box(PRESCAN, 0, AMP_SIZE, AMP_SIZE),
                raw_serial_overscan_bbox=Box(PRESCAN + AMP_SIZE, 0, SERIAL_OVERSCAN, AMP_SIZE),
                raw_parallel_overscan_bbox=Box(PRESCAN, AMP_SIZE, AMP_SIZE, PARALLEL_OVERSCAN),
                raw_serial_prescan_bbox=Box(0, 0, PRESCAN, AMP_SIZE),
                bbox=Box(col * AMP_SIZE, row * AMP_SIZE, AMP_SIZE, AMP_SIZE),
                flip_x=bool(col),
                flip_y=bool(row),
                hdu=hdu,
            )
        )
    return tuple(amps)


def make_testcam() -> PachonTestCamInstrument:
    """Build PachonTestCam (see the module docstring)."""
    detectors = []
    for i, (row, col) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        center = ((col - 0.5) * DETECTOR_PITCH_MM, (row - 0.5) * DETECTOR_PITCH_MM)
        detectors.append(
            Detector(
                id=i,
                name=f"R00_S{row}{col}",
                raft="R00",
                purpose="SCIENCE",
                physical_type="SIM",
                bbox=Box(0, 0, 2 * AMP_SIZE, 2 * AMP_SIZE),
                pixel_size_mm=PIXEL_SIZE_MM,
                amplifiers=_amplifiers(i),
                center_mm=center,
                yaw_deg=0.0,
                serial=f"SIM-{i:03d}",
            )
        )
    return PachonTestCamInstrument(
        "PachonTestCam",
        detectors,
        TESTCAM_FILTERS,
        RadialDistortion(20.0, (1.0e-8,)),
        instrume=("PachonTestCam",),
        detector_from_header=True,
        filter_keys=("FILTER",),
    )
