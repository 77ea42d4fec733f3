"""Reproduce SyncDPO's claims at small scale: train every run, evaluate, write WORKDIR/results.{md,json}.

  python launch/reproduce.py --config configs/reproduce.py:quick --workdir workdirs/reproduce_quick

Re-running resumes: finished runs are skipped, a partial run continues from its last checkpoint, and
the evaluation and claim table are recomputed. Any field can be overridden, e.g.
--config.reproduce.post_steps=48 or --config.eval.num_clips=32.
"""

import os
import sys

from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config (configs/reproduce.py:quick|full).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for every run, the eval reports and results.md.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  from syncdpo_jax import launch_lib
  from syncdpo_jax.experiments import reproduce

  verbose = flags.FLAGS["verbosity"].present
  launch_lib.quiet_console(verbose)
  launch_lib.run_cli(lambda: reproduce.run(_CONFIG.value, _WORKDIR.value), verbose)


if __name__ == "__main__":
  from syncdpo_jax.launch_lib import parse_flags

  app.run(main, flags_parser=parse_flags)
