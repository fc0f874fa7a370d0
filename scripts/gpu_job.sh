#!/usr/bin/env bash
# The one-GPU build of the default model, as the device tool runs it (one call, under its 600 s):
#   run(command="bash scripts/gpu_job.sh", carry=["gpu_job"], timeout_s=600)
# installs the carried wheels (gpu_job/, made by scripts/pack_gpu_job.sh), runs the CUDA checks
# (python -m text4seg.app.cuda_checks) beside the build, builds with
#   bash scripts/build_default_model.sh --device cuda --minutes 8 ...
# and leaves at most 8 files in $OUT (python -m text4seg.app.gpu_return bundle): model.tar.NN,
# logs.tar.gz, record.json. Unpack here with python -m text4seg.app.gpu_return unpack.
#
#   bash scripts/gpu_job.sh [--minutes M] [-- extra build flags, e.g. --set train_images=6000]
# CPU dry run: GPU_JOB_DEVICE=cpu GPU_JOB_INSTALL=0 PYTHON=.venv/bin/python OUT=/tmp/o bash scripts/gpu_job.sh ...
set -uo pipefail
cd "$(dirname "$0")/.."
MINUTES=8
if [[ "${1:-}" == "--minutes" ]]; then MINUTES=$2; shift 2; fi
if [[ "${1:-}" == "--" ]]; then shift; fi
: "${OUT:?OUT (the folder the device tool brings back) is not set}"
CARRY=${GPU_JOB_CARRY:-gpu_job}
DEVICE=${GPU_JOB_DEVICE:-cuda}
WORK=${GPU_JOB_WORK:-/tmp/gpu_job}
LIMIT=${GPU_JOB_SECONDS:-575}    # the call's 600 s, less the bundling at the end
PY=${PYTHON:-python3}
stamp() { echo "[$(date +%H:%M:%S)] $*"; }

[[ -f "$CARRY/manifest.json" ]] || { echo "error: $CARRY/manifest.json missing: run scripts/pack_gpu_job.sh here and carry $CARRY" >&2; exit 2; }
rm -rf "$WORK" && mkdir -p "$WORK/run"
if [[ "${GPU_JOB_INSTALL:-1}" == 1 ]]; then
  stamp "installing $(ls "$CARRY"/wheels/*.whl | wc -l) carried wheels"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
    "$CARRY"/wheels/*.whl || exit 1
  export PYTHONPATH="$PWD:$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHON="$PY" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export TEXT4SEG_DETECTOR_DIR="$PWD/$CARRY/detectors"
TEXT4SEG_TEXT_EMBEDDINGS="$(ls "$PWD/$CARRY"/text_embeddings/*.safetensors | head -n 1)"
export TEXT4SEG_TEXT_EMBEDDINGS
[[ "$DEVICE" == cuda ]] && nvidia-smi -L

stamp "CUDA checks in the background ($WORK/run/checks.jsonl)"
timeout -k 5 420 "$PY" -m text4seg.app.cuda_checks --work "$WORK/checks" --device "$DEVICE" \
  >"$WORK/run/checks.jsonl" 2>"$WORK/run/checks.log" &
CHECKS=$!

BUDGET=$((LIMIT - SECONDS))
stamp "build: --device $DEVICE --minutes $MINUTES, cut off after ${BUDGET}s"
timeout -k 10 "$BUDGET" bash scripts/build_default_model.sh --device "$DEVICE" --minutes "$MINUTES" \
  --run-dir "$WORK/run" --data-dir "$WORK/data" --out "$WORK/package" --assets-dir "$CARRY/assets" "$@" \
  >"$WORK/run/build.log" 2>&1
stamp "build exit $? (124: cut off by the time limit)"
grep -a '^\[' "$WORK/run/build.log" | tail -n 30
wait "$CHECKS"
cat "$WORK/run/checks.jsonl"

stamp "bundling into $OUT"
"$PY" -m text4seg.app.gpu_return bundle --run-dir "$WORK/run" --package "$WORK/package" --out "$OUT"
ls -l "$OUT"
