"""Association of DiaSources with DiaObjects and solar-system objects, and DiaObject summaries.

Pure functions on arrays and pyarrow Tables (no I/O):

- :func:`match_nearest`: each source to the nearest object within a radius (spatial hash of unit
  vectors), at most one source per object (the closest wins, the others stay unmatched);
- :func:`associate`: DiaSources of one detector-visit against the DiaObjects of the region:
  sets ``diaObjectId``, new objects take the id of their first DiaSource (as Rubin does);
- :func:`associate_solar_system`: sources against predicted positions of known solar-system
  objects (SSSource rows);
- :func:`summarize_dia_objects`: the DiaObject summary columns of ``apdb.yaml`` (mean
  position, per-band PSF flux mean/error/sigma/min/max/ndata/max slope, science flux means,
  forced-photometry means, first/last times, ``nDiaSources``) by vectorized group-by.

Error of the mean PSF flux (``<band>_psfFluxMeanErr``): a DiaSource's ``psfFluxErr`` is the
pixel noise ``s`` and, in quadrature, the PSF-matching residual of the static flux
``c = f |templateFlux|`` (``f``: the difference's measured template-mismatch fraction,
:mod:`pachon.algorithms.diffim.mismatch`).  ``c`` is not independent between the sources of one
object: they were all differenced against the same template and star, and the residual has a
common sign (a fraction of the same static flux).  The mean is still weighted by
``w = 1 / psfFluxErr^2`` (the schema's weighted mean), and its error treats ``s`` as independent
and ``c`` as fully correlated::

    psfFluxMeanErr^2 = sum(w^2 s^2) / (sum w)^2 + (sum(w c) / sum w)^2

(``1 / sqrt(sum w)`` when ``c = 0``): the common term is not averaged down by the number of
sources.  ``s`` comes back from the stored columns as ``|psfFlux| / |snr|`` (``snr`` is the
pixel-noise S/N of the PSF flux, :func:`pachon.algorithms.dia.measure.measure_dia_sources`) and
``c^2 = psfFluxErr^2 - s^2``; where ``snr`` is missing, all of ``psfFluxErr`` counts as
independent.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from pachon.core.errors import ConfigError
from pachon.core.sphgeom import lonlat_to_vector, vector_to_lonlat

__all__ = [
    "BANDS",
    "AssociationResult",
    "match_nearest",
    "associate",
    "associate_solar_system",
    "common_error",
    "summarize_dia_objects",
]

log = logging.getLogger(__name__)

BANDS = ("u", "g", "r", "i", "z", "y")
"""Bands with per-band DiaObject columns."""


def _chord(radius_arcsec: float) -> float:
    return 2.0 * np.sin(np.radians(radius_arcsec / 3600.0) / 2.0)


def match_nearest(
    src_ra: Any, src_dec: Any, obj_ra: Any, obj_dec: Any, radius_arcsec: float
) -> tuple[np.ndarray, np.ndarray]:
    """Match each source to its nearest object within a radius, one source per object.

    Parameters
    ----------
    src_ra, src_dec, obj_ra, obj_dec
        Positions (deg).
    radius_arcsec
        Match radius.

    Returns
    -------
    index : numpy.ndarray
        Index of the matched object per source, -1 where none (or where a closer source
        took the object).
    distance : numpy.ndarray
        Separation to that object (arcsec), NaN where unmatched.
    """
    if not radius_arcsec > 0:
        raise ConfigError(f"radius_arcsec must be positive, got {radius_arcsec!r}")
    src = lonlat_to_vector(np.asarray(src_ra, float), np.asarray(src_dec, float)).reshape(-1, 3)
    n = src.shape[0]
    index = np.full(n, -1, np.int64)
    distance = np.full(n, np.nan)
    obj = lonlat_to_vector(np.asarray(obj_ra, float), np.asarray(obj_dec, float)).reshape(-1, 3)
    if n == 0 or obj.shape[0] == 0:
        return index, distance
    pair_src, pair_obj, chord = _pairs_within(src, obj, _chord(radius_arcsec))
    if pair_src.size == 0:
        return index, distance
    # nearest object per source
    order = np.lexsort((chord, pair_src))
    _, first = np.unique(pair_src[order], return_index=True)
    best = order[first]
    s_idx, o_idx, c = pair_src[best], pair_obj[best], chord[best]
    # ambiguity: several sources on one object → the closest keeps it
    order = np.lexsort((c, o_idx))
    _, first = np.unique(o_idx[order], return_index=True)
    win = order[first]
    index[s_idx[win]] = o_idx[win]
    distance[s_idx[win]] = np.degrees(2.0 * np.arcsin(np.minimum(c[win], 2.0) / 2.0)) * 3600.0
    return index, distance


_OFFSETS = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])


def _pairs_within(
    src: np.ndarray, obj: np.ndarray, chord: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (source, object) pairs of unit vectors closer than ``chord``.

    A spatial hash of the unit cube in cells of side ``chord``: each object goes into its
    cell, each source looks in its 27 neighbouring cells (sorted keys + searchsorted; the
    candidate pairs are expanded with ``np.repeat``), then exact distances are kept.
    """
    cells = int(np.ceil(2.0 / chord)) + 3
    if cells**3 >= 2**62:
        raise ConfigError(f"match radius too small for the spatial hash ({chord} rad)")

    def cell(v: np.ndarray) -> np.ndarray:
        return np.floor((v + 1.0) / chord).astype(np.int64) + 1

    def key(c: np.ndarray) -> np.ndarray:
        return (c[..., 0] * cells + c[..., 1]) * cells + c[..., 2]

    obj_key = key(cell(obj))
    order = np.argsort(obj_key, kind="stable")
    sorted_keys = obj_key[order]
    near = key(cell(src)[:, None, :] + _OFFSETS[None, :, :])  # (n, 27)
    lo = np.searchsorted(sorted_keys, near, side="left").ravel()
    hi = np.searchsorted(sorted_keys, near, side="right").ravel()
    counts = hi - lo
    total = int(counts.sum())
    pair_src = np.repeat(np.repeat(np.arange(src.shape[0]), 27), counts)
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    pair_obj = order[starts + np.arange(total)]
    d = np.linalg.norm(src[pair_src] - obj[pair_obj], axis=1)
    keep = d <= chord
    return pair_src[keep], pair_obj[keep], d[keep]


