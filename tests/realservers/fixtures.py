"""Registers the real-server fixture modules that exist (each server's module is
added by the work that needs it)."""

from __future__ import annotations
