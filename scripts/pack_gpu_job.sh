#!/usr/bin/env bash
# Pack what the one-GPU build needs and the GPU machine lacks (wheels, the text detector, the refiner's
# sentence embeddings, corpus fonts and photos) into gpu_job/ (git-ignored), measured against the 64 MiB
# that may travel with the repository. Then run it there with the device tool:
#   run(command="bash scripts/gpu_job.sh", carry=["gpu_job"], timeout_s=600)
# docs/default_model.md ("Building on one GPU") has the whole procedure.
#
#   bash scripts/pack_gpu_job.sh [--out gpu_job] [--force] [--assets-mb N] [--no-download]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "${PYTHON:-.venv/bin/python}" -m text4seg.app.gpu_job "$@"
