"""Blind astrometric solutions of real frames (../shared/data/astrometry)."""

from __future__ import annotations

import numpy as np

from pachon.algorithms.astrometry import blind_solve
from pachon.algorithms.measurement.quick import quick_sources


def test_hatp32_blind_solve(shared_data):
    from astropy.io import fits

    folder = shared_data / "astrometry" / "hatp32-microobservatory"
    ref = fits.getdata(folder / "tycho2_subset_hatp32_r0.6deg.fits")
    frames = sorted(folder.glob("HATP-32*.FITS"))[:2]
    for path in frames:
        with fits.open(path) as hdul:
            header, img = hdul[0].header, hdul[0].data.astype(float)
        src = quick_sources(img, psf_sigma=1.0, threshold=5.0)
        res = blind_solve(
            src["x"], src["y"], src["flux"], ref["ra"], ref["dec"], ref["mag_vt"],
            ra=header["RA"], dec=header["DEC"], pixel_scale_arcsec=header["IM_SCALE"],
            shape=img.shape, data_id=path.name,
        )  # fmt: skip
        scale = float(np.sqrt(abs(np.linalg.det(res.wcs.pixel_scale_matrix)))) * 3600
        ra, dec = res.wcs.pixel_to_world_values((img.shape[1] - 1) / 2, (img.shape[0] - 1) / 2)
        print(
            f"{path.name}: {res.n_matches} matches, scatter {res.scatter_arcsec:.2f} arcsec, "
            f"centre ({float(ra):.4f}, {float(dec):.4f}), scale {scale:.3f} arcsec/px"
        )
        assert res.n_matches >= 30  # the README's reference solution has ~38 Tycho-2 matches
        assert abs(scale - 5.165) < 0.02
        assert abs(float(ra) - 31.247) < 0.03 and abs(float(dec) - 46.722) < 0.04
        assert res.scatter_arcsec < 0.3 * 5.165 * 1.2  # well under a pixel
