"""Cross-match of alerts against a user catalog (CSV or Parquet with ra/dec in degrees).

Matching is vectorized: the catalog is sorted by declination once; each alert's candidates lie
in a declination window found with ``searchsorted``; all (alert, candidate) pairs are expanded
into flat arrays, their separations computed at once, and the nearest kept per alert.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pachon.core.errors import ConfigError, FormatError

__all__ = ["Catalog"]

log = logging.getLogger(__name__)

_ID_COLUMNS = ("id", "name", "objectid", "source_id")


class Catalog:
    """A user catalog to cross-match alerts with.

    Parameters
    ----------
    ra, dec
        Positions in degrees.
    ids
        Identifier of each row (as text).
    name
        Catalog name used in messages.
    """

    def __init__(self, ra: np.ndarray, dec: np.ndarray, ids: np.ndarray, name: str = "catalog") -> None:
        order = np.argsort(dec, kind="stable")
        self.ra = np.asarray(ra, dtype=float)[order]
        self.dec = np.asarray(dec, dtype=float)[order]
        self.ids = np.asarray(ids).astype(str)[order]
        self.name = name

    def __len__(self) -> int:
        return len(self.ra)

    @classmethod
    def read(cls, path: str | Path) -> Catalog:
        """Read a CSV or Parquet catalog with columns ``ra`` and ``dec`` (any case).

        An ``id``/``name``/``objectId``/``source_id`` column names the rows; else the row number.
        """
        path = Path(path)
        try:
            if path.suffix.lower() in (".parquet", ".pq"):
                import pyarrow.parquet as pq

                table = pq.read_table(path)
            else:
                import pyarrow.csv as pacsv

                table = pacsv.read_csv(path)
        except (OSError, ValueError) as exc:
            raise FormatError(f"cross-match catalog {path}: cannot read it as CSV/Parquet ({exc})") from exc
        columns = {c.lower(): c for c in table.column_names}
        if "ra" not in columns or "dec" not in columns:
            raise FormatError(
                f"cross-match catalog {path} needs columns 'ra' and 'dec' in degrees; "
                f"found {table.column_names}"
            )
        ra = table.column(columns["ra"]).to_numpy().astype(float)
        dec = table.column(columns["dec"]).to_numpy().astype(float)
        id_col = next((columns[c] for c in _ID_COLUMNS if c in columns), None)
        ids = (np.asarray(table.column(id_col).to_pylist()).astype(str) if id_col
               else np.arange(len(ra)).astype(str))
        log.info("cross-match catalog %s: %d rows", path, len(ra))
        return cls(ra, dec, ids, name=path.stem)

    def match(self, ra: np.ndarray, dec: np.ndarray, radius_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
        """Nearest catalog row within ``radius_arcsec`` of each position.

        Parameters
        ----------
        ra, dec
            Alert positions in degrees.
        radius_arcsec
            Match radius.

        Returns
        -------
        ids : numpy.ndarray
            Catalog id of the match (``""`` where none).
        sep : numpy.ndarray
            Separation in arcsec (NaN where none).
        """
        if radius_arcsec <= 0:
            raise ConfigError(f"cross-match radius must be positive, got {radius_arcsec} arcsec")
        ra = np.asarray(ra, dtype=float)
        dec = np.asarray(dec, dtype=float)
        n = len(ra)
        ids = np.full(n, "", dtype=object)
        sep = np.full(n, np.nan)
        if n == 0 or len(self) == 0:
            return ids, sep
        r = radius_arcsec / 3600.0
        lo = np.searchsorted(self.dec, dec - r, side="left")
        hi = np.searchsorted(self.dec, dec + r, side="right")
        counts = hi - lo
        alert = np.repeat(np.arange(n), counts)
        starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
        cand = starts + np.arange(counts.sum())
        d = _separation_deg(ra[alert], dec[alert], self.ra[cand], self.dec[cand]) * 3600.0
        inside = d <= radius_arcsec
        alert, cand, d = alert[inside], cand[inside], d[inside]
        order = np.lexsort((d, alert))
        alert, cand, d = alert[order], cand[order], d[order]
        first = np.ones(len(alert), dtype=bool)
        first[1:] = alert[1:] != alert[:-1]
        ids[alert[first]] = self.ids[cand[first]]
        sep[alert[first]] = d[first]
        return ids, sep


def _separation_deg(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Great-circle distance (haversine, accurate at small angles)."""
    r1, d1, r2, d2 = map(np.radians, (ra1, dec1, ra2, dec2))
    a = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0, 1))))
