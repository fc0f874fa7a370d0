#!/usr/bin/env bash
# The README's main-job command: set up .venv if needed, then run the main job on the example.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
exec .venv/bin/text4seg codec demo --out outputs/demo "$@"
