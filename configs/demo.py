"""The embedded demo: a video codec, SFT (1000 steps), then SyncDPO (30 steps) on SyncBench-Synth, on a
2-core CPU.

  python launch/main.py --config configs/demo.py:codec --workdir workdirs/demo/codec
  python launch/main.py --config configs/demo.py:sft --workdir workdirs/demo/sft
  python launch/main.py --config configs/demo.py:dpo --workdir workdirs/demo/dpo \
      --config.init_from=workdirs/demo/sft

(`make demo` runs them plus the evaluation; see launch/demo.py.) The model sees the latents of a small
video autoencoder trained first on the data (the sixth round of README, "The demo's generator");
--config.codec.checkpoint points elsewhere, and --config.codec.name=pixel_mel
--config.model.video_patch_bottleneck=16 --config.sample.num_steps=10 --config.sample.sync_cfg=True
gives the fifth round's pixel-codec demo back.
"""

from syncdpo_jax import config_lib


def get_config(arg: str = "sft"):
  mode = arg or "sft"
  c = config_lib.demo_generator(config_lib.base_config(data="demo", model="demo", mode=mode))
  c.data.data_dir = "workdirs/tfds"
  # Sixth round: video latents of the learned codec (configs/demo.py:codec trains it), no patch
  # bottleneck (the latents carry no pixel noise to keep out).
  c.codec.name = "autoencoder"
  c.codec.checkpoint = "workdirs/demo/codec"
  c.model.video_patch_bottleneck = 0
  # 16 clips a step: ~0.4 s per SFT step on 2 CPU cores.
  c.data.batch_size = 16
  c.train.log_every = 10
  c.train.checkpoint_every = 100
  # Eval: the whole test split (48 clips; with 16 the gate's colour floor was 0.31 instead of 0.08
  # and a run's position moved by ~0.3), every generation mode, 50 Adams-Bashforth steps without SyncCFG.
  # Seventh round (README, "The demo's generator"): at 25 steps the sampled clips' colours are pulled
  # towards the data's mean (the clip-mean latents spread 0.43, the data's 0.57), at 100 they spread
  # 0.52 and the video's gate position falls from 0.34 to 0.15 (joint); 200 steps buy nothing more.
  # Eighth round: the second-order Adams-Bashforth solver (one model call a step, as Euler) reaches
  # Euler-100's gate positions in 50 steps at both seeds measured (joint / a2v: 0.13 / 0.11 vs 0.12 /
  # 0.12, 0.11 / 0.12 vs 0.11 / 0.12), half the sampling time.
  # SyncCFG makes the video worse in every round so far; the eval also samples every mode with it
  # (rows '/synccfg_on').
  c.eval.num_clips = 48
  c.eval.batch_size = 16
  c.sample.sampler = "ab2"
  c.sample.num_steps = 50
  c.sample.sync_cfg = False
  if mode == "dpo":
    c.train.num_steps = 30
    c.train.log_every = 2  # a short run: log often enough that the curves have a shape
    c.optim.lr = 5e-5
    c.optim.warmup_steps = 10
    c.optim.schedule = "constant"
    c.train.ema_decay = 0.0  # explicit: the policy's own weights are what a 30-step run evaluates
    c.dpo.beta = 2000.0
    # Coarse -> medium -> subtle negatives over the run's thirds.
    n = c.train.num_steps
    c.curriculum.stage_boundaries = (n // 3, 2 * n // 3)
  else:
    c.train.num_steps = 1000
    c.optim.lr = 1e-3
    c.optim.warmup_steps = 50
    # Seventh round: the EMA of the weights samples nearer the data at both seeds measured (gate,
    # joint / a2v: 0.15 / 0.26 -> 0.12 / 0.12 and 0.16 / 0.16 -> 0.11 / 0.12); eval and DPO's
    # init_from load it (config.load_ema). A 30-step DPO run keeps none (dpo branch above).
    c.train.ema_decay = 0.999
  return c
