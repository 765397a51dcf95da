"""Single-frame processing: Source Extractor + PSFEx against Pachón on the same simulated image.

Run by hand: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sfp.py [--tiles N]``.
Needs the Debian packages ``source-extractor`` and ``psfex`` (skipped with a message where
absent).  The image is the single-frame test field (``tests/algorithms/sfp_sim.py``: a
simulated PachonTestCam detector, 0.7" seeing, electrons, sky ~690 e-/px, truth) tiled
``N x N`` times (default 4: 2048 x 2048) with fresh noise.  The truth is replicated with the
tile offsets; a TAN WCS and a reference catalogue (truth stars with r < 21, positions from
that WCS) are made for the mosaic so that Pachón's calibration (pattern match, TAN-SIP fit,
zero point) runs as it would on a real detector.

Compared, for isolated (no truth neighbour within 20 px) unflagged stars with S/N > 100, not
within 8 px of a tile seam (such stars were cut when their tile was simulated alone: their
truth does not describe the pixels, and they were the 150-mas "outliers" of earlier runs):
PSF flux / true flux (median and robust scatter; the normalizations differ: PSFEx scales its
PSF to an aperture flux, Pachón to the 12-px calibration aperture, so the medians are reported,
not matched) and PSF-fit position vs truth (rms in mas).  Where ``scamp`` is installed, Source
Extractor + SCAMP (TAN + PV degree 2 against an LDAC copy of the reference catalogue, the
mosaic's TAN header as the first guess) is compared with Pachón's TAN-SIP solution: sky
positions of the stars r < 20 found by both, against their true positions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "algorithms"))

PIXEL_SCALE_MAS = 200.0

_SEX_PARAMS_PSFEX = """X_IMAGE
Y_IMAGE
XWIN_IMAGE
YWIN_IMAGE
FLUX_APER(1)
FLUXERR_APER(1)
FLUX_RADIUS
ELONGATION
FLAGS
SNR_WIN
VIGNET(25,25)
"""

_SEX_PARAMS_PSF = """NUMBER
XWIN_IMAGE
YWIN_IMAGE
XPSF_IMAGE
YPSF_IMAGE
FLUX_PSF
FLUXERR_PSF
FLUX_AUTO
FLUX_APER(1)
FLAGS
FLAGS_WEIGHT
"""


_SEX_PARAMS_SCAMP = """XWIN_IMAGE
YWIN_IMAGE
ERRAWIN_IMAGE
ERRBWIN_IMAGE
ERRTHETAWIN_IMAGE
FLUX_AUTO
FLUXERR_AUTO
FLAGS
FLAGS_WEIGHT
"""


def _ldac_table(header_text: str, objects):
    """A FITS_LDAC list of HDUs: the LDAC_IMHEAD header-card table, then the objects table."""
    from astropy.io import fits

    n = len(header_text)
    imhead = fits.BinTableHDU.from_columns(
        [fits.Column(name="Field Header Card", format=f"{n}A", array=np.array([header_text]))]
    )
    imhead.header["EXTNAME"] = "LDAC_IMHEAD"
    imhead.header["TDIM1"] = f"(80, {n // 80})"
    objects.header["EXTNAME"] = "LDAC_OBJECTS"
    return fits.HDUList([fits.PrimaryHDU(), imhead, objects])


def run_scamp(image, variance, wcs, ref_ra, ref_dec, ref_mag, folder: Path) -> tuple[object, float]:
    """Source Extractor (LDAC with the image's TAN header) → SCAMP against an LDAC refcat; its WCS."""
    from astropy.io import fits
    from astropy.wcs import WCS

    header = wcs.to_header()
    img, wht = folder / "scamp_image.fits", folder / "scamp_weight.fits"
    fits.PrimaryHDU(image, header=header).writeto(img, overwrite=True)
    fits.PrimaryHDU((1.0 / variance).astype(np.float32), header=header).writeto(wht, overwrite=True)
    filt = folder / "gauss_scamp.conv"
    filt.write_text(_gauss_filter(3.5))
    params = folder / "scamp.param"
    params.write_text(_SEX_PARAMS_SCAMP)
    cat = folder / "scamp_image.cat"
    # the reference catalogue as SCAMP reads a local one (X_WORLD, Y_WORLD, errors, MAG)
    n = len(ref_ra)
    err = np.full(n, 1e-6)  # degrees (3.6 mas): the simulated refcat is exact
    cols = [
        fits.Column(name="X_WORLD", format="1D", unit="deg", array=ref_ra),
        fits.Column(name="Y_WORLD", format="1D", unit="deg", array=ref_dec),
        fits.Column(name="ERRA_WORLD", format="1E", unit="deg", array=err),
        fits.Column(name="ERRB_WORLD", format="1E", unit="deg", array=err),
        fits.Column(name="ERRTHETA_WORLD", format="1E", unit="deg", array=np.zeros(n)),
        fits.Column(name="MAG", format="1E", unit="mag", array=ref_mag),
        fits.Column(name="MAGERR", format="1E", unit="mag", array=np.full(n, 0.01)),
        fits.Column(name="OBSDATE", format="1D", unit="yr", array=np.full(n, 2000.0)),
    ]
    ref_header = fits.Header()
    ref_header["NAXIS"], ref_header["NAXIS1"], ref_header["NAXIS2"] = 2, image.shape[1], image.shape[0]
    ref_header.update(header)
    refcat = folder / "ref.ldac"
    _ldac_table(ref_header.tostring(), fits.BinTableHDU.from_columns(cols)).writeto(refcat, overwrite=True)
    t0 = time.perf_counter()
    run = {"check": True, "capture_output": True, "cwd": folder}
    weight = {"WEIGHT_TYPE": "MAP_WEIGHT", "WEIGHT_IMAGE": str(wht), "CATALOG_TYPE": "FITS_LDAC"}
    subprocess.run(["source-extractor", str(img), *_sex_config(cat, params, filt, weight)], **run)
    opts = {
        "ASTREF_CATALOG": "FILE",
        "ASTREFCAT_NAME": str(refcat),
        "DISTORT_DEGREES": "2",
        "SOLVE_PHOTOM": "N",
        "CHECKPLOT_TYPE": "NONE",
        "WRITE_XML": "N",
        "VERBOSE_TYPE": "QUIET",
        "NTHREADS": "1",
        "POSITION_MAXERR": "0.5",
        "CROSSID_RADIUS": "1.0",
    }
    subprocess.run(["scamp", str(cat), *[a for k, v in opts.items() for a in (f"-{k}", v)]], **run)
    elapsed = time.perf_counter() - t0
    lines = (folder / "scamp_image.head").read_text(encoding="latin-1").splitlines()
    keep = [ln for ln in lines if not ln.startswith(("COMMENT", "HISTORY")) and ln.isascii()]
    head = fits.Header.fromstring("\n".join(keep), sep="\n")
    full = fits.Header(header)
    full.update(head)
    with fits.open(cat) as hdul:
        xy = np.column_stack([hdul[2].data["XWIN_IMAGE"] - 1.0, hdul[2].data["YWIN_IMAGE"] - 1.0])
    return (WCS(full), xy), elapsed


def _gauss_filter(fwhm: float, size: int = 5) -> str:
    """A Source Extractor convolution mask (a normalized Gaussian of ``fwhm`` pixels)."""
    h = size // 2
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
    k = np.exp(-(xx**2 + yy**2) / (2 * (fwhm / 2.3548) ** 2))
    rows = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in k / k.sum())
    return f"CONV NORM\n# {size}x{size} Gaussian, FWHM {fwhm:.2f} px\n{rows}\n"


