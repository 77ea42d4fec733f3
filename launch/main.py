"""syncdpo_jax entry point: trains, resumes, evaluates or samples as `config.mode` says.

  python launch/main.py --config configs/demo.py:sft --workdir workdirs/sft
  python launch/main.py --config configs/demo.py:dpo --workdir workdirs/dpo \
      --config.init_from=workdirs/sft
  python launch/main.py --config configs/test.py --workdir /tmp/t --config.train.num_steps=4

Flags:
  --config     a config file with get_config(arg); `file.py:arg` selects a variant; any field can be
               overridden with --config.a.b=value (unknown fields are an error).
  --workdir    where checkpoints, metrics.jsonl, tensorboard/, plots/ (and eval/, samples/) go.
Multi-host (TPU pods, multi-node GPU): set --distributed (or JAX_COORDINATOR_ADDRESS) so
jax.distributed.initialize() runs before anything touches a device. Cloud TPU, SLURM and Open MPI
are detected; elsewhere give every process --coordinator_address=HOST:PORT (process 0's host),
--num_processes=N and --process_id=I, e.g. two processes on one machine:
  python launch/main.py --config configs/test.py --workdir workdirs/mh --distributed \
      --coordinator_address=localhost:12345 --num_processes=2 --process_id=0   # and =1
"""

import os
import sys

from absl import app, flags
from ml_collections import config_flags

# Runnable from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Run config file (get_config(arg)).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and outputs.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed",
    bool(os.environ.get("JAX_COORDINATOR_ADDRESS")),
    "Call jax.distributed.initialize() (multi-host runs); implied "
    "by --coordinator_address or --num_processes.",
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    None,
    "--distributed: host:port of process 0 (default: "
    "$JAX_COORDINATOR_ADDRESS, or auto-detected on Cloud TPU, SLURM and Open MPI).",
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "--distributed: number of processes (default: auto-detected)."
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "--distributed: this process's index (default: auto-detected)."
)
_CONNECT_TIMEOUT = flags.DEFINE_integer(
    "distributed_timeout", 300, "--distributed: seconds to wait for every process to connect."
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  from syncdpo_jax import launch_lib
  # absl runs at INFO, where orbax logs every file it writes: the console keeps our progress lines,
  # and user errors are one line, unless the user asks for more with --verbosity=0 (or higher).
  verbose = flags.FLAGS["verbosity"].present
  launch_lib.quiet_console(verbose)

  def run():
    if _DISTRIBUTED.value or _COORDINATOR.value or _NUM_PROCESSES.value is not None:
      launch_lib.init_distributed(
          _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, timeout_s=_CONNECT_TIMEOUT.value
      )
    launch_lib.run(_CONFIG.value, _WORKDIR.value)

  launch_lib.run_cli(run, verbose)


if __name__ == "__main__":
  from syncdpo_jax.launch_lib import parse_flags

  app.run(main, flags_parser=parse_flags)
