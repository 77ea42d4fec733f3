"""Building blocks of the real-hardware run configs (configs/gpu.py, configs/tpu_pod.py).

* `ACCELERATORS` and `hardware_config`: the target a config is written for (device count, HBM per
  device, devices per host); the memory plan (syncdpo_jax.train.plan) reads `config.hardware`.
* `tpu_slice`: a Cloud TPU slice name ('v5p-128', 'v6e-256') -> (accelerator, chips).
* `set_data_source`: where a pod or cluster reads its clips: precomputed VAE latents (the way to
  train at scale: no media decoding in the loop) or a folder of mp4s (av_folder), both on storage
  every host mounts.
* `parse_arg`: 'preset,key=value,...' config arguments.
"""

from __future__ import annotations

import dataclasses
import re

import ml_collections


@dataclasses.dataclass(frozen=True)
class Accelerator:
  """platform: 'gpu' | 'tpu'; hbm_gib: memory per device (nominal, as sold); devices_per_host:
  devices one host (VM / node) drives in a multi-host slice or cluster."""

  platform: str
  hbm_gib: float
  devices_per_host: int


ACCELERATORS = {
    "h100-80gb": Accelerator("gpu", 80.0, 8),
    "h200": Accelerator("gpu", 141.0, 8),
    "a100-80gb": Accelerator("gpu", 80.0, 8),
    "v5p": Accelerator("tpu", 95.0, 4),
    "v6e": Accelerator("tpu", 32.0, 4),
    "v5e": Accelerator("tpu", 16.0, 4),
}
# Slice names count TensorCores on v4/v5p (2 per chip, one JAX device per chip) and chips on v5e/v6e.
_CORES_PER_CHIP = {"v5p": 2, "v5e": 1, "v6e": 1}


def tpu_slice(name: str) -> tuple[str, int]:
  """'v5p-128' -> ('v5p', 64 chips = JAX devices); 'v6e-256' -> ('v6e', 256)."""
  m = re.fullmatch(r"(v5p|v5e|v6e)-(\d+)", name)
  if not m:
    raise ValueError(
        f"TPU slice {name!r}: expected e.g. 'v5p-128' or 'v6e-256' (accelerator "
        f"{sorted(_CORES_PER_CHIP)} and the number gcloud uses in --accelerator-type)"
    )
  acc, n = m.group(1), int(m.group(2))
  if n % _CORES_PER_CHIP[acc]:
    raise ValueError(f"TPU slice {name!r}: {acc} slice sizes count {_CORES_PER_CHIP[acc]} cores per chip")
  return acc, n // _CORES_PER_CHIP[acc]