@dataclasses.dataclass
class AssociationResult:
    """Output of :func:`associate`.

    Attributes
    ----------
    dia_sources
        The input DiaSources with ``diaObjectId`` (and ``ssObjectId``) set.
    matched
        Per source: True when associated with an existing DiaObject.
    new_object_ids
        Ids of the DiaObjects created (one per unmatched source).
    distance_arcsec
        Per source: distance to the matched object, NaN otherwise.
    """

    dia_sources: Any
    matched: np.ndarray
    new_object_ids: np.ndarray
    distance_arcsec: np.ndarray


def _set_column(table: Any, name: str, values: Any, mask: np.ndarray | None = None) -> Any:
    import pyarrow as pa

    field = table.schema.field(name)
    array = pa.array(values, type=field.type, mask=mask)
    return table.set_column(table.schema.get_field_index(name), field, array)


def associate(
    dia_sources: Any, dia_objects: Any, *, radius_arcsec: float = 1.0,
    ss_object_ids: Any = None,
) -> AssociationResult:
    """Associate the DiaSources of one detector-visit with existing DiaObjects.

    Parameters
    ----------
    dia_sources
        pyarrow Table of new DiaSources (``diaSourceId``, ``ra``, ``dec``, ...).
    dia_objects
        pyarrow Table of the DiaObjects of the region (``diaObjectId``, ``ra``, ``dec``).
    radius_arcsec
        Association radius.
    ss_object_ids
        Optional per-source ``ssObjectId`` (0 or negative = none) from
        :func:`associate_solar_system`: those sources join no DiaObject.

    Returns
    -------
    AssociationResult
    """
    ids = dia_sources.column("diaSourceId").to_numpy()
    ra, dec = dia_sources.column("ra").to_numpy(), dia_sources.column("dec").to_numpy()
    solar = np.zeros(ids.size, bool)
    if ss_object_ids is not None:
        ss = np.asarray(ss_object_ids, np.int64)
        solar = ss > 0
        dia_sources = _set_column(dia_sources, "ssObjectId", ss, mask=~solar)
    index = np.full(ids.size, -1, np.int64)
    distance = np.full(ids.size, np.nan)
    free = np.flatnonzero(~solar)
    if dia_objects is not None and dia_objects.num_rows and free.size:
        idx, dist = match_nearest(
            ra[free], dec[free], dia_objects.column("ra").to_numpy(),
            dia_objects.column("dec").to_numpy(), radius_arcsec,
        )
        index[free], distance[free] = idx, dist
    matched = index >= 0
    object_ids = ids.copy()  # a new DiaObject takes its first DiaSource's id
    if matched.any():
        object_ids[matched] = dia_objects.column("diaObjectId").to_numpy()[index[matched]]
    dia_sources = _set_column(dia_sources, "diaObjectId", object_ids, mask=solar)
    new = ~matched & ~solar
    log.debug("associated %d sources: %d matched, %d new objects, %d solar-system",
              ids.size, matched.sum(), new.sum(), solar.sum())
    return AssociationResult(dia_sources, matched, ids[new], distance)


