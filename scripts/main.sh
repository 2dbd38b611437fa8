#!/usr/bin/env bash
# The main job on the embedded default province (inventory/lab).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/dcops main "$@"
