"""pytest plugin for gatekeeper: ``pytest --gate=PHASE``. See :mod:`pytest_gatekeeper.plugin`."""
