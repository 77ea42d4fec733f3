#!/usr/bin/env bash
#SBATCH --job-name=syncdpo
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --exclusive
#SBATCH --signal=TERM@180
#SBATCH --requeue
#SBATCH --output=slurm-%j.out
# Multi-node NVIDIA GPU training under SLURM: one JAX process per node, driving its 8 GPUs.
#
#   sbatch --nodes=4 launch/gpu_multinode.sh CONFIG WORKDIR [--config.a.b=v ...]
#   sbatch --nodes=4 launch/gpu_multinode.sh configs/gpu.py:4x8x80gb /mnt/shared/runs/sft_5b
#
# Submit from the repo checkout (a path every node sees), in an environment with
#   pip install -r requirements.txt 'jax[cuda12]==0.10.2'
# Plan first on any machine: python launch/plan.py --config CONFIG. WORKDIR and
# config.data.data_dir must be on storage every node mounts (the trainer uses plain file paths).
#
# --distributed makes launch/main.py call jax.distributed.initialize(), which reads SLURM's
# variables (SLURM_PROCID, SLURM_NTASKS, SLURM_STEP_NODELIST): no addresses to pass. Without SLURM,
# start the same command on every node with --coordinator_address=NODE0:PORT --num_processes=N
# --process_id=I added (see python launch/main.py --help).
# Preemption and time limits: SLURM sends SIGTERM 3 minutes before the end (--signal above); the
# loop saves a checkpoint and exits, and a requeued or resubmitted job resumes from WORKDIR.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '10,12p' "$0"
  exit 2
fi
CONFIG=$1 WORKDIR=$2
shift 2

# JAX reserves 75% of GPU memory by default; the memory plan budgets against the whole card.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}

srun --kill-on-bad-exit=1 python launch/main.py --config="${CONFIG}" --workdir="${WORKDIR}" \
  --distributed "$@"
