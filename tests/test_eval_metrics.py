"""Sync metrics on clips synthesised here: flashing / jumping squares with clicks, known offsets."""

import math

import numpy as np
import pytest

from syncdpo_jax import eval as ev
from syncdpo_jax.eval.fidelity import VIDEO_FEATURE_GROUPS, video_feature_groups

FPS, SR, DUR = 25, 16000, 4.0


def synth_clip(seed, offset=0.0, *, on_grid=True, size=48, n_events=6, jump=False):
  """A clip with `n_events` visual events and a click per event, the clicks delayed by `offset` s.

  Visual event: a square that flashes and decays over ~6 frames (like the click decays), or, with
  jump=True, a square that jumps to a new place. Returns (frames uint8 [T,H,W,3], audio f32 [N], events).
  """
  rng = np.random.default_rng(seed)
  t_v, n_a = int(DUR * FPS), int(DUR * SR)
  while True:  # events at least 0.35 s apart so no two correlate with each other's click
    events = np.sort(rng.uniform(0.3, DUR - 0.6, n_events))
    if np.all(np.diff(events) > 0.35):
      break
  if on_grid:
    events = np.round(events * FPS) / FPS
  frames = np.full((t_v, size, size, 3), 20, np.uint8)
  pos, start = rng.integers(4, size - 16, 2), 0
  for tau in events:
    i0 = int(np.ceil(tau * FPS - 1e-9))  # first frame that shows the event
    if jump:  # the square sits at `pos` from frame `start` until the event, then jumps
      frames[start:i0, pos[0] : pos[0] + 12, pos[1] : pos[1] + 12] = 200
      pos, start = rng.integers(4, size - 16, 2), i0
    else:
      y, x = rng.integers(4, size - 16, 2)
      col = rng.integers(128, 256, 3)
      for k in range(6):
        if i0 + k < t_v:
          patch = frames[i0 + k, y : y + 12, x : x + 12]
          frames[i0 + k, y : y + 12, x : x + 12] = np.maximum(patch, (20 + (col - 20) * np.exp(-k / 1.5)))
  if jump:
    frames[start:, pos[0] : pos[0] + 12, pos[1] : pos[1] + 12] = 200
  audio = 1e-3 * rng.standard_normal(n_a)
  for tau in events + offset:
    j = int(round(tau * SR))
    if 0 <= j < n_a:
      n = min(800, n_a - j)
      audio[j : j + n] += 0.8 * rng.standard_normal(n) * np.exp(-np.arange(n) / (0.01 * SR))
  return frames, audio.astype(np.float32), events


@pytest.mark.parametrize("offset", [-0.5, -0.3, -0.12, 0.0, 0.04, 0.2, 0.5])
def test_estimate_offset_recovers_injected_offset_within_one_frame(offset):
  frames, audio, _ = synth_clip(seed=int(round(abs(offset) * 100)) + 7 + (offset < 0), offset=offset)
  est = ev.estimate_offset(frames, FPS, audio, SR, max_offset=2.0)
  assert abs(est - offset) < 1.0 / FPS, (offset, est)


@pytest.mark.parametrize("offset", [-0.33, 0.27])
def test_estimate_offset_off_grid_events_and_jumping_square(offset):
  frames, audio, _ = synth_clip(seed=3, offset=offset, on_grid=False)
  assert abs(ev.estimate_offset(frames, FPS, audio, SR) - offset) < 1.0 / FPS
  frames, audio, _ = synth_clip(seed=4, offset=offset, jump=True)
  assert abs(ev.estimate_offset(frames, FPS, audio, SR) - offset) < 1.0 / FPS


def test_estimate_offset_stays_in_range():
  frames, audio, _ = synth_clip(seed=5, offset=0.45)
  assert abs(ev.estimate_offset(frames, FPS, audio, SR, max_offset=0.2)) <= 0.2


def test_av_align_aligned_beats_shifted():
  frames, audio, _ = synth_clip(seed=11, offset=0.0)
  _, shifted, _ = synth_clip(seed=11, offset=0.2)
  aligned = ev.av_align(frames, FPS, audio, SR)
  assert 0.0 <= ev.av_align(frames, FPS, shifted, SR) < aligned <= 1.0
  assert aligned > 0.5


