#!/usr/bin/env bash
# Build the embedded default model on CPU, from nothing but this repository and its pip packages:
#   data -> base checkpoint -> vision pretraining -> chat rows -> MLLM training -> MLLM continued  (one core)
#        \-> refiner training -> refiner continued                                               (the other core)
#   -> package into text4seg/app/assets/default/ -> measure on held-out fonts + seed -> manifest.json
#
#   bash scripts/build_default_model.sh
#
# Sizes and steps come from configs/default/*.yaml; override with environment variables:
#   N_TRAIN (6000 training images), N_VAL (300 validation images), CONV_IMAGES (0 = all), RUN_DIR (runs/default),
#   DATA_DIR (data/default), OUT (text4seg/app/assets/default), VISION_STEPS, MLLM_STEPS, REFINER_STEPS,
#   REFINER_CONTINUE_STEPS (13500).
# Stage timings go to $RUN_DIR/stages.jsonl and into the manifest. docs/default_model.md records
# what the build of the shipped files took (three sessions on a 2-core CPU, about 6 hours in all).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
RUN_DIR=${RUN_DIR:-runs/default}
DATA_DIR=${DATA_DIR:-data/default}
OUT=${OUT:-text4seg/app/assets/default}
N_TRAIN=${N_TRAIN:-6000}
N_VAL=${N_VAL:-300}
CONV_IMAGES=${CONV_IMAGES:-0}  # chat rows from the first N training images (0: all, ~4 rows each)
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$RUN_DIR" "$DATA_DIR"
STAGES="$RUN_DIR/stages.jsonl"

stage() {  # stage NAME COMMAND... : run it and append {"stage", "seconds", "command"} to $STAGES
    local name=$1 start
    shift
    start=$(date +%s)
    echo "== $name: $*"
    "$@"
    "$PY" -c 'import json, sys; print(json.dumps({"stage": sys.argv[1], "seconds": int(sys.argv[2]), "command": " ".join(sys.argv[3:])}))' \
        "$name" "$(( $(date +%s) - start ))" "$@" >> "$STAGES"
}

steps() { [ -n "${1:-}" ] && echo "--steps $1" || true; }

# Training fonts and seed 100; validation: fonts never used in training (STIX, Computer Modern), seed 4242.
stage data_train "$PY" -m data_builders.synthetic --config configs/data/synthetic.yaml --n "$N_TRAIN" \
    --out "$DATA_DIR/synth_train" --seed 100 --workers 2
stage data_val "$PY" -m data_builders.synthetic --config configs/data/synthetic_eval.yaml --n "$N_VAL" \
    --out "$DATA_DIR/synth_val" --seed 4242 --workers 2

{
    "$PY" -m stsam_refiner.train --config configs/default/refiner_train.yaml --data "$DATA_DIR/synth_train" \
        --output-dir "$RUN_DIR/refiner" $(steps "${REFINER_STEPS:-}")
    "$PY" -m stsam_refiner.train --config configs/default/refiner_continue.yaml --data "$DATA_DIR/synth_train" \
        --init-checkpoint "$RUN_DIR/refiner/refiner.safetensors" --output-dir "$RUN_DIR/refiner_continue"
    # The same run resumed (weights, optimizer state, step) to 13,500 steps; the warm-up + cosine
    # schedule is recomputed over the new total, so the learning rate climbs back to about half its peak.
    "$PY" -m stsam_refiner.train --config configs/default/refiner_continue.yaml --data "$DATA_DIR/synth_train" \
        --output-dir "$RUN_DIR/refiner_continue" --steps "${REFINER_CONTINUE_STEPS:-13500}"
} > "$RUN_DIR/refiner.log" 2>&1 &
REFINER_PID=$!
refiner_start=$(date +%s)

stage base "$PY" -m text4seg.app.default_package base --config configs/default/mllm.yaml --out "$RUN_DIR/base"
stage vision_pretrain "$PY" -m text4seg.mllm.vision_pretrain --config configs/default/vision_pretrain.yaml \
    --model-path "$RUN_DIR/base" --data "$DATA_DIR/synth_train" --output-dir "$RUN_DIR/vision" $(steps "${VISION_STEPS:-}")
stage conversations "$PY" -m data_builders.conversations --synthetic "$DATA_DIR/synth_train" \
    --out "$DATA_DIR/conv_train" --config configs/default/conversations.yaml --seed 0 --limit "$CONV_IMAGES"
stage conversations_val "$PY" -m data_builders.conversations --synthetic "$DATA_DIR/synth_val" \
    --out "$DATA_DIR/conv_val" --config configs/default/conversations.yaml --seed 1 --limit 40
stage mllm_train "$PY" -m text4seg.mllm.full_train --config configs/default/mllm_train.yaml \
    --model-path "$RUN_DIR/vision/model" --head-path "$RUN_DIR/vision/patch_head.safetensors" \
    --data "$DATA_DIR/conv_train" --output-dir "$RUN_DIR/mllm" $(steps "${MLLM_STEPS:-}")
# Continue the same run (weights, optimizer state, step) under a longer, lower schedule.
[ -d "$RUN_DIR/mllm_continue" ] || cp -r "$RUN_DIR/mllm" "$RUN_DIR/mllm_continue"
stage mllm_continue "$PY" -m text4seg.mllm.full_train --config configs/default/mllm_continue.yaml \
    --data "$DATA_DIR/conv_train" --output-dir "$RUN_DIR/mllm_continue"

wait "$REFINER_PID"
"$PY" -c 'import json, sys; print(json.dumps({"stage": "refiner_train", "seconds": int(sys.argv[1]), "command": "python -m stsam_refiner.train --config configs/default/refiner_train.yaml, then --config configs/default/refiner_continue.yaml to 7000 and resumed to 13500 steps (in parallel with the MLLM stages)"}))' \
    "$(( $(date +%s) - refiner_start ))" >> "$STAGES"

"$PY" -c 'import json, sys; print(json.dumps({"train_images": int(sys.argv[1]), "val_images": int(sys.argv[2]), "train_data": "data_builders.synthetic, train fonts, seed 100", "val_data": "data_builders.synthetic, eval fonts (held out), seed 4242"}))' \
    "$N_TRAIN" "$N_VAL" > "$RUN_DIR/training.json"
"$PY" -m text4seg.app.default_package package --mllm "$RUN_DIR/mllm_continue/model" --refiner "$RUN_DIR/refiner_continue/refiner.safetensors" \
    --val-data "$DATA_DIR/synth_val" --conv-val "$DATA_DIR/conv_val" --stages "$STAGES" --training "$RUN_DIR/training.json" --out "$OUT"
