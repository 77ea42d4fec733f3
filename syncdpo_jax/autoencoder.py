"""A small learned video autoencoder, trained on the data in minutes: the `autoencoder` codec.

Why (README, "The demo's generator", sixth round): with the pixel codec a diffusion model's clean
estimate errs per value, and a value is a pixel, so its samples carry per-pixel speckle over flat
regions that the quality gate's `edges` group fails in every mode, however the model and objective
were tuned over five rounds. A decoder trained to map *noisy* latents to clean frames turns the
model's per-value error into a plausible frame instead.

Per frame (time is untouched: latent frame k is pixel frame k, so the perturbations and the model's
timelines are those of the pixel codec), with w = config.codec.autoencoder.width and C = channels:

  encode  [N, H, W, 3] in [-1, 1] -> space-to-depth 4 [N, H/4, W/4, 48] -> conv 3x3 (2w)
          -> 2 residual blocks -> conv 1x1 (C)                                  [N, H/4, W/4, C]
  decode  [N, H/4, W/4, C] -> conv 3x3 (2w) -> 3 residual blocks -> conv 3x3 (2w) -> depth-to-space 2
          -> residual block (w/2) -> conv 3x3 (4 * 16) -> depth-to-space 2 -> conv 3x3 (16)
          -> conv 3x3 (3)                                                       [N, H, W, 3]

The encoder is cheap (all of it at a quarter of the resolution: it runs inside every train step), the
decoder works at full resolution (it runs only to look at samples). Training: L1 of the frame decoded
from the latent plus Gaussian noise (config.codec.autoencoder.latent_noise, in latent units), a small
L2 pull of the latents to zero and a hinge beyond |z| = 3, so the latents have a bounded, stable scale.
The codec standardises them per channel with statistics measured on training frames when training
ends (stored with the weights), as latent diffusion scales a VAE's latents.

  python launch/main.py --config configs/demo.py:codec --workdir workdirs/demo/codec

writes WORKDIR/autoencoder/ (orbax: params + meta with the per-channel statistics and the config it was
trained with), metrics.jsonl, tensorboard/ and reconstructions.png; a later run trains on it with
--config.codec.name=autoencoder --config.codec.checkpoint=WORKDIR.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from syncdpo_jax import codec as codec_lib

DOWNSAMPLE = 4  # pixels per latent cell along H and W
_DECODER_WIDTH = 16  # channels of the full-resolution decoder stages


def config() -> ml_collections.ConfigDict:
  """config.codec.autoencoder: the network and its training (see module docstring)."""
  c = ml_collections.ConfigDict()
  c.channels = 16  # C: latent channels per 4x4-px cell (48 pixel values)
  c.width = 32  # w
  c.steps = 2500
  c.batch_size = 32  # frames per step
  c.lr = 4e-3
  c.warmup_steps = 100
  c.latent_noise = 0.05  # std of the noise added to the latents the decoder is trained on
  c.num_clips = 480  # training clips whose frames (one centre window each) the codec learns from
  c.log_every = 100
  return c


class ResBlock(nnx.Module):
  """x + conv(silu(norm(conv(silu(norm(x)))))): [N, h, w, c] -> same."""

  def __init__(self, c: int, rngs: nnx.Rngs):
    self.norm1 = nnx.GroupNorm(c, num_groups=8, rngs=rngs)
    self.conv1 = nnx.Conv(c, c, (3, 3), rngs=rngs)
    self.norm2 = nnx.GroupNorm(c, num_groups=8, rngs=rngs)
    self.conv2 = nnx.Conv(c, c, (3, 3), rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = self.conv1(nnx.silu(self.norm1(x)))
    return x + self.conv2(nnx.silu(self.norm2(h)))


class VideoAutoencoder(nnx.Module):
  """Per-frame encoder / decoder (module docstring); frames [N, H, W, 3], latents [N, H/4, W/4, C]."""

  def __init__(self, channels: int, width: int, rngs: nnx.Rngs):
    w2, wd = 2 * width, _DECODER_WIDTH
    if width % 16:
      raise ValueError(f"config.codec.autoencoder.width={width} must be a multiple of 16 (group norms).")
    self.enc_in = nnx.Conv(3 * DOWNSAMPLE * DOWNSAMPLE, w2, (3, 3), rngs=rngs)
    self.enc_blocks = nnx.List([ResBlock(w2, rngs) for _ in range(2)])
    self.enc_out = nnx.Conv(w2, channels, (1, 1), rngs=rngs)
    self.dec_in = nnx.Conv(channels, w2, (3, 3), rngs=rngs)
    self.dec_blocks = nnx.List([ResBlock(w2, rngs) for _ in range(3)])
    self.dec_up1 = nnx.Conv(w2, 4 * (width // 2), (3, 3), rngs=rngs)
    self.dec_half = ResBlock(width // 2, rngs)
    self.dec_up2 = nnx.Conv(width // 2, 4 * wd, (3, 3), rngs=rngs)
    self.dec_full = nnx.Conv(wd, wd, (3, 3), rngs=rngs)
    self.dec_out = nnx.Conv(wd, 3, (3, 3), rngs=rngs)

  def encode(self, frames: jax.Array) -> jax.Array:
    """[N, H, W, 3] in [-1, 1] -> raw latents [N, H/4, W/4, C]."""
    h = self.enc_in(codec_lib.space_to_depth(frames, DOWNSAMPLE))
    for block in self.enc_blocks:
      h = block(h)
    return self.enc_out(nnx.silu(h))

  def decode(self, z: jax.Array) -> jax.Array:
    """Raw latents [N, h, w, C] -> frames [N, 4h, 4w, 3] (not clipped)."""
    h = self.dec_in(z)
    for block in self.dec_blocks:
      h = block(h)
    h = self.dec_half(codec_lib.depth_to_space(self.dec_up1(nnx.silu(h)), 2))
    h = codec_lib.depth_to_space(self.dec_up2(nnx.silu(h)), 2)
    return self.dec_out(nnx.silu(self.dec_full(nnx.silu(h))))


def loss_fn(model: VideoAutoencoder, frames: jax.Array, key: jax.Array, latent_noise: float):
  """(loss, metrics) of one batch of frames [N, H, W, 3]: L1 of the frame decoded from the noised
  latent, plus 1e-3 E[z^2] and a hinge E[max(|z| - 3, 0)^2] that keep the latents' scale bounded."""
  z = model.encode(frames)
  recon = model.decode(z + latent_noise * jax.random.normal(key, z.shape))
  l1 = jnp.mean(jnp.abs(recon - frames))
  reg = 1e-3 * jnp.mean(z**2) + jnp.mean(jax.nn.relu(jnp.abs(z) - 3.0) ** 2)
  return l1 + reg, {"l1": l1, "latent_std": jnp.std(z)}


