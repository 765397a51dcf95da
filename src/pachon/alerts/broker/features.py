"""Light-curve features of a batch of alerts, computed at once with numpy.

Input: every detection of every alert of a batch as flat arrays (alert index, MJD, magnitude,
band) with a flag marking each alert's triggering detection.  Output, per alert:

- ``ndet``: detections (history + this one);
- ``dt_first``: days since the first detection;
- ``dmag_dt``: magnitude change per day between this detection and the previous one in the
  same band (negative when brightening); ``rise_rate`` = max(−dmag_dt, 0) and
  ``decline_rate`` = max(dmag_dt, 0), in mag/day;
- ``color_gr``, ``color_ri``: g−r and r−i from the latest detection in each band when they
  are at most ``color_window`` days apart.

Undefined values are NaN (SQL NULL-like: comparisons with NaN are false in filters).
"""

from __future__ import annotations

import numpy as np

__all__ = ["FEATURE_NAMES", "light_curve_features"]

FEATURE_NAMES = ("ndet", "dt_first", "dmag_dt", "rise_rate", "decline_rate", "color_gr", "color_ri")


def _latest_per_band(idx: np.ndarray, code: np.ndarray, mjd: np.ndarray, mag: np.ndarray,
                     n: int, nbands: int) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude and time of the latest finite detection of each (alert, band)."""
    good = np.isfinite(mag)
    i, c, t, m = idx[good], code[good], mjd[good], mag[good]
    order = np.lexsort((t, c, i))
    i, c, t, m = i[order], c[order], t[order], m[order]
    last = np.ones(len(i), dtype=bool)
    if len(i):
        last[:-1] = (i[1:] != i[:-1]) | (c[1:] != c[:-1])
    out_m = np.full((n, nbands), np.nan)
    out_t = np.full((n, nbands), np.nan)
    out_m[i[last], c[last]] = m[last]
    out_t[i[last], c[last]] = t[last]
    return out_m, out_t


def light_curve_features(
    n: int,
    idx: np.ndarray,
    mjd: np.ndarray,
    mag: np.ndarray,
    band: np.ndarray,
    current: np.ndarray,
    *,
    color_window: float = 1.0,
) -> dict[str, np.ndarray]:
    """Compute the light-curve features of ``n`` alerts from their flattened detections.

    Parameters
    ----------
    n
        Number of alerts.
    idx
        Alert index (0..n-1) of each detection.
    mjd, mag, band
        Time (MJD), magnitude (NaN where undefined) and band name of each detection.
    current
        True for the triggering detection of each alert (exactly one per alert).
    color_window
        Largest time difference (days) between the detections that make a colour.

    Returns
    -------
    dict of str to numpy.ndarray
        One array of length ``n`` per name in :data:`FEATURE_NAMES`.
    """
    idx = np.asarray(idx, dtype=np.int64)
    mjd = np.asarray(mjd, dtype=float)
    mag = np.asarray(mag, dtype=float)
    current = np.asarray(current, dtype=bool)
    names, code = np.unique(np.asarray(band, dtype=str), return_inverse=True)
    code = code.reshape(-1)
    ndet = np.bincount(idx, minlength=n)
    first = np.full(n, np.inf)
    np.minimum.at(first, idx, mjd)
    now = np.full(n, np.nan)
    now[idx[current]] = mjd[current]
    dt_first = now - first

    # previous finite detection in the same band, strictly before the current one
    keep = np.isfinite(mag) | current
    i, c, t, m, cur = idx[keep], code[keep], mjd[keep], mag[keep], current[keep]
    order = np.lexsort((cur, t, c, i))  # current last among equal times
    i, c, t, m, cur = i[order], c[order], t[order], m[order], cur[order]
    dmag_dt = np.full(n, np.nan)
    pos = np.flatnonzero(cur)
    pos = pos[pos > 0]
    prev = pos - 1
    ok = (i[prev] == i[pos]) & (c[prev] == c[pos]) & (t[pos] - t[prev] > 1e-6)
    pos, prev = pos[ok], prev[ok]
    dmag_dt[i[pos]] = (m[pos] - m[prev]) / (t[pos] - t[prev])
    with np.errstate(invalid="ignore"):
        rise = np.where(np.isnan(dmag_dt), np.nan, np.maximum(-dmag_dt, 0.0))
        decline = np.where(np.isnan(dmag_dt), np.nan, np.maximum(dmag_dt, 0.0))

    lm, lt = _latest_per_band(idx, code, mjd, mag, n, len(names))
    lookup = {str(name): k for k, name in enumerate(names)}

    def color(a: str, b: str) -> np.ndarray:
        if a not in lookup or b not in lookup:
            return np.full(n, np.nan)
        ka, kb = lookup[a], lookup[b]
        value = lm[:, ka] - lm[:, kb]
        return np.where(np.abs(lt[:, ka] - lt[:, kb]) <= color_window, value, np.nan)

    return {
        "ndet": ndet.astype(np.int64),
        "dt_first": dt_first,
        "dmag_dt": dmag_dt,
        "rise_rate": rise,
        "decline_rate": decline,
        "color_gr": color("g", "r"),
        "color_ri": color("r", "i"),
    }
