"""The public API: everything re-exported, ``__all__`` complete and sorted."""

from __future__ import annotations

import subprocess
import sys

import gatekeeper


def test_all_is_sorted_and_complete() -> None:
    """``__all__`` is sorted and names every public attribute of the package."""
    assert sorted(gatekeeper.__all__) == gatekeeper.__all__
    public = {
        name
        for name, value in vars(gatekeeper).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("gatekeeper")
    }
    assert public <= set(gatekeeper.__all__)
    for name in gatekeeper.__all__:
        assert hasattr(gatekeeper, name), name


def test_import_has_no_side_effects() -> None:
    """``import gatekeeper`` loads no plugin, no HTTP client and no telemetry."""
    code = (
        "import sys, gatekeeper; "
        "bad = [m for m in ('httpx', 'opentelemetry', 'gatekeeper.sources.prometheus', "
        "'gatekeeper._judge', 'psycopg') if m in sys.modules]; print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "[]" == done.stdout.strip()
