"""Encodes a dataset's clips once and stores the latents (tfds `precomputed_latents`, ArrayRecord).

    python -m syncdpo_jax.data.precompute --config configs/demo.py --out workdirs/latents \
        [--name NAME] [--splits train,val] [--text_dim 64 --text_len 16] [--config.codec.name=flax_vae ...]

Reads config.data (syncbench_synth or av_folder, built first if missing) through the pixel pipeline,
encodes every whole clip with config.codec ('pixel_mel', or 'flax_vae' with config.codec.factory;
jitted, data.batch_size clips at a time) and writes OUT/precomputed_latents/NAME (format and metadata:
syncdpo_jax.data.latents). It then prints the flags that train on the latents, e.g.

    --config.data.name=precomputed_latents --config.data.data_dir=OUT --config.data.builder_config=NAME
    --config.codec.name=precomputed --config.codec.decoder=pixel_mel

Clips are encoded whole, padded (last frame held, silence) up to a whole number of data.window_s
windows so that each length bucket compiles once; latent frames lying wholly in the padding are dropped
(clips shorter than one window follow data.short_clip, as in the pixel pipeline). Re-running with the
same settings reuses the dataset; other settings under the same NAME are refused.

Caption embeddings (--text_dim > 0): `hash_text_embedding` of each clip's caption (SyncBench-Synth's
generated captions; av_folder's .txt / captions.json, empty if none), or any
`text_encoder(caption, length, dim) -> (emb [length, dim], mask [length])` given to `precompute`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
import zlib
from typing import Callable, Iterator, Sequence

import jax
import ml_collections
import numpy as np

from syncdpo_jax import codec as codec_lib
from syncdpo_jax.data import builders, latents, pipeline

F16_MAX = float(np.finfo(np.float16).max)


def hash_text_embedding(caption: str, length: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
  """Deterministic caption features without a language model (the hashing trick).

  Word i of the lower-cased caption becomes a fixed random unit vector seeded by crc32(word), so a model
  can learn which words a caption holds (not what they mean). Use a real text encoder's token
  embeddings (umT5 for Wan-style models) for real data.
  Returns (emb f32 [length, dim], mask bool [length]); words past `length` are dropped.
  """
  words = re.findall(r"[a-z0-9]+", caption.lower())[:length]
  emb = np.zeros((length, dim), np.float32)
  mask = np.zeros(length, bool)
  for i, w in enumerate(words):
    v = np.random.default_rng(zlib.crc32(w.encode())).standard_normal(dim)
    emb[i], mask[i] = v / np.linalg.norm(v), True
  return emb, mask


def clip_media(
    ex: dict, data_cfg: ml_collections.ConfigDict
) -> tuple[np.ndarray, np.ndarray, int, int] | None:
  """A stored source clip -> its whole-clip codec inputs, padded to whole windows (None = skipped).

  Returns (video f32 [T, R, R, 3] in [-1, 1] at data.fps, log-mel f32 [T_a, n_mels], n_v, n_a) with
  T, T_a a whole number of data.window_s windows and n_v / n_a the frames holding real content.
  """
  fps_c, sr_c = float(ex["fps"]), int(ex["sr"])
  dur = ex["video"].shape[0] / fps_c
  if dur + 1e-6 < data_cfg.window_s and pipeline.crop_window(ex, data_cfg, 0, None) is None:
    return None  # data.short_clip='skip' (or 'fail', which raised with the clip's name)
  k = max(1, math.ceil(dur / data_cfg.window_s - 1e-6))
  cfg = data_cfg.copy_and_resolve_references()
  cfg.window_s = k * data_cfg.window_s
  # Padded here (not by crop_window, which would log every clip as too short for this longer window).
  video, audio = ex["video"], np.asarray(ex["audio"], np.float32)
  need_v = int(round(cfg.window_s * fps_c))
  if video.shape[0] < need_v:
    video = np.concatenate([video, np.repeat(video[-1:], need_v - video.shape[0], axis=0)])
  audio = np.pad(audio, (0, max(0, int(round(cfg.window_s * sr_c)) - audio.shape[0])))
  out = pipeline.crop_window(dict(ex, video=video, audio=audio), cfg, 0, None)
  n_v = int(math.floor(dur * data_cfg.fps + 1e-6))
  n_a = int(math.floor(dur * data_cfg.sr / data_cfg.hop + 1e-6))
  return out["video"], out["audio"], n_v, n_a


def to_float16(x: np.ndarray, what: str) -> np.ndarray:
  """float latents -> float16, refusing values float16 cannot hold (|x| > 65504, nan)."""
  x = np.asarray(x, np.float32)
  if not np.all(np.isfinite(x)) or np.abs(x).max(initial=0.0) > F16_MAX:
    raise ValueError(
        f"{what}: latents are not finite or exceed float16's range (max |x| = "
        f"{np.nanmax(np.abs(x)):.3g} > {F16_MAX:g}); scale them to about unit variance in "
        "the codec (config.codec.factory's encoder), as VAEs' latent scale factors do."
    )
  return x.astype(np.float16)


@dataclasses.dataclass
class LatentSource:
  """What `latents.PrecomputedLatents` writes: the source's splits encoded in source order."""

  source: object  # tfds builder of config.data
  data_cfg: ml_collections.ConfigDict
  codec: codec_lib.Codec
  splits: Sequence[str]
  metadata: dict
  batch_size: int
  text_encoder: Callable[[str, int, int], tuple[np.ndarray, np.ndarray]]
  text_len: int
  text_dim: int

  def __post_init__(self):
    self._enc_v = jax.jit(self.codec.encode_video)
    self._enc_a = jax.jit(self.codec.encode_audio)
    (self._win_v, *_), (self._win_a, _) = self.codec.layout.window_shapes(self.data_cfg)

  def _encode(self, group: list) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(index, ex, video, mel, n_v, n_a)] of one padded length -> [(video latent, audio latent)]."""
    n = len(group)
    pad = [group[-1]] * (self.batch_size - n)  # one compile per length bucket: always a full batch
    video = np.stack([g[2] for g in group + pad])
    mel = np.stack([g[3] for g in group + pad])
    lv, la = jax.device_get((self._enc_v(video), self._enc_a(mel)))
    lay = self.codec.layout
    out = []
    for i, (_, ex, _, _, n_v, n_a) in enumerate(group):
      # Keep latent frames with real content, and at least one window (short clips were padded).
      keep_v = max(self._win_v, n_v // lay.temporal_downsample)
      keep_a = max(self._win_a, n_a // lay.audio_temporal_downsample)
      cid = pipeline.as_text(ex["clip_id"])
      out.append(
          (to_float16(lv[i, :keep_v], f"clip {cid} video"), to_float16(la[i, :keep_a], f"clip {cid} audio"))
      )
    return out

  def _example(self, ex: dict, v: np.ndarray, a: np.ndarray) -> dict:
    caption = pipeline.as_text(ex["caption"])
    if self.text_dim > 0:
      emb, mask = self.text_encoder(caption, self.text_len, self.text_dim)
      emb, mask = to_float16(emb, "caption embedding").reshape(-1), np.asarray(mask, bool)
    else:
      emb, mask = np.zeros(0, np.float16), np.zeros(0, bool)
    return dict(
        video_latent=v,
        audio_latent=a,
        caption_embedding=emb,
        caption_mask=mask,
        event_times=np.asarray(ex["event_times"], np.float32),
        event_kinds=np.asarray(ex["event_kinds"], np.int32),
        label=np.int32(ex["label"]),
        family=pipeline.as_text(ex["family"]),
        caption=caption,
        clip_id=pipeline.as_text(ex["clip_id"]),
    )

  def examples(self, split: str) -> Iterator[tuple[int, dict]]:
    """(source index, example) in source order; consecutive clips of one length share a batch."""
    src = self.source.as_data_source(split=split)
    group: list = []

    def flush():
      for (idx, ex, *_), (v, a) in zip(group, self._encode(group)):
        yield idx, self._example(ex, v, a)
      group.clear()

    for idx in range(len(src)):
      ex = src[idx]
      media = clip_media(ex, self.data_cfg)
      if media is None:
        continue
      if group and (group[0][2].shape != media[0].shape or len(group) == self.batch_size):
        yield from flush()
      group.append((idx, ex, *media))
    if group:
      yield from flush()


def _metadata(
    config: ml_collections.ConfigDict, codec: codec_lib.Codec, text_encoder, text_len: int, text_dim: int
) -> dict:
  d = config.data
  meta = dict(
      layout=codec.layout.to_dict(),
      made_by=config.codec.name,
      codec=config.codec.to_dict(),
      source=f"{d.name}/{d.builder_config}",
      pixel={k: d[k] for k in latents.PIXEL_FIELDS},
      window_s=float(d.window_s),
      dtype="float16",
      text=dict(
          dim=int(text_dim),
          len=int(text_len) if text_dim else 0,
          encoder=f"{text_encoder.__module__}.{text_encoder.__qualname__}" if text_dim else "",
      ),
  )
  return json.loads(json.dumps(meta))  # as it reads back from metadata.json (tuples -> lists)


def latent_data_config(
    data_cfg: ml_collections.ConfigDict, out_dir: str, name: str
) -> ml_collections.ConfigDict:
  """config.data pointed at the written latents (everything else, e.g. the window, unchanged)."""
  c = data_cfg.copy_and_resolve_references()
  c.name, c.data_dir, c.builder_config = latents.NAME, os.fspath(out_dir), name
  return c


def default_name(config: ml_collections.ConfigDict) -> str:
  """'<source>_<builder_config>_<codec>', e.g. 'syncbench_synth_demo_pixel_mel' (tfds-safe)."""
  return re.sub(
      r"[^a-z0-9_]+", "_", f"{config.data.name}_{config.data.builder_config}_{config.codec.name}".lower()
  )


def precompute(
    config: ml_collections.ConfigDict,
    out_dir: str,
    *,
    name: str | None = None,
    splits: Sequence[str] | None = None,
    text_dim: int = 0,
    text_len: int = 16,
    text_encoder: Callable = hash_text_embedding,
    batch_size: int | None = None,
):
  """Writes the latents of config.data's clips, encoded by config.codec, to OUT/precomputed_latents/NAME.

  Args:
    config: a run config; its data section names the source, its codec section the codec.
    out_dir: tfds data dir to write into (train with data.data_dir = out_dir).
    name: builder config name (data.builder_config); default `default_name(config)`.
    splits: source splits to encode; default all of them.
    text_dim, text_len: caption embedding width and tokens (0 = store none); text_encoder makes them.
    batch_size: clips per encoder call; default config.data.batch_size.
  Returns the built `precomputed_latents` builder (existing and identical: returned as is).
  """
  if config.codec.name not in ("pixel_mel", "flax_vae"):
    raise ValueError(
        f"config.codec.name={config.codec.name!r}: precompute encodes media, so it needs "
        "'pixel_mel' or 'flax_vae' (the codec whose latents you want stored)."
    )
  if config.data.name == latents.NAME:
    raise ValueError(
        "config.data.name='precomputed_latents' is already latents; point config.data at "
        "the media dataset (syncbench_synth or av_folder)."
    )
  name = name or default_name(config)
  codec = codec_lib.make_codec(config.codec, config.data)
  meta = _metadata(config, codec, text_encoder, text_len, text_dim)
  out_cfg = latent_data_config(config.data, out_dir, name)
  existing = latents.make_builder(out_cfg)
  if existing.is_prepared():
    stored = latents.stored_metadata(existing)
    if stored != meta:
      diff = sorted(k for k in set(stored) | set(meta) if stored.get(k) != meta.get(k))
      raise ValueError(
          f"{existing.data_dir} already holds latents made with other settings (differ: "
          f"{diff}); pass another --name, or delete that folder to rewrite it."
      )
    return existing
  source = builders.build_dataset(config.data)
  splits = list(splits or source.info.splits)
  missing = [s for s in splits if s not in source.info.splits]
  if missing:
    raise ValueError(
        f"splits {missing} not in {source.name}/{source.builder_config.name}; available: "
        f"{list(source.info.splits)}."
    )
  src = LatentSource(
      source=source,
      data_cfg=config.data,
      codec=codec,
      splits=splits,
      metadata=meta,
      batch_size=int(batch_size or config.data.batch_size),
      text_encoder=text_encoder,
      text_len=int(text_len),
      text_dim=int(text_dim),
  )
  builder = latents.make_builder(out_cfg, source=src)
  builder.download_and_prepare()
  return builder


def train_flags(config: ml_collections.ConfigDict, out_dir: str, name: str) -> list[str]:
  """The command-line overrides that train on the written latents with config's other settings."""
  flags = [
      f"--config.data.name={latents.NAME}",
      f"--config.data.data_dir={out_dir}",
      f"--config.data.builder_config={name}",
      "--config.codec.name=precomputed",
  ]
  # The codec that made the latents decodes them for eval / sampling (flax_vae needs its factory).
  return flags + [f"--config.codec.decoder={config.codec.name}"]


