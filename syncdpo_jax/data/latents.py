"""Precomputed codec latents as a tfds dataset (`precomputed_latents`), and reading windows back.

Large runs should never decode media in the training loop: `python -m syncdpo_jax.data.precompute`
encodes every clip of a source dataset once with the configured codec and stores the latents here; the
grain pipeline (`pipeline.make_dataset` with data.name='precomputed_latents') then crops a window of
data.window_s seconds in latent frames, as it crops pixels, and yields the latents under the same batch
keys ('video', 'audio'), so the training steps run unchanged with config.codec.name='precomputed'.

Stored per example (the whole clip, time first):
  video_latent       float16 [T_v', h, w, C_v] at layout.fps latent frames per second
  audio_latent       float16 [T_a', C_a]       at layout.audio_fps
  caption_embedding  float16 [L * D] (flat), caption_mask bool [L]  (L = D = 0 when none were stored)
  event_times f32 [E] (s), event_kinds i32 [E], label i32, family, caption, clip_id  (from the source)
Dataset metadata (`builder.info.metadata`, written with the dataset): 'layout' (codec.LatentLayout),
'pixel' (the data settings the latents were made from), 'source', 'codec', 'made_by', 'text', 'window_s'.

Why float16 (not bfloat16 stored as uint16): what is stored is pixels / log-mel in [-1, 1] or VAE latents
scaled to about unit variance. There float16 keeps 11 significant bits (absolute error <= 2^-12 ~ 2.4e-4
on [-1, 1]) against bfloat16's 8 (~2e-3), at the same two bytes, and tfds / numpy store it natively. Its
range (|x| <= 65504) is the only risk and the writer refuses values outside it.

Examples keep the source's order (keys are source indices, tfds shuffling disabled), so with the same
seed the pipeline visits the same clips and, with temporal_downsample = 1, draws the same crop starts as
on pixels. One difference is inherent in encoding whole clips once: the latent frames at a window's edges
were computed with the clip's neighbouring content, where the pixel pipeline's window-local log-mel sees
zero padding (with a centred STFT, about n_fft / (2 hop) frames at each edge differ).
"""

from __future__ import annotations

import os

import grain
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from syncdpo_jax import codec as codec_lib
from syncdpo_jax.data import builders, pipeline

NAME = "precomputed_latents"
# Data settings that fix what a stored latent means; a run must use the values the latents were made with.
PIXEL_FIELDS = ("fps", "resolution", "sr", "hop", "n_fft", "n_mels", "fmin", "fmax")


def _features() -> tfds.features.FeaturesDict:
  # Several unknown dims need bytes encoding in tfds; the shape is stored beside the bytes.
  dyn = lambda ndim, dtype: tfds.features.Tensor(shape=(None,) * ndim, dtype=dtype, encoding="bytes")
  return tfds.features.FeaturesDict(
      {
          "video_latent": dyn(4, np.float16),
          "audio_latent": dyn(2, np.float16),
          # Flat [L * D] (reshaped with the metadata's text len/dim): tfds cannot read back an empty
          # tensor with several unknown dims, and datasets without captions store L = D = 0.
          "caption_embedding": tfds.features.Tensor(shape=(None,), dtype=np.float16, encoding="bytes"),
          "caption_mask": tfds.features.Tensor(shape=(None,), dtype=np.bool_),
          **builders.clip_metadata_features(),
      }
  )


class PrecomputedLatents(builders.LocalBuilder):
  """Codec latents of another dataset's clips (see module docstring).

  Written only through `syncdpo_jax.data.precompute` (which passes `source`: the splits, the example
  generator and the metadata); tfds writes into an `incomplete.*` folder and renames it when every
  split is done, so an interrupted write never leaves a dataset that looks complete.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "float16 video/audio latents, optional caption embeddings, layout metadata."}

  def __init__(self, *args, source=None, **kwargs):
    super().__init__(*args, **kwargs)
    # precompute.LatentSource: .splits, .metadata, .examples(split) -> iterator of (int key, example).
    self.source = source

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.__doc__,
        features=_features(),
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    if self.source is None:
      raise not_built_error(self)
    self.info.metadata.update(self.source.metadata)
    return {split: self._generate_examples(split) for split in self.source.splits}

  def _generate_examples(self, split: str):
    return self.source.examples(split)


def make_builder(data_cfg: ml_collections.ConfigDict, source=None) -> PrecomputedLatents:
  """The builder for data.data_dir / precomputed_latents / data.builder_config (`source` to write it)."""
  config = tfds.core.BuilderConfig(name=data_cfg.builder_config, description="codec latents")
  return PrecomputedLatents(config=config, data_dir=os.path.expanduser(data_cfg.data_dir), source=source)


def not_built_error(builder: tfds.core.DatasetBuilder) -> FileNotFoundError:
  root, name = builder.data_dir_root, builder.builder_config.name
  return FileNotFoundError(
      f"{NAME}/{name} is not built in {root}: write it first with `python -m syncdpo_jax.data.precompute "
      f"--config <your config> --out {root} --name {name}` (data.data_dir and data.builder_config "
      "name it)."
  )


def stored_metadata(builder: tfds.core.DatasetBuilder) -> dict:
  """The metadata of a built latents dataset (see module docstring)."""
  if not builder.is_prepared():
    raise not_built_error(builder)
  # items(), not dict(metadata): tfds loads metadata.json lazily on items()/keys(), and dict() of a
  # dict subclass copies the (still empty) storage directly.
  return dict(builder.info.metadata.items())


def stored_layout(meta: dict) -> codec_lib.LatentLayout:
  return codec_lib.LatentLayout(**meta["layout"])


def check_data_config(meta: dict, data_cfg: ml_collections.ConfigDict, where: str) -> None:
  """The run's pixel-space data settings must be those the latents were made from (decode, rates)."""
  diffs = [
      f"config.data.{k}={data_cfg[k]!r} but the latents were made with {meta['pixel'][k]!r}"
      for k in PIXEL_FIELDS
      if abs(float(data_cfg[k]) - float(meta["pixel"][k])) > 1e-9
  ]
  if diffs:
    raise ValueError(
        f"{where}: " + "; ".join(diffs) + ". Set those fields to the stored values, or "
        "re-run syncdpo_jax.data.precompute with the new ones."
    )


