"""VOSI ``capabilities`` and ``availability`` documents for the image services."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

__all__ = ["capabilities_xml", "availability_xml", "XML_MEDIA_TYPE"]

_log = logging.getLogger(__name__)

XML_MEDIA_TYPE = "text/xml"


def capabilities_xml(service_url: str, capabilities: Sequence[tuple[str, str, str | None]]) -> bytes:
    """A VOSI capabilities document.

    Parameters
    ----------
    service_url
        Absolute URL of the service root (``.../sia``).
    capabilities
        ``(standardID, path under the service root, interface version or None)`` for the
        service's own capabilities; VOSI capabilities and availability are added.
    """
    items = [
        ("ivo://ivoa.net/std/VOSI#capabilities", "capabilities", None),
        ("ivo://ivoa.net/std/VOSI#availability", "availability", None),
        *capabilities,
    ]
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1">',
    ]
    for standard_id, path, version in items:
        version_attr = f" version={quoteattr(version)}" if version else ""
        url = escape(f"{service_url.rstrip('/')}/{path}")
        use = "base" if version else "full"
        parts.append(
            f"  <capability standardID={quoteattr(standard_id)}>\n"
            f'    <interface xsi:type="vs:ParamHTTP" role="std"{version_attr}>'
            f'<accessURL use="{use}">{url}</accessURL></interface>\n'
            "  </capability>"
        )
    parts.append("</vosi:capabilities>\n")
    return "\n".join(parts).encode()


def availability_xml(available: bool, note: str) -> bytes:
    """A VOSI availability document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">\n'
        f"  <vosi:available>{'true' if available else 'false'}</vosi:available>\n"
        f"  <vosi:note>{escape(note)}</vosi:note>\n"
        "</vosi:availability>\n"
    ).encode()
