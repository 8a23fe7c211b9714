"""Shared fixtures. Real-server fixtures live in tests/realservers/, one module a server."""

from __future__ import annotations

pytest_plugins = [
    "realservers.alertmanager",
    "realservers.haproxy",
    "realservers.nginx",
    "realservers.postgres",
    "realservers.prometheus",
    "realservers.receivers",
]
