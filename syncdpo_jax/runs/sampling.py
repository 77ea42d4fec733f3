"""Sample runs (config.mode='sample'): generate from one checkpoint, optionally given a user's video
or audio file, and write mp4s with sound (WORKDIR/samples/)."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from syncdpo_jax import codec as codec_lib
from syncdpo_jax._librosa import librosa  # (imported on first use)
from syncdpo_jax.data import media
from syncdpo_jax.model import sharding as sharding_lib
from syncdpo_jax.runs.generate import (
    abstract_model_on_mesh,
    decode_clips,
    generate_on_mesh,
    make_generate,
    write_samples,
)
from syncdpo_jax.train import checkpoint as ckpt_lib


def load_user_media(path: str, data_cfg, mode: str) -> tuple[np.ndarray | None, np.ndarray | None]:
  """A user's file -> (video [T_v, H, W, 3] in [-1, 1], normalised log-mel [T_a, n_mels]) of one window.

  v2a needs a video (mp4, any fps/size: converted to data.fps / data.resolution, first window_s
  seconds); a2v needs audio (wav/flac/mp3 or an mp4's audio track, resampled to data.sr).
  """
  from syncdpo_jax.data import builders, features
  from syncdpo_jax.data.config import frames_per_window

  t_v, t_a = frames_per_window(data_cfg)
  if not os.path.exists(path):
    raise FileNotFoundError(f"config.sample_run.input={path!r} does not exist.")
  video = mel = None
  if mode == "v2a":
    frames, fps, _, _ = media.read_mp4(path, require_audio=False)
    idx = builders.convert_fps(frames.shape[0], fps, float(data_cfg.fps))
    if len(idx) < t_v:
      raise ValueError(
          f"{path}: {frames.shape[0] / fps:.2f} s of video is shorter than data.window_s="
          f"{data_cfg.window_s} s; give a longer clip or lower data.window_s."
      )
    video = builders.square_resize(frames[idx[:t_v]], int(data_cfg.resolution))
    video = video.astype(np.float32) / 127.5 - 1.0
  else:
    try:
      wav, _ = librosa.load(path, sr=int(data_cfg.sr), mono=True)
    except Exception:  # noqa: BLE001 - not a plain audio file: try the audio track of a video container
      _, _, wav, sr = media.read_mp4(path)
      wav = media.resample_audio(wav, sr, int(data_cfg.sr))
    n = int(round(data_cfg.window_s * data_cfg.sr))
    if wav.shape[0] < n:
      raise ValueError(
          f"{path}: {wav.shape[0] / data_cfg.sr:.2f} s of audio is shorter than "
          f"data.window_s={data_cfg.window_s} s."
      )
    mel = features.log_mel(wav[:n], data_cfg, num_frames=t_a)
  return video, mel


def sample_run(config, workdir: str) -> list[str]:
  """config.mode='sample': generate from a checkpoint, on the user's media for v2a / a2v.

  Writes WORKDIR/samples/<mode>_<i>.mp4 (video with its soundtrack) and returns the paths.
  """
  sc, run = config.sample, config.sample_run
  mode = sc.mode
  codec = codec_lib.make_codec(config.codec, config.data)
  from syncdpo_jax.data.config import frames_per_window

  t_v, t_a = frames_per_window(config.data)
  n = int(run.num_samples)
  res = int(config.data.resolution)
  video = np.zeros((n, t_v, res, res, 3), np.float32)
  mel = np.full((n, t_a, int(config.data.n_mels)), -1.0, np.float32)
  if mode in ("v2a", "a2v"):
    if not run.input:
      raise ValueError(f"config.sample.mode={mode!r} needs a file: set --config.sample_run.input=<mp4/wav>.")
    v, m = load_user_media(run.input, config.data, mode)
    if v is not None:
      video[:] = v
    if m is not None:
      mel[:] = m
  mesh = sharding_lib.make_mesh(config.parallel.mesh)
  graphdef, params_like, rest = abstract_model_on_mesh(config, mesh)
  params, src = ckpt_lib.restore_params(run.checkpoint, params_like, config)
  generate = make_generate(
      graphdef, rest, codec, sc, int(config.data.num_classes), config.objective.prediction
  )
  label = jnp.full((n,), int(run.label), jnp.int32)
  # The user's media are pixels and log-mel even when training read precomputed latents.
  enc = codec_lib.media_codec(codec)
  v_lat, a_lat = generate_on_mesh(
      generate,
      mesh,
      tuple(config.parallel.logical_axis_rules),
      params,
      jax.random.key(int(config.seed)),
      enc.encode_video(jnp.asarray(video)),
      enc.encode_audio(jnp.asarray(mel)),
      label,
      mode,
  )
  clips = decode_clips(codec, config.data, v_lat, a_lat)
  paths = write_samples(clips, os.path.join(os.path.abspath(workdir), "samples"), mode, n)
  print(f"[sample] {mode} from {src}: wrote " + ", ".join(paths), flush=True)
  return paths
