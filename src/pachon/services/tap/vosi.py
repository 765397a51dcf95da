"""VOSI documents of the TAP service: availability, capabilities, tables, and DALI examples."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from xml.sax.saxutils import escape, quoteattr

from pachon.services.tap.catalogs import ServedTable
from pachon.services.tap.tap_schema import adql_name

__all__ = ["availability_xml", "capabilities_xml", "tables_xml", "examples_html", "EXAMPLES"]

_log = logging.getLogger(__name__)

_XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'

#: (name, ADQL) of the DALI examples.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("List the tables", "SELECT table_name, description FROM TAP_SCHEMA.tables"),
    (
        "Cone search on sources",
        "SELECT TOP 100 sourceId, ra, dec, psfFlux FROM dp1.Source\n"
        "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 150.0, 2.0, 0.05)) = 1",
    ),
    ("Images of a band", "SELECT obs_id, s_ra, s_dec, access_url FROM ivoa.ObsCore WHERE lsst_band = 'g'"),
    (
        "Provenance of a dataset type",
        "SELECT dataset_id, run, task, created_ns FROM pachon.provenance WHERE dataset_type = 'calexp'",
    ),
)


def availability_xml(available: bool, note: str) -> str:
    """VOSI availability document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">\n'
        f"  <vosi:available>{'true' if available else 'false'}</vosi:available>\n"
        f"  <vosi:note>{escape(note)}</vosi:note>\n</vosi:availability>\n"
    )


def capabilities_xml(base: str, max_rows: int, default_maxrec: int, upload_limit: int) -> str:
    """VOSI capabilities of the TAP service at ``base`` (``.../tap``)."""

    def access(path: str) -> str:
        return f'<accessURL use="base">{escape(base + path)}</accessURL>'

    def vosi(standard: str, path: str) -> str:
        return (
            f'  <capability standardID="ivo://ivoa.net/std/VOSI#{standard}">\n'
            f'    <interface xsi:type="vs:ParamHTTP">{access(path)}</interface>\n  </capability>\n'
        )

    formats = "".join(
        f"      <outputFormat><mime>{escape(m)}</mime>"
        f"{''.join(f'<alias>{a}</alias>' for a in aliases)}</outputFormat>\n"
        for m, aliases in (
            ("application/x-votable+xml;serialization=binary2", ("votable",)),
            ("text/csv", ("csv",)),
            ("application/vnd.apache.parquet", ("parquet",)),
        )
    )
    geo = "".join(
        f"        <feature><form>{f}</form></feature>\n"
        for f in (
            "POINT",
            "CIRCLE",
            "BOX",
            "POLYGON",
            "CONTAINS",
            "INTERSECTS",
            "DISTANCE",
            "AREA",
            "COORD1",
            "COORD2",
            "COORDSYS",
        )
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
        'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
        f'xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0" {_XSI}>\n'
        '  <capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">\n'
        f'    <interface xsi:type="vs:ParamHTTP" role="std" version="1.1">{access("")}</interface>\n'
        "    <language><name>ADQL</name>\n"
        '      <version ivo-id="ivo://ivoa.net/std/ADQL#v2.0">2.0</version>\n'
        '      <version ivo-id="ivo://ivoa.net/std/ADQL#v2.1">2.1</version>\n'
        "      <description>ADQL translated to DuckDB SQL</description>\n"
        '      <languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adqlgeo">\n'
        f"{geo}      </languageFeatures>\n"
        '      <languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-common-table">\n'
        "        <feature><form>OFFSET</form></feature>\n"
        "      </languageFeatures>\n"
        '      <languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-string">\n'
        "        <feature><form>LOWER</form></feature>\n        <feature><form>ILIKE</form></feature>\n"
        "      </languageFeatures>\n"
        "    </language>\n"
        f"{formats}"
        '    <uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-inline"/>\n'
        '    <uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-http"/>\n'
        f"    <retentionPeriod><default>604800</default></retentionPeriod>\n"
        f'    <outputLimit><default unit="row">{default_maxrec}</default>'
        f'<hard unit="row">{max_rows}</hard></outputLimit>\n'
        f'    <uploadLimit><hard unit="byte">{upload_limit}</hard></uploadLimit>\n'
        "  </capability>\n"
        + vosi("capabilities", "/capabilities")
        + vosi("availability", "/availability")
        + vosi("tables-1.1", "/tables")
        + '  <capability standardID="ivo://ivoa.net/std/DALI#examples">\n'
        f'    <interface xsi:type="vr:WebBrowser" xmlns:vr="http://www.ivoa.net/xml/VOResource/v1.0">'
        f"{access('/examples')}</interface>\n  </capability>\n"
        "</vosi:capabilities>\n"
    )


