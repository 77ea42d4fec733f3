"""Conventional DPO baseline (runs/pairs.py): ranking, the pairs builder and its cost, the DPO step on
explicit losers, and a sample_rank DPO run through the loop."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from syncdpo_jax import codec as codec_lib
from syncdpo_jax import config_lib
from syncdpo_jax.data import pipeline
from syncdpo_jax.model import sharding as sharding_lib
from syncdpo_jax.sample import guided_velocity
from syncdpo_jax.train import checkpoint as ckpt_lib
from syncdpo_jax.runs import pairs as pairs_lib
from syncdpo_jax.train import loop, pair_sources, steps

# The test config on the session's shared SyncBench-Synth build, exactly as the training tests use it.
from test_train import _config  # noqa: E402


def _sample_rank(c, num_pairs, mode="joint"):
  c.dpo.pairs = "sample_rank"
  c.dpo.rank.num_candidates = 2
  c.dpo.rank.num_pairs = num_pairs
  c.dpo.rank.mode = mode
  c.dpo.rank.sample_steps = 1
  return c


# As tests/test_train.py::test_resume_is_exact (num_steps fixes the lr schedule compiled into the step).
_DPO_TRAIN = dict(num_steps=6, checkpoint_every=100)


def _one_device_mesh():
  return sharding_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:1])


@pytest.fixture(scope="module")
def sft_dir(tmp_path_factory):
  """A reference checkpoint for `config.init_from`, as an SFT run writes it (step 0: training it
  would only slow the tests; the pairs need a model to sample from, not a good one)."""
  tmp = tmp_path_factory.mktemp("pairs_sft_init")
  c = _config(tmp)
  setup = loop.build(c, mesh=_one_device_mesh())
  mgr = ckpt_lib.make_manager(str(tmp / "sft"), max_to_keep=1, save_every=1, async_save=False)
  ckpt_lib.save(mgr, 0, setup.state, None, c, force=True)
  mgr.close()
  return str(tmp / "sft")


def test_ranking_picks_best_and_worst():
  nan = float("nan")
  desync = np.array(
      [
          [0.30, 0.05, nan, 0.05],  # tie on |offset| -> AV-Align decides; nan = unscorable
          [0.00, 0.00, 0.00, 0.00],
      ]
  )  # all tied on |offset|; 0 and 2 tied on AV-Align too
  align = np.array([[0.50, 0.20, nan, 0.60], [0.10, 0.90, 0.10, 0.30]])
  np.testing.assert_array_equal(pairs_lib.rank_candidates(desync, align), [[3, 1, 0, 2], [1, 3, 0, 2]])
  best, worst = pairs_lib.best_and_worst(desync, align)
  np.testing.assert_array_equal(best, [3, 1])
  np.testing.assert_array_equal(worst, [2, 2])


def test_pair_order_is_a_seeded_function_of_the_step():
  n, b = 5, 3
  stream = np.concatenate([pairs_lib.pair_batch_indices(n, b, s, seed=7) for s in (1, 2, 3, 4, 5)])
  for epoch in range(3):  # every pair exactly once per epoch, each epoch its own order
    np.testing.assert_array_equal(np.sort(stream[epoch * n : (epoch + 1) * n]), np.arange(n))
  assert not np.array_equal(stream[:n], stream[n : 2 * n])
  np.testing.assert_array_equal(pairs_lib.pair_batch_indices(n, b, 4, seed=7), stream[9:12])
  assert not np.array_equal(pairs_lib.pair_batch_indices(n, b, 1, seed=8), stream[:3])
  assert pairs_lib.pair_batch_indices(2, 8, 1, seed=0).shape == (8,)  # batch larger than the pairs


@pytest.mark.parametrize("mode", ["joint", "v2a", "a2v"])
def test_forward_pass_count_matches_the_sampler(mode):
  """passes_per_velocity agrees with the rows guided_velocity actually sends through the model."""
  for cfg_scale in (1.0, 2.0):
    for sync_cfg, s_v, s_a in ((False, 3.0, 2.0), (True, 3.0, 2.0), (True, 1.0, 2.0), (True, 3.0, 1.0)):
      rows = []

      def model_fn(v, a, tv, ta, c):
        rows.append(v.shape[0])
        return jnp.zeros_like(v), jnp.zeros_like(a)

      guided_velocity(
          model_fn,
          jnp.zeros((1, 2, 1, 1, 1)),
          jnp.zeros((1, 3, 2)),
          0.5,
          {"label": jnp.zeros((1,), jnp.int32)},
          mode=mode,
          cfg_scale=cfg_scale,
          sync_cfg=sync_cfg,
          s_v=s_v,
          s_a=s_a,
          null_label=3,
      )
      scfg = config_lib.get_sample_config()
      scfg.update(mode=mode, cfg_scale=cfg_scale, sync_cfg=sync_cfg, s_v=s_v, s_a=s_a, num_steps=3)
      assert pairs_lib.passes_per_velocity(scfg) == sum(rows), (cfg_scale, sync_cfg, s_v, s_a)
      assert pairs_lib.sampler_forward_passes(scfg, 4) == 4 * 3 * sum(rows)
      scfg.sampler = "heun"
      assert pairs_lib.sampler_forward_passes(scfg, 4) == 4 * 3 * 2 * sum(rows)


def test_build_ranked_pairs_v2a(tmp_path):
  c = _sample_rank(_config(tmp_path, "dpo"), num_pairs=3, mode="v2a")
  c.data.batch_size = 2  # 3 pairs in chunks of 2: the last chunk is padded
  codec = codec_lib.make_codec(c.codec, c.data)
  graphdef, params, rest = nnx.split(config_lib.build_model(c, nnx.Rngs(0)), nnx.Param, ...)
  pairs, cost = pairs_lib.build_ranked_pairs(c, params, graphdef, rest, codec, num_pairs=3, seed=1)

  assert set(pairs) == set(pairs_lib.PAIR_KEYS) and set(cost) == set(pairs_lib.COST_KEYS)
  cond = pairs_lib.load_conditions(c, 3, seed=1)
  real_v = np.asarray(codec.encode_video(jnp.asarray(cond["video"])))
  real_a = np.asarray(codec.encode_audio(jnp.asarray(cond["audio"])))
  for role in ("winner", "loser"):
    # v2a: the real video is the condition; only the audio is sampled.
    np.testing.assert_array_equal(pairs[f"{role}_video"], real_v)
    assert pairs[f"{role}_audio"].shape == real_a.shape
    assert pairs[f"{role}_desync"].shape == (3,) and pairs[f"{role}_desync"].dtype == np.float32
  assert not np.allclose(pairs["winner_audio"], pairs["loser_audio"])  # two different samples
  np.testing.assert_array_equal(pairs["label"], cond["label"])
  assert np.all(pairs["winner_desync"] <= pairs["loser_desync"])
  # K=2 candidates x 1 Euler step x 2 passes (conditional + SyncCFG's static-video pass for the audio).
  assert cost["sampler_forward_passes_per_pair"] == 4
  assert cost["num_pairs"] == 3 and cost["num_candidates"] == 2
  assert cost["seconds_per_pair_sampling"] > 0 and cost["seconds_per_pair_scoring"] > 0
  np.testing.assert_allclose(
      cost["seconds_per_pair"], cost["seconds_per_pair_sampling"] + cost["seconds_per_pair_scoring"]
  )

  rule = pairs_lib.rule_pair_cost(c, batch_size=2, repeats=2)
  assert set(rule) == set(pairs_lib.COST_KEYS)
  assert rule["sampler_forward_passes_per_pair"] == 0 and rule["seconds_per_pair"] > 0


def test_dpo_step_on_explicit_losers_equals_the_rule_step(tmp_path, sft_dir):
  """Given exactly the perturbed negatives as its ranked pairs, the sample_rank step (the RankedPairs
  source) computes the same loss and update as the rules step; only the curriculum is left alone."""
  # The config and mesh of test_train's resume test and of the run below: their compiled steps are
  # shared through the persistent compilation cache.
  c = _config(tmp_path, "dpo", **_DPO_TRAIN)
  c.init_from = sft_dir
  setup = loop.build(c)
  codec = setup.codec
  copy = lambda tree: jax.tree.map(jnp.copy, tree)  # the jitted step donates its state
  ds = pipeline.make_dataset(c.data, c.data.split_train, seed=0, train=True)
  batch = {k: v for k, v in next(iter(ds)).items() if k in setup.pair_source.batch_keys}
  assert (
      "video_context" in batch
  )  # DPO's default: timing rules reading a context (config_lib.timing_negatives)
  with jax.set_mesh(setup.mesh):
    batch = jax.device_put(batch, setup.batch_sharding)
    s1 = setup.state
    for _ in range(2):  # the warm-up's first lr is 0: two steps make policy != reference
      s1, _ = setup.step_fn(copy(s1), batch)
    s_rule, m_rule = setup.step_fn(copy(s1), batch)
    k_neg = steps.dpo_step_keys(s1)[0]
    video_w, audio_w, video_l, audio_l, _ = jax.jit(setup.pair_source.pairs)(
        k_neg, s1.curriculum, batch, None
    )
    # The winners are the middle of the encoded context: the window itself.
    np.testing.assert_allclose(np.asarray(video_w), np.asarray(codec.encode_video(batch["video"])), atol=1e-6)
    # Sampled pairs are fed as latents, winner and loser alike.
    pairs_batch = jax.device_put(
        {
            "video": video_w,
            "audio": audio_w,
            "loser_video": video_l,
            "loser_audio": audio_l,
            "label": batch["label"],
        },
        setup.batch_sharding,
    )
    c_rank = _sample_rank(c.copy_and_resolve_references(), num_pairs=4)
    rank_step = jax.jit(steps.make_dpo_step(setup.graphdef, setup.rest, codec, setup.tx, c_rank))
    s_exp, m_exp = rank_step(copy(s1), pairs_batch)

  assert not (
      np.allclose(np.asarray(video_l), np.asarray(video_w))
      and np.allclose(np.asarray(audio_l), np.asarray(audio_w))
  )  # real negatives
  assert abs(float(m_rule["loss"]) - np.log(2.0)) > 1e-4  # policy != reference: a real comparison
  for k in ("loss", "dpo_loss", "reward_accuracy", "reward_margin", "grad_norm"):
    np.testing.assert_allclose(float(m_exp[k]), float(m_rule[k]), rtol=1e-5, err_msg=k)
  for a, b in zip(jax.tree.leaves(s_rule.params), jax.tree.leaves(s_exp.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=0)
  assert "neg_abs_offset_s" in m_rule and "neg_abs_offset_s" not in m_exp
  assert int(s_rule.curriculum.step) == int(s1.curriculum.step) + 1
  assert int(s_exp.curriculum.step) == int(s1.curriculum.step)

  # A sample_rank step refuses a batch without losers, at trace time.
  with pytest.raises(ValueError, match="loser_video"):
    jax.eval_shape(rank_step, s1, batch)


def test_sample_rank_dpo_run(tmp_path, sft_dir, capsys):
  c = _sample_rank(_config(tmp_path, "dpo", log_every=1, **_DPO_TRAIN), num_pairs=4)
  c.init_from = sft_dir
  workdir = tmp_path / "dpo"
  loop.train(c, str(workdir), stop_after=2)  # 2 steps (num_steps stays that of the shared compile)
  assert "built and saved" in capsys.readouterr().out

  with np.load(workdir / "pairs.npz") as f:
    pairs = dict(f)
  assert set(pairs) == set(pairs_lib.PAIR_KEYS) and pairs["label"].shape == (4,)
  cost = json.loads((workdir / "pairs_cost.json").read_text())
  # Joint SyncCFG: conditional + silent-audio pass + static-video pass = 3 per velocity; K=2, 1 step.
  assert cost["sampler_forward_passes_per_pair"] == 2 * 1 * 3
  rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
  assert [r["step"] for r in rows] == [1, 2]
  assert all(k in rows[-1] for k in ("loss", "reward_accuracy", "reward_margin", "difficulty"))

  # A resumed run loads the saved pairs instead of sampling again (no model needed to load them),
  # and refuses pairs built for another config.dpo.rank.
  batches = pairs_lib.prepare(c, str(workdir), None, None, codec_lib.make_codec(c.codec, c.data), None)
  assert "loaded from" in capsys.readouterr().out
  assert set(batches) == {"video", "audio", "loser_video", "loser_audio", "label"}
  batch = pairs_lib.step_batch(batches, step=3, batch_size=8, seed=c.seed)
  assert batch["loser_video"].shape == (8, *pairs["loser_video"].shape[1:])
  c.dpo.rank.num_candidates = 3
  with pytest.raises(ValueError, match="num_candidates=3"):
    pairs_lib.load_pairs(str(workdir), c)
