"""The mini broker: live and replay filtering of alert streams (SQL and Python filters)."""

from __future__ import annotations

from pachon.alerts.broker.engine import Broker, BrokerStats, follow, replay
from pachon.alerts.broker.filters import PythonFilter, SqlFilter, load_python_filter
from pachon.alerts.broker.packets import BadPacket, Packet, iter_source
from pachon.alerts.broker.xmatch import Catalog

__all__ = [
    "Broker",
    "BrokerStats",
    "replay",
    "follow",
    "SqlFilter",
    "PythonFilter",
    "load_python_filter",
    "Packet",
    "BadPacket",
    "iter_source",
    "Catalog",
]
