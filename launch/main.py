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
jax.distributed.initialize() runs before anything touches a device.
"""
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

# Runnable from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_CONFIG = config_flags.DEFINE_config_file("config", None, "Run config file (get_config(arg)).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and outputs.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", bool(os.environ.get("JAX_COORDINATOR_ADDRESS")),
                                 "Call jax.distributed.initialize() (multi-host runs).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  # absl runs at INFO, where orbax logs every file it writes; keep the console to our progress lines
  # unless the user asks for more with --verbosity=0 (or higher).
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  import jax
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  from syncdpo_jax import launch_lib
  launch_lib.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
