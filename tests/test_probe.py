"""The sync-sensitivity probe's mechanics (runs/probe.py): real crops only, one set of draws for every
shift and checkpoint, e(0) - e(0) = 0, deterministic."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from syncdpo_jax import codec as codec_lib
from syncdpo_jax import config_lib
from syncdpo_jax.data import builders, pipeline
from syncdpo_jax.runs import probe
from syncdpo_jax.train import steps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from configs import test as test_config  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  c = test_config.get_config("eval")
  c.data.data_dir = str(tmp_path_factory.getbasetemp() / "tfds_shared")
  c.eval.probe_clips = 3
  builders.build_dataset(c.data)
  return c


def test_shifted_inputs_are_crops_of_the_clip(setup):
  c = setup
  clips = probe.load_probe_clips(c, 3)
  pairs = probe.shifted_pairs(clips, c.data)
  win = int(round(c.data.window_s * c.data.fps))
  for i, ex in enumerate(clips):
    start = min(max(5, (ex["video"].shape[0] - win) // 2), ex["video"].shape[0] - win - 5)
    for j, d in enumerate(probe.DELTAS):
      want = pipeline.crop_window(ex, c.data, start + d, None)
      np.testing.assert_array_equal(pairs["video"][j, i], want["video"])
      np.testing.assert_array_equal(pairs["audio"][j, i], want["audio"])
      # A real crop: its frames are the clip's own frames start + d ... (no padding, no repeats).
      np.testing.assert_array_equal(
          pairs["video"][j, i], ex["video"][start + d : start + d + win].astype(np.float32) / 127.5 - 1
      )
    # The control freezes the first frames of the aligned window and changes nothing else.
    k = probe.CONTROL_FRAMES
    np.testing.assert_array_equal(pairs["control_video"][i, k:], pairs["video"][0, i, k:])
    assert np.all(pairs["control_video"][i, :k] == pairs["video"][0, i, k])


def test_errors_are_deterministic_with_one_set_of_draws(setup):
  c = setup
  codec = codec_lib.make_codec(c.codec, c.data)
  from flax import nnx

  graphdef, params, rest = nnx.split(config_lib.build_model(c, nnx.Rngs(0)), nnx.Param, ...)
  # Off the adaLN-zero init (whose output ignores the input), so the given stream matters.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  params = jax.tree.unflatten(tree, [x + 0.1 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
  apply = steps.make_apply(graphdef, rest, c.objective.prediction)
  p = probe.Probe(c, codec, apply)
  t1, e1 = p.draws["v2a"]
  t2, e2 = probe.probe_draws(
      jax.random.key(int(c.seed) + 17), p.latents["audio"][0].shape, 4, steps.t_kwargs(c.objective)
  )
  np.testing.assert_array_equal(t1, t2)
  np.testing.assert_array_equal(e1, e2)  # fixed by the key alone: every delta and checkpoint
  r1 = p("a", params)
  other = jax.tree.map(lambda x: x * 1.1, params)
  p("b", other)
  assert p.draws["v2a"][0] is t1  # a second checkpoint reuses the draws
  r = r1["a/v2a"]
  assert r["delta_loss"]["0"] == 0.0 and r["num_clips"] == 3
  assert any(v != 0.0 for v in r["delta_loss"].values())  # the shifts change the error
  assert set(r["pair_accuracy"]) == {"1", "2", "3", "5"} and 0 <= r["control_accuracy"] <= 1
  p2 = probe.Probe(c, codec, apply)
  assert p2("a", params)["a/v2a"] == r  # deterministic
  assert p.results["b/v2a"] != r  # and it sees the parameters


def test_summary_reads_a_model_that_prefers_the_aligned_pair():
  d = probe.DELTAS
  e = np.array([[abs(x) * 0.1 + 1.0 for _ in range(4)] for x in d])  # [D, N], lowest at delta 0
  s = probe.summarize(e, np.full(4, 1.0))
  assert s["delta_loss"]["5"] == pytest.approx(0.5) and s["pair_accuracy"]["1"] == 1.0
  assert s["argmin_frames"] == 0.0 and s["argmin_exact"] == 1.0 and s["control_delta_loss"] == 0.0
  tied = probe.summarize(np.ones((len(d), 4)), np.ones(4))  # a model the shift does not touch
  assert tied["argmin_exact"] == 0.0 and tied["argmin_frames"] > 0 and tied["pair_accuracy"]["1"] == 0.0
