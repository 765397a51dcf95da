"""Association of one detector's DiaSources with the APDB, forced photometry, APDB store.

:class:`AssociationTask` runs per ``(instrument, exposure, detector)`` on ``dia_source`` (the
DIA task's table), ``calexp`` and ``difference_exp``:

1. the DiaObjects of the detector's sky region are read from the APDB (last versions);
2. the DiaSources are associated with them (:func:`pachon.algorithms.association.associate`,
   nearest neighbour within ``radius_arcsec``; unmatched sources create DiaObjects);
3. every DiaObject of the region (old and new) is force-photometered at its mean position on the
   difference (``psfFlux``) and the science image (``scienceFlux``):
   :func:`forced_psf_photometry`, a vectorized PSF fit on stamps;
4. the summary columns of the touched DiaObjects are recomputed from their full history
   (:func:`pachon.algorithms.association.summarize_dia_objects`);
5. DiaSources, DiaForcedSources and the new DiaObject versions are stored in one APDB
   transaction (:meth:`pachon.apdb.Apdb.store`).

Re-running a detector of a visit already in the APDB writes nothing there: the stored rows of
that (visit, detector) are read back, so the outputs are those of the first run and the store
record says ``already_stored`` (the alert task then publishes nothing again).

The APDB URL is the config field ``apdb_url``; ``{repo}`` in it stands for the repository root
(:func:`pachon.pipelines.ap.load_ap_pipeline` fills it in), so the default is an SQLite file
``apdb.sqlite3`` in the repository folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.core.errors import ConfigError
from pachon.core.exposure import Exposure
from pachon.pipe.task import Input, Output, Task

__all__ = ["AssociationConfig", "AssociationTask", "forced_psf_photometry", "detector_region",
           "forced_source_id_offset", "DEFAULT_APDB_URL"]

_log = logging.getLogger(__name__)

_DETECTOR = ("instrument", "exposure", "detector")

#: Default APDB: SQLite in the repository folder (``{repo}`` is the repository root).
DEFAULT_APDB_URL = "sqlite:///{repo}/apdb.sqlite3"

_APDB_CACHE: dict[str, Any] = {}


@dataclass
class AssociationConfig:
    """Settings of :class:`AssociationTask`."""

    #: SQLAlchemy URL of the APDB; ``{repo}`` is replaced by the repository root.
    apdb_url: str = DEFAULT_APDB_URL
    #: Association radius (arcsec).
    radius_arcsec: float = 1.0
    #: Force-photometer every DiaObject of the detector region.
    do_forced: bool = True


def open_apdb(url: str) -> Any:
    """The :class:`pachon.apdb.Apdb` of ``url``, one per process (connections are reused)."""
    if "{repo}" in url:
        raise ConfigError(f"apdb_url {url!r} still holds '{{repo}}': load ap.yaml with "
                          f"pachon.pipelines.ap.load_ap_pipeline(repo_root) or set association.apdb_url")
    if url not in _APDB_CACHE:
        from pachon.apdb import Apdb

        _APDB_CACHE[url] = Apdb(url)
    return _APDB_CACHE[url]


def detector_region(exposure: Exposure) -> Any:
    """The sky polygon of an exposure's pixel box (its WCS), for APDB region queries."""
    from pachon.core.sphgeom import ConvexPolygon

    if exposure.wcs is None:
        raise ConfigError("the exposure has no WCS: its sky region is unknown; calibrate it first")
    b = exposure.bbox
    x = np.array([b.x0 - 0.5, b.x0 + b.width - 0.5, b.x0 + b.width - 0.5, b.x0 - 0.5])
    y = np.array([b.y0 - 0.5, b.y0 - 0.5, b.y0 + b.height - 0.5, b.y0 + b.height - 0.5])
    ra, dec = exposure.pixel_to_sky(x, y)
    return ConvexPolygon.from_corners(np.asarray(ra), np.asarray(dec))


def forced_source_id_offset(visit: int, detector: int) -> int:
    """First ``diaForcedSourceId`` of a detector-visit (same layout as ``diaSourceId``)."""
    from pachon.pipelines.dia_task import source_id_offset

    return source_id_offset(visit, detector)


