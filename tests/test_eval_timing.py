"""Ground-truth timing metrics (eval/timing.py) on real SyncBench-Synth clips: their floor, their
response to known shifts of the stream, and clips they cannot score."""

import numpy as np
import pytest

from syncdpo_jax.data import features, synth
from syncdpo_jax.data.config import get_data_config
from syncdpo_jax.eval import timing

CFG = get_data_config("demo")
MEL_FPS = CFG.sr / CFG.hop  # 50 mel frames per second
SPEC = synth.SynthSpec(duration_s=4.0, resolution=32)
START, WINDOW = 0.5, 3.0  # scored window inside each 4 s clip; shifts crop around it (no padding)


@pytest.fixture(scope="module")
def clips():
  """24 clips (8 per family) at seeds no split of the demo data uses, with their whole-clip mel."""
  out = []
  for i in range(24):
    c = synth.generate_clip(synth.FAMILIES[i % 3], 900_000 + i, SPEC)
    c["mel"] = features.log_mel(c["audio"], CFG)
    out.append(c)
  return out


def _window_events(c):
  t = np.asarray(c["event_times"], np.float64)
  return t[(t >= START) & (t < START + WINDOW)] - START


def _mel_crop(c, late_frames=0):
  """The window's mel with the audio `late_frames` mel frames late (content from earlier in the clip)."""
  a = int(round(START * MEL_FPS)) - late_frames
  return c["mel"][a : a + int(round(WINDOW * MEL_FPS))]


def _video_crop(c, early_frames=0):
  """The window's frames with the video `early_frames` frames early (content from later in the clip)."""
  a = int(round(START * c["fps"])) + early_frames
  return c["video"][a : a + int(round(WINDOW * c["fps"]))]


def test_audio_floor_on_real_clips(clips):
  """The real audio times its events to within 20 ms (median) and hits >= 95% of them within 40 ms."""
  rs = [
      timing.audio_timing(None, CFG.sr, _window_events(c), mel=_mel_crop(c), mel_fps=MEL_FPS) for c in clips
  ]
  assert all(r["reason"] == "" for r in rs), [r["reason"] for r in rs]
  assert np.median([r["median_abs_error_s"] for r in rs]) <= 0.020
  hits = sum(r["hit_rate_40ms"] * r["num_events"] for r in rs) / sum(r["num_events"] for r in rs)
  assert hits >= 0.95, hits
  assert np.median([abs(r["offset_s"]) for r in rs]) <= 0.020  # aligned: offset near 0


# Shifts inside timing.MAX_LAG_S (0.19 s, under half the rhythm family's shortest beat, 0.4 s: a shift
# of half a beat cannot be told from its opposite): up to 9 mel frames, 1 video frame.
@pytest.mark.parametrize("k", [1, 2, 3, 5, 9, -1, -2, -3, -5, -9])
def test_audio_offset_follows_a_shift_of_the_audio(clips, k):
  moved = []
  for c in clips:
    gt = _window_events(c)
    base = timing.audio_timing(None, CFG.sr, gt, mel=_mel_crop(c), mel_fps=MEL_FPS)["offset_s"]
    late = timing.audio_timing(None, CFG.sr, gt, mel=_mel_crop(c, k), mel_fps=MEL_FPS)["offset_s"]
    moved.append(abs((late - base) * MEL_FPS - k) <= 1.0)  # + = audio late, within one frame
  assert np.mean(moved) >= 0.95, np.mean(moved)


@pytest.mark.parametrize("k", [1, -1])
def test_video_offset_follows_a_shift_of_the_video(clips, k):
  moved, acc = [], []
  for c in clips:
    gt = _window_events(c)
    base = timing.video_timing(_video_crop(c), c["fps"], gt)
    early = timing.video_timing(_video_crop(c, k), c["fps"], gt)["offset_s"]
    moved.append(abs((early - base["offset_s"]) * c["fps"] - k) <= 1.0)  # + = video early
    acc.append(base["frame_accuracy_1"])
  assert np.mean(moved) >= 0.95, np.mean(moved)
  assert np.mean(acc) >= 0.7  # the real frames put most events on their frame or the next


def test_unscorable_clips_get_nan_and_a_reason():
  silent = np.full((100, CFG.n_mels), -1.0, np.float32)
  r = timing.audio_timing(None, CFG.sr, [0.5, 1.0], mel=silent, mel_fps=MEL_FPS)
  assert np.isnan(r["offset_s"]) and np.isnan(r["median_abs_error_s"]) and "no detectable" in r["reason"]
  r = timing.audio_timing(np.zeros(16000, np.float32), CFG.sr, [0.5])
  assert np.isnan(r["recall"]) and r["reason"]
  static = np.zeros((20, 16, 16, 3), np.uint8)
  r = timing.video_timing(static, 10.0, [0.5, 1.0])
  assert np.isnan(r["offset_s"]) and np.isnan(r["frame_accuracy"]) and r["reason"]
  c = synth.generate_clip("impact", 3, synth.SynthSpec(duration_s=2.0))
  r = timing.video_timing(c["video"], c["fps"], [-1.0, -1.0])  # only padding: no events
  assert r["num_events"] == 0 and "no ground-truth" in r["reason"]


def test_simultaneous_events_are_one_onset():
  assert timing.distinct_events([0.8, 0.3, 0.8, -1.0, 0.81], 0.02).tolist() == [0.3, 0.8]


# Whether a metric is better when lower (+1) or higher (-1): every metric that decides a claim.
_DECIDING = {"gt_abs_offset_s": +1, "gt_median_error_s": +1, "gt_hit_40ms": -1}


@pytest.mark.parametrize("stream", ["audio", "video"])
@pytest.mark.parametrize("frames", [1, -1])
def test_aligned_beats_shifted_by_one_video_frame_for_every_deciding_metric(clips, stream, frames):
  # The eval's decisions rest on evaluate.GT_TIMING (v2a: the audio, a2v: the video, scored against
  # the ground truth). On real clips each must score the aligned stream better than the same stream one
  # video frame (0.1 s) late or early, as a mean over the clips.
  from syncdpo_jax.runs import evaluate

  assert set(_DECIDING) == set(evaluate.GT_TIMING)
  per_fps = MEL_FPS / 10.0  # mel frames per video frame
  aligned, shifted = [], []
  for c in clips:
    gt = _window_events(c)
    if stream == "audio":
      score = lambda k: timing.audio_timing(
          None, CFG.sr, gt, mel=_mel_crop(c, int(k * per_fps)), mel_fps=MEL_FPS
      )
    else:
      score = lambda k: timing.video_timing(_video_crop(c, k), c["fps"], gt)
    aligned.append(score(0))
    shifted.append(score(frames))
  for name, sign in _DECIDING.items():
    get = evaluate.GT_TIMING[name]
    a = np.nanmean([get(r) for r in aligned])
    s = np.nanmean([get(r) for r in shifted])
    assert sign * (s - a) > 0, (name, a, s)