def _column_xml(c: object) -> str:
    parts = [f"<name>{escape(adql_name(c.name))}</name>"]
    if c.description:
        parts.append(f"<description>{escape(c.description)}</description>")
    if c.unit:
        parts.append(f"<unit>{escape(c.unit)}</unit>")
    if c.ucd:
        parts.append(f"<ucd>{escape(c.ucd)}</ucd>")
    if c.utype:
        parts.append(f"<utype>{escape(c.utype)}</utype>")
    size = f" arraysize={quoteattr(c.arraysize)}" if c.arraysize else ""
    xtype = f" extendedType={quoteattr(c.xtype)}" if c.xtype else ""
    parts.append(f'<dataType xsi:type="vs:VOTableType"{size}{xtype}>{c.datatype}</dataType>')
    flags = [f for f, on in (("indexed", c.indexed), ("principal", c.principal), ("std", c.std)) if on]
    parts.extend(f"<flag>{f}</flag>" for f in flags)
    return "<column>" + "".join(parts) + "</column>"


def table_xml(t: ServedTable, detail: bool = True, keys: Iterable[tuple[str, str, str, str]] = ()) -> str:
    """One ``<table>`` element (with the foreign keys among ``keys`` starting from it)."""
    head = f'<table type="table"><name>{escape(t.qualified)}</name>'
    if t.description:
        head += f"<description>{escape(t.description)}</description>"
    if t.utype:
        head += f"<utype>{escape(t.utype)}</utype>"
    cols = "".join(_column_xml(c) for c in t.columns) if detail else ""
    fks = (
        "".join(
            f"<foreignKey><targetTable>{escape(target)}</targetTable><fkColumn><fromColumn>{escape(fc)}"
            f"</fromColumn><targetColumn>{escape(tc)}</targetColumn></fkColumn></foreignKey>"
            for source, target, fc, tc in keys
            if source == t.qualified
        )
        if detail
        else ""
    )
    return head + cols + fks + "</table>"


def tables_xml(
    tables: Iterable[ServedTable], *, single: bool = False, keys: Iterable[tuple[str, str, str, str]] = ()
) -> str:
    """VOSI tableset (or one table, ``single``) document."""
    ns = (
        f'xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" '
        f'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" {_XSI}'
    )
    tables = list(tables)
    if single:
        body = table_xml(tables[0], keys=keys).replace("<table ", f"<vosi:table {ns} ", 1)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + body[: -len("</table>")] + "</vosi:table>\n"
    schemas: dict[str, list[ServedTable]] = {}
    for t in tables:
        schemas.setdefault(t.schema, []).append(t)
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n', f"<vosi:tableset {ns}>\n"]
    for schema, ts in schemas.items():
        out.append(f"<schema><name>{escape(schema)}</name>")
        out.extend(table_xml(t, keys=keys) for t in ts)
        out.append("</schema>\n")
    out.append("</vosi:tableset>\n")
    return "".join(out)


def examples_html(base: str) -> str:
    """DALI examples document (XHTML with RDFa)."""
    items = []
    for i, (name, query) in enumerate(EXAMPLES):
        items.append(
            f'<div id="ex{i}" resource="#ex{i}" typeof="example">\n'
            f'<h2 property="name">{escape(name)}</h2>\n'
            f'<pre class="dali-example-query" property="query">{escape(query)}</pre>\n</div>\n'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>TAP examples</title></head>\n'
        f'<body vocab="http://www.ivoa.net/rdf/examples#"><h1>Examples of {escape(base)}</h1>\n'
        + "".join(items)
        + "</body></html>\n"
    )
