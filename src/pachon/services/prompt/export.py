"""Copy the alert packets of processed detectors out of the repository as plain Avro files."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

__all__ = ["export_alerts", "alert_summary"]

_log = logging.getLogger(__name__)


def export_alerts(repo: Any, rows: list[dict[str, Any]], folder: str | Path) -> list[Path]:
    """Write each succeeded detector's ``alerts`` dataset to ``folder/alerts_<exposure>_<detector>.avro``.

    The files are Avro object container files (schema embedded): any Avro tool reads them.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in rows:
        if r.get("status") != "succeeded":
            continue
        data_id = {"instrument": r["instrument"], "exposure": r["exposure"], "detector": r["detector"]}
        for ref in repo.query_datasets("alerts", r["run"], data_id=data_id):
            path = folder / f"alerts_{r['exposure']}_{r['detector']}.avro"
            path.write_bytes(repo.get(ref))
            paths.append(path)
    _log.info("%d alert files written to %s", len(paths), folder)
    return paths


def alert_summary(paths: list[Path]) -> list[dict[str, Any]]:
    """One row per alert of the files: diaSourceId, ra, dec, band, psfFlux, snr."""
    import fastavro

    out = []
    for path in paths:
        for alert in fastavro.reader(io.BytesIO(Path(path).read_bytes())):
            s = alert["diaSource"]
            out.append({"diaSourceId": s["diaSourceId"], "ra": s["ra"], "dec": s["dec"],
                        "band": s.get("band"), "psfFlux": s.get("psfFlux"), "snr": s.get("snr")})
    return out
