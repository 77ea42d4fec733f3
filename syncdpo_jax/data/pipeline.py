"""grain input pipeline: tfds ArrayRecord source -> numpy batch dicts -> global jax.Arrays.

    source -> seeded shuffle, reshuffled every epoch (train) -> decode
    -> temporal crop of window_s seconds, the SAME window for both modalities (random in train,
       centred in eval) -> video fps/resolution conversion -> float [-1, 1] -> log-mel
    -> events shifted into the window, -1 padded to max_events
    -> this process's rows of each global batch (see make_dataset) -> batch

Batches (per process; global batch = batch_size):
  'video' float32 [B, T_v, H, W, 3] in [-1, 1], 'audio' float32 [B, T_a, n_mels] in [-1, 1],
  'label' int32 [B], 'events' float32 [B, max_events] (s, -1 pad), 'event_kinds' int32 [B, max_events].
With data.name='precomputed_latents', 'video' / 'audio' hold codec latents [B, T_v', h, w, C_v] /
[B, T_a', C_a] of the same window instead (syncdpo_jax.data.latents), plus 'text' / 'text_mask' when
the dataset stores caption embeddings.

Determinism: shuffling and crops are functions of (seed, element index) only, so a seed fixes the
stream, and the iterator's `get_state()` / `set_state()` (grain checkpointing, saved by orbax with
`grain.checkpoint.CheckpointSave`) resume it exactly. Eval iterates once, in order, with
drop_remainder=False: the last batch may be smaller than batch_size (every clip is scored once).
"""

from __future__ import annotations

import logging
import math

import grain
import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding

from syncdpo_jax.data import builders, features
from syncdpo_jax.data.config import context_frames, frames_per_window, validate

log = logging.getLogger(__name__)


def as_text(x) -> str:
  """A tfds string feature (bytes) or any value -> str."""
  return x.decode() if isinstance(x, bytes) else str(x)


def window_events(
    event_times, event_kinds, t0: float, window_s: float, max_events: int
) -> tuple[np.ndarray, np.ndarray]:
  """Events of a clip -> those in [t0, t0 + window_s), in window time, -1 padded to `max_events`.

  Returns (times f32 [max_events] in s, kinds i32 [max_events]).
  """
  ev = np.asarray(event_times, np.float32) - np.float32(t0)
  kinds = np.asarray(event_kinds, np.int32)
  keep = (ev >= -1e-6) & (ev < window_s - 1e-6)
  ev, kinds = np.maximum(ev[keep], 0)[:max_events], kinds[keep][:max_events]
  events = np.full(max_events, -1.0, np.float32)
  ekinds = np.full(max_events, -1, np.int32)
  events[: ev.shape[0]], ekinds[: kinds.shape[0]] = ev, kinds
  return events, ekinds


