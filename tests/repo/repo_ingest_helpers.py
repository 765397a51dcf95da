"""A tiny generic instrument and small raw FITS files for ingest tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_YAML = """
name: TinyCam
description: test camera, one 16x12 detector with a 4-column overscan
match:
  TELESCOP: "TINY"
  INSTRUME: "TINYCCD"
plate_scale: 12.9
pixel_size_mm: 0.024
detectors:
  - id: 0
    name: T0
    width: 16
    height: 12
    physical_type: SITe
    gain: 1.5
    read_noise: 4.0
    saturation: 65535
    amplifiers:
      - name: A
        data_section: "[1:12,1:12]"
        serial_overscan_section: "[13:16,1:12]"
filters:
  "V": V
header:
  exposure_time: EXPTIME
  time: {key: DATE-OBS, time_key: UT, format: isot, scale: utc}
  filter: {key: FILTERS}
  object: OBJECT
  observation_type:
    key: IMAGETYP
    map: {object: science, zero: bias, bias: bias, flat: flat, dark: dark}
  ra: {key: RA, unit: hourangle}
  dec: {key: DEC, unit: deg}
  airmass: SECZ
  exposure_id: {source: time}
"""


def tiny_instrument(tmp_path: Path):
    """The TinyCam instrument, loaded from a YAML file written into ``tmp_path``."""
    from pachon.instruments import get_instrument

    path = tmp_path / "tinycam.yaml"
    path.write_text(TINY_YAML)
    return get_instrument(path)


def write_tiny_raw(path: Path, index: int, *, drop: str | None = None, value_offset: int = 0) -> Path:
    """A 16x12 uint16 raw of TinyCam taken ``index`` minutes after 2024-03-01T01:00 UTC."""
    from astropy.io import fits

    data = (np.arange(16 * 12, dtype=np.uint16).reshape(12, 16) + 100 * index + value_offset).astype(
        np.uint16
    )
    hdr = fits.Header()
    cards = {
        "TELESCOP": "TINY",
        "INSTRUME": "TINYCCD",
        "DATE-OBS": "2024-03-01",
        "UT": f"{1 + index // 60:02d}:{index % 60:02d}:00",
        "EXPTIME": 30.0,
        "FILTERS": "V",
        "OBJECT": "field",
        "IMAGETYP": "object",
        "RA": "10:00:00",
        "DEC": "-20:00:00",
        "SECZ": 1.1,
    }
    for k, v in cards.items():
        if k != drop:
            hdr[k] = v
    fits.PrimaryHDU(data, hdr).writeto(path, overwrite=True)
    return path