def test_event_metrics_perfect_and_shifted():
  gt = np.array([0.5, 1.0, 1.7, 2.4, -1.0, -1.0])  # -1 padded like batch['events']
  perfect = ev.event_metrics(gt, gt, tol_s=0.05)
  assert perfect["f1"] == 1.0 and perfect["precision"] == 1.0 and perfect["recall"] == 1.0
  assert perfect["mean_timing_error_s"] == 0.0
  near = ev.event_metrics(gt[:4] + 0.03, gt, tol_s=0.05)
  assert near["f1"] == 1.0 and near["mean_timing_error_s"] == pytest.approx(0.03)
  far = ev.event_metrics(gt[:4] + 0.2, gt, tol_s=0.05)
  assert far["f1"] == 0.0 and math.isnan(far["mean_timing_error_s"])
  partial = ev.event_metrics(np.array([0.5, 1.3, 1.7]), gt, tol_s=0.05)
  assert partial["precision"] == pytest.approx(2 / 3) and partial["recall"] == pytest.approx(0.5)
  assert partial["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
  assert ev.event_metrics([], gt, 0.05)["f1"] == 0.0
  assert ev.event_metrics([], [-1.0], 0.05)["f1"] == 1.0


def test_event_matching_is_one_to_one_and_optimal():
  # A greedy nearest-first matcher pairs pred 1.04 with gt 1.0 and then strands gt 1.08; the optimal
  # matching pairs (0.97, 1.0), (1.04, 1.08) and keeps both.
  out = ev.event_metrics([0.97, 1.04], [1.0, 1.08], tol_s=0.05)
  assert out["num_matched"] == 2 and out["f1"] == 1.0
  two_on_one = ev.event_metrics([1.0, 1.01], [1.0], tol_s=0.05)
  assert two_on_one["num_matched"] == 1 and two_on_one["precision"] == 0.5


def test_detected_audio_events_score_against_ground_truth():
  frames, audio, events = synth_clip(seed=21)
  pred = ev.detect_audio_events(audio, SR)
  good = ev.event_metrics(pred, events, tol_s=0.02)
  assert good["f1"] == 1.0 and good["mean_timing_error_s"] <= 0.01
  _, late, _ = synth_clip(seed=21, offset=0.1)
  assert ev.event_metrics(ev.detect_audio_events(late, SR), events, tol_s=0.02)["f1"] < 0.5
  assert ev.detect_audio_events(np.zeros(SR, np.float32), SR).size == 0


@pytest.mark.parametrize(
    "reason,make",
    [
        ("too_short", lambda f, a: (f[:20], a[: int(0.8 * SR)])),
        ("duration_mismatch", lambda f, a: (f, a[: int(3.0 * SR)])),
        ("silent_audio", lambda f, a: (f, np.zeros_like(a))),
        ("bad_input", lambda f, a: (f.astype(np.float32), a)),
        ("bad_input", lambda f, a: (f, np.stack([a, a], 1))),
        ("static_video", lambda f, a: (np.repeat(f[:1], len(f), 0), a)),
    ],
)
def test_bad_input_raises_clip_error_with_reason(reason, make):
  frames, audio, _ = synth_clip(seed=1)
  f, a = make(frames, audio)
  with pytest.raises(ev.ClipError) as err:
    ev.estimate_offset(f, FPS, a, SR)
  assert err.value.reason == reason and isinstance(err.value, ValueError)


def test_evaluate_clips_means_ci_and_skips():
  clips, gts = [], []
  for s, off in enumerate([0.0, 0.1, -0.2]):
    frames, audio, events = synth_clip(seed=30 + s, offset=off)
    clips.append(dict(frames=frames, fps=FPS, audio=audio, sr=SR))
    gts.append(events)
  clips.append(dict(frames=clips[0]["frames"], fps=FPS, audio=np.zeros_like(clips[0]["audio"]), sr=SR))
  gts.append(gts[0])

  def broken_loader():
    raise OSError("cannot decode")

  clips.append(broken_loader)
  gts.append(gts[0])
  out = ev.evaluate_clips(clips, gts, event_tol_s=0.05)
  assert out["num_clips"] == 5 and out["num_evaluated"] == 3 and out["num_skipped"] == 2
  assert out["skipped"] == {"silent_audio": 1, "unreadable:OSError": 1}
  mean, ci = out["desync"]
  assert mean == pytest.approx(0.1, abs=1.0 / FPS) and ci > 0
  assert out["offset"][0] == pytest.approx(-0.1 / 3, abs=1.0 / FPS)
  # Two of three clips are shifted by >= 0.1 s: their clicks miss the 50 ms tolerance (F1 0); the
  # aligned one scores F1 1.
  assert out["event_f1"][0] == pytest.approx(1.0 / 3.0)
  assert 0.0 <= out["av_align"][0] <= 1.0
  # Per-clip values line up with the clips (NaN where skipped) and average to the reported means.
  per = out["per_clip"]
  assert len(per["desync"]) == 5 and np.isnan(per["desync"][3:]).all()
  assert np.mean(per["desync"][:3]) == pytest.approx(mean)
  assert per["event_f1"][:3] == [1.0, 0.0, 0.0]


def test_mel_events_are_the_audio_events_when_a_clip_carries_its_mel():
  """Onsets found on the log-mel frames themselves (no vocoder), at the mel's frame rate."""
  from syncdpo_jax.data import features
  import ml_collections

  cfg = ml_collections.ConfigDict(dict(sr=SR, n_fft=512, hop=320, n_mels=40, fmin=0.0, fmax=SR / 2))
  frames, audio, events = synth_clip(seed=21)
  mel = features.log_mel(audio, cfg)  # [200, 40] at 50 fps
  fps_a = SR / cfg.hop
  got = ev.event_metrics(ev.detect_mel_events(mel, fps_a), events, tol_s=0.03)
  assert got["f1"] == 1.0 and got["mean_timing_error_s"] <= 1.0 / fps_a
  _, late, _ = synth_clip(seed=21, offset=0.1)
  late_mel = features.log_mel(late, cfg)
  assert ev.event_metrics(ev.detect_mel_events(late_mel, fps_a), events, tol_s=0.03)["f1"] < 0.5
  assert ev.detect_mel_events(np.full((200, 40), -1.0, np.float32), fps_a).size == 0
  # evaluate_clips scores the mel's events, not the waveform's, when the clip carries one: a clip whose
  # waveform is on time but whose mel is late scores F1 0.
  clip = dict(frames=frames, fps=FPS, audio=audio, sr=SR, mel=late_mel, mel_fps=fps_a)
  assert ev.evaluate_clips([clip], [events], event_tol_s=0.03)["event_f1"][0] == 0.0


def test_mean_ci95():
  m, ci = ev.mean_ci95([1.0, 2.0, 3.0])
  assert m == 2.0 and ci == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)
  assert math.isnan(ev.mean_ci95([5.0])[1]) and ev.mean_ci95([5.0, float("nan")])[0] == 5.0