def crop_window(
    ex: dict, cfg: ml_collections.ConfigDict, start_frame: int | None, rng: np.random.Generator | None
) -> dict | None:
  """One stored example -> one model-ready example (numpy), or None if skipped as too short.

  The window starts on a frame of the stored clip (so the audio start sample is exact) and spans
  `cfg.window_s` seconds in both modalities. `start_frame=None` draws it with `rng`, among the starts
  that leave `cfg.context_s` of real content on both sides when the clip is long enough.
  Returns dict(video f32 [T_v, R, R, 3], audio f32 [T_a, n_mels], label i32, events f32 [E_max],
  event_kinds i32 [E_max]); with cfg.context_s > 0 also video_context f32 [T_v + 2 m_v, R, R, 3] and
  audio_context f32 [T_a + 2 m_a, n_mels] (`config.context_frames`): the same clip cropped wider, its
  log-mel computed once over the wide crop, and video / audio are exactly their middle (beyond the
  stored clip's ends the context holds its edge frame and silence).
  """
  t_v, t_a = frames_per_window(cfg)
  m_v, m_a = context_frames(cfg)
  video, audio = ex["video"], np.asarray(ex["audio"], np.float32)
  fps_c, sr_c = float(ex["fps"]), int(ex["sr"])
  win_src = int(round(cfg.window_s * fps_c))  # window length in stored frames
  ctx_s = float(cfg.get("context_s", 0.0))
  ctx_src = int(math.ceil(ctx_s * fps_c - 1e-6))  # context in stored frames, each side
  n_src = video.shape[0]
  if n_src < win_src:
    msg = (
        f"clip {as_text(ex.get('clip_id', '?'))}: {n_src / fps_c:.2f} s is shorter than the window "
        f"data.window_s={cfg.window_s} s"
    )
    if cfg.short_clip == "fail" or (cfg.short_clip != "pad" and cfg.on_bad_input == "fail"):
      raise ValueError(msg + " (set data.short_clip='pad' or 'skip')")
    if cfg.short_clip == "skip":
      log.warning("%s; skipped", msg)
      return None
    log.warning("%s; padded (last frame held, silence)", msg)
    video = np.concatenate([video, np.repeat(video[-1:], win_src - n_src, axis=0)])
    need = int(round(win_src / fps_c * sr_c))
    audio = np.pad(audio, (0, max(0, need - audio.shape[0])))
    n_src = win_src
  if start_frame is None:
    lo, hi = ctx_src, n_src - win_src - ctx_src  # starts with a full context on both sides
    start_frame = int(rng.integers(lo, hi + 1)) if hi >= lo else int(rng.integers(0, n_src - win_src + 1))
  t0 = start_frame / fps_c
  span_s = cfg.window_s + 2 * ctx_s
  # Video: the stored frame on screen at t0 - context_s + i / fps (edge frames beyond the clip).
  idx = np.floor(start_frame - ctx_s * fps_c + np.arange(t_v + 2 * m_v) * fps_c / cfg.fps + 1e-6)
  v = video[np.clip(idx.astype(np.int64), 0, n_src - 1)]
  if v.shape[1] != cfg.resolution or v.shape[2] != cfg.resolution:
    v = builders.square_resize(v, cfg.resolution)
  a0 = int(round((t0 - ctx_s) * sr_c))
  a = audio[max(a0, 0) : a0 + int(round(span_s * sr_c))]
  a = np.pad(a, (max(-a0, 0), 0))  # silence before the clip's start
  if sr_c != cfg.sr:
    from syncdpo_jax.data import media  # local: PyAV only needed for this rare path

    a = media.resample_audio(a, sr_c, cfg.sr)
  n = int(round(span_s * cfg.sr))
  a = np.pad(a, (0, max(0, n - a.shape[0])))[:n]
  events, ekinds = window_events(ex["event_times"], ex["event_kinds"], t0, cfg.window_s, cfg.max_events)
  video_f = v.astype(np.float32) / 127.5 - 1.0
  mel = features.log_mel(a, cfg, num_frames=t_a + 2 * m_a)
  out = dict(
      video=video_f[m_v : m_v + t_v],
      audio=mel[m_a : m_a + t_a],
      label=np.int32(ex["label"]),
      events=events,
      event_kinds=ekinds,
  )
  if m_v or m_a:
    out.update(video_context=video_f, audio_context=mel)
  return out