def _sex_config(catalog: Path, params: Path, filt: Path, extra: dict[str, str]) -> list[str]:
    opts = {
        "CATALOG_NAME": str(catalog),
        "PARAMETERS_NAME": str(params),
        "FILTER_NAME": str(filt),
        "FILTER": "Y",
        "DETECT_THRESH": "5.0",
        "ANALYSIS_THRESH": "5.0",
        "DETECT_MINAREA": "3",
        "DEBLEND_NTHRESH": "32",
        "DEBLEND_MINCONT": "0.005",
        "BACK_SIZE": "64",
        "BACK_FILTERSIZE": "3",
        "PHOT_APERTURES": "24",
        "GAIN": "1.0",
        "SATUR_LEVEL": "1e9",
        "PIXEL_SCALE": "0.2",
        "SEEING_FWHM": "0.7",
        "VERBOSE_TYPE": "QUIET",
        "CHECKIMAGE_TYPE": "NONE",
        "NTHREADS": "1",
    }
    opts.update(extra)
    return [a for k, v in opts.items() for a in (f"-{k}", v)]


def _psfex_config(folder: Path) -> list[str]:
    opts = {
        "PSF_SIZE": "25,25",
        "PSFVAR_KEYS": "X_IMAGE,Y_IMAGE",
        "PSFVAR_DEGREES": "1",
        "BASIS_TYPE": "PIXEL_AUTO",
        "SAMPLE_MINSN": "30",
        "SAMPLE_FWHMRANGE": "2.0,10.0",
        "PHOTFLUX_KEY": "FLUX_APER(1)",
        "PHOTFLUXERR_KEY": "FLUXERR_APER(1)",
        "CHECKPLOT_TYPE": "NONE",
        "CHECKIMAGE_TYPE": "NONE",
        "PSF_DIR": str(folder),
        "VERBOSE_TYPE": "QUIET",
        "NTHREADS": "1",
    }
    return [a for k, v in opts.items() for a in (f"-{k}", v)]


