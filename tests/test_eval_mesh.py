"""Eval and sampling run on the training mesh: the same clips as on one device, from sharded params."""

import json
import os
import sys

import jax
import numpy as np

from syncdpo_jax import codec as codec_lib
from syncdpo_jax import config_lib
from syncdpo_jax.model import sharding as sharding_lib
from syncdpo_jax.runs import evaluate
from syncdpo_jax.runs import generate as generate_lib
from syncdpo_jax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from configs import test as test_config  # noqa: E402

MESH = {"data": 2, "fsdp": 2, "tensor": 2}


def _one_device():
  return sharding_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:1])


def _random_params(params_like, seed=0, scale=0.05):
  """Noise in place of the init (zero heads would make every sampler output the same), placed on the
  shardings `params_like` carries."""
  leaves, tree = jax.tree.flatten(params_like)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  leaves = [
      jax.device_put(scale * jax.random.normal(k, x.shape, x.dtype), x.sharding) for k, x in zip(keys, leaves)
  ]
  return jax.tree.unflatten(tree, leaves)


def test_generate_on_a_2x2x2_mesh_equals_one_device_with_a_padded_batch(tmp_path):
  c = test_config.get_config("eval")
  c.sample.num_steps = 4
  codec = codec_lib.make_codec(c.codec, c.data)
  io = config_lib.model_io(c)
  rng = np.random.default_rng(0)
  # 3 clips: the batch axes (data x fsdp = 4) need one padding example.
  video = rng.standard_normal((3, *io.video_shape)).astype(np.float32)
  audio = rng.standard_normal((3, *io.audio_shape)).astype(np.float32)
  label = np.array([0, 1, 2], np.int32)
  rules = tuple(c.parallel.logical_axis_rules)
  out = {}
  for name, mesh in (("one", _one_device()), ("mesh", sharding_lib.make_mesh(MESH))):
    graphdef, params_like, rest = generate_lib.abstract_model_on_mesh(c, mesh)
    params = _random_params(params_like)
    gen = generate_lib.make_generate(
        graphdef, rest, codec, c.sample, int(c.data.num_classes), c.objective.prediction
    )
    for mode in ("joint", "v2a"):
      out[name, mode] = generate_lib.generate_on_mesh(
          gen, mesh, rules, params, jax.random.key(3), video, audio, label, mode
      )
    if name == "mesh":  # the params really are split: FSDP and tensor-parallel shards
      specs = {str(x.sharding.spec) for x in jax.tree.leaves(params)}
      assert any("fsdp" in sp for sp in specs) and any("tensor" in sp for sp in specs), specs
  for mode in ("joint", "v2a"):
    for a, b in zip(out["one", mode], out["mesh", mode]):
      assert a.shape == b.shape and a.shape[0] == 3
      assert float(np.abs(np.asarray(a)).max()) > 0.1  # not a trivially equal output
      np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=2e-5, rtol=2e-5)


def test_eval_on_8_devices_equals_eval_on_one(tmp_path):
  c = test_config.get_config("sft")
  c.data.data_dir = str(tmp_path.parent / "tfds_shared")
  c.train.num_steps = 2
  loop.train(c, str(tmp_path / "sft"))
  e = test_config.get_config("eval")
  e.data.data_dir = c.data.data_dir
  e.eval.checkpoints = f"sft={tmp_path / 'sft'}"
  e.eval.modes = ("v2a",)
  e.eval.num_clips = e.eval.batch_size = 3
  e.eval.probe_clips = 0
  e.eval.sync_cfg_both = False
  e.sample.num_steps = 2
  e.parallel.mesh = MESH
  reports = {}
  for name, mesh in (("one", _one_device()), ("mesh", None)):  # None: config.parallel.mesh, 8 devices
    evaluate.evaluate(e, str(tmp_path / name), mesh=mesh)
    reports[name] = json.load(open(tmp_path / name / "eval" / "per_clip.json"))
  assert reports["one"].keys() == reports["mesh"].keys()
  for row, metrics in reports["one"].items():
    for m, values in metrics.items():
      np.testing.assert_allclose(reports["mesh"][row][m], values, atol=1e-4, err_msg=f"{row} {m}")
