"""Fixtures for a real prometheus on 127.0.0.1 (filled in by the work that needs it)."""

from __future__ import annotations