def test_frechet_distance_gaussians_and_proxies():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((4000, 3))
  # Closed form for N(0, I) vs N(mu, 4 I): |mu|^2 + 3 * (1 + 4 - 2 * 2)
  mu = np.array([1.0, 0.0, 2.0])
  assert ev.frechet_distance(x, mu + 2.0 * rng.standard_normal((4000, 3))) == pytest.approx(
      5.0 + 3.0, rel=0.05
  )
  assert ev.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
  mels_a = [rng.uniform(-1, 1, (50, 8)) for _ in range(3)]
  mels_b = [rng.uniform(-1, 1, (50, 8)) * 0.2 - 0.7 for _ in range(3)]
  assert ev.fd_logmel_proxy(mels_a, mels_a[::-1]) < 1e-6 < ev.fd_logmel_proxy(mels_a, mels_b)
  va = [synth_clip(seed=s)[0] for s in range(2)]
  vb = [np.clip(v.astype(np.int16) + 90, 0, 255).astype(np.uint8) for v in va]
  same, other = ev.fd_video_proxy(va, va), ev.fd_video_proxy(va, vb)
  assert set(same) == {"all", *VIDEO_FEATURE_GROUPS}
  assert max(same.values()) < 1e-6 < min(other["all"], other["layout"], other["colour"])
  t, h, w = va[0].shape[:3]
  assert ev.video_frame_features(va[0]).shape == (t, 3 * 16 + 3 * 8 + 2 * 8 + (w - 1) + (h - 1) + 2)


