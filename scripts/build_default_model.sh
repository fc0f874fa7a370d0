#!/usr/bin/env bash
# Build the embedded default model from nothing in one run, inside a time budget:
#   corpus -> (MLLM on the text backbone: base, vision pretraining, chat rows, training
#              || refiner on the text backbone) -> package + measure on the selection split
#
#   bash scripts/build_default_model.sh --device cpu --minutes 75 --out runs/default/package
#   bash scripts/build_default_model.sh --device cuda --minutes 8     (docs/default_model.md: the GPU run)
#
# Sizes, steps and the budget split are configs/default/build.yaml; the stage record goes to
# RUN_DIR/stages.jsonl and into the manifest. Everything else is python -m text4seg.app.build_default.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TOKENIZERS_PARALLELISM=false
exec "${PYTHON:-.venv/bin/python}" -m text4seg.app.build_default "$@"
