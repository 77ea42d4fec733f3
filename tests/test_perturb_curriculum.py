"""Tests of the curriculum (syncdpo_jax.perturb.curriculum): each schedule's trajectory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from syncdpo_jax import perturb
from syncdpo_jax.perturb import curriculum


def trajectory(cfg, accuracies):
  """Iterates the jitted update; returns [(step, difficulty, stage, ema)] after each update."""
  upd = jax.jit(lambda s, a: curriculum.update(s, cfg, a))
  state = curriculum.init(cfg)
  out = []
  for acc in accuracies:
    state = upd(state, jnp.float32(acc))
    out.append((int(state.step), float(state.difficulty), int(state.stage), float(state.reward_acc_ema)))
  return state, out


def test_state_is_a_small_pytree_and_update_is_pure():
  cfg = perturb.get_curriculum_config("adaptive")
  state = curriculum.init(cfg)
  leaves = jax.tree.leaves(state)
  assert len(leaves) == 4 and all(x.shape == () for x in leaves)
  assert [x.dtype for x in leaves] == [jnp.int32, jnp.float32, jnp.int32, jnp.float32]
  a = curriculum.update(state, cfg, 0.9)
  b = curriculum.update(state, cfg, 0.9)
  assert jax.tree.all(jax.tree.map(lambda x, y: bool(x == y), a, b))
  assert int(state.step) == 0  # input untouched
  metrics = curriculum.log_metrics(a)
  assert float(metrics["strength"]) == pytest.approx(1.0 - float(metrics["difficulty"]))


def test_fixed_schedule_holds_its_difficulty():
  cfg = perturb.get_curriculum_config("fixed")
  cfg.difficulty = 0.7
  _, traj = trajectory(cfg, [0.0, 1.0, 0.5])
  assert [d for _, d, _, _ in traj] == pytest.approx([0.7] * 3)
  assert [s for _, _, s, _ in traj] == [1, 1, 1]  # 0.5 <= 0.7 < 1.0: the medium stage


def test_linear_schedule_ramps_then_holds():
  cfg = perturb.get_curriculum_config("linear")
  cfg.start_difficulty, cfg.end_difficulty, cfg.ramp_steps = 0.2, 1.0, 4
  assert float(curriculum.init(cfg).difficulty) == pytest.approx(0.2)
  _, traj = trajectory(cfg, [0.5] * 6)
  np.testing.assert_allclose([d for _, d, _, _ in traj], [0.4, 0.6, 0.8, 1.0, 1.0, 1.0], atol=1e-6)
  assert [s for _, _, s, _ in traj] == [0, 1, 1, 2, 2, 2]


def test_staged_schedule_follows_step_boundaries_and_switches_mixes():
  cfg = perturb.get_curriculum_config("staged")
  cfg.stage_boundaries = (2, 4)
  cfg.stage_difficulties = (0.0, 0.4, 0.9)
  state0 = curriculum.init(cfg)
  assert int(state0.stage) == 0 and float(curriculum.strength(state0)) == 1.0
  _, traj = trajectory(cfg, [0.5] * 5)
  assert [s for _, _, s, _ in traj] == [0, 1, 1, 2, 2]
  np.testing.assert_allclose([d for _, d, _, _ in traj], [0.0, 0.4, 0.4, 0.9, 0.9], atol=1e-6)
  mixes = [np.asarray(curriculum.mix_probs(state0.replace(stage=jnp.int32(k)), cfg)) for k in range(3)]
  swap = perturb.kind_index("swap")
  for k, m in enumerate(mixes):
    assert m.shape == (len(perturb.names()),) and m.sum() == pytest.approx(1.0)
    want = np.array([cfg.stage_mixes[k].get(n, 0.0) for n in perturb.names()])
    np.testing.assert_allclose(m, want / want.sum(), rtol=1e-6)
  assert mixes[0][swap] > mixes[1][swap] > mixes[2][swap] == 0.0  # coarse negatives fade out


def test_adaptive_schedule_advances_holds_and_backs_off():
  cfg = perturb.get_curriculum_config("adaptive")
  cfg.ema_decay = 0.5
  cfg.init_reward_accuracy = 0.5
  cfg.advance_threshold, cfg.backoff_threshold = 0.8, 0.6
  cfg.advance_rate, cfg.backoff_rate = 0.1, 0.25
  cfg.start_difficulty, cfg.max_difficulty = 0.0, 0.35
  accs = [1.0] * 6 + [0.7] * 1 + [0.0] * 4
  _, traj = trajectory(cfg, accs)
  emas = [e for _, _, _, e in traj]
  diffs = [d for _, d, _, _ in traj]
  # EMA: 0.75, 0.875, 0.9375, ... -> advance from the 2nd step, capped at max_difficulty.
  np.testing.assert_allclose(emas[:3], [0.75, 0.875, 0.9375])
  np.testing.assert_allclose(diffs[:6], [0.0, 0.1, 0.2, 0.3, 0.35, 0.35], atol=1e-6)
  # acc 0.7: EMA ~0.84 still >= 0.8 -> stays at the cap; then accuracy collapses.
  # EMA 0.425 < 0.6 -> back off 0.25 per step, floored at min_difficulty.
  np.testing.assert_allclose(diffs[6:], [0.35, 0.1, 0.0, 0.0, 0.0], atol=1e-6)
  assert [s for _, _, s, _ in traj] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # 0.35 < 0.5


def test_adaptive_holds_between_thresholds():
  cfg = perturb.get_curriculum_config("adaptive")
  cfg.ema_decay, cfg.init_reward_accuracy, cfg.start_difficulty = 0.0, 0.7, 0.5
  _, traj = trajectory(cfg, [0.7, 0.65, 0.79])
  assert [d for _, d, _, _ in traj] == pytest.approx([0.5, 0.5, 0.5])
  assert [s for _, _, s, _ in traj] == [1, 1, 1]


def test_curriculum_drives_make_negatives_inside_jit():
  """The intended use: strength and mix from the state, negatives built in the same jitted step."""
  cfg = perturb.get_curriculum_config("staged")
  cfg.stage_boundaries = (1, 2)
  fps_v, fps_a = 10.0, 50.0
  video = jax.random.normal(jax.random.key(0), (3, 20, 2, 2, 3))
  audio = jax.random.normal(jax.random.key(1), (3, 100, 4))

  @jax.jit
  def step(state, key):
    vl, al, info = perturb.make_negatives(
        key, video, audio, curriculum.strength(state), fps_v, fps_a, curriculum.mix_probs(state, cfg)
    )
    return curriculum.update(state, cfg, jnp.float32(0.9)), info

  state = curriculum.init(cfg)
  strengths = []
  for i in range(3):
    state, info = step(state, jax.random.key(i))
    strengths.append(np.asarray(info["strength"]))
  np.testing.assert_allclose(np.stack(strengths)[:, 0], [1.0, 0.5, 0.0])


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("schedule", "cosine", "expected one of"),
        ("stage_difficulties", (0.0, 1.0), "stage_difficulties has 2 entries"),
        ("stage_boundaries", (5, 3), "increasing"),
        ("backoff_threshold", 0.9, "backoff_threshold must be < advance_threshold"),
    ],
)
def test_config_errors_name_the_field(field, value, match):
  cfg = perturb.get_curriculum_config("adaptive")
  cfg[field] = value
  with pytest.raises(ValueError, match=match):
    curriculum.init(cfg)


def test_mix_probs_can_use_the_perturb_config_mix():
  cfg = perturb.get_curriculum_config("linear")
  cfg.use_stage_mixes = False
  state = curriculum.init(cfg)
  with pytest.raises(ValueError, match="use_stage_mixes is False"):
    curriculum.mix_probs(state, cfg)
  mix = perturb.probs_from_config(perturb.get_perturb_config("replace_scale"))
  p = np.asarray(curriculum.mix_probs(state, cfg, mix))
  assert {perturb.names()[i] for i in np.nonzero(p)[0]} == {"replace", "scale"}
