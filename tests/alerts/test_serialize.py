"""Avro encoding of alerts: schemaless, Confluent wire format, container files, validation."""

from __future__ import annotations

import copy
import struct
from pathlib import Path

import pytest

from pachon.alerts.readers import read_alert_file, read_rubin_parquet
from pachon.alerts.serialize import (
    deserialize_alert,
    dia_source_id,
    parse_wire_header,
    read_avro_file,
    serialize_alert,
    validate_alert,
    wire_header,
    write_avro_file,
)
from pachon.core.errors import FormatError

WIRE = "alerts/rubin/hsc_cosmos_rubin_v7_1_wireformat.avro"
PARQUET = "alerts/rubin/lsstcam_20251231_det174_v10_0.parquet"


@pytest.fixture(scope="module")
def parquet_alerts(shared_data: Path) -> list[dict]:
    return list(read_rubin_parquet(shared_data / PARQUET))


def test_wire_header_bytes() -> None:
    assert wire_header("7.1") == b"\x00\x00\x00\x02\xbd"
    assert struct.unpack(">bI", wire_header("11.1")) == (0, 1101)
    assert parse_wire_header(b"\x00\x00\x00\x04\x4d" + b"xx") == "11.1"
    assert parse_wire_header(b"\x00\x00\x00\x00\x07rest") is None  # id 7 is unknown
    assert parse_wire_header(b"\x02abc") is None


def test_real_wire_packet_decodes_and_reencodes_byte_exact(shared_data: Path) -> None:
    data = (shared_data / WIRE).read_bytes()
    alert = deserialize_alert(data)
    assert dia_source_id(alert) == 25409136044802067
    assert alert["alertId"] == 25409136044802067
    assert alert["diaSource"]["ra"] == pytest.approx(149.8021056712687, abs=1e-12)
    assert len(alert["prvDiaSources"]) == 2
    validate_alert(alert, "7.1")
    assert serialize_alert(alert, version="7.1", wire=True) == data
    # the body alone needs the version
    body = serialize_alert(alert, version="7.1")
    assert body == data[5:]
    with pytest.raises(FormatError, match="version="):
        deserialize_alert(body[1:])
    again = deserialize_alert(body, version="7.1")  # holds NaN: compare the encodings
    assert serialize_alert(again, version="7.1") == body


def test_parquet_alerts_round_trip_in_their_version(parquet_alerts: list[dict]) -> None:
    for alert in parquet_alerts:
        validate_alert(alert, "10.0")
        packet = serialize_alert(alert, version="10.0", wire=True)
        assert packet[:5] == wire_header("10.0")
        assert deserialize_alert(packet) == alert


def test_validation_names_the_field(parquet_alerts: list[dict]) -> None:
    bad = copy.deepcopy(parquet_alerts[0])
    bad["diaSource"]["ra"] = "not a number"
    with pytest.raises(FormatError, match=r"diaSource\.ra"):
        validate_alert(bad, "10.0")
    with pytest.raises(FormatError, match=r"diaSource\.ra"):
        serialize_alert(bad, version="10.0")
    missing = copy.deepcopy(parquet_alerts[0])
    del missing["diaSource"]
    with pytest.raises(FormatError, match="diaSource"):
        validate_alert(missing, "10.0")


def test_corrupt_packet_is_a_format_error(parquet_alerts: list[dict]) -> None:
    packet = serialize_alert(parquet_alerts[0], version="10.0", wire=True)
    with pytest.raises(FormatError, match="10.0"):
        deserialize_alert(packet[:200])


def test_container_file_round_trip(tmp_path: Path, parquet_alerts: list[dict]) -> None:
    path = tmp_path / "alerts.avro"
    assert write_avro_file(path, iter(parquet_alerts), "10.0") == len(parquet_alerts)
    assert list(read_avro_file(path)) == parquet_alerts
    pairs = list(read_alert_file(path))
    assert [v for _, v in pairs] == ["10.0"] * len(parquet_alerts)
    # any Avro tool can read it: the schema is in the file
    import fastavro

    with open(path, "rb") as handle:
        reader = fastavro.reader(handle)
        assert reader.writer_schema["name"] == "lsst.v10_0.alert"
        assert next(iter(reader))["diaSourceId"] == parquet_alerts[0]["diaSourceId"]