def _tiled(colours, tile=8):
  """uint8 [T, 2 tile, 2 tile, 3]: four flat tiles per frame, tile (i, j) of frame k in colours[k, i, j]."""
  return np.repeat(np.repeat(np.asarray(colours, np.uint8), tile, axis=1), tile, axis=2)


def test_video_feature_groups_see_seams_and_flicker_but_not_invisible_noise():
  rng = np.random.default_rng(0)
  flat = np.full((6, 16, 16, 3), 100, np.uint8)
  # Noise of at most 2 grey levels changes no difference by the flat tolerance (6 levels): the edge
  # and motion features cannot tell it from the flat frames, whatever the seed.
  noisy = (flat + rng.integers(-2, 3, flat.shape)).astype(np.uint8)
  g0, g1 = video_feature_groups(flat), video_feature_groups(noisy)
  np.testing.assert_array_equal(g1["edges"], g0["edges"])
  np.testing.assert_array_equal(g1["motion"][:, 1], g0["motion"][:, 1])
  # Tiles that disagree by 30 levels: a seam at column 7 | 8 and row 7 | 8, nothing elsewhere.
  tiles = _tiled(100 + 30 * rng.integers(0, 2, (6, 2, 2, 1)).repeat(3, -1))
  seams = video_feature_groups(tiles)["grid"]  # [T, 15 + 15]
  assert np.all(seams[:, [7, 15 + 7]].sum(1) > 0)
  assert np.all(np.delete(seams, [7, 15 + 7], axis=1) == 0)
  # Tiles that flicker from frame to frame move a quarter of the pixels or more; a still frame none.
  changed = video_feature_groups(tiles)["motion"][1:, 1]
  assert np.all(g0["motion"][:, 1] == 0) and changed.max() >= 0.25


def syncbench_shifted(family, seed, offset, duration=4.0, margin=0.6):
  """A SyncBench-Synth window whose audio is late by `offset` s: the audio is cropped from a longer
  clip `offset` s earlier than the video (no padding or wrap-around, which would add fake onsets)."""
  from syncdpo_jax.data.synth import SynthSpec, generate_clip

  c = generate_clip(family, seed, SynthSpec(duration_s=duration + 2 * margin, nuisance=True))
  fps, sr = c["fps"], c["sr"]
  i0, j0 = int(round(margin * fps)), int(round((margin - offset) * sr))
  t, n = int(round(duration * fps)), int(round(duration * sr))
  return c["video"][i0 : i0 + t], fps, c["audio"][j0 : j0 + n], sr


# 'rhythm' is left out on purpose: its drum patterns repeat every one or two beats, so lags a pattern
# period apart fit almost equally well (see estimate_offset's docstring; ~75% within a frame there).
@pytest.mark.parametrize("family", ["impact", "speech"])
def test_estimate_offset_recovers_shifts_on_syncbench_synth(family):
  errors = []
  for seed in range(3):
    for offset in (-0.5, 0.0, 0.3):
      frames, fps, audio, sr = syncbench_shifted(family, seed, offset)
      errors.append((seed, offset, ev.estimate_offset(frames, fps, audio, sr) - offset))
  assert all(abs(e) < 1.0 / fps for _, _, e in errors), errors


def test_camera_shake_is_cancelled_in_motion_energy():
  # A static textured scene shaken by whole pixels has no motion once the shake is compensated; a
  # square that appears on top of it still registers.
  rng = np.random.default_rng(0)
  scene = np.repeat(rng.integers(0, 256, (40, 40, 1), dtype=np.uint8), 3, axis=2)
  shifts = [(0, 0), (1, 0), (1, -1), (0, -1), (-1, 1), (0, 0)]
  frames = np.stack([np.roll(scene, s, axis=(0, 1)) for s in shifts])[:, 4:36, 4:36]
  assert np.max(ev.signals.stabilized_motion_energy(frames)) == 0.0
  with_square = scene.copy()
  with_square[14:22, 14:22] = 255  # part of the scene: it shakes with it
  frames = np.stack(
      [np.roll(with_square if i >= 4 else scene, s, axis=(0, 1)) for i, s in enumerate(shifts)]
  )[:, 4:36, 4:36]
  energy = ev.signals.stabilized_motion_energy(frames)
  assert np.argmax(energy) == 4 and energy[4] > 10 * max(energy[1:4].max(), energy[5], 1e-3)
