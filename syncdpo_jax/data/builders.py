"""tfds builders (ArrayRecord, no TensorFlow needed): `syncbench_synth` and `av_folder`.

Both produce the same features per example:
  video uint8 [T, H, W, 3], audio float32 [N] mono, fps float32, sr int32, event_times float32 [E] (s),
  event_kinds int32 [E], label int32, family str, caption str, clip_id str.
(av_folder clips have no ground-truth events: E = 0, family 'user'.)

Importing this module registers both builders with tfds, so
``tfds.data_source('syncbench_synth/demo', data_dir=...)`` works once built. tfds writes every split
into an ``incomplete.*`` folder and renames it only after all splits succeed, so a build that fails
half-way never leaves a dataset that looks complete. `build_dataset` is the idempotent entry point.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time

import cv2
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from syncdpo_jax.data import media, synth

log = logging.getLogger(__name__)
FILE_FORMAT = "array_record"
SKIP_REPORT = "bad_inputs.json"
# What built a dataset folder (the builder config's fields), written beside tfds' own metadata: a
# folder built with other fields is refused, not silently read as if it matched.
BUILD_PARAMS = "build_params.json"


class LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of our builders: writes ArrayRecord unless told otherwise.

  tfds' own default is TFRecord, which needs TensorFlow to write; with ArrayRecord
  ``tfds.builder('syncbench_synth/demo', data_dir=...).download_and_prepare()`` works as is, and
  grain reads the result by random access.
  """

  def __init__(self, *, file_format: str = FILE_FORMAT, **kwargs):
    super().__init__(file_format=file_format, **kwargs)


def clip_metadata_features() -> dict:
  """The per-clip fields every stored dataset carries beside its media or latents (tfds features)."""
  return {
      "event_times": tfds.features.Tensor(shape=(None,), dtype=np.float32),
      "event_kinds": tfds.features.Tensor(shape=(None,), dtype=np.int32),
      "label": tfds.features.Scalar(dtype=np.int32),
      "family": tfds.features.Text(),
      "caption": tfds.features.Text(),
      "clip_id": tfds.features.Text(),
  }


def _features(resolution: int | None) -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict(
      {
          "video": tfds.features.Tensor(shape=(None, resolution, resolution, 3), dtype=np.uint8),
          "audio": tfds.features.Tensor(shape=(None,), dtype=np.float32),
          "fps": tfds.features.Scalar(dtype=np.float32),
          "sr": tfds.features.Scalar(dtype=np.int32),
          **clip_metadata_features(),
      }
  )


# ------------------------------------------------------------------------------------ syncbench_synth


@dataclasses.dataclass
class SyncBenchConfig(tfds.core.BuilderConfig):
  """Size/resolution of a SyncBench-Synth build. `splits` maps split name -> number of clips."""

  duration_s: float = 4.0
  fps: int = 10
  sr: int = 16000
  resolution: int = 32
  splits: tuple = (("train", 480), ("val", 48), ("test", 48), ("ood", 48))
  seed: int = 0


