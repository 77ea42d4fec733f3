"""Prints a run config's memory plan on its target devices, without the devices.

  python launch/plan.py --config configs/tpu_pod.py:v5p-128
  python launch/plan.py --config configs/gpu.py:8x80gb,mode=dpo --config.data.batch_size=32
  python launch/plan.py --config configs/demo.py --num_devices 8 --hbm_gib 16   # no hardware section

Per device: params, optimizer moments, the DPO reference, EMA and gradients exactly as the trainer
shards them (built with jax.eval_shape on an abstract mesh of config.hardware.num_devices), plus an
estimate of activations under the config's remat policy; then FITS / DOES NOT FIT against
config.hardware.hbm_gib. Exits 1 when it does not fit. See syncdpo_jax/train/plan.py.
"""

import os
import sys

from absl import app, flags
from ml_collections import config_flags

# Runnable from a checkout without installing the package; a plan needs no accelerator.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Run config file (get_config(arg)).", lock_config=True
)
_NUM_DEVICES = flags.DEFINE_integer(
    "num_devices", None, "Target device count (default: config.hardware.num_devices)."
)
_HBM_GIB = flags.DEFINE_float("hbm_gib", None, "Memory per device in GiB (default: config.hardware.hbm_gib).")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  from syncdpo_jax.train import plan

  p = plan.make_plan(_CONFIG.value, num_devices=_NUM_DEVICES.value, hbm_gib=_HBM_GIB.value)
  print(p.format(), flush=True)
  return 0 if p.fits is not False else 1


if __name__ == "__main__":
  app.run(main)
