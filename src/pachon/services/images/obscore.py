"""The ObsCore table: one row per image dataset (raw, calexp, difference, coadd) of a repository.

Rows follow the Rubin ObsCore schema (``ivoa_obscore.yaml`` of lsst-sdm-schemas, loaded with
`pachon.core.schemas.arrow_schema`) plus two standard ObsCore columns that schema lacks,
``access_estsize`` (kbyte) and ``pol_states``.  ``obs_collection`` holds the dataset's RUN
collection: collection access rules (embargo) filter on it.

Geometry comes from the image's own WCS (its four outer pixel corners) when the file has one,
read from headers only; otherwise from the exposure or visit region of the registry.  Times are
MJD (TAI) from the exposure/visit records, or from the exposure's visit info.  Wavelength limits
come from the band, with the LSST ugrizy edges of Rubin's ObsCore configuration (dax_obscore);
other bands give nulls.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pachon.core.errors import ConfigError, DatasetNotFoundError, FormatError
from pachon.core.progress import progress
from pachon.services.images.regions import region_to_stcs, wcs_footprint

__all__ = [
    "IMAGE_STORAGE_CLASSES",
    "OBSCORE_UTYPES",
    "BAND_EDGES_M",
    "DID_PREFIX",
    "DATALINK_FORMAT",
    "build_obscore",
    "obscore_schema",
    "dataset_did",
    "parse_did",
    "calib_level",
    "datalink_url",
    "with_base_url",
]

_log = logging.getLogger(__name__)

#: Storage classes whose datasets are images listed in ObsCore.
IMAGE_STORAGE_CLASSES = ("Exposure", "RawFits")
#: Wavelength limits (m) of the LSST bands, as in Rubin's ObsCore configuration.
BAND_EDGES_M: dict[str, tuple[float, float]] = {
    "u": (330e-9, 400e-9),
    "g": (402e-9, 552e-9),
    "r": (552e-9, 691e-9),
    "i": (691e-9, 818e-9),
    "z": (818e-9, 922e-9),
    "y": (970e-9, 1060e-9),
}
#: Publisher dataset identifiers are this prefix followed by the dataset UUID.
DID_PREFIX = "ivo://pachon/dataset?"
#: MIME type of a DataLink links response (the ObsCore ``access_format``).
DATALINK_FORMAT = "application/x-votable+xml;content=datalink"
#: ObsCore 1.1 utypes (clients such as pyvo find access_url and access_format by them).
OBSCORE_UTYPES = {
    "dataproduct_type": "ObsDataset.dataProductType",
    "dataproduct_subtype": "ObsDataset.dataProductSubtype",
    "calib_level": "ObsDataset.calibLevel",
    "obs_collection": "DataID.Collection",
    "obs_id": "DataID.observationID",
    "obs_title": "DataID.Title",
    "obs_publisher_did": "Curation.PublisherDID",
    "access_url": "Access.Reference",
    "access_format": "Access.Format",
    "access_estsize": "Access.Size",
    "target_name": "Target.Name",
    "s_ra": "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1",
    "s_dec": "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2",
    "s_fov": "Char.SpatialAxis.Coverage.Bounds.Extent.diameter",
    "s_region": "Char.SpatialAxis.Coverage.Support.Area",
    "s_resolution": "Char.SpatialAxis.Resolution.Refval.value",
    "s_xel1": "Char.SpatialAxis.numBins1",
    "s_xel2": "Char.SpatialAxis.numBins2",
    "t_min": "Char.TimeAxis.Coverage.Bounds.Limits.StartTime",
    "t_max": "Char.TimeAxis.Coverage.Bounds.Limits.StopTime",
    "t_exptime": "Char.TimeAxis.Coverage.Support.Extent",
    "t_resolution": "Char.TimeAxis.Resolution.Refval.value",
    "t_xel": "Char.TimeAxis.numBins",
    "em_min": "Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit",
    "em_max": "Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit",
    "em_res_power": "Char.SpectralAxis.Resolution.ResolPower.refVal",
    "em_xel": "Char.SpectralAxis.numBins",
    "o_ucd": "Char.ObservableAxis.ucd",
    "pol_states": "Char.PolarizationAxis.stateList",
    "pol_xel": "Char.PolarizationAxis.numBins",
    "facility_name": "Provenance.ObsConfig.Facility.name",
    "instrument_name": "Provenance.ObsConfig.Instrument.name",
}
_FACILITIES = {"LSSTCam": "Rubin:Simonyi", "LSSTComCam": "Rubin:Simonyi", "LATISS": "Rubin:AuxTel"}
_NS_PER_DAY = 86_400_000_000_000
_MJD_EPOCH = 40587.0  # MJD (TAI) of 1970-01-01T00:00:00 TAI, the registry's time origin


def obscore_schema() -> Any:
    """The Arrow schema: the Rubin ObsCore columns plus access_estsize, pol_states, with utypes."""
    import pyarrow as pa

    from pachon.core.schemas import arrow_schema

    base = arrow_schema("ivoa_obscore", "ObsCore")
    size_meta = {"description": "Estimated size of the file", "unit": "kbyte", "ucd": "phys.size;meta.file"}
    pol_meta = {
        "description": "Polarization states present (null: unpolarized)",
        "ucd": "meta.code;phys.polarization",
    }
    extra = [
        pa.field("access_estsize", pa.int64(), metadata=size_meta),
        pa.field("pol_states", pa.string(), metadata=pol_meta),
    ]
    fields = []
    for f in [*base, *extra]:
        if f.name in OBSCORE_UTYPES:
            utype = f"obscore:{OBSCORE_UTYPES[f.name]}".encode()
            f = f.with_metadata({**(f.metadata or {}), b"utype": utype})
        fields.append(f)
    return pa.schema(fields, metadata=base.metadata)


def dataset_did(dataset_id: uuid.UUID | str) -> str:
    """The publisher DID (``obs_publisher_did``) of a dataset."""
    return f"{DID_PREFIX}{uuid.UUID(str(dataset_id))}"


def parse_did(text: str) -> uuid.UUID:
    """The dataset UUID of a publisher DID (or of a bare UUID).

    Raises
    ------
    ConfigError
        ``text`` is neither (the handlers answer 404, as for an unknown dataset).
    """
    value = str(text).strip()
    if value.startswith(DID_PREFIX):
        value = value[len(DID_PREFIX):]
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ConfigError(
            f"ID {text!r} is not a dataset identifier; use an obs_publisher_did such as "
            f"'{DID_PREFIX}<uuid>' from the ObsCore table or SIA results"
        ) from None


def datalink_url(base_url: str, dataset_id: uuid.UUID | str) -> str:
    """The DataLink ``links`` URL of a dataset under a service base URL (may be empty)."""
    return f"{base_url.rstrip('/')}/datalink/links?ID={quote(dataset_did(dataset_id), safe='')}"


def calib_level(dataset_type: str, storage_class: str) -> int:
    """ObsCore calibration level: raw 1, processed single-epoch 2, difference/coadd/template 3."""
    if storage_class == "RawFits":
        return 1
    name = dataset_type.lower()
    return 3 if any(word in name for word in ("coadd", "diff", "template")) else 2


@dataclass
class _FileInfo:
    width: int
    height: int
    wcs: Any = None
    mjd_mid: float | None = None
    exposure_time: float | None = None
    band: str | None = None


def _image_hdu_header(hdul: Any, storage_class: str) -> tuple[Any, Any]:
    if storage_class == "Exposure":
        return hdul["IMAGE"].header, hdul[0].header
    for hdu in hdul:
        if hdu.header.get("NAXIS") == 2:
            return hdu.header, hdul[0].header
    raise FormatError("no 2-D image HDU")


def _file_info(path: Any, storage_class: str, name: str) -> _FileInfo | None:
    """Image size, WCS and timing from a file's headers (pixels are not read)."""
    from astropy.io import fits

    from pachon.core.wcs import wcs_from_header

    try:
        with fits.open(path, lazy_load_hdus=True) as hdul:
            header, primary = _image_hdu_header(hdul, storage_class)
            header = header.copy()
            primary = primary.copy()
    except (OSError, ValueError, KeyError, IndexError, FormatError) as exc:
        _log.warning("%s: cannot read the image headers (%s); left out of ObsCore", name, exc)
        return None
    info = _FileInfo(int(header["NAXIS1"]), int(header["NAXIS2"]))
    if "CTYPE1" not in header and primary is not header and "CTYPE1" in primary:
        merged = primary.copy()
        merged.update(header)
        header = merged
    if "CTYPE1" in header:
        try:
            info.wcs = wcs_from_header(header, name=name)
        except FormatError as exc:
            _log.info("%s: WCS not usable (%s); using the registry region", name, exc)
    if storage_class == "Exposure" and ("VIEXPT" in primary or "VIMJDMID" in primary):
        from pachon.core.visit_info import VisitInfo

        vi = VisitInfo.from_header(primary, name=name)
        info.mjd_mid, info.exposure_time, info.band = vi.mjd_tai_mid, vi.exposure_time, vi.band
    return info


