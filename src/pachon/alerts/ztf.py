"""ZTF-like alert packets (ZTF 3.2–4.02, PGIR, WINTER) mapped to the broker's filter fields.

The broker filters every stream through the same fields: a ``diaSource`` record with Rubin's
names (``diaSourceId``, ``ra``, ``dec``, ``midpointMjdTai``, ``band``, ``psfFlux``,
``psfFluxErr``, ``snr``, ``reliability``, ``isNegative``) plus ``mag``/``magErr``, and the
light-curve points used for features.  The survey's own record stays available under its own
name (``candidate.magpsf < 18`` works on ZTF packets).

Conventions of the mapping (ZTF explanatory supplement):

- ``midpointMjdTai = jd - 2400000.5`` (ZTF times are UTC; the 37 s TAI−UTC offset is ignored,
  it is far below any filter's time scale);
- ``psfFlux`` in nJy from ``magpsf`` with the AB zero point 31.4, negative when
  ``isdiffpos`` says the difference is negative; ``snr = 1.0857 / sigmapsf``;
- ``reliability`` is ``drb`` (deep real/bogus) when present, else ``rb``;
- band from ``fid``: ZTF 1→g, 2→r, 3→i; WINTER 1→Y, 2→J, 3→Hs; PGIR observes in J only.

DESIRT/DECam packets (``desirt.alert``) carry no previous detections and no magnitudes in a
ZTF-compatible form: they are rejected with a :class:`FormatError` saying so.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from pachon.core.errors import FormatError

__all__ = ["ZTF_LIKE_SURVEYS", "survey_from_schema_name", "map_ztf_alert", "ztf_light_curve", "MAG_ZP_NJY"]

log = logging.getLogger(__name__)

MAG_ZP_NJY = 31.4
"""AB magnitude of a 1 nJy source."""

ZTF_LIKE_SURVEYS = ("ztf", "pgir", "winter")
_BANDS = {
    "ztf": {1: "g", 2: "r", 3: "i"},
    "winter": {1: "Y", 2: "J", 3: "Hs"},
}


def survey_from_schema_name(name: str, *, source: str = "packet") -> str:
    """Tell the survey of an Avro schema from its record name.

    Parameters
    ----------
    name
        Full record name of the writer schema (``"ztf.alert"``, ``"lsst.v7_1.alert"``...).
    source
        What the name came from, for error messages.

    Returns
    -------
    str
        ``"rubin"``, ``"ztf"``, ``"pgir"`` or ``"winter"``.

    Raises
    ------
    FormatError
        For the schemas the broker cannot map (DESIRT/DECam, unknown surveys).
    """
    prefix = str(name).split(".")[0].lower()
    if prefix == "lsst":
        return "rubin"
    if prefix in ZTF_LIKE_SURVEYS:
        return prefix
    if prefix == "desirt":
        raise FormatError(
            f"{source}: DESIRT/DECam alerts (schema {name!r}) are not supported by the broker: "
            "they carry no magnitudes or previous detections in a ZTF-compatible form; "
            "convert them to the Rubin alert schema first"
        )
    raise FormatError(
        f"{source}: unknown alert schema {name!r}; the broker reads Rubin (lsst.vX_Y.alert), "
        "ZTF (ztf.alert), PGIR (pgir.alert) and WINTER (winter.alert) packets"
    )


def _band(survey: str, cand: dict[str, Any]) -> str:
    if survey == "pgir":
        return "J"
    fid = cand.get("fid")
    return _BANDS[survey].get(fid, f"fid{fid}")


def _positive(isdiffpos: Any) -> bool:
    return str(isdiffpos).lower() in ("t", "1", "true")


def map_ztf_alert(alert: dict[str, Any], survey: str = "ztf") -> dict[str, Any]:
    """Map a ZTF-like packet to the broker's common fields.

    Parameters
    ----------
    alert
        The decoded packet.
    survey
        ``"ztf"``, ``"pgir"`` or ``"winter"``.

    Returns
    -------
    dict
        ``alertId``, ``objectId``, ``diaSource`` (Rubin names) and ``candidate`` (as sent).

    Raises
    ------
    FormatError
        When the packet has no ``candidate`` record or lacks ``jd``, ``ra``, ``dec``.
    """
    cand = alert.get("candidate")
    if not isinstance(cand, dict) or any(cand.get(k) is None for k in ("jd", "ra", "dec")):
        raise FormatError(
            f"{survey} packet candid={alert.get('candid')!r} has no candidate with jd, ra, dec; "
            "it is not a ZTF-like alert"
        )
    mag, sigma = cand.get("magpsf"), cand.get("sigmapsf")
    if mag is not None:
        flux = 10.0 ** ((MAG_ZP_NJY - mag) / 2.5)
        if not _positive(cand.get("isdiffpos")):
            flux = -flux
        flux_err = abs(flux) * sigma / 1.0857 if sigma else None
        snr = 1.0857 / sigma if sigma else None
    else:
        flux = flux_err = snr = None
    reliability = cand.get("drb") if cand.get("drb") is not None else cand.get("rb")
    source = {
        "diaSourceId": int(alert.get("candid") or cand.get("candid")),
        "ra": cand["ra"],
        "dec": cand["dec"],
        "midpointMjdTai": cand["jd"] - 2400000.5,
        "band": _band(survey, cand),
        "psfFlux": flux,
        "psfFluxErr": flux_err,
        "snr": snr,
        "reliability": reliability,
        "isNegative": flux is not None and flux < 0,
        "mag": mag,
        "magErr": sigma,
    }
    object_id = alert.get("objectId", alert.get("objectid"))
    return {"alertId": source["diaSourceId"], "objectId": str(object_id), "diaSource": source,
            "candidate": cand}


def ztf_light_curve(alert: dict[str, Any], survey: str = "ztf") -> tuple[list[float], list[float], list[str]]:
    """Return the detections (mjd, mag, band) of a ZTF-like packet, history then current.

    Upper limits in ``prv_candidates`` (no ``magpsf``) are left out.

    Parameters
    ----------
    alert
        The decoded packet.
    survey
        ``"ztf"``, ``"pgir"`` or ``"winter"``.

    Returns
    -------
    tuple of lists
        Times (MJD), magnitudes and bands.
    """
    mjd: list[float] = []
    mag: list[float] = []
    band: list[str] = []
    for point in [*(alert.get("prv_candidates") or []), alert["candidate"]]:
        m = point.get("magpsf")
        if m is None or point.get("jd") is None:
            continue
        mjd.append(point["jd"] - 2400000.5)
        mag.append(m if math.isfinite(m) else math.nan)
        band.append(_band(survey, point))
    return mjd, mag, band