def check_stored_layout(data_cfg: ml_collections.ConfigDict, layout: codec_lib.LatentLayout) -> None:
  """Refuses a config whose codec layout (what the model is built for) differs from the stored one.

  Called by `codec.make_codec` for config.codec.name='precomputed'.
  """
  builder = make_builder(data_cfg)
  where = f"{NAME}/{data_cfg.builder_config} in {builder.data_dir}"
  meta = stored_metadata(builder)
  check_data_config(meta, data_cfg, where)
  stored = meta["layout"]
  diffs = [
      f"{k}: config gives {v!r}, stored {stored[k]!r}"
      for k, v in layout.to_dict().items()
      if abs(float(v) - float(stored[k])) > 1e-9
  ]
  if diffs:
    raise ValueError(
        f"{where} holds latents made by {meta['made_by']!r} with another layout than config.codec "
        f"describes ({'; '.join(diffs)}). Set config.codec.decoder={meta['made_by']!r} (pixel_mel) or "
        "config.codec.video_channels / audio_channels / spatial_downsample / temporal_downsample / "
        "audio_temporal_downsample to the stored values."
    )


def window_starts(n_v: int, n_a: int, t_v: int, t_a: int, ratio: float) -> np.ndarray:
  """Video latent frames k where a window may start: k * ratio (audio frames per video frame) is a
  whole audio latent frame and both windows fit. -> int [K] ascending (empty if none fit)."""
  k = np.arange(max(n_v - t_v + 1, 0))
  j = k * ratio
  ok = (np.abs(j - np.round(j)) < 1e-6) & (np.round(j) + t_a <= n_a)
  return k[ok]


def crop_latents(
    ex: dict,
    data_cfg: ml_collections.ConfigDict,
    layout: codec_lib.LatentLayout,
    rng: np.random.Generator | None,
    text: tuple[int, int] | None,
) -> dict:
  """One stored example -> one model-ready window (numpy), random start with `rng`, else centred.

  Returns dict(video f32 [T_v', h, w, C_v], audio f32 [T_a', C_a], label i32, events f32 [E_max],
  event_kinds i32 [E_max]) and, if `text` = (L, D), text f32 [L, D] and text_mask bool [L].
  """
  (t_v, *_), (t_a, _) = layout.window_shapes(data_cfg)
  v, a = ex["video_latent"], ex["audio_latent"]
  starts = window_starts(v.shape[0], a.shape[0], t_v, t_a, layout.audio_fps / layout.fps)
  if starts.size == 0:
    cid = pipeline.as_text(ex["clip_id"])
    raise ValueError(
        f"clip {cid}: its latents ({v.shape[0] / layout.fps:.2f} s) "
        f"are shorter than data.window_s={data_cfg.window_s} s; precompute with that "
        "window (short clips are padded to it when written) or lower data.window_s."
    )
  if rng is not None:
    k = int(starts[rng.integers(0, starts.size)])
  else:
    k = int(starts[np.argmin(np.abs(starts - (v.shape[0] - t_v) // 2))])
  j = int(round(k * layout.audio_fps / layout.fps))
  events, kinds = pipeline.window_events(
      ex["event_times"], ex["event_kinds"], k / layout.fps, data_cfg.window_s, data_cfg.max_events
  )
  out = dict(
      video=v[k : k + t_v].astype(np.float32),
      audio=a[j : j + t_a].astype(np.float32),
      label=np.int32(ex["label"]),
      events=events,
      event_kinds=kinds,
  )
  if text:
    out["text"] = ex["caption_embedding"].astype(np.float32).reshape(text)
    out["text_mask"] = np.asarray(ex["caption_mask"], bool)
  return out


class PrepareLatents(grain.transforms.RandomMap):
  """grain random map: stored latents -> one window (random if train, centred otherwise)."""

  def __init__(self, data_cfg: ml_collections.ConfigDict, builder: tfds.core.DatasetBuilder, train: bool):
    meta = stored_metadata(builder)
    check_data_config(meta, data_cfg, f"{NAME}/{data_cfg.builder_config} in {builder.data_dir}")
    self.cfg, self.train = data_cfg, train
    self.layout = stored_layout(meta)
    self.layout.window_shapes(data_cfg)  # a window must be whole latent frames: fail before iterating
    t = meta["text"]
    self.text = (int(t["len"]), int(t["dim"])) if int(t["dim"]) > 0 else None
    want = int(data_cfg.get("text_dim", 0))
    if want and want != int(t["dim"]):
      raise ValueError(
          f"config.data.text_dim={want} but the latents in {builder.data_dir} store "
          f"{int(t['dim'])}-wide caption embeddings: set data.text_dim={int(t['dim'])} (0 = train on the "
          "labels alone), or precompute with --text_dim"
      )

  def random_map(self, ex, rng: np.random.Generator):
    return crop_latents(ex, self.cfg, self.layout, rng if self.train else None, self.text)