def _records(repo: Any, element: str, keys: tuple[str, ...]) -> dict[tuple, dict[str, Any]]:
    return {tuple(r[k] for k in keys): r for r in repo.query_dimension_records(element)}


def _mjd(ns: Any) -> float | None:
    return None if ns is None else ns / _NS_PER_DAY + _MJD_EPOCH


def build_obscore(
    repo: Any,
    *,
    base_url: str = "",
    facility_map: Mapping[str, str] | None = None,
    cache: dict[uuid.UUID, Any] | None = None,
) -> Any:
    """The ObsCore table of every image dataset in every RUN collection of ``repo``.

    Parameters
    ----------
    repo
        An open `~pachon.repo.Repository`.
    base_url
        Service base URL put in front of ``/datalink/links?ID=...`` in ``access_url`` (empty:
        a root-relative URL; `with_base_url` rewrites it later).
    facility_map
        Instrument name → ``facility_name``; Rubin's instruments are known, others default to
        the instrument name.
    cache
        Rows of an earlier call, by dataset id (filled in here), so rebuilding after an ingest
        only reads the new files.

    Returns
    -------
    pyarrow.Table
        Schema `obscore_schema`, one row per dataset, grouped by dataset type and sorted by
        data ID within a type.
    """
    import pyarrow as pa

    from pachon.repo.registry import CollectionType

    facilities = {**_FACILITIES, **(facility_map or {})}
    cache = {} if cache is None else cache
    runs = [n for n, _ in repo.registry.list_collections(types=[CollectionType.RUN])]
    types = [dt for dt in repo.registry.list_dataset_types() if dt.storage_class in IMAGE_STORAGE_CLASSES]
    refs = [(dt, r) for dt in types if runs for r in repo.query_datasets(dt.name, runs, find_first=False)]
    files = {rec.dataset_id: rec for rec in repo.registry.file_records([r.id for _, r in refs])}
    exposures = _records(repo, "exposure", ("instrument", "id"))
    visits = _records(repo, "visit", ("instrument", "id"))
    detectors = _records(repo, "detector", ("instrument", "id"))
    schema = obscore_schema()
    columns: dict[str, list[Any]] = {f.name: [] for f in schema}
    for dt, ref in progress(refs, total=len(refs), desc="building ObsCore", logger=_log):
        rec = files.get(ref.id)
        if rec is None:
            continue
        if ref.id not in cache:
            try:
                local, temporary = repo.datastore.local_copy(rec.path)
            except DatasetNotFoundError as exc:  # not cached: the file may come back
                _log.warning("%s; %s left out of ObsCore", exc, ref)
                continue
            try:
                info = _file_info(local, dt.storage_class, rec.path)
            finally:
                if temporary:
                    local.unlink(missing_ok=True)
            cache[ref.id] = None if info is None else _row(
                ref, dt, rec, info, exposures, visits, detectors, facilities
            )
        row = cache[ref.id]
        if row is None:
            continue
        for name, values in columns.items():
            values.append(row.get(name))
    return with_base_url(pa.table(columns, schema=schema), base_url)