def build_mosaic(tiles: int, seed: int = 11):
    """The tiled simulated image (electrons with sky), its variance, truth, TAN WCS and refcat."""
    from sfp_sim import READ_NOISE, sim_field

    from pachon.core.wcs import make_tan_wcs

    field = sim_field()
    ny, nx = field.electrons.shape
    expected = np.tile(field.electrons, (tiles, tiles)) + field.sky
    rng = np.random.default_rng(seed)
    variance = expected + READ_NOISE**2
    image = expected + rng.standard_normal(expected.shape) * np.sqrt(variance)
    tr = field.truth
    on = np.asarray(tr["on_detector"], bool) if "on_detector" in tr else np.ones(len(tr["x"]), bool)
    oy, ox = np.divmod(np.arange(tiles * tiles), tiles)
    # stars within 8 px (~5 PSF sigma) of a tile side lose part of their light at the seam
    # (the tile was simulated alone): their truth positions and fluxes do not describe the pixels
    tx, ty = tr["x"][on], tr["y"][on]
    cut = (np.minimum(tx, nx - 1 - tx) < 8) | (np.minimum(ty, ny - 1 - ty) < 8)
    truth = {
        "seam": np.tile(cut, tiles * tiles),
        "x": np.concatenate([tr["x"][on] + i * nx for i in ox]),
        "y": np.concatenate([tr["y"][on] + j * ny for j in oy]),
        "flux": np.tile(tr["flux"][on], tiles * tiles),
        "mag": np.tile(tr["mag"][on], tiles * tiles),
        "kind": np.tile(tr["kind"][on], tiles * tiles),
    }
    c = field.wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2)
    size = tiles * nx
    wcs = make_tan_wcs(
        float(c[0]), float(c[1]), PIXEL_SCALE_MAS / 1000, 0.0, crpix=((size - 1) / 2, (size - 1) / 2)
    )
    ra, dec = wcs.pixel_to_world_values(truth["x"], truth["y"])
    star = (truth["kind"] == 0) & (truth["mag"] < 21.0)
    ref_flux = truth["flux"][star] * field.calib_truth
    refcat = {"ra": ra[star], "dec": dec[star], "r_flux": ref_flux, "r_fluxErr": 0.01 * ref_flux}
    return field, image.astype(np.float32), variance.astype(np.float32), truth, wcs, refcat


