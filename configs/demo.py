"""The embedded demo: SFT (1000 steps) then SyncDPO (30 steps) on SyncBench-Synth, on a 2-core CPU.

  python launch/main.py --config configs/demo.py:sft --workdir workdirs/demo/sft
  python launch/main.py --config configs/demo.py:dpo --workdir workdirs/demo/dpo \
      --config.init_from=workdirs/demo/sft

(`make demo` runs both plus the evaluation; see launch/demo.py.)
"""

from syncdpo_jax import config_lib


def get_config(arg: str = "sft"):
  mode = arg or "sft"
  c = config_lib.demo_generator(config_lib.base_config(data="demo", model="demo", mode=mode))
  c.data.data_dir = "workdirs/tfds"
  # 16 clips a step: ~0.4 s per SFT step on 2 CPU cores.
  c.data.batch_size = 16
  c.train.log_every = 10
  c.train.checkpoint_every = 100
  # Eval: 16 test clips, every generation mode, 10 Euler steps with SyncCFG.
  c.eval.num_clips = 16
  c.eval.batch_size = 16
  c.sample.num_steps = 10
  if mode == "dpo":
    c.train.num_steps = 30
    c.train.log_every = 2  # a short run: log often enough that the curves have a shape
    c.optim.lr = 5e-5
    c.optim.warmup_steps = 10
    c.optim.schedule = "constant"
    c.dpo.beta = 2000.0
    # Coarse -> medium -> subtle negatives over the run's thirds.
    n = c.train.num_steps
    c.curriculum.stage_boundaries = (n // 3, 2 * n // 3)
  else:
    c.train.num_steps = 1000
    c.optim.lr = 1e-3
    c.optim.warmup_steps = 50
  return c
