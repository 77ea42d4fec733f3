"""Generation on the training mesh, shared by the eval, sample and ranked-pair runs.

Parameters are restored onto the mesh a training run would use (`abstract_model_on_mesh`: the sharded
restore target, nothing allocated), the sampler runs there with the batch split over the batch axes
(`generate_on_mesh`), and latents are decoded back to frames and waveforms (`decode_clips`) with the
run's codec.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from syncdpo_jax import codec as codec_lib
from syncdpo_jax import config_lib
from syncdpo_jax import sample as sample_lib
from syncdpo_jax.data import media, pipeline
from syncdpo_jax.model import sharding as sharding_lib
from syncdpo_jax.objectives import flow


def load_eval_set(config, num_clips: int, split: str | None = None) -> dict:
  """The first `num_clips` clips of `split` (default config.eval.split; deterministic centre crops)."""
  split = split or config.eval.split
  out = pipeline.first_examples(config.data, split, num_clips, ("label", "video", "audio", "events"))
  if len(out["label"]) == 0:
    raise ValueError(f"split {split!r} (config.eval.split / config.data.split_eval) holds no clips.")
  return out


def encode_clips(codec, clips: dict) -> tuple[jax.Array, jax.Array]:
  """Latents (video [B, T_v, h, w, C_v], audio [B, T_a, C_a]) of clips {'video': pixels [B, T, H, W, 3]
  in [-1, 1], 'audio': normalised log-mel [B, T_a, n_mels]}, e.g. `load_eval_set`'s."""
  return codec_lib.encode_batch(codec, clips)


def ruler_codec(config):
  """The codec the eval's ruler (its real clips, the quality gate's anchors) works in: the exact pixel
  codec of config.codec (codec.pixel_codec) whatever the model's codec is, so the ruler does not move
  when a lossy codec is swapped in and a codec's reconstruction error counts against the runs that use
  it; for precomputed latents, whose eval set holds no media, the stored latents' own codec."""
  if config.codec.name == "precomputed":
    return codec_lib.make_codec(config.codec, config.data)
  return codec_lib.pixel_codec(config.codec, config.data)


def media_clips(config, clips: dict) -> list[dict]:
  """The real clips as `decode_clips` returns them: `load_eval_set`'s pixels and log-mel through
  `ruler_codec` (exact), not through the model's codec."""
  ruler = ruler_codec(config)
  return decode_clips(ruler, config.data, *encode_clips(ruler, clips))