def _compare(x, y, flux, flags_bad, truth, select_snr, only=None) -> dict[str, float]:
    """Match measured positions to truth stars; flux ratio and position rms for isolated bright stars.

    ``only``: restrict to these truth indices (the stars both codes selected).
    """
    from scipy.spatial import cKDTree

    txy = np.column_stack([truth["x"], truth["y"]])
    tree = cKDTree(txy)
    nn = tree.query(txy, k=2)[0][:, 1]
    d, j = tree.query(np.column_stack([x, y]))
    ok = (d < 1.0) & (truth["kind"][j] == 0) & (nn[j] > 20) & ~flags_bad & select_snr & np.isfinite(flux)
    ok &= ~truth["seam"][j]  # truncated at a tile seam: not a fair truth
    # one measurement per truth star
    if only is not None:
        ok &= np.isin(j, only)
    _, first = np.unique(j[ok], return_index=True)
    rows = np.flatnonzero(ok)[first]
    ratio = flux[rows] / truth["flux"][j[rows]]
    dx, dy = x[rows] - truth["x"][j[rows]], y[rows] - truth["y"][j[rows]]
    med = float(np.median(ratio))
    return {
        "n_stars": len(rows),
        "flux_ratio_median": med,
        "flux_ratio_scatter": float(1.4826 * np.median(np.abs(ratio - med))),
        "pos_rms_mas": float(np.sqrt(np.mean(dx**2 + dy**2))) * PIXEL_SCALE_MAS,
        "pos_p68_mas": float(np.percentile(np.hypot(dx, dy), 68.27)) * PIXEL_SCALE_MAS,
        "pos_max_mas": float(np.max(np.hypot(dx, dy))) * PIXEL_SCALE_MAS,
        "pos_bias_mas": float(np.hypot(np.mean(dx), np.mean(dy))) * PIXEL_SCALE_MAS,
        "truth_index": j[rows],
    }