def latent_stats(model: VideoAutoencoder, frames: np.ndarray, batch: int = 512) -> np.ndarray:
  """Per-channel (mean, std) [2, C] of the raw latents of `frames` [N, H, W, 3]."""
  enc = nnx.jit(lambda m, x: m.encode(x))
  z = np.concatenate(
      [np.asarray(enc(model, jnp.asarray(frames[i : i + batch]))) for i in range(0, len(frames), batch)]
  )
  z = z.reshape(-1, z.shape[-1]).astype(np.float64)
  return np.stack([z.mean(0), z.std(0) + 1e-6]).astype(np.float32)


# ------------------------------------------------------------------------------------------- training


def training_frames(config) -> np.ndarray:
  """Frames [N, H, W, 3] in [-1, 1] of config.codec.autoencoder.num_clips training clips (one
  deterministic centre window each, data.split_train)."""
  from syncdpo_jax.data import pipeline  # local: the data package imports codec, which imports us

  clips = pipeline.first_examples(
      config.data, config.data.split_train, int(config.codec.autoencoder.num_clips), ("video",)
  )
  video = clips["video"]
  if len(video) == 0:
    raise ValueError(
        f"split {config.data.split_train!r} (config.data.split_train) holds no clips to train the codec on."
    )
  return video.reshape(-1, *video.shape[-3:]).astype(np.float32)


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "autoencoder")


def _meta(config, stats: np.ndarray, metrics: dict) -> dict:
  return {
      "autoencoder": {k: config.codec.autoencoder[k] for k in ("channels", "width")},
      "resolution": int(config.data.resolution),
      "latent_mean": stats[0].tolist(),
      "latent_std": stats[1].tolist(),
      "trained": {k: config.codec.autoencoder[k] for k in config.codec.autoencoder},
      "final": metrics,
  }


def train(config, workdir: str) -> dict:
  """config.mode='codec': trains the autoencoder on training frames and writes WORKDIR/autoencoder/ (module
  docstring). Returns the final metrics. A workdir whose autoencoder/ is complete is not retrained (the run
  is short; an interrupted one starts again from step 0, with the same numbers: every draw is seeded).
  """
  import orbax.checkpoint as ocp

  from syncdpo_jax.train import writers

  ac = config.codec.autoencoder
  out = checkpoint_dir(workdir)
  if os.path.isfile(os.path.join(out, "meta.json")):
    print(f"[codec] {out} is complete; not retraining (delete it to train again).", flush=True)
    return json.load(open(os.path.join(out, "meta.json")))["final"]
  frames = training_frames(config)
  model = VideoAutoencoder(int(ac.channels), int(ac.width), nnx.Rngs(int(config.seed)))
  warmup = int(ac.warmup_steps)
  schedule = optax.warmup_cosine_decay_schedule(0.0, float(ac.lr), warmup, max(int(ac.steps), warmup + 1))
  opt = nnx.Optimizer(model, optax.adam(schedule), wrt=nnx.Param)
  noise = float(ac.latent_noise)

  @nnx.jit
  def step(model, opt, x, key):
    (loss, m), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, x, key, noise)
    opt.update(model, grads)
    return dict(m, loss=loss)

  writer = writers.create_writer(workdir, just_logging=jax.process_index() != 0)
  rng = np.random.default_rng(int(config.seed))
  key = jax.random.key(int(config.seed))
  t0 = time.time()
  print(
      f"[codec] {len(frames)} frames, {sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))} parameters",
      flush=True,
  )
  for i in range(int(ac.steps)):
    x = jnp.asarray(frames[rng.integers(0, len(frames), int(ac.batch_size))])
    m = step(model, opt, x, jax.random.fold_in(key, i))
    if (i + 1) % int(ac.log_every) == 0 or i + 1 == int(ac.steps):
      m = {k: float(v) for k, v in m.items()}
      writer.write_scalars(i + 1, m)
      print(f"[codec] step {i + 1}/{ac.steps} l1={m['l1']:.4f} ({time.time() - t0:.0f}s)", flush=True)
  stats = latent_stats(model, frames)
  final = dict(m, train_seconds=time.time() - t0, **reconstruction_gate(config, model, stats, workdir))
  writer.write_scalars(int(ac.steps), {k: v for k, v in final.items() if isinstance(v, float)})
  writer.flush()
  print(f"[codec] done: {json.dumps(final)}", flush=True)
  ckpt = ocp.StandardCheckpointer()
  ckpt.save(os.path.join(out, "params"), nnx.state(model, nnx.Param))
  ckpt.wait_until_finished()
  meta = _meta(config, stats, final)
  if jax.process_index() == 0:
    with open(os.path.join(out, "meta.json"), "w") as f:  # written last: marks the codec complete
      json.dump(meta, f, indent=1)
  return final


