"""The shortcut audit: single-stream statistics, AUCs and the probe see artefacts and only artefacts."""

import jax
import numpy as np
import pytest

from syncdpo_jax.perturb import audit

FPS_V, FPS_A = 10.0, 50.0


def _clips(seed, b=160, t_v=20, t_a=100):
  """Smooth random streams (random walks: every frame differs from the last, as in real clips)."""
  rng = np.random.default_rng(seed)
  video = np.cumsum(rng.standard_normal((b, t_v, 2, 2, 3)), axis=1) * 0.1
  audio = np.cumsum(rng.standard_normal((b, t_a, 4)), axis=1) * 0.1
  return video.astype(np.float32), audio.astype(np.float32)


def test_auc_and_separation_known_values():
  assert audit.auc([2, 3, 4], [0, 1]) == 1.0 and audit.auc([0, 1], [2, 3, 4]) == 0.0
  assert audit.auc([1, 1], [1, 1]) == 0.5  # ties count half
  assert audit.auc([1, 3], [2, 0]) == 0.75
  assert audit.separation([0, 1], [2, 3, 4]) == 1.0


def test_statistics_see_repeats_silence_and_splices():
  _, audio = _clips(0, b=2)
  frozen = audio.copy()
  frozen[0, 50:] = frozen[0, 49]  # a frozen tail: exact repeats
  frozen[1, :10] = audio[1].min() - 1.0  # frames below anything in the clip
  s, f = audit.stream_statistics(audio), audit.stream_statistics(frozen)
  col = {k: i for i, k in enumerate(audit.STATISTICS)}
  assert s[0, col["repeats"]] == 0 and f[0, col["repeats"]] == pytest.approx(50 / 99)
  assert f[1, col["min_level"]] < s[1, col["min_level"]] - 0.5
  assert f[1, col["max_jump"]] > 3 * s[1, col["max_jump"]]  # the jump into and out of the silence


def test_probe_is_at_chance_between_real_clips_and_catches_an_artefact():
  video_w, audio_w = _clips(1)
  _, audio_other = _clips(2)
  chance = audit.probe_auc(audit.stream_statistics(audio_w), audit.stream_statistics(audio_other))
  assert chance < 0.6, chance
  # Shift with silence padding writes frames quieter than the clip: one statistic alone finds them.
  r = audit.audit_rule(
      "shift",
      jax.random.key(0),
      video_w,
      audio_w,
      1.0,
      FPS_V,
      FPS_A,
      {"shift": {"modality": "audio", "pad": "silence"}},
  )
  assert r["stream"] == "audio" and r["changed"] == 1.0
  assert r["max_auc"] > 0.95 and r["probe_auc"] > 0.95, r
  # Swap takes another real clip's audio: nothing in the audio alone gives it away.
  r = audit.audit_rule("swap", jax.random.key(0), video_w, audio_w, 1.0, FPS_V, FPS_A)
  assert r["max_auc"] < 0.6 and r["probe_auc"] < 0.6, r


@pytest.mark.parametrize("strength", [1.0, 0.0])
def test_timing_rules_with_context_sit_at_chance_and_the_bare_window_does_not(strength):
  """perturb.TIMING_RULES with a context (the clip cropped 0.5 s wider on each side): one stream alone
  cannot tell the loser, at the coarse and the subtle end. Without a context Shift pads with silence
  and is caught (the same clips, the same key): the context is what removes the cue."""
  from syncdpo_jax import perturb

  m_v, m_a = 5, 25
  video_c, audio_c = _clips(3, t_v=20 + 2 * m_v, t_a=100 + 2 * m_a)
  video, audio = video_c[:, m_v:-m_v], audio_c[:, m_a:-m_a]
  context = {"video": video_c, "audio": audio_c}
  assert perturb.TIMING_RULES
  for name in perturb.TIMING_RULES:
    r = audit.audit_rule(name, jax.random.key(0), video, audio, strength, FPS_V, FPS_A, None, context)
    assert r["changed"] == 1.0
    assert r["max_auc"] < 0.6 and r["probe_auc"] < 0.6, (name, r)
  bare = audit.audit_rule("shift", jax.random.key(0), video, audio, strength, FPS_V, FPS_A)
  assert bare["max_auc"] > 0.9, bare