def associate_solar_system(
    src_ra: Any, src_dec: Any, eph_ra: Any, eph_dec: Any, ss_object_id: Any,
    *, radius_arcsec: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Match sources to predicted positions of known solar-system objects.

    Parameters
    ----------
    src_ra, src_dec
        DiaSource positions (deg).
    eph_ra, eph_dec, ss_object_id
        Ephemerides of the objects at the visit time (deg) and their ids.
    radius_arcsec
        Match radius (ephemeris uncertainty).

    Returns
    -------
    ss_object_ids : numpy.ndarray
        Per source, the matched ``ssObjectId`` or 0.
    eph_index : numpy.ndarray
        Per source, the index of the matched ephemeris row or -1 (to fill SSSource rows).
    """
    index, _ = match_nearest(src_ra, src_dec, eph_ra, eph_dec, radius_arcsec)
    ids = np.asarray(ss_object_id, np.int64)
    out = np.zeros(index.size, np.int64)
    out[index >= 0] = ids[index[index >= 0]]
    return out, index


def _group_reduce(ufunc: Any, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return ufunc.reduceat(values, starts) if values.size else values[:0]


def common_error(flux: np.ndarray, err: np.ndarray, snr: np.ndarray) -> np.ndarray:
    """The part of ``err`` common to an object's sources: ``sqrt(err^2 - (flux / snr)^2)``.

    ``flux / snr`` is the pixel-noise error (``snr`` being the pixel-noise S/N of ``flux``); the
    rest of ``err`` is the PSF-matching residual of the static flux.  0 where ``snr`` or ``flux``
    is missing or zero (all of ``err`` then counts as independent).
    """
    flux, err, snr = (np.asarray(a, float) for a in (flux, err, snr))
    with np.errstate(invalid="ignore", divide="ignore"):
        pixel = np.abs(flux) / np.abs(snr)
        c2 = err**2 - pixel**2
    return np.where(np.isfinite(c2) & (pixel > 0), np.sqrt(np.maximum(c2, 0.0)), 0.0)


def _band_stats(keys: np.ndarray, t: np.ndarray, flux: np.ndarray, err: np.ndarray,
                n_keys: int, common: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-key weighted mean, error, sigma, min, max, ndata, max slope, mean error.

    ``common``: the part of each ``err`` that is fully correlated between the sources of one key
    (see the module docstring); None or 0: independent errors, ``mean_err = 1 / sqrt(sum w)``.
    """
    if common is None:
        common = np.zeros(err.shape)
    ok = np.isfinite(flux) & np.isfinite(err) & (err > 0)
    keys, t, flux, err, common = keys[ok], t[ok], flux[ok], err[ok], common[ok]
    order = np.lexsort((t, keys))
    keys, t, flux, err, common = keys[order], t[order], flux[order], err[order], common[order]
    out = {k: np.full(n_keys, np.nan) for k in
           ("mean", "mean_err", "sigma", "min", "max", "slope", "err_mean")}
    out["ndata"] = np.zeros(n_keys, np.int64)
    if keys.size == 0:
        return out
    uniq, starts, counts = np.unique(keys, return_index=True, return_counts=True)
    w = 1.0 / err**2
    sw = _group_reduce(np.add, w, starts)
    out["mean"][uniq] = _group_reduce(np.add, w * flux, starts) / sw
    common = np.minimum(np.nan_to_num(common), err)
    indep2 = err**2 - common**2
    independent = _group_reduce(np.add, w**2 * indep2, starts) / sw**2
    correlated = _group_reduce(np.add, w * common, starts) / sw
    out["mean_err"][uniq] = np.sqrt(independent + correlated**2)
    mean_plain = _group_reduce(np.add, flux, starts) / counts
    dev2 = (flux - np.repeat(mean_plain, counts)) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        out["sigma"][uniq] = np.where(
            counts > 1, np.sqrt(_group_reduce(np.add, dev2, starts) / (counts - 1)), np.nan
        )
    out["min"][uniq] = _group_reduce(np.minimum, flux, starts)
    out["max"][uniq] = _group_reduce(np.maximum, flux, starts)
    out["ndata"][uniq] = counts
    out["err_mean"][uniq] = _group_reduce(np.add, err, starts) / counts
    same = keys[1:] == keys[:-1]
    dt = np.diff(t)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(same & (dt > 0), np.diff(flux) / np.where(dt > 0, dt, 1.0), -np.inf)
    if slope.size:
        best = np.full(n_keys, -np.inf)
        np.maximum.at(best, keys[1:], slope)
        out["slope"] = np.where(np.isfinite(best), best, np.nan)
    return out


def _column(table: Any, name: str, dtype: Any = float) -> np.ndarray:
    col = table.column(name)
    if dtype is float:
        return col.to_numpy(zero_copy_only=False).astype(float)  # nulls → NaN
    return col.to_numpy(zero_copy_only=False)


def summarize_dia_objects(dia_sources: Any, dia_forced_sources: Any = None) -> Any:
    """Compute the DiaObject summary columns from the full history of each object.

    Parameters
    ----------
    dia_sources
        All DiaSources of the objects to summarize (pyarrow Table with ``diaObjectId``,
        ``ra``, ``dec``, ``raErr``, ``decErr``, ``midpointMjdTai``, ``band``, ``psfFlux``,
        ``psfFluxErr``, ``scienceFlux``, ``scienceFluxErr``); rows without ``diaObjectId``
        are ignored.
    dia_forced_sources
        Optional DiaForcedSources of those objects, for the ``*_fpFluxMean`` columns.

    Returns
    -------
    pyarrow.Table
        One DiaObject row per object (APDB schema, sorted by ``diaObjectId``);
        ``validityStartMjdTai`` is set to the last DiaSource time (the APDB sets it to the
        visit time on store).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from pachon.core.schemas import arrow_schema

    schema = arrow_schema("apdb", "DiaObject")
    sources = dia_sources.filter(pc.is_valid(dia_sources.column("diaObjectId")))
    obj = sources.column("diaObjectId").to_numpy()
    uniq, inverse, counts = np.unique(obj, return_inverse=True, return_counts=True)
    n = uniq.size
    cols: dict[str, Any] = {"diaObjectId": uniq, "nDiaSources": counts}
    # mean position on the sphere; error of the mean from the per-source errors
    vec = lonlat_to_vector(_column(sources, "ra"), _column(sources, "dec"))
    mean_vec = np.stack([np.bincount(inverse, vec[:, i], n) for i in range(3)], axis=-1)
    cols["ra"], cols["dec"] = vector_to_lonlat(mean_vec)
    for name in ("raErr", "decErr"):
        err = _column(sources, name)
        good = np.isfinite(err)
        num = np.bincount(inverse[good], err[good] ** 2, n)
        cnt = np.bincount(inverse[good], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            cols[name] = np.where(cnt > 0, np.sqrt(num) / np.maximum(cnt, 1), np.nan)
    t = _column(sources, "midpointMjdTai")
    first = np.full(n, np.inf)
    last = np.full(n, -np.inf)
    np.minimum.at(first, inverse, t)
    np.maximum.at(last, inverse, t)
    cols["firstDiaSourceMjdTai"], cols["lastDiaSourceMjdTai"] = first, last
    cols["validityStartMjdTai"] = last
    band = np.asarray(sources.column("band").to_pylist(), dtype=object)
    band_index = np.full(band.size, -1)
    for b, name in enumerate(BANDS):
        band_index[band == name] = b
    in_band = band_index >= 0
    keys = inverse[in_band] * len(BANDS) + band_index[in_band]
    tb = t[in_band]
    psf_flux, psf_err = _column(sources, "psfFlux")[in_band], _column(sources, "psfFluxErr")[in_band]
    has_snr = "snr" in sources.column_names
    snr = _column(sources, "snr")[in_band] if has_snr else np.full(psf_flux.shape, np.nan)
    psf = _band_stats(keys, tb, psf_flux, psf_err, n * len(BANDS), common_error(psf_flux, psf_err, snr))
    sci = _band_stats(keys, tb, _column(sources, "scienceFlux")[in_band],
                      _column(sources, "scienceFluxErr")[in_band], n * len(BANDS))
    fp = None
    if dia_forced_sources is not None and dia_forced_sources.num_rows:
        fobj = dia_forced_sources.column("diaObjectId").to_numpy()
        fpos = np.searchsorted(uniq, fobj)
        known = (fpos < n) & (uniq[np.minimum(fpos, n - 1)] == fobj)
        fband = np.asarray(dia_forced_sources.column("band").to_pylist(), dtype=object)
        fb = np.full(fband.size, -1)
        for b, name in enumerate(BANDS):
            fb[fband == name] = b
        sel = known & (fb >= 0)
        fp = _band_stats(
            fpos[sel] * len(BANDS) + fb[sel], _column(dia_forced_sources, "midpointMjdTai")[sel],
            _column(dia_forced_sources, "psfFlux")[sel],
            _column(dia_forced_sources, "psfFluxErr")[sel], n * len(BANDS),
        )
    for b, name in enumerate(BANDS):
        pick = slice(b, None, len(BANDS))
        cols[f"{name}_psfFluxMean"] = psf["mean"][pick]
        cols[f"{name}_psfFluxMeanErr"] = psf["mean_err"][pick]
        cols[f"{name}_psfFluxSigma"] = psf["sigma"][pick]
        cols[f"{name}_psfFluxNdata"] = psf["ndata"][pick]
        cols[f"{name}_psfFluxMin"] = psf["min"][pick]
        cols[f"{name}_psfFluxMax"] = psf["max"][pick]
        cols[f"{name}_psfFluxMaxSlope"] = psf["slope"][pick]
        cols[f"{name}_psfFluxErrMean"] = psf["err_mean"][pick]
        cols[f"{name}_scienceFluxMean"] = sci["mean"][pick]
        cols[f"{name}_scienceFluxMeanErr"] = sci["mean_err"][pick]
        if fp is not None:
            cols[f"{name}_fpFluxMean"] = fp["mean"][pick]
            cols[f"{name}_fpFluxMeanErr"] = fp["mean_err"][pick]
    arrays = []
    for field in schema:
        value = cols.get(field.name)
        if value is None:
            arrays.append(pa.nulls(n, field.type))
        elif pa.types.is_floating(field.type):
            value = np.asarray(value, float)
            arrays.append(pa.array(value, field.type, mask=~np.isfinite(value)))
        else:
            arrays.append(pa.array(value, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
