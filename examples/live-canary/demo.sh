#!/usr/bin/env bash
# The live canary demo in one command (see demo.py and docs/live-canary.md):
#
#   examples/live-canary/demo.sh good [haproxy|nginx]   # canary promoted to 100 %, exit 0
#   examples/live-canary/demo.sh bad  [haproxy|nginx]   # rolled back to 0 % in the ramp, exit 1
#   examples/live-canary/demo.sh watch                  # the ramp's checkpoints minutes apart
#                                                       # (gates-watch.toml): its watch rolls
#                                                       # back within seconds, exit 1
#
# Needs prometheus, prometheus-alertmanager, haproxy and nginx (scripts/setup.sh) and
# gatekeeper installed in the Python it runs: $PYTHON, else the repository's .venv,
# else python3. demo.py starts everything in a temp folder and stops it all on exit.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$here/../../.venv/bin/python" ]]; then
        python="$here/../../.venv/bin/python"
    else
        python=python3
    fi
fi
# exec: signals (Ctrl-C, kill) reach demo.py, whose finally blocks stop every server
exec "$python" "$here/demo.py" "$@"
