#!/usr/bin/env bash
# Sets up the package (no servers needed) and rehearses the reference plan against
# its healthy recording: 16 simulated days (its calendar included) in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."
GATEKEEPER_SETUP_SERVERS=0 bash scripts/setup.sh
plan=examples/progressive-rollout/gates.toml
exec .venv/bin/gatekeeper rehearse "$plan" \
  --metrics "${1:-examples/progressive-rollout/healthy.csv}"
