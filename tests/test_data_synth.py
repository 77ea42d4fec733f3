"""SyncBench-Synth generator, log-mel features, Griffin-Lim, mp4 round trip."""

import numpy as np
import pytest

from syncdpo_jax.data import build, features, media, synth
from syncdpo_jax.data.config import audio_frame_rate, frames_per_window, get_data_config

SPEC = synth.SynthSpec(duration_s=2.0, fps=10, sr=16000, resolution=16)


@pytest.mark.parametrize("family", synth.FAMILIES)
def test_clip_shapes_and_determinism(family):
  a = synth.generate_clip(family, 7, SPEC)
  b = synth.generate_clip(family, 7, SPEC)
  c = synth.generate_clip(family, 8, SPEC)
  assert a["video"].shape == (20, 16, 16, 3) and a["video"].dtype == np.uint8
  assert a["audio"].shape == (32000,) and a["audio"].dtype == np.float32
  assert np.abs(a["audio"]).max() <= 0.95 + 1e-6
  assert a["label"] == synth.FAMILIES.index(family) and a["family"] == family and a["caption"]
  for k in ("video", "audio", "event_times", "event_kinds"):
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a["audio"], c["audio"])
  assert a["event_times"].shape == a["event_kinds"].shape and len(a["event_times"]) >= 1
  assert np.all(np.diff(a["event_times"]) >= 0)
  assert np.all((a["event_times"] > 0) & (a["event_times"] < SPEC.duration_s))
  assert np.all((a["event_kinds"] >= 0) & (a["event_kinds"] < len(synth.EVENT_KINDS)))


@pytest.mark.parametrize("family", synth.FAMILIES)
def test_event_onsets_are_sample_exact(family):
  # Without nuisances the waveform is exactly zero before the first event and sounds ON its sample.
  spec = synth.SynthSpec(duration_s=2.0, fps=10, resolution=16, nuisance=False)
  for seed in range(3):
    c = synth.generate_clip(family, seed, spec)
    t = c["event_times"]
    np.testing.assert_allclose(t * c["fps"], np.round(t * c["fps"]), atol=1e-4)  # on frame instants
    n0 = int(round(t[0] * c["sr"]))
    assert np.all(c["audio"][:n0] == 0.0)
    assert np.abs(c["audio"][n0 : n0 + 16]).max() > 0.01
    # The video changes on the event frame itself: motion energy peaks there.
    me = build.motion_energy(c["video"])
    k0 = int(round(t[0] * c["fps"]))
    assert me[k0] > np.median(me) and me[k0] >= me[k0 - 1] and me[k0] >= me[k0 + 1], (k0, me)


def test_ood_split_uses_held_out_kinds():
  seen_id, seen_ood = set(), set()
  for s in range(6):
    for fam in ("impact", "rhythm"):
      seen_id |= set(synth.generate_clip(fam, s, SPEC)["event_kinds"].tolist())
      seen_ood |= set(
          synth.generate_clip(fam, s, synth.SynthSpec(duration_s=2.0, resolution=16, ood=True))[
              "event_kinds"
          ].tolist()
      )
  held_out = {synth.KIND_ID[k] for k in synth.IMPACT_KINDS_OOD + synth.DRUM_KINDS_OOD}
  assert not seen_id & held_out
  assert seen_ood & held_out


def test_onsets_and_motion_peaks_line_up_with_events():
  # Detected audio onsets / frame-difference peaks within +-1 video frame of the ground truth.
  spec = synth.SynthSpec(duration_s=4.0, fps=10, resolution=32)
  rates = np.array(
      [build.event_hit_rate(synth.generate_clip(f, s, spec)) for f in synth.FAMILIES for s in range(4)]
  )
  audio_rate, video_rate = rates.mean(axis=0)
  assert audio_rate >= 0.9, rates
  assert video_rate >= 0.7, rates


def test_spec_rejects_non_integer_samples_per_frame():
  with pytest.raises(ValueError, match="sr % fps"):
    synth.SynthSpec(fps=24, sr=16000)


def test_config_frames_and_rates():
  cfg = get_data_config("demo")
  assert frames_per_window(cfg) == (20, 100) and audio_frame_rate(cfg) == 50.0
  tcfg = get_data_config("test")
  assert frames_per_window(tcfg) == (10, 50)
  tcfg.window_s = 1.01
  with pytest.raises(ValueError, match="window_s"):
    frames_per_window(tcfg)
  with pytest.raises(ValueError, match="variant"):
    get_data_config("huge")


def test_log_mel_normalisation_and_frames():
  cfg = get_data_config("test")
  t = np.arange(16000) / 16000
  tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
  m = features.log_mel(tone, cfg)
  assert m.shape == (50, cfg.n_mels) and m.dtype == np.float32
  assert m.max() == pytest.approx(1.0, abs=0.05)  # full-scale tone at the fixed reference: 0 dB
  np.testing.assert_array_equal(features.log_mel(np.zeros(16000, np.float32), cfg), -1.0)
  quiet = features.log_mel(0.01 * tone, cfg)  # -40 dB -> 0
  assert quiet.max() == pytest.approx(0.0, abs=0.05)
  assert features.log_mel(tone[:1000], cfg, num_frames=7).shape == (7, cfg.n_mels)
  # Frame j is centred at j * hop / sr: a click at 0.5 s shows up in frame 25.
  click = np.zeros(16000, np.float32)
  click[8000] = 1.0
  assert int(np.argmax(features.log_mel(click, cfg).mean(axis=1))) == 25


def test_mel_to_audio_inverts_log_mel():
  cfg = get_data_config("test")
  c = synth.generate_clip("rhythm", 1, SPEC)
  m = features.log_mel(c["audio"][:16000], cfg)
  wav = media.mel_to_audio(m, cfg, n_iter=16)
  assert wav.shape == (16000,) and wav.dtype == np.float32
  err = np.abs(features.log_mel(wav, cfg) - m).mean()
  assert err < 0.08, err  # Griffin-Lim loses phase, not the spectrum (0.08 ~ 3 dB)


def test_mp4_roundtrip_and_bad_files(tmp_path):
  c = synth.generate_clip("impact", 3, synth.SynthSpec(duration_s=2.0, resolution=15))  # odd size
  p = str(tmp_path / "a.mp4")
  media.write_mp4(p, c["video"], c["fps"], c["audio"], c["sr"])
  v, fps, a, sr = media.read_mp4(p)
  assert v.shape == (20, 16, 16, 3) and fps == 10.0 and sr == 16000
  assert np.abs(v[:, :15, :15].astype(int) - c["video"]).mean() < 8
  n = len(c["audio"])
  assert a.shape[0] >= n and np.corrcoef(a[:n], c["audio"])[0, 1] > 0.99  # AAC keeps the timing
  media.write_mp4(str(tmp_path / "silent.mp4"), c["video"], c["fps"])
  with pytest.raises(media.MediaError, match="silent.mp4: no audio track"):
    media.read_mp4(str(tmp_path / "silent.mp4"))
  with open(p, "rb") as f:
    data = f.read()
  (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 3])
  with pytest.raises(media.MediaError, match="trunc.mp4"):
    media.read_mp4(str(tmp_path / "trunc.mp4"))
  (tmp_path / "empty.mp4").write_bytes(b"")
  with pytest.raises(media.MediaError, match="empty.mp4: zero-length"):
    media.read_mp4(str(tmp_path / "empty.mp4"))