def to_uint8(video: np.ndarray) -> np.ndarray:
  """[..., H, W, 3] in [-1, 1] -> uint8."""
  return np.clip(np.round((np.asarray(video) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def silence_latent(codec, silence_value: float) -> float:
  """sample.silence_value (normalised log-mel, -1 = -80 dB) as the audio latent of a codec whose audio
  latent is the (standardised, codec.audio_norm) log-mel: pixel_mel and the video autoencoder's; other
  codecs' latents take the value as given."""
  source = codec_lib.media_codec(codec)
  if isinstance(source, (codec_lib.PixelMelCodec, codec_lib.AutoencoderCodec)):
    return float(source.encode_audio(jnp.full((), silence_value, jnp.float32)))
  return silence_value


def make_generate(graphdef, rest, codec, sample_cfg, null_label: int, prediction: str = "v"):
  """Jitted (params, key, video_lat, audio_lat, label) -> (video_lat, audio_lat) for one mode.

  Parameters are an argument (not closed over), so all checkpoints share one compilation per mode.
  """
  silence = silence_latent(codec, float(sample_cfg.silence_value))

  @functools.partial(jax.jit, static_argnames=("mode",))
  def generate(params, key, video, audio, label, mode):
    model_fn = flow.velocity_model(nnx.merge(graphdef, params, rest), prediction, flow.SAMPLE_T_EPS)
    cfg = sample_cfg.copy_and_resolve_references()
    cfg.mode = mode
    cfg.silence_value = silence
    v0, a0 = sample_lib.initial_streams(key, mode, video=video, audio=audio)
    return sample_lib.sample(
        model_fn, v0, a0, {"label": label}, cfg, null_label=null_label, final_euler=prediction != "v"
    )

  return generate


def abstract_model_on_mesh(config, mesh):
  """(graphdef, params restore target sharded on `mesh` by config.parallel's logical-axis rules, rest),
  without allocating: a checkpoint restores straight onto the shards a training run would use."""
  abstract = config_lib.build_abstract_model(config)
  graphdef, abs_params, rest = nnx.split(abstract, nnx.Param, ...)
  shardings = sharding_lib.state_shardings(abs_params, mesh, tuple(config.parallel.logical_axis_rules))
  params_like = jax.tree.map(
      lambda x, sh: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh), abs_params, shardings
  )
  return graphdef, params_like, rest


def generate_on_mesh(generate, mesh, rules, params, key, video, audio, label, mode: str):
  """`make_generate`'s sampler run on `mesh`: (video [B, ...], audio [B, ...]) latents, any B.

  The batch is padded to a multiple of the mesh's batch axes (repeating its last example), sharded over
  them and sampled under the mesh, next to the sharded params; the result is gathered back to every
  process and cut to B. The padding leaves the first B examples' noise unchanged (jax's partitionable
  threefry draws element i of the noise independently of the array's length), so a clip samples the
  same on any mesh.
  """
  n = int(label.shape[0])
  size = sharding_lib.batch_axes_size(mesh, rules)
  pad = -n % size
  batch_sh = sharding_lib.batch_sharding(mesh, rules)

  def put(x):
    x = np.asarray(x)
    if pad:
      x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
    return jax.make_array_from_callback(x.shape, batch_sh, lambda idx: x[idx])

  with jax.set_mesh(mesh):
    v, a = generate(params, key, put(video), put(audio), put(label), mode=mode)
  # Replicated, so that every process can read the whole batch (multi-host meshes).
  v, a = _replicate(mesh)((v, a))
  return v[:n], a[:n]


def generate_in_batches(generate, mesh, rules, params, key, video, audio, label, mode: str, batch_size: int):
  """`generate_on_mesh` over consecutive batches of `batch_size` clips: (video [N, ...], audio [N, ...]).

  The batch starting at clip i samples with the key fold_in(key, i), so a clip's noise depends on the
  key, its index and the batch size, not on how many clips follow it (the eval's keys).
  """
  out = [
      generate_on_mesh(
          generate,
          mesh,
          rules,
          params,
          jax.random.fold_in(key, i),
          video[i : i + batch_size],
          audio[i : i + batch_size],
          label[i : i + batch_size],
          mode,
      )
      for i in range(0, int(label.shape[0]), batch_size)
  ]
  return jnp.concatenate([v for v, _ in out]), jnp.concatenate([a for _, a in out])


@functools.cache
def _replicate(mesh):
  """A jitted identity onto `mesh` replicated: one per mesh, so repeated batches reuse its compilation."""
  return jax.jit(lambda x: x, out_shardings=jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def decode_clips(codec, data_cfg, video_lat, audio_lat) -> list[dict]:
  """Latents -> [{'frames': uint8 [T, H, W, 3], 'fps', 'audio': float [N], 'sr', 'mel', 'mel_fps'}].

  The waveform (Griffin-Lim) feeds the offset and AV-Align metrics and the mp4s; audio events are
  scored on the log-mel itself ('mel'), which the vocoder would smear.
  """
  frames = to_uint8(jax.device_get(codec.decode_video(video_lat)))
  mels = np.asarray(jax.device_get(codec.decode_audio(audio_lat)))
  mel_fps = float(data_cfg.sr) / float(data_cfg.hop)
  return [
      {
          "frames": f,
          "fps": float(data_cfg.fps),
          "audio": _waveform(m, data_cfg),
          "sr": int(data_cfg.sr),
          "mel": m,
          "mel_fps": mel_fps,
      }
      for f, m in zip(frames, mels)
  ]


_WAVEFORMS: dict[tuple, np.ndarray] = {}


def _waveform(mel: np.ndarray, data_cfg) -> np.ndarray:
  """media.mel_to_audio, remembered by the mel's bytes: audio-driven (a2v) generation returns the given
  audio unchanged, so every a2v row would otherwise run Griffin-Lim again on the real clips' mels
  (Griffin-Lim is deterministic: a fixed phase initialisation)."""
  key = (
      hashlib.sha1(np.ascontiguousarray(mel).tobytes()).hexdigest(),
      mel.shape,
      json.dumps(data_cfg.to_dict(), sort_keys=True, default=str),
  )
  if key not in _WAVEFORMS:
    if len(_WAVEFORMS) >= 256:
      _WAVEFORMS.pop(next(iter(_WAVEFORMS)))
    _WAVEFORMS[key] = media.mel_to_audio(mel, data_cfg)
  return _WAVEFORMS[key]


def write_samples(clips: list[dict], out_dir: str, prefix: str, n: int) -> list[str]:
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for i, c in enumerate(clips[:n]):
    p = os.path.join(out_dir, f"{prefix}_{i}.mp4")
    media.write_mp4(p, c["frames"], c["fps"], c["audio"], c["sr"])
    paths.append(p)
  return paths