def forced_psf_photometry(exposure: Exposure, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, ...]:
    """PSF flux (nJy) fitted at fixed sky positions, all positions at once.

    Parameters
    ----------
    exposure
        Calibrated exposure (difference or science) with WCS, PSF and photometric calibration.
    ra, dec
        Positions (deg).

    Returns
    -------
    flux, flux_err : numpy.ndarray
        nJy; NaN where the position falls off the image or the stamp has no good pixel.
    inside : numpy.ndarray
        Whether each position lies on the image.
    """
    from pachon.algorithms.dia import stamps as st

    n = np.size(ra)
    flux, err = np.full(n, np.nan), np.full(n, np.nan)
    if n == 0 or exposure.psf is None:
        return flux, err, np.zeros(n, bool)
    b = exposure.bbox
    x, y = exposure.sky_to_pixel(np.asarray(ra, float), np.asarray(dec, float))
    x, y = np.asarray(x, float), np.asarray(y, float)
    inside = (x >= b.x0 - 0.5) & (x < b.x0 + b.width - 0.5) & (y >= b.y0 - 0.5) & (y < b.y0 + b.height - 0.5)
    if not inside.any():
        return flux, err, inside
    xs, ys = x[inside], y[inside]
    kernel = exposure.psf.kernel_image(b.x0 + 0.5 * b.width, b.y0 + 0.5 * b.height)
    half = kernel.shape[0] // 2
    ix, iy = np.rint(xs).astype(int), np.rint(ys).astype(int)
    stamps = st.gather(exposure.image.astype(float), ix - b.x0, iy - b.y0, half)
    var = st.gather(exposure.variance.astype(float), ix - b.x0, iy - b.y0, half)
    psfs = st.shifted_psfs(kernel, xs - ix, ys - iy, half)
    f, e, _, _ = st.psf_fit(stamps, var, psfs)
    calib = exposure.photo_calib.calibration_mean if exposure.photo_calib is not None else 1.0
    flux[inside], err[inside] = f * calib, e * calib
    return flux, err, inside


def _now_mjd_tai() -> float:
    import time

    return 40587.0 + (time.time() + 37.0) / 86400.0  # UTC + (TAI - UTC)


