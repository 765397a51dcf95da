"""Loading ``ap.yaml`` for a repository: the APDB and stream URLs filled in.

``load_ap_pipeline(repo_root, apdb_url=None, stream_url=None)`` reads ``ap.yaml``, replaces
``{repo}`` in the APDB URLs by the repository root (default APDB: SQLite
``REPO/apdb.sqlite3``) and sets the alert stream.  The prompt service, the demo and the tests
use it; ``pachon run -p ap.yaml`` works with explicit ``association.apdb_url`` /
``alerts.apdb_url`` overrides.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

__all__ = ["AP_YAML", "load_ap_pipeline", "default_apdb_url"]

_log = logging.getLogger(__name__)

#: The AP pipeline definition shipped with the package.
AP_YAML = Path(__file__).with_name("ap.yaml")


def default_apdb_url(repo_root: str | Path) -> str:
    """SQLite APDB in the repository folder."""
    return f"sqlite:///{Path(repo_root).resolve()}/apdb.sqlite3"


def load_ap_pipeline(repo_root: str | Path, *, apdb_url: str | None = None, stream_url: str | None = None,
                     subset: str | None = None, overrides: dict[str, dict[str, Any]] | None = None) -> Any:
    """The AP pipeline for a repository.

    Parameters
    ----------
    repo_root
        Repository root (``{repo}`` in the APDB URLs).
    apdb_url
        APDB URL; SQLite in the repository when None.
    stream_url
        Alert stream (file-log folder or ``kafka://host:port``); None: packets only as datasets.
    subset
        ``"sfp"`` or ``"prompt"`` (see ``ap.yaml``); all tasks when None.
    overrides
        Extra config per task label, e.g. ``{"association": {"radius_arcsec": 0.5}}``.

    Returns
    -------
    pachon.pipe.Pipeline
    """
    import yaml

    from pachon.pipe import Pipeline

    data = yaml.safe_load(AP_YAML.read_text())
    root = str(Path(repo_root).resolve())
    for label in ("association", "alerts"):
        cfg = data["tasks"][label].setdefault("config", {})
        cfg["apdb_url"] = apdb_url or cfg["apdb_url"].replace("{repo}", root)
    if stream_url is not None:
        data["tasks"]["alerts"]["config"]["stream_url"] = str(stream_url)
    for label, extra in (overrides or {}).items():
        entry = data["tasks"][label]
        if isinstance(entry, str):
            entry = data["tasks"][label] = {"class": entry}
        entry.setdefault("config", {}).update(extra)
    pipe = Pipeline.from_dict(data, source=str(AP_YAML))
    return pipe.subset(subset) if subset else pipe
