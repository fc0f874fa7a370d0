#!/usr/bin/env bash
# Train the ST-SAM refiner (stsam_refiner.train) with accelerate: one process, or several via torchrun.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
  cat <<'USAGE'
Usage: scripts/train_refiner.sh [launcher options] [-- trainer options]

Launcher options:
  --nproc N          processes per node (GPUs, or CPU processes over gloo); default 1 (no torchrun)
  --nnodes N         number of nodes (default 1)
  --node-rank R      this node's rank (default 0)
  --master-addr A    rendezvous host for multi-node (default 127.0.0.1)
  --master-port P    rendezvous port (default 29511)
  -h, --help         this text

Trainer options (python -m stsam_refiner.train):
  --config FILE          TrainConfig YAML (default configs/refiner/train_tiny.yaml)
  --data DIR             Arrow dataset folder with image/mask columns (python -m data_builders.synthetic)
  --output-dir DIR       checkpoints, optimizer state, log.jsonl; rerunning resumes from here
  --model-config FILE    RefinerConfig YAML (configs/refiner/{tiny,vit_b,vit_l,vit_h}.yaml)
  --init-checkpoint F    start from a project checkpoint (.safetensors)
  --steps N --batch-size N --lr X --save-every N --threads N
  --coarse-source gt|cached   coarse masks from damaged GT grids or cached MLLM answers

Examples:
  scripts/train_refiner.sh -- --data data/synthetic --output-dir outputs/refiner_tiny
  scripts/train_refiner.sh --nproc 8 -- --config my_vit_b_train.yaml          # 8 GPUs
  scripts/train_refiner.sh --nproc 8 --nnodes 2 --node-rank 0 --master-addr host0 -- --config ...
USAGE
}

nproc=1 nnodes=1 node_rank=0 master_addr=127.0.0.1 master_port=29511
while [ $# -gt 0 ]; do
  case "$1" in
    --nproc) nproc=$2; shift 2 ;;
    --nnodes) nnodes=$2; shift 2 ;;
    --node-rank) node_rank=$2; shift 2 ;;
    --master-addr) master_addr=$2; shift 2 ;;
    --master-port) master_port=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done

py=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
args=("$@")
if [ ${#args[@]} -eq 0 ] || [[ ! " ${args[*]} " == *" --config "* ]]; then
  args=(--config configs/refiner/train_tiny.yaml "${args[@]}")
fi
if [ "$nproc" -eq 1 ] && [ "$nnodes" -eq 1 ]; then
  exec "$py" -m stsam_refiner.train "${args[@]}"
fi
exec "$py" -m torch.distributed.run --nproc_per_node "$nproc" --nnodes "$nnodes" --node_rank "$node_rank" \
  --master_addr "$master_addr" --master_port "$master_port" -m stsam_refiner.train "${args[@]}"
