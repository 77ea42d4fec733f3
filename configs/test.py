"""Tiny config for tests: runs in seconds on 1 device or on 8 virtual devices.

python launch/main.py --config configs/test.py:sft --workdir /tmp/t_sft
python launch/main.py --config configs/test.py:dpo --workdir /tmp/t_dpo --config.init_from=/tmp/t_sft
"""

from syncdpo_jax import config_lib


def get_config(arg: str = "sft"):
  c = config_lib.base_config(data="test", model="tiny", mode=arg or "sft")
  c.data.data_dir = "workdirs/tfds"
  # 8 = the batch axis on 8 virtual devices (mesh data=-1); also fine on 1 device.
  c.data.batch_size = 8
  c.train.num_steps = 6
  c.train.log_every = 2
  c.train.checkpoint_every = 3
  c.optim.warmup_steps = 2
  c.optim.lr = 1e-3
  c.dpo.beta = 500.0
  c.curriculum.stage_boundaries = (2, 4)  # all three curriculum stages within the 6 steps
  return c
