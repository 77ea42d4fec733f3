"""Data configuration: one `ml_collections.ConfigDict` shared by the builders and the grain pipeline.

Every temporal quantity is in SECONDS; each modality converts with its own rate
(video: `fps`, audio features: `sr / hop`). Variants:

* ``"test"``: a handful of 1-s-window clips at 16x16, builds in seconds (unit tests).
* ``"demo"``: ~500 train clips of 4 s at 32x32 plus val / test / ood splits; builds in < 1 min on 2 cores.

Usage::

    from syncdpo_jax.data.config import get_data_config
    cfg = get_data_config("demo")
    cfg.data_dir = "/tmp/tfds"
"""

from __future__ import annotations

import ml_collections

VARIANTS = ("test", "demo")
# tfds builders the pipeline reads; 'precomputed_latents' holds codec latents written by
# `python -m syncdpo_jax.data.precompute` (train with config.codec.name='precomputed').
NAMES = ("syncbench_synth", "av_folder", "precomputed_latents")


def _base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # Which tfds builder feeds the pipeline: the procedural benchmark or a folder of user mp4s.
  c.name = "syncbench_synth"  # 'syncbench_synth' | 'av_folder' | 'precomputed_latents' (see NAMES)
  c.builder_config = (
      "demo"  # tfds builder config ('test' | 'demo' for syncbench_synth; 'default' for av_folder)
  )
  c.data_dir = "~/tensorflow_datasets"
  c.manual_dir = ""  # av_folder only: folder holding the user's *.mp4 files (+ optional captions)
  c.split_train = "train"
  c.split_eval = "val"
  # Window and rates fed to the model.
  c.window_s = 2.0
  c.fps = 10.0
  c.resolution = 32
  c.sr = 16000
  c.n_fft = 1024
  c.hop = 320
  c.n_mels = 40
  c.fmin = 30.0
  c.fmax = 8000.0
  c.batch_size = 8
  c.shuffle_seed = 0
  c.num_workers = 0  # grain multiprocessing workers; 0 = in-process (tests, notebooks)
  c.on_bad_input = "skip"  # 'skip' (count + log) | 'fail' (raise with file name and reason)
  # A clip shorter than window_s: 'pad' (pad video with its last frame and audio with silence) or
  # whatever on_bad_input says ('skip' | 'fail').
  c.short_clip = "pad"
  c.max_events = 16
  # Seconds of real content on each side of the window that a training example also carries
  # ('video_context' / 'audio_context', the window in their middle): SyncDPO's timing rules move
  # content in from there instead of padding (perturb.apply(..., context=)). 0 = none.
  c.context_s = 0.0
  # Caption embeddings fed to the model: their width (the precomputed-latent dataset must store them,
  # `precompute --text_dim`); 0 = none (the class label alone conditions). The model is built for it
  # (ModelIO.text_dim).
  c.text_dim = 0
  c.text_len = 0  # caption tokens per example (with text_dim; memory plans and FLOP counts)
  c.num_classes = 3  # SyncBench-Synth: scene families impact / speech / rhythm
  # av_folder only: reject clips whose audio rms is below this (silent tracks carry no sync signal).
  c.min_audio_rms = 1e-4
  return c


def get_data_config(variant: str = "demo") -> ml_collections.ConfigDict:
  """Returns the data config for `variant` in VARIANTS (see module docstring)."""
  c = _base()
  if variant == "test":
    c.builder_config = "test"
    c.window_s = 1.0
    c.resolution = 16
    c.n_mels = 16
    c.fmin = 30.0
    c.fmax = 8000.0
    c.batch_size = 4
    c.max_events = 8
  elif variant == "demo":
    pass
  else:
    raise ValueError(f"unknown data config variant {variant!r}; expected one of {VARIANTS}")
  validate(c)
  return c


def _frames_in(cfg: ml_collections.ConfigDict, field: str, fix: str) -> tuple[int, int]:
  """(video frames, log-mel frames) in cfg.<field> seconds; raises naming `fix` if either is not whole."""
  seconds = float(cfg.get(field, 0.0))  # a config written before the field: none
  t_v, t_a = seconds * cfg.fps, seconds * cfg.sr / cfg.hop
  for name, val in ((f"{field} * fps", t_v), (f"{field} * sr / hop", t_a)):
    if abs(val - round(val)) > 1e-6:
      raise ValueError(
          f"data.{name} = {val} is not an integer; pick {fix} so that it holds a whole number of "
          "frames of each modality"
      )
  return int(round(t_v)), int(round(t_a))


def frames_per_window(cfg: ml_collections.ConfigDict) -> tuple[int, int]:
  """(T_v, T_a): video frames and log-mel frames in one window of `cfg.window_s` seconds."""
  return _frames_in(cfg, "window_s", "data.window_s, data.fps, data.sr, data.hop")


def audio_frame_rate(cfg: ml_collections.ConfigDict) -> float:
  """Log-mel frames per second (= sr / hop)."""
  return cfg.sr / cfg.hop


def context_frames(cfg: ml_collections.ConfigDict) -> tuple[int, int]:
  """(m_v, m_a): video frames and log-mel frames of context on each side of the window."""
  return _frames_in(cfg, "context_s", "data.context_s")


def validate(cfg: ml_collections.ConfigDict) -> None:
  """Raises ValueError with the field to fix when `cfg` is inconsistent."""
  frames_per_window(cfg)
  if not cfg.get("context_s", 0.0) >= 0:
    raise ValueError(f"data.context_s={cfg.context_s}: expected >= 0 seconds (0 = no context)")
  context_frames(cfg)
  if cfg.name not in NAMES:
    raise ValueError(f"data.name={cfg.name!r}; expected one of {NAMES}")
  if cfg.on_bad_input not in ("skip", "fail"):
    raise ValueError(f"data.on_bad_input={cfg.on_bad_input!r}; expected 'skip' or 'fail'")
  if cfg.short_clip not in ("pad", "skip", "fail"):
    raise ValueError(f"data.short_clip={cfg.short_clip!r}; expected 'pad', 'skip' or 'fail'")
  if not 0 <= cfg.fmin < cfg.fmax <= cfg.sr / 2:
    raise ValueError(
        f"need 0 <= data.fmin < data.fmax <= sr/2, got fmin={cfg.fmin}, fmax={cfg.fmax}, " f"sr={cfg.sr}"
    )
  if cfg.hop > cfg.n_fft:
    raise ValueError(f"data.hop={cfg.hop} > data.n_fft={cfg.n_fft}: frames would skip samples")
