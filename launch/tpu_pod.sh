#!/usr/bin/env bash
# Runs one training command on every host of a Cloud TPU slice: one JAX process per host.
#
#   launch/tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.a.b=v ...]
#   launch/tpu_pod.sh my-v5p us-east5-a configs/tpu_pod.py:v5p-128 /mnt/shared/runs/sft_5b
#   launch/tpu_pod.sh my-v5p us-east5-a configs/tpu_pod.py:v5p-128,mode=dpo /mnt/shared/runs/dpo_5b \
#       --config.init_from=/mnt/shared/runs/sft_5b
#
# Before the first run (once per slice):
#   1. Plan it on any machine: python launch/plan.py --config CONFIG   (FITS / DOES NOT FIT).
#   2. On every host (`gcloud compute tpus tpu-vm ssh TPU_NAME --zone ZONE --worker=all --command=...`):
#      clone this repo to REPO_DIR (default ~/syncdpo_jax), then
#        pip install -r requirements.txt 'jax[tpu]==0.10.2'
#      and mount the shared storage at the same path on every host (gcsfuse for a GCS bucket, or a
#      Filestore/NFS share). WORKDIR and config.data.data_dir must live there: every host reads the
#      same data and writes its shards of the same checkpoints (the trainer uses plain file paths,
#      so a gs:// URL will not do; a gcsfuse mount of the bucket does).
#
# --distributed makes launch/main.py call jax.distributed.initialize() before touching a device; on
# Cloud TPU it finds the coordinator and the other hosts itself.
# Preemption (spot / maintenance): the hosts get SIGTERM, the loop saves a checkpoint at the next
# step and exits. Re-run this same command (on the recreated slice) and it resumes from
# WORKDIR/checkpoints: parameters, optimizer, curriculum, rng and data iterator.
# DETACH=1 runs the trainer under nohup (logs in WORKDIR/logs/<host>.log) so it survives this ssh.
set -euo pipefail

if [[ $# -lt 4 ]]; then
  sed -n '2,8p' "$0"
  exit 2
fi
TPU_NAME=$1 ZONE=$2 CONFIG=$3 WORKDIR=$4
shift 4
REPO_DIR=${REPO_DIR:-'~/syncdpo_jax'}

ARGS="--config=${CONFIG} --workdir=${WORKDIR} --distributed"
for a in "$@"; do ARGS+=" $(printf '%q' "$a")"; done
RUN="cd ${REPO_DIR} && python3 launch/main.py ${ARGS}"
if [[ "${DETACH:-0}" == 1 ]]; then
  RUN="mkdir -p ${WORKDIR}/logs && cd ${REPO_DIR} && nohup python3 launch/main.py ${ARGS} \
> ${WORKDIR}/logs/\$(hostname).log 2>&1 &"
fi

gcloud compute tpus tpu-vm ssh "${TPU_NAME}" --zone="${ZONE}" --worker=all --command="${RUN}"