def _forced_table(objects: Any, difference: Exposure, calexp: Exposure, visit: int, detector: int,
                  band: str | None, mjd: float) -> Any:
    import pyarrow as pa

    from pachon.core.schemas import arrow_schema

    ra, dec = objects.column("ra").to_numpy(), objects.column("dec").to_numpy()
    flux, err, inside = forced_psf_photometry(difference, ra, dec)
    sci, sci_err, _ = forced_psf_photometry(calexp, ra, dec)
    keep = np.flatnonzero(inside)
    n = keep.size
    cols = {
        "diaForcedSourceId": forced_source_id_offset(visit, detector) + np.arange(n, dtype=np.int64),
        "diaObjectId": objects.column("diaObjectId").to_numpy()[keep],
        "ra": ra[keep], "dec": dec[keep],
        "visit": np.full(n, visit, np.int64), "detector": np.full(n, detector, np.int16),
        "psfFlux": flux[keep], "psfFluxErr": err[keep],
        "midpointMjdTai": np.full(n, mjd), "scienceFlux": sci[keep], "scienceFluxErr": sci_err[keep],
        "band": [band] * n, "timeProcessedMjdTai": np.full(n, _now_mjd_tai()),
    }
    schema = arrow_schema("apdb", "DiaForcedSource")
    arrays = [pa.nulls(n, f.type) if cols.get(f.name) is None else
              pa.array(cols[f.name], f.type, from_pandas=True) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


class AssociationTask(Task):
    """Associate, force-photometer and store one detector-visit (see the module docstring)."""

    dimensions = _DETECTOR
    inputs = {
        "dia_source": Input("dia_source", _DETECTOR, "ArrowTable", doc="DiaSources of the DIA task"),
        "calexp": Input("calexp", _DETECTOR, "Exposure", doc="science exposure (forced scienceFlux)"),
        "difference": Input("difference_exp", _DETECTOR, "Exposure", doc="difference (forced psfFlux)"),
    }
    outputs = {
        "associated": Output("dia_source_associated", _DETECTOR, "ArrowTable",
                             doc="the DiaSources with diaObjectId, as stored in the APDB"),
        "dia_object": Output("dia_object", _DETECTOR, "ArrowTable",
                             doc="new versions of the DiaObjects touched by this detector-visit"),
        "forced": Output("dia_forced_source", _DETECTOR, "ArrowTable", doc="DiaForcedSources"),
        "store": Output("apdb_store", _DETECTOR, "Json", doc="what was stored in the APDB"),
    }
    config_class = AssociationConfig

    def run(self, dia_source: Any, calexp: Exposure, difference: Exposure, exposure: int = 0,
            detector: int = 0) -> dict[str, Any]:
        """Associate and store (the APDB is the one of ``config.apdb_url``)."""
        import pyarrow as pa

        from pachon.algorithms.association import associate, summarize_dia_objects

        apdb = open_apdb(self.config.apdb_url)
        visit, det = int(exposure), int(detector)
        vi = calexp.visit_info
        mjd = float(vi.mjd_tai_mid) if vi is not None and vi.mjd_tai_mid is not None else float("nan")
        band = vi.band if vi is not None else None
        region = detector_region(calexp)
        if det in apdb.stored_detectors(visit):
            return self._stored(apdb, region, visit, det)
        objects = apdb.get_dia_objects(region)
        assoc = associate(dia_source, objects, radius_arcsec=self.config.radius_arcsec)
        sources = assoc.dia_sources
        touched = np.unique(sources.column("diaObjectId").drop_null().to_numpy())
        old = touched[np.isin(touched, assoc.new_object_ids, invert=True)]
        hist = apdb.get_dia_sources(old)
        hist_forced = apdb.get_dia_forced_sources(touched)
        # forced photometry of every object of the region, new ones at their first position
        new_rows = sources.filter(pa.array(np.isin(sources.column("diaSourceId").to_numpy(),
                                                   assoc.new_object_ids)))
        pos = pa.table({
            "diaObjectId": np.concatenate([objects.column("diaObjectId").to_numpy(),
                                           new_rows.column("diaSourceId").to_numpy()]).astype(np.int64),
            "ra": np.concatenate([objects.column("ra").to_numpy(), new_rows.column("ra").to_numpy()]),
            "dec": np.concatenate([objects.column("dec").to_numpy(), new_rows.column("dec").to_numpy()]),
        })
        forced = (_forced_table(pos, difference, calexp, visit, det, band, mjd) if self.config.do_forced
                  else _forced_table(pos.slice(0, 0), difference, calexp, visit, det, band, mjd))
        all_forced = pa.concat_tables([hist_forced, forced.cast(hist_forced.schema)])
        summary = summarize_dia_objects(pa.concat_tables([hist, sources.cast(hist.schema)]), all_forced)
        result = apdb.store(mjd, summary, sources, forced, visit=visit, detector=det)
        _log.info("visit %s detector %s: %d DiaSources, %d matched, %d new DiaObjects, %d forced", visit, det,
                  sources.num_rows, int(assoc.matched.sum()), assoc.new_object_ids.size, forced.num_rows)
        record = {"visit": visit, "detector": det, "already_stored": result.already_stored,
                  "n_dia_sources": sources.num_rows, "n_matched": int(assoc.matched.sum()),
                  "n_new_objects": int(assoc.new_object_ids.size), "n_forced": forced.num_rows,
                  "visit_time_mjd_tai": mjd, "apdb_url": self.config.apdb_url}
        if result.already_stored:  # another process stored it meanwhile: report what is there
            return self._stored(apdb, region, visit, det)
        return {"associated": sources, "dia_object": summary, "forced": forced, "store": record}

    def _stored(self, apdb: Any, region: Any, visit: int, det: int) -> dict[str, Any]:
        """The rows of an already stored detector-visit, read back from the APDB."""
        import pyarrow.compute as pc

        objects = apdb.get_dia_objects(region)
        ids = objects.column("diaObjectId").to_numpy()
        sources = apdb.get_dia_sources(ids)
        mine = pc.and_(pc.equal(sources.column("visit"), visit), pc.equal(sources.column("detector"), det))
        sources = sources.filter(mine).sort_by("diaSourceId")
        forced = apdb.get_dia_forced_sources(ids)
        forced = forced.filter(pc.and_(pc.equal(forced.column("visit"), visit),
                                       pc.equal(forced.column("detector"), det)))
        touched = np.isin(ids, sources.column("diaObjectId").to_numpy())
        _log.info("visit %s detector %s is already in the APDB (%d DiaSources): nothing stored again",
                  visit, det, sources.num_rows)
        record = {"visit": visit, "detector": det, "already_stored": True, "n_dia_sources": sources.num_rows,
                  "n_forced": forced.num_rows, "apdb_url": self.config.apdb_url}
        return {"associated": sources, "dia_object": objects.filter(touched), "forced": forced,
                "store": record}

    def run_quantum(self, inputs: dict[str, Any], data_id: dict[str, Any]) -> dict[str, Any]:
        """Pass the exposure (= visit) and detector ids to `run`."""
        return self.run(**inputs, exposure=int(data_id["exposure"]), detector=int(data_id["detector"]))