class _Prepare(grain.transforms.RandomMap):
  """grain random map: stored example -> model example (random crop if train, centred otherwise)."""

  def __init__(self, cfg: ml_collections.ConfigDict, train: bool):
    self.cfg, self.train = cfg, train

  def random_map(self, ex, rng: np.random.Generator):
    if self.train:
      return crop_window(ex, self.cfg, None, rng)
    win = int(round(self.cfg.window_s * float(ex["fps"])))
    return crop_window(ex, self.cfg, max(0, (ex["video"].shape[0] - win) // 2), None)


def global_batch_index(local_index: int, per_process: int, process_count: int, process_index: int) -> int:
  """Index in the global example stream of this process's `local_index`-th example.

  Global batch k is stream[k * B : (k + 1) * B] with B = per_process * process_count (exactly what
  one process reading everything would batch); process p takes rows [p * per_process, (p + 1) *
  per_process) of it: where `make_global_batch` puts process p's rows when the mesh's batch axis lists
  the devices process by process, as `jax.make_mesh` does (another order only permutes rows within
  the global batch).
  """
  k, r = divmod(local_index, per_process)
  return k * per_process * process_count + process_index * per_process + r


class _GlobalRows:
  """index -> this process's `index`-th example of the parent stream (see global_batch_index); mapped
  over `MapDataset.range`, so the slice uses grain's public API only and pickles to grain's workers."""

  def __init__(self, parent: grain.MapDataset, per_process: int, process_count: int, process_index: int):
    self.parent, self.args = parent, (per_process, process_count, process_index)

  def __call__(self, index: int):
    return self.parent[global_batch_index(int(index), *self.args)]


def process_slice(ds: grain.MapDataset, per_process: int, process_count: int, process_index: int):
  """This process's rows of every global batch of an (infinite) MapDataset."""
  n = len(ds) // process_count
  return grain.MapDataset.range(n).map(_GlobalRows(ds, per_process, process_count, process_index))


def make_dataset(
    data_cfg: ml_collections.ConfigDict,
    split: str,
    *,
    seed: int,
    train: bool,
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.IterDataset:
  """The grain dataset of numpy batches for `split` (see module docstring).

  Builds the tfds dataset first if missing. `iter(ds)` gives a `grain.DatasetIterator` whose
  get_state()/set_state() checkpoint the position. Each process yields batch_size / process_count
  examples per batch. Train: every process shuffles the whole split with the same seed and reads
  only its rows of each global batch (`global_batch_index`), so N processes see the same global
  batches as one process would (and a resumed run as an uninterrupted one), while each decodes only
  its own clips. (A clip skipped as too short, data.short_clip='skip', shifts only its own
  process's stream.) Eval: each process reads the shard `process_index::process_count`.
  `process_index` / `process_count` default to this JAX process's (tests pass others).
  """
  validate(data_cfg)
  nproc = jax.process_count() if process_count is None else int(process_count)
  pidx = jax.process_index() if process_index is None else int(process_index)
  if data_cfg.batch_size % nproc:
    raise ValueError(f"data.batch_size={data_cfg.batch_size} is not divisible by the {nproc} processes")
  builder = builders.build_dataset(data_cfg)
  if split not in builder.info.splits:
    raise ValueError(
        f"split {split!r} not in {builder.name}/{builder.builder_config.name}; available: "
        f"{list(builder.info.splits)} (data.split_train / data.split_eval)"
    )
  source = builder.as_data_source(split=split)
  ds = grain.MapDataset.source(source)
  if train:
    ds = ds.shuffle(seed=seed).repeat(None)  # grain draws a fresh permutation every epoch
  else:
    ds = ds[pidx::nproc]  # per-process shard: processes never read the same clip
  if data_cfg.name == "precomputed_latents":
    from syncdpo_jax.data import latents  # local: latents builds on this module's helpers

    prepare = latents.PrepareLatents(data_cfg, builder, train)
  else:
    prepare = _Prepare(data_cfg, train)
  # Crops are seeded by the element's index in the global stream: the same for any process count.
  ds = ds.random_map(prepare, seed=seed)
  if train and nproc > 1:
    ds = process_slice(ds, data_cfg.batch_size // nproc, nproc, pidx)
  it = ds.to_iter_dataset()  # drops None (clips skipped as too short)
  it = it.batch(data_cfg.batch_size // nproc, drop_remainder=train)
  if data_cfg.num_workers > 0:
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=int(data_cfg.num_workers)))
  return it


def first_examples(
    cfg, split: str, num: int, keys, *, seed: int = 0, train: bool = False
) -> dict[str, np.ndarray]:
  """The first `num` examples of `split` through this pipeline, as numpy {key: [n, ...]} (n <= num).

  train=False: deterministic centre crops in file order (eval sets); train=True: the seeded shuffle and
  random crops of a training run (conditions to sample from).
  """
  parts = {k: [] for k in keys}
  n = 0
  for batch in make_dataset(cfg, split, seed=int(seed), train=train):
    for k in parts:
      parts[k].append(np.asarray(batch[k]))
    n += len(batch[keys[0]])
    if n >= num:
      break
  return {k: np.concatenate(v)[:num] if v else np.zeros((0,)) for k, v in parts.items()}


def make_global_batch(np_batch: dict, sharding: NamedSharding) -> dict:
  """Process-local numpy batch -> dict of global jax.Arrays with `sharding` (the batch sharding the
  logical rules give: model/sharding.batch_sharding). Every leaf has the batch as its leading dim:
  [B_local, ...] -> global [B_local * process_count, ...].
  """
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in np_batch.items()}