class SyncbenchSynth(LocalBuilder):
  """SyncBench-Synth: procedural AV clips with exact ground-truth event times (see synth.py).

  Families are assigned round-robin so every split is balanced; split 'ood' draws held-out object
  kinds, speeds, voices and timbres. Clip seeds are disjoint between splits.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: impact / speech / rhythm families, OOD split."}
  BUILDER_CONFIGS = [
      SyncBenchConfig(
          name="test",
          description="tiny, for unit tests",
          duration_s=2.0,
          resolution=16,
          splits=(("train", 9), ("val", 3), ("test", 3), ("ood", 3)),
      ),
      SyncBenchConfig(
          name="demo", description="~500 train clips of 4 s at 32x32", duration_s=4.0, resolution=32
      ),
  ]
  DEFAULT_CONFIG_NAME = "demo"

  def _info(self) -> tfds.core.DatasetInfo:
    # DatasetInfo built directly: dataset_info_from_configs() wants a checked-in metadata folder.
    return tfds.core.DatasetInfo(
        builder=self, description=self.__doc__, features=_features(self.builder_config.resolution)
    )

  def _split_generators(self, dl_manager):
    return {name: self._generate_examples(name, n) for name, n in self.builder_config.splits}

  def _generate_examples(self, split: str, num: int):
    cfg = self.builder_config
    spec = synth.SynthSpec(
        duration_s=cfg.duration_s, fps=cfg.fps, sr=cfg.sr, resolution=cfg.resolution, ood=split == "ood"
    )
    split_id = [name for name, _ in cfg.splits].index(split)
    for i in range(num):
      family = synth.FAMILIES[i % len(synth.FAMILIES)]
      seed = (cfg.seed * 97 + split_id) * 1_000_003 + i  # disjoint across splits
      c = synth.generate_clip(family, seed, spec)
      clip_id = f"{split}_{i:05d}_{family}"
      yield clip_id, dict(
          video=c["video"],
          audio=c["audio"],
          fps=c["fps"],
          sr=c["sr"],
          event_times=c["event_times"],
          event_kinds=c["event_kinds"],
          label=c["label"],
          family=family,
          caption=c["caption"],
          clip_id=clip_id,
      )


# ------------------------------------------------------------------------------------------ av_folder


@dataclasses.dataclass
class AvFolderConfig(tfds.core.BuilderConfig):
  """How user mp4s are converted. Video is center-cropped to a square and resized to `resolution`,
  frame-rate converted to `fps`; audio mixed to mono and resampled to `sr`."""

  fps: float = 10.0
  sr: int = 16000
  resolution: int = 32
  min_duration_s: float = 2.0  # shorter clips cannot fill one crop window
  min_audio_rms: float = 1e-4  # below: a silent track, no sync signal


class AvFolder(LocalBuilder):
  """A folder of user mp4 files (with audio) as a tfds dataset: all files go to split 'train'.

  Put the files in `manual_dir`. Optional captions: `clip.txt` next to `clip.mp4`, or a
  `captions.json` mapping file name or stem -> caption. Unusable files are reported with their name
  and reason and skipped (or the build fails) per `on_bad_input`; the skip list is written to
  `<dataset dir>/bad_inputs.json` by `build_dataset`.
  """

  VERSION = tfds.core.Version("1.0.0")
  # No predefined configs: the conversion comes from the data config (`make_builder`), named by
  # data.builder_config; a built dataset is then read back by that name from its files.
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Put your .mp4 files (with an audio track) in manual_dir."

  def __init__(self, *args, on_bad_input: str = "skip", **kwargs):
    super().__init__(*args, **kwargs)
    # 'skip' (count, log, report) | 'fail' (raise on the first bad file). Not part of the config:
    # it does not change what a finished dataset holds.
    self.on_bad_input = on_bad_input
    self.skipped: list[dict] = []  # [{'file': name, 'reason': str}], filled while generating

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, description=self.__doc__, features=_features(self.builder_config.resolution)
    )

  def _split_generators(self, dl_manager):
    folder = dl_manager.manual_dir
    if not os.path.isdir(folder):
      raise FileNotFoundError(
          f"av_folder: manual_dir {folder} is not a folder; set data.manual_dir to the "
          "folder holding your .mp4 files"
      )
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(".mp4"))
    if not files:
      raise FileNotFoundError(f"av_folder: no .mp4 files in {folder} (data.manual_dir)")
    captions = {}
    cj = os.path.join(folder, "captions.json")
    if os.path.exists(cj):
      with open(cj) as f:
        captions = json.load(f)
    return {"train": self._generate_examples(files, captions)}

  def _generate_examples(self, files, captions):
    cfg = self.builder_config
    self.skipped = []
    kept = 0
    for path in files:
      try:
        ex = convert_user_clip(path, cfg)
      except media.MediaError as e:
        if self.on_bad_input == "fail":
          raise media.MediaError(
              e.path, e.reason + " (set data.on_bad_input='skip' to skip such " "files)"
          ) from e
        log.warning("av_folder: skipping %s", e)
        self.skipped.append({"file": os.path.basename(path), "reason": e.reason})
        continue
      name = os.path.basename(path)
      stem = os.path.splitext(name)[0]
      side = os.path.splitext(path)[0] + ".txt"
      cap = captions.get(name, captions.get(stem, ""))
      if not cap and os.path.exists(side):
        with open(side) as f:
          cap = f.read().strip()
      ex.update(caption=cap, clip_id=stem, family="user", label=0)
      kept += 1
      yield stem, ex
    if self.skipped:
      log.warning(
          "av_folder: kept %d, skipped %d bad files: %s",
          kept,
          len(self.skipped),
          "; ".join(f"{s['file']}: {s['reason']}" for s in self.skipped),
      )
    if kept == 0:  # an empty dataset would look complete; refuse it
      raise ValueError(
          f"av_folder: none of the {len(files)} files is usable: "
          + "; ".join(f"{s['file']}: {s['reason']}" for s in self.skipped)
      )


def convert_fps(num_frames: int, fps_in: float, fps_out: float) -> np.ndarray:
  """Source frame index for each output frame (the frame on screen at time i / fps_out). -> int [T_out]."""
  t_out = int(np.floor(num_frames / fps_in * fps_out + 1e-6))
  return np.minimum(np.floor(np.arange(t_out) * fps_in / fps_out + 1e-6).astype(np.int64), num_frames - 1)


def square_resize(video: np.ndarray, res: int) -> np.ndarray:
  """uint8 [T, H, W, 3] -> [T, res, res, 3]: center crop to a square, then area resize."""
  t, h, w, _ = video.shape
  s = min(h, w)
  y0, x0 = (h - s) // 2, (w - s) // 2
  crop = video[:, y0 : y0 + s, x0 : x0 + s]
  if s == res:
    return np.ascontiguousarray(crop)
  interp = cv2.INTER_AREA if s > res else cv2.INTER_LINEAR
  return np.stack([cv2.resize(f, (res, res), interpolation=interp) for f in crop])


def convert_user_clip(path: str, cfg: AvFolderConfig) -> dict:
  """Decodes and converts one user file to the builder features (no captions). Raises MediaError."""
  video, fps, audio, sr = media.read_mp4(path)
  if sr <= 0:
    raise media.MediaError(path, f"audio track has no valid sample rate ({sr})")
  dur_v, dur_a = video.shape[0] / fps, audio.shape[0] / sr
  # Durations that disagree mean the declared audio rate or fps is wrong (e.g. 44.1 kHz audio tagged
  # 48 kHz); AAC padding and container rounding stay well inside this tolerance.
  if abs(dur_v - dur_a) > 0.25 + 0.05 * dur_v:
    raise media.MediaError(
        path,
        f"audio ({dur_a:.2f} s at {sr} Hz) and video ({dur_v:.2f} s at {fps:g} fps) "
        "durations disagree; mismatched sample rate or frame rate in the file",
    )
  if dur_v + 1e-6 < cfg.min_duration_s:
    raise media.MediaError(
        path, f"too short for the crop window: {dur_v:.2f} s < {cfg.min_duration_s:g} s " "(data.window_s)"
    )
  rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
  if rms < cfg.min_audio_rms:
    raise media.MediaError(
        path, f"silent audio track (rms {rms:.2e} < data.min_audio_rms {cfg.min_audio_rms:g})"
    )
  idx = convert_fps(video.shape[0], fps, cfg.fps)
  video = square_resize(video[idx], cfg.resolution)
  audio = media.resample_audio(audio, sr, cfg.sr)
  n = int(round(video.shape[0] / cfg.fps * cfg.sr))
  audio = np.pad(audio, (0, max(0, n - audio.shape[0])))[:n]
  return dict(
      video=video,
      audio=audio.astype(np.float32),
      fps=np.float32(cfg.fps),
      sr=np.int32(cfg.sr),
      event_times=np.zeros(0, np.float32),
      event_kinds=np.zeros(0, np.int32),
  )


# ------------------------------------------------------------------------------------------ entry


def make_builder(data_cfg: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """The builder `data_cfg` names (name, builder_config, data_dir; av_folder also its conversion)."""
  data_dir = os.path.expanduser(data_cfg.data_dir)
  if data_cfg.name == "syncbench_synth":
    return SyncbenchSynth(config=data_cfg.builder_config, data_dir=data_dir)
  if data_cfg.name == "av_folder":
    bc = AvFolderConfig(
        name=data_cfg.builder_config,
        fps=float(data_cfg.fps),
        sr=int(data_cfg.sr),
        resolution=int(data_cfg.resolution),
        min_duration_s=float(data_cfg.window_s),
        min_audio_rms=float(data_cfg.get("min_audio_rms", 1e-4)),
    )
    return AvFolder(config=bc, data_dir=data_dir, on_bad_input=data_cfg.on_bad_input)
  if data_cfg.name == "precomputed_latents":
    from syncdpo_jax.data import latents  # local: latents subclasses this module's LocalBuilder

    return latents.make_builder(data_cfg)
  raise ValueError(
      f"data.name={data_cfg.name!r}; expected 'syncbench_synth', 'av_folder' or " "'precomputed_latents'"
  )


def build_params(builder: tfds.core.DatasetBuilder) -> dict:
  """The fields of `builder`'s config that decide what its dataset holds (JSON-able)."""
  base = {f.name for f in dataclasses.fields(tfds.core.BuilderConfig)}
  bc = builder.builder_config
  fields = {f.name: getattr(bc, f.name) for f in dataclasses.fields(bc) if f.name not in base}
  return json.loads(
      json.dumps({"builder": builder.name, "config": bc.name, "version": str(builder.version), **fields})
  )