def with_base_url(table: Any, base_url: str) -> Any:
    """``table`` with its root-relative ``access_url`` values prefixed by ``base_url``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    base = base_url.rstrip("/")
    if not base or table.num_rows == 0:
        return table
    idx = table.schema.get_field_index("access_url")
    urls = pc.binary_join_element_wise(pa.scalar(base), table.column("access_url"), "")
    return table.set_column(idx, table.schema.field(idx), urls)


def _row(
    ref: Any,
    dt: Any,
    rec: Any,
    info: _FileInfo,
    exposures: dict,
    visits: dict,
    detectors: dict,
    facilities: Mapping[str, str],
) -> dict[str, Any] | None:
    did = ref.data_id
    inst = did.get("instrument")
    obs = exposures.get((inst, did.get("exposure"))) or visits.get((inst, did.get("visit"))) or {}
    if info.wcs is not None:
        footprint = wcs_footprint(info.wcs, info.width, info.height)
        ra, dec = info.wcs.all_pix2world((info.width - 1) / 2.0, (info.height - 1) / 2.0, 0)
        center = (float(ra) % 360.0, float(dec))
    elif obs.get("region"):
        from pachon.repo.registry.records import region_from_text

        footprint = region_from_text(obs["region"])
        circle = footprint.bounding_circle()
        center = (circle.ra, circle.dec)
    else:
        _log.info("%s has neither a WCS nor a region; left out of ObsCore", ref)
        return None
    band = did.get("band") or info.band
    em = BAND_EDGES_M.get(band or "", (None, None))
    t_min, t_max = _mjd(obs.get("datetime_begin")), _mjd(obs.get("datetime_end"))
    exptime = obs.get("exposure_time")
    exptime = info.exposure_time if exptime is None else exptime
    if t_min is None and info.mjd_mid is not None:
        half = (info.exposure_time or 0.0) / 2.0 / 86400.0
        t_min, t_max = info.mjd_mid - half, info.mjd_mid + half
    det = detectors.get((inst, did.get("detector")), {})
    if obs.get("obs_id"):
        obs_id = obs["obs_id"]
    elif obs.get("name"):
        obs_id = obs["name"]
    else:
        keys = ("instrument", "exposure", "visit", "skymap", "tract", "patch")
        keys += ("band",) if "tract" in did else ()
        obs_id = "-".join(str(did[k]) for k in keys if k in did) or dt.name
    if det.get("full_name") and "detector" in did:
        obs_id = f"{obs_id}-{det['full_name']}"
    level = calib_level(dt.name, dt.storage_class)
    scale = None
    if info.wcs is not None:
        from astropy.wcs.utils import proj_plane_pixel_scales

        scale = float(proj_plane_pixel_scales(info.wcs.celestial).mean() * 3600.0)
    return {
        "dataproduct_type": "image",
        "dataproduct_subtype": f"lsst.{dt.name}",
        "obs_title": f"{dt.name} {' '.join(f'{k}={v}' for k, v in did.items())}",
        "facility_name": facilities.get(inst, inst),
        "calib_level": level,
        "target_name": obs.get("target_name"),
        "obs_id": str(obs_id),
        "obs_collection": ref.run,
        "obs_publisher_did": dataset_did(ref.id),
        "access_url": datalink_url("", ref.id),
        "access_format": DATALINK_FORMAT,
        "access_estsize": (int(rec.size) + 1023) // 1024,
        "s_ra": center[0],
        "s_dec": center[1],
        "s_fov": 2.0 * footprint.bounding_circle().radius,
        "s_region": region_to_stcs(footprint),
        "s_resolution": scale,
        "s_xel1": info.width,
        "s_xel2": info.height,
        "t_xel": 1,
        "t_min": t_min,
        "t_max": t_max,
        "t_exptime": exptime,
        "em_xel": 1,
        "em_min": em[0],
        "em_max": em[1],
        "o_ucd": "phot.count" if level < 3 else "phot.flux.density",
        "pol_states": None,
        "pol_xel": None,
        "instrument_name": inst,
        "lsst_visit": did.get("visit"),
        "lsst_detector": did.get("detector"),
        "lsst_tract": did.get("tract"),
        "lsst_patch": did.get("patch"),
        "lsst_band": band,
        "lsst_filter": did.get("physical_filter"),
    }
