"""``python -m gatekeeper``: the same as the ``gatekeeper`` command."""

import sys

from ._cli import main

sys.exit(main())