def check_build_params(builder: tfds.core.DatasetBuilder) -> None:
  """Raises ValueError naming each field where the prepared folder's build differs from `builder`."""
  path = os.path.join(builder.data_dir, BUILD_PARAMS)
  if not os.path.exists(path):
    raise ValueError(
        f"{builder.data_dir} holds a dataset without {BUILD_PARAMS} (built by an older "
        "version): what built it is unknown. Fix: delete that folder to rebuild it."
    )
  with open(path) as f:
    have = json.load(f)
  want = build_params(builder)
  diffs = [
      f"{k}: built with {have.get(k, '<missing>')!r}, the config asks for {want.get(k, '<missing>')!r}"
      for k in sorted(set(have) | set(want))
      if have.get(k) != want.get(k)
  ]
  if diffs:
    raise ValueError(
        f"{builder.data_dir} was built with other settings than the config asks for:\n  "
        + "\n  ".join(diffs)
        + "\nFix: name a new build (--config.data.builder_config=...) "
        "or another --config.data.data_dir, or delete that folder to rebuild it."
    )


def build_dataset(data_cfg: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """Builds the dataset `data_cfg` names if it is not built yet (idempotent) and returns its builder.

  A folder that is already built must have been built with the same settings (`check_build_params`).
  For av_folder, files listed in `<dataset dir>/bad_inputs.json` were skipped (name + reason).
  """
  builder = make_builder(data_cfg)
  if builder.is_prepared():
    # Precomputed latents are written and checked (their metadata) by data.precompute.
    if isinstance(builder, (SyncbenchSynth, AvFolder)):
      check_build_params(builder)
    return builder
  t0 = time.time()
  dl_config = tfds.download.DownloadConfig(
      manual_dir=os.path.expanduser(data_cfg.manual_dir) if data_cfg.manual_dir else None
  )
  builder.download_and_prepare(download_config=dl_config)
  with open(os.path.join(builder.data_dir, BUILD_PARAMS), "w") as f:
    json.dump(build_params(builder), f, indent=1)
  if isinstance(builder, AvFolder):
    with open(os.path.join(builder.data_dir, SKIP_REPORT), "w") as f:
      json.dump({"skipped": builder.skipped, "num_skipped": len(builder.skipped)}, f, indent=1)
  log.info(
      "built %s/%s in %.1f s at %s",
      builder.name,
      builder.builder_config.name,
      time.time() - t0,
      builder.data_dir,
  )
  return builder


def skipped_inputs(builder: tfds.core.DatasetBuilder) -> list[dict]:
  """The av_folder skip report [{'file', 'reason'}] of a built dataset ([] if none)."""
  p = os.path.join(builder.data_dir, SKIP_REPORT)
  if not os.path.exists(p):
    return []
  with open(p) as f:
    return json.load(f)["skipped"]
