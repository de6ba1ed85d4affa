#!/usr/bin/env bash
# The command a W&B agent runs for one multi-GPU trial: `adadim train` under torchrun on all
# GPUs of this node. In a sweep YAML:  command: [bash, sweeps/torchrun-train.sh, "${args_no_hyphens}"]
set -euo pipefail
exec torchrun --standalone --nproc_per_node="${NGPUS:-$(nvidia-smi -L 2>/dev/null | wc -l)}" -m adadim.training.cli train "$@"
