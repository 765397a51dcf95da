"""The repository configuration file ``<root>/pachon.yaml``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pachon.core.errors import RepositoryError

__all__ = ["RepoConfig", "CONFIG_NAME"]

_log = logging.getLogger(__name__)

CONFIG_NAME = "pachon.yaml"


@dataclass(frozen=True)
class RepoConfig:
    """Where a repository keeps its registry and files.

    Attributes
    ----------
    registry_url
        SQLAlchemy URL; ``sqlite:///<root>/registry.sqlite3`` by default.
    datastore_root
        Folder or fsspec URL; relative paths are relative to the repository root.
    """

    registry_url: str
    datastore_root: str = "datastore"

    @classmethod
    def default(cls, root: Path) -> RepoConfig:
        """The zero-setup configuration: SQLite file and datastore folder inside ``root``."""
        return cls(registry_url=f"sqlite:///{(Path(root) / 'registry.sqlite3').resolve()}")

    def write(self, root: Path) -> None:
        """Write ``pachon.yaml`` into ``root``."""
        import yaml

        text = yaml.safe_dump(
            {"registry": {"url": self.registry_url}, "datastore": {"root": self.datastore_root}},
            sort_keys=False,
        )
        (Path(root) / CONFIG_NAME).write_text(text)

    @classmethod
    def read(cls, root: Path) -> RepoConfig:
        """Read ``<root>/pachon.yaml``, raising `RepositoryError` naming the folder."""
        import yaml

        path = Path(root) / CONFIG_NAME
        if not path.is_file():
            raise RepositoryError(
                f"{root} is not a Pachón repository (no {CONFIG_NAME}); "
                f"create one with `pachon repo create {root}`"
            )
        try:
            data = yaml.safe_load(path.read_text()) or {}
            return cls(registry_url=data["registry"]["url"], datastore_root=data["datastore"]["root"])
        except (yaml.YAMLError, KeyError, TypeError) as exc:
            raise RepositoryError(
                f"{path}: malformed repository configuration ({exc}); it needs "
                f"registry.url and datastore.root"
            ) from exc

    def datastore_location(self, root: Path) -> str:
        """Absolute datastore location."""
        if "://" in self.datastore_root or self.datastore_root.startswith("/"):
            return self.datastore_root
        return str((Path(root) / self.datastore_root).resolve())
