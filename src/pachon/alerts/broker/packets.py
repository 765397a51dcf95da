"""The broker's input layer: packets from files, folders, file logs and streams.

Every input becomes either a :class:`Packet` (decoded, survey known) or a :class:`BadPacket`
(raw bytes kept, with the reason) that the broker quarantines; one bad packet never stops the
stream.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pachon.alerts.stream.api import StreamMessage
from pachon.alerts.ztf import survey_from_schema_name
from pachon.core.errors import FormatError

__all__ = ["Packet", "BadPacket", "LazyAlert", "decode_message", "iter_file", "iter_source", "is_file_log"]

log = logging.getLogger(__name__)

_AVRO_MAGIC = b"Obj\x01"
_PARQUET_MAGIC = b"PAR1"


@dataclass(slots=True)
class Packet:
    """A decoded alert with what the broker needs to filter and re-emit it.

    Attributes
    ----------
    alert
        The decoded packet (the survey's own field names).
    survey
        ``"rubin"``, ``"ztf"``, ``"pgir"`` or ``"winter"``.
    schema_key
        Rubin schema version (``"10.0"``) or the survey's schema name and version.
    writer_schema
        The Avro schema the packet was written with (None for Rubin: taken from the version).
    raw
        The original bytes when the packet came as one (stream message, wire-format file):
        ``bytes`` or a ``memoryview`` (file log; ``bytes(raw)`` copies it).
    source
        Where it came from (file path or ``topic[partition]@offset``).
    batch
        Batch (visit) label: the stream's batch, or the file's stem.
    timestamp_ms
        Publication time when read from a stream.
    """

    alert: dict[str, Any]
    survey: str
    schema_key: str
    writer_schema: dict[str, Any] | None = None
    raw: bytes | memoryview | None = None
    source: str = ""
    batch: str = ""
    timestamp_ms: int | None = None
    key: str = field(default="")


@dataclass(slots=True)
class BadPacket:
    """Input that could not be decoded or mapped: quarantined with the reason."""

    raw: bytes
    reason: str
    source: str = ""
    key: str = ""
    batch: str = ""


class LazyAlert(Mapping):
    """A Rubin wire-format packet decoded (with fastavro) only when a field is first read.

    The broker's vectorized path reads the filter fields of a whole batch straight from the
    bytes (:func:`pachon.alerts.broker.table.decode_rubin_batch`), so most packets are never
    decoded into dicts.

    Raises
    ------
    FormatError
        On first access, when the packet cannot be decoded.
    """

    __slots__ = ("raw", "_alert")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._alert: dict[str, Any] | None = None

    @property
    def decoded(self) -> bool:
        """True once the packet has been decoded."""
        return self._alert is not None

    def _get(self) -> dict[str, Any]:
        if self._alert is None:
            from pachon.alerts.serialize import deserialize_alert

            self._alert = deserialize_alert(self.raw)
        return self._alert

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def decode_message(msg: StreamMessage, *, lazy: bool = False) -> Packet | BadPacket:
    """Decode one stream message (Rubin Confluent wire format).

    Parameters
    ----------
    msg
        The message.
    lazy
        Check the header only and leave the body to be decoded on demand (a
        :class:`LazyAlert`): the broker then decodes whole batches vectorized.

    Returns
    -------
    Packet or BadPacket
        The packet, or the reason it is bad.
    """
    from pachon.alerts.serialize import deserialize_alert, parse_wire_header

    where = f"{msg.topic}[{msg.partition}]@{msg.offset}"
    try:
        version = parse_wire_header(msg.value)
        if version is None:
            head = bytes(msg.value[:5])
            raise FormatError(
                f"{where} key={msg.key}: not a Rubin wire-format packet with a known schema id "
                f"(first bytes {head!r}); expected magic byte 0 + schema id major*100+minor"
            )
        alert = LazyAlert(msg.value) if lazy else deserialize_alert(msg.value)
    except FormatError as exc:
        return BadPacket(bytes(msg.value), str(exc), where, msg.key, msg.batch)
    return Packet(alert, "rubin", version, None, msg.value, where, msg.batch, msg.timestamp_ms, msg.key)


def _iter_container(path: Path, data: bytes) -> Iterator[Packet | BadPacket]:
    import io

    import fastavro

    from pachon.alerts.serialize import version_from_schema_name

    try:
        reader = fastavro.reader(io.BytesIO(data))
        name = reader.writer_schema.get("name", "")
        survey = survey_from_schema_name(name, source=str(path))
        if survey == "rubin":
            key, schema = version_from_schema_name(name, source=str(path)), None
        else:
            key, schema = f"{name}", reader.writer_schema
        for i, alert in enumerate(reader):
            yield Packet(alert, survey, key, schema, None, f"{path}#{i}", path.stem)
    except (FormatError, ValueError, EOFError, TypeError, UnicodeDecodeError, IndexError) as exc:
        # Whole-file quarantine: records after a corrupt block cannot be located.
        reason = exc if isinstance(exc, FormatError) else f"{path}: corrupt Avro container ({exc!r})"
        yield BadPacket(data, str(reason), str(path), "", path.stem)


def iter_file(path: str | Path) -> Iterator[Packet | BadPacket]:
    """Read one alert file: Avro container (any supported survey), wire packet, Rubin Parquet.

    Parameters
    ----------
    path
        The file; its format is told by its first bytes.

    Yields
    ------
    Packet or BadPacket
        One per alert; a file that cannot be read at all gives one BadPacket.
    """
    path = Path(path)
    data = path.read_bytes()
    if data.startswith(_AVRO_MAGIC):
        yield from _iter_container(path, data)
    elif data.startswith(_PARQUET_MAGIC):
        from pachon.alerts.readers import read_alert_file

        try:
            rows = list(read_alert_file(path))
        except FormatError as exc:
            yield BadPacket(data, str(exc), str(path), "", path.stem)
            return
        for i, (alert, version) in enumerate(rows):
            yield Packet(alert, "rubin", version, None, None, f"{path}#{i}", path.stem)
    else:
        msg = StreamMessage("file", "", data, path.stem, 0, 0, 0)
        packet = decode_message(msg)
        if isinstance(packet, BadPacket):
            packet.reason = f"{path}: " + packet.reason.split(": ", 1)[-1]
        packet.source = str(path)
        yield packet


def is_file_log(path: str | Path) -> bool:
    """True when ``path`` is the root folder of an alert file log."""
    return (Path(path) / "topics").is_dir()


def iter_source(source: str | Path) -> Iterator[Packet | BadPacket]:
    """Replay every alert of a file, a folder of alert files, or a file log.

    Parameters
    ----------
    source
        A file, a folder (``*.avro`` and ``*.parquet`` files, recursively, sorted by path), or
        a file log root (read from its beginning, no offsets committed).

    Yields
    ------
    Packet or BadPacket
        In file (or log) order.
    """
    path = Path(source)
    if not path.exists():
        raise FormatError(f"replay source {path} does not exist; give a file, a folder or a file log")
    if is_file_log(path):
        from pachon.alerts.stream.filelog import FileLogConsumer

        consumer = FileLogConsumer(path, "pachon-replay")
        while batch := consumer.poll(1000):
            for msg in batch:
                yield decode_message(msg, lazy=True)
        return
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".avro", ".parquet") and p.is_file())
        if not files:
            raise FormatError(f"replay source {path} holds no .avro or .parquet files")
        for file in files:
            yield from iter_file(file)
        return
    yield from iter_file(path)
