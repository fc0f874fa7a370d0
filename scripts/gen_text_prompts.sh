#!/usr/bin/env bash
# Regenerate configs/text_prompts.yaml (ST-SAM's general text-attribute sentences) with a local HF LLM.
# Usage: scripts/gen_text_prompts.sh --model /path/to/local/llm [--out configs/text_prompts.yaml] [--n 12]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "${PYTHON:-.venv/bin/python}" -m stsam_refiner.prompt_gen "$@"