def reconstruction_gate(config, model: VideoAutoencoder, stats: np.ndarray, workdir: str) -> dict:
  """Where the codec's own reconstructions of the eval clips (config.eval.num_clips of config.eval.split)
  sit on the quality gate (the floor of every model that uses this codec; the demo's codec: 0.13),
  and their mean |error| in grey levels; writes WORKDIR/reconstructions.png (real above, decoded
  below)."""
  from syncdpo_jax.eval import quality
  from syncdpo_jax.runs import evaluate, generate

  data = generate.load_eval_set(config, int(config.eval.num_clips))
  real = generate.media_clips(config, data)
  codec_cfg = config.codec.copy_and_resolve_references()
  codec_cfg.name = "autoencoder"  # the layout this codec run's model makes, whatever codec.name says
  layout = codec_lib.latent_layout(codec_cfg, config.data)
  codec = codec_lib.AutoencoderCodec(layout=layout, model=model, stats=jnp.asarray(stats))
  roundtrip = jax.jit(lambda v: codec.decode_video(codec.encode_video(v)))
  frames = generate.to_uint8(np.asarray(roundtrip(jnp.asarray(data["video"]))))
  clips = [dict(r, frames=f) for r, f in zip(real, frames)]
  v = quality.verdict(quality.proxies(clips, real), evaluate.quality_anchors(config, data, real), "a2v")
  evaluate.plot_sample_grid(
      {"real": real, "autoencoder": clips},
      os.path.join(workdir, "reconstructions.png"),
      "autoencoder reconstructions",
      config.data,
  )
  err = np.abs(frames.astype(np.int32) - np.stack([r["frames"] for r in real]).astype(np.int32))
  return {
      "recon_gate_video": float(v["gate_video"]),
      "recon_gate_video_worst": v["gate_video_worst"],
      "recon_mean_abs_error_levels": float(err.mean()),
  }


def load(codec_cfg, data_cfg) -> tuple[VideoAutoencoder, np.ndarray]:
  """(model with its trained weights, per-channel latent stats [2, C]) from codec_cfg.checkpoint (a
  workdir of a codec run, or its autoencoder/ folder); errors name the field and the fix."""
  import orbax.checkpoint as ocp

  path = os.path.abspath(os.path.expanduser(codec_cfg.checkpoint or ""))
  for d in (os.path.join(path, "autoencoder"), path):
    if os.path.isfile(os.path.join(d, "meta.json")):
      break
  else:
    raise FileNotFoundError(
        f"config.codec.checkpoint={codec_cfg.checkpoint!r} holds no trained autoencoder "
        "(<workdir>/autoencoder/meta.json); train one first: python launch/main.py --config "
        "configs/demo.py:codec --workdir <workdir>, then point config.codec.checkpoint at <workdir>."
    )
  meta = json.load(open(os.path.join(d, "meta.json")))
  ac = codec_cfg.autoencoder
  want = {"channels": int(ac.channels), "width": int(ac.width)}
  if meta["autoencoder"] != want or meta["resolution"] != int(data_cfg.resolution):
    raise ValueError(
        f"the autoencoder in {d} was trained with {meta['autoencoder']} at resolution "
        f"{meta['resolution']}, but config.codec.autoencoder / config.data.resolution say {want} at "
        f"{data_cfg.resolution}: set them to the trained codec's, or train a codec for this config."
    )
  model = VideoAutoencoder(want["channels"], want["width"], nnx.Rngs(0))
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), nnx.state(model, nnx.Param))
  nnx.update(model, ocp.StandardCheckpointer().restore(os.path.join(d, "params"), abstract))
  stats = np.asarray([meta["latent_mean"], meta["latent_std"]], np.float32)
  return model, stats