def run_sextractor_psfex(image: np.ndarray, variance: np.ndarray, folder: Path) -> tuple[dict, float]:
    """Source Extractor (detection, vignets) → PSFEx → Source Extractor (PSF photometry)."""
    from astropy.io import fits

    img, wht = folder / "image.fits", folder / "weight.fits"
    fits.PrimaryHDU(image).writeto(img, overwrite=True)
    fits.PrimaryHDU((1.0 / variance).astype(np.float32)).writeto(wht, overwrite=True)
    filt = folder / "gauss.conv"
    filt.write_text(_gauss_filter(3.5))
    p1, p2 = folder / "psfex.param", folder / "psf.param"
    p1.write_text(_SEX_PARAMS_PSFEX)
    p2.write_text(_SEX_PARAMS_PSF)
    weight = {"WEIGHT_TYPE": "MAP_WEIGHT", "WEIGHT_IMAGE": str(wht)}
    cat1, cat2 = folder / "prepsfex.cat", folder / "psf.cat"
    t0 = time.perf_counter()
    run = {"check": True, "capture_output": True, "cwd": folder}
    subprocess.run(
        ["source-extractor", str(img), *_sex_config(cat1, p1, filt, {"CATALOG_TYPE": "FITS_LDAC", **weight})],
        **run,
    )
    subprocess.run(["psfex", str(cat1), *_psfex_config(folder)], **run)
    psf = folder / "prepsfex.psf"
    subprocess.run(
        [
            "source-extractor", str(img),
            *_sex_config(cat2, p2, filt, {"CATALOG_TYPE": "FITS_1.0", "PSF_NAME": str(psf), **weight}),
        ],
        **run,
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    with fits.open(cat2) as hdul:
        cat = {n: np.asarray(hdul[1].data[n]) for n in hdul[1].columns.names}
    return cat, elapsed


def run_pachon(field, image, variance, wcs, refcat) -> tuple[dict, float, object]:
    """characterize_image + calibrate_image on the same pixels."""
    from pachon.core.exposure import Exposure
    from pachon.core.visit_info import VisitInfo
    from pachon.pipelines.calibrate_task import calibrate_image
    from pachon.pipelines.characterize_task import CharacterizeConfig, characterize_image

    info = VisitInfo(
        exposure_time=float(field.visit.exposure_time), band="r", mjd_tai_mid=float(field.visit.mjd_mid)
    )
    exp = Exposure(image.copy(), variance=variance.copy(), wcs=wcs.deepcopy(), visit_info=info)
    t0 = time.perf_counter()
    char = characterize_image(exp, CharacterizeConfig(read_noise=4.5))
    res = calibrate_image(char, refcat, "r", epoch_year=field.epoch_year, data_id="bench mosaic")
    elapsed = time.perf_counter() - t0
    return char.measurements, elapsed, (char, res)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=4, help="tiles per side of the 512x512 field")
    args = parser.parse_args()
    missing = [t for t in ("source-extractor", "psfex") if shutil.which(t) is None]
    if missing:
        print(f"not installed: {', '.join(missing)} (apt-get install source-extractor psfex)")
        return
    t0 = time.perf_counter()
    field, image, variance, truth, wcs, refcat = build_mosaic(args.tiles)
    print(
        f"image {image.shape[1]}x{image.shape[0]} ({args.tiles}x{args.tiles} tiles of the SFP test field), "
        f"{len(truth['x'])} truth sources, {len(refcat['ra'])} reference stars; "
        f"built in {time.perf_counter() - t0:.1f} s"
    )
    have_scamp = shutil.which("scamp") is not None
    with tempfile.TemporaryDirectory(prefix="bench_sfp_") as tmp:
        cat, t_sex = run_sextractor_psfex(image, variance, Path(tmp))
        if have_scamp:
            ref_mag = -2.5 * np.log10(refcat["r_flux"]) + 31.4
            scamp, t_scamp = run_scamp(image, variance, wcs, refcat["ra"], refcat["dec"], ref_mag, Path(tmp))
    # the first run pays one-time costs (imports, the Source schema's YAML): timed apart
    _, t_cold, _ = run_pachon(field, image, variance, wcs, refcat)
    m, t_pac, (char, res) = run_pachon(field, image, variance, wcs, refcat)

    sx, sy = cat["XPSF_IMAGE"] - 1.0, cat["YPSF_IMAGE"] - 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        snr_s = cat["FLUX_PSF"] / cat["FLUXERR_PSF"]
    sex = _compare(sx, sy, cat["FLUX_PSF"], cat["FLAGS"] > 3, truth, snr_s > 100)
    snr_p = m["psf_instFlux"] / m["psf_instFluxErr"]
    flags = (
        m["pixelFlags_edge"] | m["pixelFlags_saturated"] | m["centroid_flag"] | (char.detections.n_child > 0)
    )
    src = res.sources
    flux_p = src.column("psfFlux").to_numpy() / res.exposure.photo_calib.calibration_mean
    pac = _compare(m["x"], m["y"], flux_p, flags, truth, snr_p > 100)
    pac_raw = _compare(m["x"], m["y"], m["psf_instFlux"], flags, truth, snr_p > 100)

    common = np.intersect1d(sex["truth_index"], pac["truth_index"])
    sex_c = _compare(sx, sy, cat["FLUX_PSF"], cat["FLAGS"] > 3, truth, snr_s > 100, only=common)
    pac_c = _compare(m["x"], m["y"], flux_p, flags, truth, snr_p > 100, only=common)
    n_leaf = int((char.detections.n_child == 0).sum())
    rows = [
        ("wall time [s]", t_sex, t_pac),
        ("sources", len(sx), n_leaf),
        ("isolated S/N>100 stars", sex["n_stars"], pac["n_stars"]),
        ("PSF flux / truth, median", sex["flux_ratio_median"], pac["flux_ratio_median"]),
        ("PSF flux / truth, scatter", sex["flux_ratio_scatter"], pac["flux_ratio_scatter"]),
        ("position rms vs truth [mas]", sex["pos_rms_mas"], pac["pos_rms_mas"]),
        ("position 68th pct radius [mas]", sex["pos_p68_mas"], pac["pos_p68_mas"]),
        ("position max [mas]", sex["pos_max_mas"], pac["pos_max_mas"]),
        ("position bias [mas]", sex["pos_bias_mas"], pac["pos_bias_mas"]),
        ("common stars", sex_c["n_stars"], pac_c["n_stars"]),
        ("  PSF flux / truth, scatter", sex_c["flux_ratio_scatter"], pac_c["flux_ratio_scatter"]),
        ("  position rms vs truth [mas]", sex_c["pos_rms_mas"], pac_c["pos_rms_mas"]),
        ("  position 68th pct radius [mas]", sex_c["pos_p68_mas"], pac_c["pos_p68_mas"]),
        ("  position max [mas]", sex_c["pos_max_mas"], pac_c["pos_max_mas"]),
    ]
    print(f"Pachón first (cold) run {t_cold:.2f} s; the table has the second run")
    print(f"{'':32s} {'SExtractor+PSFEx':>17s} {'Pachón':>12s} {'Pachón/SE':>10s}")
    for name, a, b in rows:
        print(f"{name:32s} {a:17.4g} {b:12.4g} {b / a if a else float('nan'):10.3f}")
    print(
        f"Pachón instrumental PSF flux (before aperture correction) / truth: median "
        f"{pac_raw['flux_ratio_median']:.4f}, scatter {pac_raw['flux_ratio_scatter']:.4f}; "
        f"astrometric scatter vs refcat {res.astrometry.scatter_arcsec * 1000:.1f} mas "
        f"({res.astrometry.n_matches} matches); zero point {res.zero_point.zero_point:.4f}"
    )
    if not have_scamp:
        print("SCAMP: not installed (apt-get install scamp); astrometric comparison skipped")
        return
    # sky positions vs truth through each code's own fitted WCS: SCAMP's TAN+PV (degree 2)
    # on SExtractor's XWIN centroids, Pachón's TAN-SIP on its own centroids; truth stars r < 20
    scamp_wcs, scamp_xy = scamp
    tra, tdec = wcs.pixel_to_world_values(truth["x"], truth["y"])
    sel = (truth["kind"] == 0) & (truth["mag"] < 20) & ~truth["seam"]
    ra_s, dec_s = scamp_wcs.all_pix2world(scamp_xy[:, 0], scamp_xy[:, 1], 0)
    ra_p, dec_p = res.exposure.wcs.pixel_to_world_values(m["x"], m["y"])
    j_s, r_s = _sky_errors(scamp_xy, ra_s, dec_s, truth, tra, tdec, sel)
    j_p, r_p = _sky_errors(np.column_stack([m["x"], m["y"]]), ra_p, dec_p, truth, tra, tdec, sel)
    common = np.intersect1d(j_s, j_p)
    rs, rp = r_s[np.isin(j_s, common)], r_p[np.isin(j_p, common)]
    print(
        f"astrometry vs truth (stars r < 20 found by both, {len(common)}): SExtractor+SCAMP "
        f"{t_scamp:.2f} s, rms {np.sqrt(np.mean(rs**2)):.2f} mas, 68% {np.percentile(rs, 68.27):.2f} mas; "
        f"Pachón (TAN-SIP, within the {t_pac:.2f} s above) rms {np.sqrt(np.mean(rp**2)):.2f} mas, "
        f"68% {np.percentile(rp, 68.27):.2f} mas"
    )


def _sky_errors(xy, ra, dec, truth, tra, tdec, sel):
    """Truth index and sky error (mas) of each measured source matched within 1 px to a selected star."""
    from scipy.spatial import cKDTree

    d, j = cKDTree(np.column_stack([truth["x"], truth["y"]])).query(xy)
    ok = (d < 1.0) & sel[j] & np.isfinite(ra)
    j, ra, dec = j[ok], ra[ok], dec[ok]
    _, first = np.unique(j, return_index=True)
    j, ra, dec = j[first], ra[first], dec[first]
    dra = (ra - tra[j]) * np.cos(np.radians(tdec[j])) * 3.6e6
    return j, np.hypot(dra, (dec - tdec[j]) * 3.6e6)


if __name__ == "__main__":
    main()