def _main(argv):
  del argv
  from absl import flags

  f = flags.FLAGS
  config = f.config
  t0 = time.time()
  builder = precompute(
      config,
      f.out,
      name=f.name,
      splits=f.splits.split(",") if f.splits else None,
      text_dim=f.text_dim,
      text_len=f.text_len,
  )
  name = builder.builder_config.name
  print(f"{latents.NAME}/{name} at {builder.data_dir} ({time.time() - t0:.1f} s)")
  for split, info in builder.info.splits.items():
    print(f"  {split:6s} {info.num_examples:6d} clips")
  print("layout:", json.dumps(latents.stored_metadata(builder)["layout"]))
  print("Train on them with:\n  " + " \\\n  ".join(train_flags(config, f.out, name)))


if __name__ == "__main__":
  # Flags are defined only when run as a program: importing this module defines none.
  from absl import app, flags
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", None, "Run config file: its data (source) and codec sections.")
  flags.DEFINE_string("out", None, "tfds data dir to write into (then --config.data.data_dir).")
  flags.DEFINE_string(
      "name",
      None,
      "builder config name (then --config.data.builder_config); default "
      "<source>_<builder_config>_<codec>.",
  )
  flags.DEFINE_string("splits", "", "comma-separated source splits; default all.")
  flags.DEFINE_integer("text_dim", 0, "caption embedding width (0 = store none).")
  flags.DEFINE_integer("text_len", 16, "caption embedding tokens.")
  flags.mark_flags_as_required(["config", "out"])
  app.run(_main)
