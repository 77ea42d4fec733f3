"""LTX-2 (the ported audio-video transformer, syncdpo_jax/model/ltx2.py): SFT and SyncDPO.

  python launch/plan.py --config configs/ltx2.py:gpu-8x80gb,mode=dpo                # does it fit?
  python -m syncdpo_jax.convert ltx2 --src LTX-2/transformer --out /mnt/shared/runs/ltx2_base \
      --config configs/ltx2.py:gpu-8x80gb
  python launch/main.py --config configs/ltx2.py:gpu-8x80gb,mode=dpo --workdir /mnt/shared/runs/ltx2_dpo \
      --config.init_from=/mnt/shared/runs/ltx2_base
  python launch/main.py --config configs/ltx2.py:tiny --workdir /tmp/ltx2_tiny         # any CPU, seconds

Argument: PRESET[,mode=sft|dpo]
  tiny         a 2-layer random LTX-2 (diffusers' test size) on the SyncBench-Synth test data in pixel
               space, its class label as the caption token (model.label_text): what the tests train
  gpu-8x80gb   LTX-2.0 (19B) on one node of 8 H100 80GB: FSDP over the 8 GPUs, full remat, cuDNN attention
  v5p-64       LTX-2.0 on a v5p-64 slice (32 chips of 95 GB): FSDP over 32 chips, full remat, splash attention
The 19B presets read precomputed LTX-2 latents (128-channel video latents of the 32x spatial, 8x temporal
VAE at 24 fps; 128-channel audio latents at 25 Hz) with Gemma caption embeddings: set
--config.data.data_dir. bf16 compute, f32 params and optimizer (syncdpo_jax/hardware.py).
"""

from syncdpo_jax import config_lib, hardware
from syncdpo_jax.model import ltx2

# preset: (accelerator, devices, mesh, global batch, remat, attention kernel)
PRESETS = {
    "tiny": None,
    "gpu-8x80gb": ("h100-80gb", 8, {"data": 1, "fsdp": 8, "tensor": 1}, 8, "full", "cudnn"),
    "v5p-64": ("v5p", 32, {"data": 1, "fsdp": 32, "tensor": 1}, 32, "full", "splash"),
}


def tiny(mode: str = "sft"):
  """The tests' LTX-2: configs/test.py's data and schedule with the tiny LTX-2."""
  c = config_lib.base_config(data="test", model="tiny", mode=mode)
  c.data.data_dir = "workdirs/tfds"
  c.data.batch_size = 8
  c.train.num_steps, c.train.log_every, c.train.checkpoint_every = 6, 2, 3
  c.optim.warmup_steps, c.optim.lr = 2, 1e-3
  c.dpo.beta = 500.0
  c.curriculum.stage_boundaries = (2, 4)
  c.model = ltx2.get_config("tiny")
  # The RoPE's positions in seconds from the pixel_mel latents: one log-mel frame per audio latent,
  # one pixel frame per video latent frame, codec.patch pixels per latent cell.
  m = c.model
  m.audio_sampling_rate, m.audio_hop_length, m.audio_scale_factor = int(c.data.sr), int(c.data.hop), 1
  m.vae_scale_factors = (1, int(c.codec.patch), int(c.codec.patch))
  c.objective.prediction = "v"  # LTX-2 predicts the velocity
  return c


def get_config(arg: str = "tiny"):
  preset, opts = hardware.parse_arg(arg, PRESETS, {"mode": "sft"})
  if preset == "tiny":
    return tiny(opts["mode"])
  accelerator, devices, mesh, batch, remat, attention = PRESETS[preset]
  c = config_lib.base_config(data="demo", model="tiny", mode=opts["mode"])
  c.hardware = hardware.hardware_config(preset, accelerator, devices)
  d = c.data
  d.name, d.builder_config = "precomputed_latents", "ltx2_latents"
  d.data_dir = "/mnt/shared/syncdpo/data"
  d.window_s, d.fps, d.resolution = 5.0, 24.0, 512  # 15 latent frames of 16x16, 125 audio latents
  d.sr, d.hop, d.n_fft, d.n_mels = 16000, 160, 1024, 64
  d.num_workers = 8
  d.text_dim, d.text_len = 3840, 1024  # Gemma 3 features through LTX-2's text connector, precomputed
  cc = c.codec
  cc.name, cc.decoder = "precomputed", ""
  cc.video_channels, cc.spatial_downsample, cc.temporal_downsample = 128, 32, 8
  cc.audio_channels, cc.audio_temporal_downsample = 128, 4
  c.model = ltx2.get_config("19b")
  c.objective.prediction = "v"
  hardware.configure_run(
      c, mesh=mesh, batch_size=batch, remat=remat, attention_impl=attention, checkpoint_every=250
  )
  return c
