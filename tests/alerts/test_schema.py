"""The Rubin alert schemas come from the installed lsst-alert-packet package."""

from __future__ import annotations

import pytest

from pachon.alerts.schema import (
    available_versions,
    latest_version,
    load_schema,
    schema_id,
    schema_path,
    version_from_schema_id,
)
from pachon.core.errors import ConfigError, FormatError


def test_versions_listed_from_the_package() -> None:
    versions = available_versions()
    assert versions[0] == "3.0"
    for v in ("7.1", "10.0", "11.0", "11.1"):
        assert v in versions
    # sorted numerically, not as text ("10.0" after "9.0")
    assert versions.index("9.0") < versions.index("10.0")
    from lsst.alert.packet.schema import get_latest_schema_version

    major, minor = get_latest_schema_version()
    assert latest_version() == f"{major}.{minor}"
    assert latest_version() == versions[-1]


def test_schema_ids_follow_rubin_convention() -> None:
    assert schema_id("7.1") == 701
    assert schema_id("10.0") == 1000
    assert schema_id("11.1") == 1101
    for v in available_versions():
        assert version_from_schema_id(schema_id(v)) == v
    with pytest.raises(FormatError, match="unknown alert schema id 999"):
        version_from_schema_id(999)


def test_ids_agree_with_lsst_alert_packet() -> None:
    from lsst.alert.packet import Schema

    for v in ("7.1", "10.0", "11.1"):
        assert Schema.from_file(str(schema_path(v))).get_schema_id() == schema_id(v)


def test_load_schema_parses_and_caches() -> None:
    s = load_schema("11.1")
    assert s["name"] == "lsst.v11_1.alert"
    names = [f["name"] for f in s["fields"]]
    assert names[0] == "diaSourceId" and "cutoutTemplate" in names
    assert load_schema("11.1") is s
    assert load_schema() is load_schema(latest_version())
    assert load_schema("7.1")["fields"][0]["name"] == "alertId"
    assert str(schema_path("11.1")).endswith("schema/11/1/lsst.v11_1.alert.avsc")


def test_unknown_version_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="11.1"):
        load_schema("2.0")
    with pytest.raises(ConfigError, match="MAJOR.MINOR"):
        schema_id("latest")
