#!/usr/bin/env bash
# Launch MLLM fine-tuning (text4seg.mllm.train) on one or many processes, one or many nodes.
# All logic lives in the Python package; this script only builds the launcher command line.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/train_mllm.sh --config FILE [options] [--] [key=value ...]

Fine-tune the MLLM on R-RLE chat data (LoRA/QLoRA, DeepSpeed ZeRO-2/3, resume).
Anything after the options (or after --) is passed to `python -m text4seg.mllm.train`
as key=value overrides of the training config (e.g. lora.r=8 max_steps=100).

Options:
  --config FILE         training YAML (configs/train/*.yaml); required
  --zero {0,2,3}        DeepSpeed ZeRO stage (0: no DeepSpeed, plain DDP); default: the config's
  --nproc N             processes per node, one per GPU (alias: --num_gpus, --nproc_per_node);
                        default: the number of visible GPUs, or 1 without GPUs
  --num_nodes N         number of nodes (alias: --nnodes); default 1
  --node_rank R         this node's rank for torchrun multi-node runs (0 on the master); default 0
  --master_addr ADDR    address of the rank-0 node; default 127.0.0.1
  --master_port PORT    free TCP port on the rank-0 node; default 29500
  --hostfile FILE       DeepSpeed hostfile ("host slots=N" lines); starts every node from this
                        one over ssh/pdsh and implies --launcher deepspeed
  --launcher NAME       torchrun | deepspeed | python; default: deepspeed with --hostfile,
                        torchrun for several processes or nodes, python for one process
  --output_dir DIR      override the config's output_dir
  --resume WHAT         auto (newest complete checkpoint in output_dir) | never | CHECKPOINT_DIR
  --threads N           torch threads per process (sets OMP_NUM_THREADS and threads)
  --python PATH         Python interpreter; default: $PYTHON, else the repo's .venv, else python3
  --dry_run             print the command instead of running it
  -h, --help            show this help

Examples:
  # 8 GPUs on one node, ZeRO-2:
  scripts/train_mllm.sh --config configs/train/llava_lora_zero2.yaml --nproc 8 --zero 2
  # 2 nodes x 8 GPUs with torchrun: run on every node, changing --node_rank:
  scripts/train_mllm.sh --config configs/train/llava_lora_zero2.yaml --nproc 8 --num_nodes 2 \
      --node_rank 0 --master_addr 10.0.0.1 --master_port 29500 --zero 3
  # 2 nodes from one shell with the DeepSpeed launcher (hostfile: "node1 slots=8" lines):
  scripts/train_mllm.sh --config configs/train/llava_lora_zero2.yaml --hostfile hostfile \
      --num_nodes 2 --nproc 8 --master_addr node1 --zero 3
  # CPU smoke run, 2 processes over gloo:
  scripts/train_mllm.sh --config configs/train/tiny_cpu.yaml --nproc 2 --zero 3 --threads 1
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIG="" ZERO="" NPROC="" NUM_NODES=1 NODE_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500
HOSTFILE="" LAUNCHER="" OUTPUT_DIR="" RESUME="" THREADS="" DRY_RUN=0 PY="${PYTHON:-}"
EXTRA=()

need() { [[ $# -ge 2 && -n "$2" ]] || { echo "error: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --config) need "$@"; CONFIG="$2"; shift 2 ;;
    --zero) need "$@"; ZERO="$2"; shift 2 ;;
    --nproc|--num_gpus|--nproc_per_node) need "$@"; NPROC="$2"; shift 2 ;;
    --num_nodes|--nnodes) need "$@"; NUM_NODES="$2"; shift 2 ;;
    --node_rank) need "$@"; NODE_RANK="$2"; shift 2 ;;
    --master_addr) need "$@"; MASTER_ADDR="$2"; shift 2 ;;
    --master_port) need "$@"; MASTER_PORT="$2"; shift 2 ;;
    --hostfile) need "$@"; HOSTFILE="$2"; shift 2 ;;
    --launcher) need "$@"; LAUNCHER="$2"; shift 2 ;;
    --output_dir) need "$@"; OUTPUT_DIR="$2"; shift 2 ;;
    --resume) need "$@"; RESUME="$2"; shift 2 ;;
    --threads) need "$@"; THREADS="$2"; shift 2 ;;
    --python) need "$@"; PY="$2"; shift 2 ;;
    --dry_run) DRY_RUN=1; shift ;;
    --) shift; EXTRA+=("$@"); break ;;
    --*) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done

[[ -n "$CONFIG" ]] || { echo "error: --config is required (see --help)" >&2; exit 2; }
[[ -z "$ZERO" || "$ZERO" =~ ^[023]$ ]] || { echo "error: --zero must be 0, 2 or 3, got $ZERO" >&2; exit 2; }
for pair in "nproc:$NPROC" "num_nodes:$NUM_NODES" "node_rank:$NODE_RANK" "master_port:$MASTER_PORT" "threads:$THREADS"; do
  value="${pair#*:}"
  [[ -z "$value" || "$value" =~ ^[0-9]+$ ]] || { echo "error: --${pair%%:*} must be a number, got $value" >&2; exit 2; }
done

if [[ -z "$PY" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; else PY="python3"; fi
fi
if [[ -z "$NPROC" ]]; then
  NPROC="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
  [[ "$NPROC" -ge 1 ]] 2>/dev/null || NPROC=1
fi
if [[ -z "$LAUNCHER" ]]; then
  if [[ -n "$HOSTFILE" ]]; then LAUNCHER=deepspeed
  elif [[ "$NPROC" -gt 1 || "$NUM_NODES" -gt 1 ]]; then LAUNCHER=torchrun
  else LAUNCHER=python; fi
fi

OVERRIDES=()
[[ -n "$ZERO" ]] && OVERRIDES+=("zero_stage=$ZERO")
[[ -n "$OUTPUT_DIR" ]] && OVERRIDES+=("output_dir=$OUTPUT_DIR")
[[ -n "$RESUME" ]] && OVERRIDES+=("resume=$RESUME")
[[ -n "$THREADS" ]] && OVERRIDES+=("threads=$THREADS") && export OMP_NUM_THREADS="$THREADS"
TRAIN_ARGS=(--config "$CONFIG" "${OVERRIDES[@]}" "${EXTRA[@]}")
BIN="$(dirname "$PY")"

case "$LAUNCHER" in
  python)
    [[ "$NPROC" -eq 1 && "$NUM_NODES" -eq 1 ]] || { echo "error: --launcher python runs one process" >&2; exit 2; }
    CMD=("$PY" -m text4seg.mllm.train "${TRAIN_ARGS[@]}") ;;
  torchrun)
    [[ -z "$HOSTFILE" ]] || { echo "error: --hostfile needs --launcher deepspeed" >&2; exit 2; }
    CMD=("$PY" -m torch.distributed.run --nnodes "$NUM_NODES" --node_rank "$NODE_RANK" --nproc_per_node "$NPROC"
         --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" -m text4seg.mllm.train "${TRAIN_ARGS[@]}") ;;
  deepspeed)
    DS=("$BIN/deepspeed")
    [[ -x "${DS[0]}" ]] || DS=(deepspeed)
    CMD=("${DS[@]}" --num_nodes "$NUM_NODES" --num_gpus "$NPROC" --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT")
    [[ -n "$HOSTFILE" ]] && CMD+=(--hostfile "$HOSTFILE")
    CMD+=(--module text4seg.mllm.train "${TRAIN_ARGS[@]}") ;;
  *) echo "error: --launcher must be torchrun, deepspeed or python, got $LAUNCHER" >&2; exit 2 ;;
esac

# Without GPUs DeepSpeed would warn and guess; say it is the CPU accelerator (gloo).
if ! nvidia-smi -L >/dev/null 2>&1; then export DS_ACCELERATOR="${DS_ACCELERATOR:-cpu}"; fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

if [[ "$DRY_RUN" -eq 1 ]]; then printf '%q ' "${CMD[@]}"; echo; exit 0; fi
exec "${CMD[@]}"