def hardware_config(name: str, accelerator: str, num_devices: int) -> ml_collections.ConfigDict:
  """`config.hardware`: what the memory plan and the launch helpers assume about the target."""
  if accelerator not in ACCELERATORS:
    raise ValueError(f"accelerator {accelerator!r}; expected one of {sorted(ACCELERATORS)}")
  a = ACCELERATORS[accelerator]
  c = ml_collections.ConfigDict()
  c.name = name  # e.g. 'v5p-128', '8x h100-80gb'
  c.accelerator = accelerator
  c.platform = a.platform
  c.num_devices = int(num_devices)  # JAX devices (chips / GPUs) of the whole run
  c.devices_per_host = min(a.devices_per_host, int(num_devices))
  c.num_hosts = max(1, int(num_devices) // a.devices_per_host)
  c.hbm_gib = a.hbm_gib  # per device; the plan's fits/does-not-fit line compares with it
  return c


DATA_SOURCES = ("latents", "av_folder")


def set_data_source(c: ml_collections.ConfigDict, source: str, *, resolution: int) -> None:
  """Points `c.data`/`c.codec` at clips on shared storage and re-derives the model's input layout.

  latents    `precomputed_latents` written once by `python -m syncdpo_jax.data.precompute` with a
             Wan2.2-style video VAE (48 channels, 16x spatial, 4x temporal: 24 fps -> 6 latent fps)
             and an audio VAE on 100 fps log-mel (64 channels, 4x temporal: 25 latent fps).
             Paths: data.data_dir (where the latents live), data.builder_config (their name).
  av_folder  mp4s in data.manual_dir, converted once into data.data_dir (tfds ArrayRecord) and
             encoded by the embedded pixel/log-mel codec in the step (codec.patch = 16: 16x16 pixels
             per latent cell, like the VAE's grid, with 768 channels; 4 log-mel frames per token).
  Both paths are placeholders the user sets (`--config.data.data_dir=/mnt/shared/...`): every host
  reads the same files, so they must be on storage all hosts mount (NFS/Filestore, GCS via gcsfuse).
  """
  if source not in DATA_SOURCES:
    raise ValueError(f"data source {source!r}; expected one of {DATA_SOURCES} (config argument data=...)")

  d = c.data
  d.window_s = 5.0
  d.fps = 24.0
  d.resolution = resolution
  d.sr = 16000
  d.hop = 160
  d.n_fft = 640
  d.n_mels = 64
  d.num_workers = 8  # grain worker processes per host: big hosts keep the device fed
  d.data_dir = "/mnt/shared/syncdpo/data"
  if source == "latents":
    d.name = "precomputed_latents"
    d.builder_config = "wan_latents"
    c.codec.name = "precomputed"
    c.codec.decoder = ""  # eval / sample runs need the VAE: codec.decoder='flax_vae' + codec.factory
    c.codec.video_channels, c.codec.spatial_downsample, c.codec.temporal_downsample = 48, 16, 4
    c.codec.audio_channels, c.codec.audio_temporal_downsample = 64, 4
  else:
    d.name = "av_folder"
    d.builder_config = "default"
    d.manual_dir = "/mnt/shared/syncdpo/mp4"
    # Pixel latents have one frame per video frame: 6 fps keeps the 5 s window at 30 latent frames,
    # and 4 log-mel frames per audio token keep audio at 25 tokens/s, as with the latents.
    d.fps = 6.0
    c.codec.name = "pixel_mel"
    c.codec.patch = 16
    c.model.audio_patch = 4


def parse_arg(arg: str | None, presets, defaults: dict[str, str]) -> tuple[str, dict[str, str]]:
  """'preset,key=value,...' -> (preset, options); options not given take `defaults`.

  Unknown presets or keys raise with the valid ones listed.
  """
  parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
  preset = parts[0] if parts and "=" not in parts[0] else ""
  if preset not in presets:
    raise ValueError(
        f"config argument {arg!r}: start with a preset, one of {sorted(presets)} "
        f"(e.g. '{sorted(presets)[0]},size=5b,mode=dpo')"
    )
  opts = dict(defaults)
  for p in parts[1:]:
    key, sep, value = p.partition("=")
    if not sep or key not in defaults:
      raise ValueError(f"config argument {arg!r}: {p!r} is not key=value with key in {sorted(defaults)}")
    opts[key] = value
  return preset, opts


def configure_run(
    c: ml_collections.ConfigDict,
    *,
    mesh: dict,
    batch_size: int,
    remat: str,
    attention_impl: str,
    checkpoint_every: int,
) -> None:
  """Mesh, numerics, batch and the train/optimizer schedule shared by the hardware configs.

  bf16 compute (params and optimizer stay f32); SFT: 50k steps at lr 1e-4 after a 1k warm-up;
  DPO: 2k steps at a constant 5e-6 (post-training moves a converged model a little).
  """
  c.parallel.mesh.update(mesh)
  c.parallel.remat = remat
  c.parallel.attention_impl = attention_impl
  c.model.dtype = "bfloat16"
  c.data.batch_size = batch_size
  t, o = c.train, c.optim
  if c.mode == "dpo":
    t.num_steps, o.lr, o.warmup_steps, o.schedule = 2000, 5e-6, 100, "constant"
  else:
    t.num_steps, o.lr, o.warmup_steps = 50_000, 1e-4, 1000
  t.log_every = 20
  t.checkpoint_every = checkpoint_every
  t.keep_checkpoints = 3
  t.async_checkpoint = True
