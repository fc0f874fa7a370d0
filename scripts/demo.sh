#!/usr/bin/env bash
# The README's main-job command: set up .venv if needed, then segment the example image with the
# embedded default model (offline). Writes masks, an overlay and a JSON to outputs/demo/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
exec .venv/bin/text4seg segment examples/coffee_signs.png \
  --query "segment the text in this image" --out outputs/demo "$@"
