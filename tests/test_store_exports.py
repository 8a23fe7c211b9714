"""The store family's public names: re-exported from ``gatekeeper.store``, lazily."""

from __future__ import annotations

import json
import subprocess
import sys

import gatekeeper.store
from gatekeeper.exceptions import StoreError
from gatekeeper.store import base


def test_the_interface_is_re_exported_and_all_is_complete() -> None:
    """Every public name of ``store.base`` is importable from ``gatekeeper.store`` and
    listed in its ``__all__``; every name listed resolves."""
    assert set(base.__all__) <= set(gatekeeper.store.__all__)
    for name in gatekeeper.store.__all__:
        assert getattr(gatekeeper.store, name) is not None, name
    assert issubclass(gatekeeper.store.LeaseLost, StoreError)
    assert issubclass(gatekeeper.store.LeaseHeld, StoreError)


def test_importing_the_store_package_opens_no_database_module() -> None:
    """``import gatekeeper.store`` loads neither sqlite3 nor psycopg (both on first use)."""
    code = (
        "import sys, json, gatekeeper.store; "
        "print(json.dumps([m for m in ('sqlite3', 'psycopg') if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert json.loads(done.stdout) == []
