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


def _hms(text: str) -> float:
    parts = [float(v) for v in str(text).replace(" ", ":").split(":") if v]
    sign = -1.0 if str(text).strip().startswith("-") else 1.0
    return sign * (abs(parts[0]) + parts[1] / 60 + parts[2] / 3600)


def _grid_offsets(wcs_a, world_b, shape: tuple[int, int]) -> np.ndarray:
    """On-sky offsets (arcsec) between ``wcs_a`` and ``world_b(x, y)`` on a 20x20 pixel grid."""
    from pachon.core.sphgeom import angular_separation

    ny, nx = shape
    gy, gx = np.mgrid[0 : ny - 1 : 20j, 0 : nx - 1 : 20j]
    ra_a, dec_a = wcs_a.pixel_to_world_values(gx.ravel(), gy.ravel())
    ra_b, dec_b = world_b(gx.ravel(), gy.ravel())
    return angular_separation(ra_a, dec_a, ra_b, dec_b) * 3600.0


def _m67(shared_data):
    from astropy.io import fits

    folder = shared_data / "astrometry" / "m67-plate"
    with fits.open(folder / "M6707HH.fits") as hdul:
        header, img = hdul[0].header, hdul[0].data.astype(float)
    return header, img, fits.getdata(folder / "tycho2_subset_m67_r0.4deg.fits")


def test_dss_plate_solution_m67(shared_data):
    """The DSS plate model reproduces the header's object position and the Tycho-2 stars."""
    from scipy.spatial import cKDTree

    from pachon.algorithms.astrometry.dss import DssPlateSolution, dss_to_tan_sip
    from pachon.core.sphgeom import angular_separation

    header, img, ref = _m67(shared_data)
    dss = DssPlateSolution.from_header(header, name="M6707HH.fits")
    assert abs(dss.ra0 - 15 * (8 + 55 / 60 + 55.04834 / 3600)) < 1e-9 and abs(dss.dec0 - 11.44953209) < 1e-7
    # OBJCTRA/OBJCTDEC at OBJCTX/OBJCTY (plate pixels) are written by STScI independently of us
    x = header["OBJCTX"] - header["CNPIX1"] - 0.5
    y = header["OBJCTY"] - header["CNPIX2"] - 0.5
    ra, dec = dss.pixel_to_world(x, y)
    sep = float(angular_separation(ra, dec, 15 * _hms(header["OBJCTRA"]), _hms(header["OBJCTDEC"]))) * 3600
    assert sep < 0.05  # a half-pixel convention error would give 0.85"
    # the inverse round-trips
    gx, gy = np.meshgrid(np.linspace(0, 1058, 7), np.linspace(0, 1058, 7))
    bx, by = dss.world_to_pixel(*dss.pixel_to_world(gx, gy))
    assert np.max(np.hypot(bx - gx, by - gy)) < 1e-4
    # Tycho-2 stars projected with the plate solution land on detected (unsaturated) stars
    src = quick_sources(img, psf_sigma=1.5, threshold=5.0)
    rx, ry = dss.world_to_pixel(ref["ra"], ref["dec"])
    inside = (rx > 0) & (rx < img.shape[1] - 1) & (ry > 0) & (ry < img.shape[0] - 1)
    d, _ = cKDTree(np.column_stack([src["x"], src["y"]])).query(np.column_stack([rx, ry])[inside])
    assert inside.sum() >= 15 and (d < 2.0).sum() >= 10
    assert np.median(d[d < 2.0]) < 0.6  # px (1.7"/px; Tycho-2 at J1991 vs a 1951 plate)
    # an astropy TAN-SIP approximation of the plate solution
    approx = dss_to_tan_sip(dss, img.shape)
    assert _grid_offsets(approx, dss.pixel_to_world, img.shape).max() < 0.01


def test_m67_plate_solved_vs_dss(shared_data):
    """Blind-solve the POSS-I plate against Tycho-2 and compare with the DSS plate solution."""
    from pachon.algorithms.astrometry.dss import DssPlateSolution

    header, img, ref = _m67(shared_data)
    dss = DssPlateSolution.from_header(header)
    src = quick_sources(img, psf_sigma=1.5, threshold=5.0)
    res = blind_solve(
        src["x"], src["y"], src["flux"], ref["ra"], ref["dec"], ref["mag_vt"],
        ra=15 * _hms(header["OBJCTRA"]), dec=_hms(header["OBJCTDEC"]),
        pixel_scale_arcsec=header["PLTSCALE"] * header["XPIXELSZ"] / 1000.0, shape=img.shape,
        data_id="M6707HH.fits",
    )  # fmt: skip
    off = _grid_offsets(res.wcs, dss.pixel_to_world, img.shape)
    rms = float(np.sqrt(np.mean(off**2)))
    print(
        f'M67 plate: {res.n_matches} Tycho-2 matches, scatter {res.scatter_arcsec:.2f}"; vs DSS solution '
        f'on a 20x20 grid: rms {rms:.2f}", median {np.median(off):.2f}", max {off.max():.2f}"'
    )
    assert res.n_matches >= 9
    assert res.scatter_arcsec < 1.5  # 1.7"/px plate, J1991 positions on a 1951 plate
    assert rms < 1.5 and off.max() < 3.0


def test_eyuma_thumbnail_vs_astrometry_net(shared_data):
    """Solve the EY UMa thumbnail against the source list's sky positions; compare with astrometry.net."""
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    folder = shared_data / "astrometry" / "eyuma-thumbnail"
    with fits.open(folder / "thumbnail-image.fit.gz") as hdul:
        header, img = hdul[0].header, hdul[0].data.astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        solved = WCS(fits.getheader(folder / "wcs-sol-from-thumbnail-image-index-5200.fit"))
        # the thumbnail's header keeps the full 4109x4096 frame's astrometry.net WCS, in which the
        # source list's X/Y are given: that gives the reference sky positions
        full = WCS(header)
    listing = fits.getdata(folder / "test-source-list.fit")
    ref_ra, ref_dec = full.all_pix2world(listing["X"], listing["Y"], 1)
    ref_mag = -2.5 * np.log10(np.clip(listing["FLUX"], 1.0, None))
    src = quick_sources(img, psf_sigma=1.0, threshold=5.0, mesh_size=32)
    scale = 206265.0 * header["XPIXSZ"] * 1e-3 / header["FOCALLEN"] * 4109 / img.shape[1]
    res = blind_solve(
        src["x"], src["y"], src["flux"], ref_ra, ref_dec, ref_mag,
        ra=15 * _hms(header["OBJCTRA"]), dec=_hms(header["OBJCTDEC"]), pixel_scale_arcsec=scale,
        shape=img.shape, sip_order=2, data_id="EY UMa thumbnail",
    )  # fmt: skip
    off = _grid_offsets(res.wcs, lambda x, y: solved.all_pix2world(x, y, 0), img.shape)
    rms = float(np.sqrt(np.mean(off**2)))
    pix = float(np.sqrt(abs(np.linalg.det(solved.pixel_scale_matrix)))) * 3600
    print(
        f'EY UMa thumbnail: {res.n_matches} matches, scatter {res.scatter_arcsec:.2f}"; vs astrometry.net '
        f'on a 20x20 grid: rms {rms:.2f}" ({rms / pix:.3f} px), max {off.max():.2f}"'
    )
    assert res.n_matches >= 100
    assert rms < 0.25 * pix and off.max() < 0.5 * pix  # 9"/px thumbnail
