"""The LTX-2 port against the reference implementation (diffusers' LTX2VideoTransformer3DModel).

tests/fixtures/ltx2_tiny_<rope>/ holds the reference at a tiny random configuration, its inputs,
outputs and input gradients (tools/make_ltx2_fixture.py writes them in a torch virtualenv; no torch
here). Our converter loads its safetensors; our forward and gradients must match.
"""

import dataclasses
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from syncdpo_jax.convert import ltx2 as convert
from syncdpo_jax.convert import safetensors_io
from syncdpo_jax.model import ltx2 as ltx2_lib
from syncdpo_jax.model import sharding as sharding_lib

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
ROPES = ("interleaved", "split")


def _fixture(rope):
  d = os.path.join(FIXTURES, f"ltx2_tiny_{rope}")
  io = safetensors_io.SafetensorsFolder(os.path.join(d, "io.safetensors"))
  arrays = {k: np.asarray(io.get(k)) for k in io.names()}
  with open(os.path.join(d, "call.json")) as f:
    call = json.load(f)
  return d, arrays, call


def _model_io(d, call):
  ref = convert.read_config(d)
  base = convert.model_io(ref, fps=call["fps"])
  return dataclasses.replace(
      base, T_v=call["num_frames"], h=call["height"], w=call["width"], T_a=call["audio_num_frames"]
  )


def _forward_and_grads(model, x, call):
  """Our model on the fixture's inputs, laid out as the module docstring maps them; the loss is the
  fixture's sum(out * w) and the gradients are w.r.t. the reference's input tensors."""
  B, T, h, w = x["hidden_states"].shape[0], call["num_frames"], call["height"], call["width"]
  graphdef, state = nnx.split(model)
  mask = jnp.asarray(x["encoder_attention_mask"]) > 0

  def loss(hs, ahs, text, atext):
    m = nnx.merge(graphdef, state)
    cond = {"text": text, "audio_text": atext, "text_mask": mask, "audio_text_mask": mask}
    ov, oa = m(hs.reshape(B, T, h, w, -1), ahs, jnp.asarray(x["sigma"]), jnp.asarray(x["audio_sigma"]), cond)
    ov = ov.reshape(B, T * h * w, -1)
    return jnp.sum(ov * x["loss_weight_video"]) + jnp.sum(oa * x["loss_weight_audio"]), (ov, oa)

  names = ("hidden_states", "audio_hidden_states", "encoder_hidden_states", "audio_encoder_hidden_states")
  (value, (ov, oa)), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True))(
      *(jnp.asarray(x[n]) for n in names)
  )
  return {"out_video": ov, "out_audio": oa, **{f"grad_{n}": g for n, g in zip(names, grads)}}


def _max_err(got, x):
  return {k: float(np.max(np.abs(np.asarray(v) - x[k]))) for k, v in got.items()}


@pytest.mark.parametrize("rope", ROPES)
def test_forward_and_input_gradients_equal_the_reference(rope, monkeypatch):
  """Every output and input gradient within 1e-5 of the reference's, given the reference's timestep
  frequencies; ours differ from those by one ulp in a few entries and nowhere else."""
  d, x, call = _fixture(rope)
  _, model = convert.load(d, io=_model_io(d, call))
  ours, theirs = ltx2_lib.TIME_FREQS, x["time_freqs"]
  differ = ours != theirs
  assert 0 < differ.sum() <= 4
  np.testing.assert_array_equal(np.abs(np.nextafter(ours, theirs) - theirs)[differ], 0)  # one ulp each
  # (At t ~ 1000 that ulp moves the embedding by ~3e-5, which the fixture's random weights amplify to
  # ~5e-5 on outputs of ~7: with our own table the port is within 1e-5 of the outputs' scale.)
  monkeypatch.setattr(ltx2_lib, "TIME_FREQS", theirs)
  errs = _max_err(_forward_and_grads(model, x, call), x)
  assert max(errs.values()) <= 1e-5, errs


def test_a_sharded_load_equals_one_device():
  """Every tensor is created on its shards (2x2x2 mesh); the values and the forward are the same."""
  d, x, call = _fixture("split")
  io = _model_io(d, call)
  _, one = convert.load(d, io=io)
  mesh = sharding_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  _, sharded = convert.load(d, io=io, mesh=mesh)
  q = sharded.transformer_blocks.attn1.to_q.kernel.get_value()
  assert q.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor"), q.sharding
  for a, b in zip(jax.tree.leaves(nnx.state(one)), jax.tree.leaves(nnx.state(sharded))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _copy_with(tmp_path, edit):
  d, _, _ = _fixture("split")
  out = tmp_path / "src"
  shutil.copytree(d, out)
  w = safetensors_io.SafetensorsFolder(str(out / safetensors_io.DIFFUSERS_WEIGHTS))
  tensors = {k: np.array(w.get(k)) for k in w.names()}
  del w
  edit(tensors)
  safetensors_io.write(str(out / safetensors_io.DIFFUSERS_WEIGHTS), tensors)
  return str(out)


@pytest.mark.parametrize(
    "edit,says",
    [
        (lambda t: t.update(extra_weight=np.zeros(3, np.float32)), "'extra_weight'"),
        (
            lambda t: t.pop("transformer_blocks.1.ff.net.2.bias"),
            "missing layers of \\['transformer_blocks.ff.fc2.bias'\\]",
        ),
        (lambda t: t.pop("proj_out.bias"), "no tensor for \\['proj_out.bias'\\]"),
        (
            lambda t: t.update({"proj_in.weight": np.zeros((16, 5), np.float32)}),
            "'proj_in.weight' has shape \\(16, 5\\)",
        ),
    ],
)
def test_the_converter_names_what_it_cannot_map(tmp_path, edit, says):
  src = _copy_with(tmp_path, edit)
  ref = convert.read_config(src)
  with pytest.raises(ValueError, match=says):
    convert.convert_params(src, convert.model_config(ref), convert.model_io(ref))


def test_unported_switches_and_bf16_weights(tmp_path):
  d, x, call = _fixture("split")
  ref = convert.read_config(d)
  with pytest.raises(ValueError, match="gated_attn=True is not ported"):
    convert.model_config(dict(ref, gated_attn=True))
  # A bfloat16 checkpoint (what real ones ship in) loads through the same reader, up-cast to f32.
  src = _copy_with(tmp_path, lambda t: t.update({k: v.astype(jnp.bfloat16) for k, v in t.items()}))
  _, model = convert.load(src, io=_model_io(src, call))
  w = np.asarray(model.proj_in.kernel.get_value())
  want = np.asarray(safetensors_io.SafetensorsFolder(d).get("proj_in.weight")).T
  assert w.dtype == np.float32
  np.testing.assert_allclose(w, want, rtol=1e-2)


# ----------------------------------------------------------------------------- training on it


def _tiny(tmp_path, mode="sft", **train):
  from configs import ltx2 as ltx2_config

  c = ltx2_config.get_config(f"tiny,mode={mode}")
  c.data.data_dir = str(tmp_path.parent / "tfds_shared")  # the test data, built once per session
  for k, v in train.items():
    c.train[k] = v
  return c


@pytest.fixture(scope="module")
def converted_dir(tmp_path_factory):
  """`python -m syncdpo_jax.convert ltx2` on the interleaved fixture, for configs/ltx2.py:tiny (the
  fixture is that config's architecture): the checkpoint the DPO tests start from (and the reference)."""
  import subprocess
  import sys

  tmp = tmp_path_factory.mktemp("ltx2_converted")
  d, _, _ = _fixture("interleaved")
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  cmd = [sys.executable, "-m", "syncdpo_jax.convert", "ltx2", f"--src={d}", f"--out={tmp / 'conv'}"]
  cmd += [f"--config={repo}/configs/ltx2.py:tiny", f"--config.data.data_dir={tmp.parent / 'tfds_shared'}"]
  r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=repo)
  assert r.returncode == 0, r.stderr[-3000:]
  return str(tmp / "conv")


@pytest.mark.parametrize("mode", ["sft", "dpo"])
def test_tiny_ltx2_steps_on_8_devices_equal_one(tmp_path, converted_dir, mode):
  """SFT and SyncDPO (rule negatives made in the step) on the tiny LTX-2: a (2, 2, 2) mesh gives the
  one-device losses and parameters."""
  from test_train import _fixed_batch, _one_device_mesh, _run_steps

  from syncdpo_jax.train import loop

  c = _tiny(tmp_path, mode)
  c.init_from = converted_dir if mode == "dpo" else ""
  c.data.batch_size = 4
  batch = _fixed_batch(c)
  single = loop.build(c, mesh=_one_device_mesh(c))
  c.parallel.mesh = {"data": 2, "fsdp": 2, "tensor": 2}
  sharded = loop.build(c)
  s1, l1 = _run_steps(single, batch, 2)
  s8, l8 = _run_steps(sharded, batch, 2)
  assert np.all(np.isfinite(l1)), l1
  np.testing.assert_allclose(l1, l8, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s8.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_a_converted_checkpoint_starts_dpo_which_resumes_exactly(tmp_path, converted_dir):
  """The converter's checkpoint restores bit-exact through --config.init_from (the reference's tensors;
  model.label_text's class tokens, ours, at their init); DPO from it starts with policy == reference
  (loss log 2); 6 steps straight == 3 steps, stop, resume 3 more, on the (2, 2, 2) mesh."""
  from test_train import assert_same_train_state

  from syncdpo_jax import config_lib
  from syncdpo_jax.train import checkpoint as ckpt_lib
  from syncdpo_jax.train import loop

  d, _, _ = _fixture("interleaved")
  c = _tiny(tmp_path, "dpo", checkpoint_every=100, log_every=1)
  c.init_from = converted_dir
  # The 8-device test's sharded DPO config: its compiled step is in the persistent cache by now.
  c.data.batch_size, c.parallel.mesh = 4, {"data": 2, "fsdp": 2, "tensor": 2}
  _, want, _ = convert.convert_params(d, c.model, config_lib.model_io(c), c.parallel)
  got, _ = ckpt_lib.restore_params(c.init_from, want, c)
  _, loaded = convert.load(d, io=config_lib.model_io(c))  # the reference's tensors alone
  ref_leaves = dict(nnx.to_flat_state(nnx.state(loaded, nnx.Param)))
  for path, v in nnx.to_flat_state(got):
    if path[0] == "label_embedding":
      assert path not in ref_leaves
      continue
    np.testing.assert_array_equal(
        np.asarray(v.get_value()), np.asarray(ref_leaves[path].get_value()), err_msg=str(path)
    )

  straight = loop.train(c, str(tmp_path / "straight"))
  loop.train(c, str(tmp_path / "resumed"), stop_after=3)
  resumed = loop.train(c, str(tmp_path / "resumed"))
  assert int(straight.step) == 6
  assert_same_train_state(straight, resumed)
  rows = [json.loads(line) for line in open(tmp_path / "straight" / "metrics.jsonl")]
  np.testing.assert_allclose(rows[0]["loss"], np.log(2.0), rtol=1e-6)


def test_the_converter_refuses_a_run_config_that_does_not_describe_the_checkpoint(tmp_path):
  d, _, _ = _fixture("interleaved")
  c = _tiny(tmp_path, "dpo")
  c.model.num_layers = 3
  with pytest.raises(ValueError, match="config.model.num_layers: checkpoint 2, config 3"):
    convert.write_checkpoint(d, str(tmp_path / "bad"), c)
  # The CLI's default run config (the 19B presets' with the checkpoint's architecture) reads LTX-2's
  # latents, 128 channels each, which this tiny checkpoint does not take.
  with pytest.raises(ValueError, match="128 video / 128 audio channels"):
    convert.write_checkpoint(d, str(tmp_path / "bad"), convert.default_run_config(d))


@pytest.mark.parametrize("preset", ["gpu-8x80gb", "v5p-64"])
def test_the_19b_presets_fit_for_dpo(preset):
  """configs/ltx2.py's real-model presets: `launch/plan.py --config configs/ltx2.py:<preset>,mode=dpo`
  fits (params, AdamW, the DPO reference, gradients and the activation estimate per device)."""
  from configs import ltx2 as ltx2_config

  from syncdpo_jax.train import plan

  p = plan.make_plan(ltx2_config.get_config(f"{preset},mode=dpo"))
  n = p.num_params
  assert 18.5e9 < n < 19.5e9, n  # LTX-2.0: ~19B (14B video + 5B audio stream)
  assert p.row("reference (DPO)").per_device > 0
  assert p.fits and p.total_per_device <= 0.85 * p.hbm_bytes, p.format()  # "FITS", not tight


def test_flops_count_matches_xla_cost_analysis():
  """ltx2.flops_per_example (the loop's MFU numerator) against XLA's count of the compiled forward:
  never above it, and within the elementwise work it leaves out."""
  from syncdpo_jax import config_lib
  from configs import ltx2 as ltx2_config

  c = ltx2_config.get_config("tiny")
  c.model.scan_layers = False  # XLA's cost analysis counts a scan's body once, not once per layer
  spec = config_lib.model_spec(c)
  model = config_lib.build_model(c, nnx.Rngs(0))
  graphdef, state = nnx.split(model)
  io = config_lib.model_io(c)
  args = (jnp.zeros((1, *io.video_shape)), jnp.zeros((1, *io.audio_shape)), jnp.ones((1,)), jnp.ones((1,)))
  cond = {"label": jnp.zeros((1,), jnp.int32)}
  f = jax.jit(lambda st, *a: nnx.merge(graphdef, st)(*a, cond)).lower(state, *args).compile()
  cost = f.cost_analysis()
  xla = (cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"]
  ours = ltx2_lib.flops_per_example(spec, io.T_v, io.h, io.w, io.T_a, text_len=1)
  assert 0.7 * xla <= ours <= xla, (ours, xla)


def test_a_sharded_checkpoint_with_its_index_loads_the_same(tmp_path):
  """save_pretrained's sharded layout (shards + diffusion_pytorch_model.safetensors.index.json) reads
  like the single file; a shard the index names but the folder lacks is an error naming it."""
  d, _, call = _fixture("split")
  w = safetensors_io.SafetensorsFolder(d)
  names = w.names()
  src = tmp_path / "sharded"
  src.mkdir()
  shutil.copy(os.path.join(d, "config.json"), src / "config.json")
  shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
  for f, keys in shards.items():
    safetensors_io.write(str(src / f), {k: np.array(w.get(k)) for k in keys})
  index = {"metadata": {}, "weight_map": {k: f for f, keys in shards.items() for k in keys}}
  with open(src / "diffusion_pytorch_model.safetensors.index.json", "w") as f:
    json.dump(index, f)
  io = _model_io(d, call)
  _, one = convert.load(d, io=io)
  _, sharded = convert.load(str(src), io=io)
  for a, b in zip(jax.tree.leaves(nnx.state(one)), jax.tree.leaves(nnx.state(sharded))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  os.remove(src / "model-00002-of-00002.safetensors")
  with pytest.raises(FileNotFoundError, match="model-00002-of-00002.safetensors"):
    convert.load(str(src), io=io)


def test_remat_and_the_attention_kernel_switch_apply_to_ltx2():
  """parallel.remat checkpoints every layer (traced: cheap); parallel.attention_impl='dot_product_attention'
  gives the 'xla' path's outputs."""
  from configs import ltx2 as ltx2_config

  from syncdpo_jax import config_lib

  outs = {}
  for remat, impl in (("none", "xla"), ("full", "xla"), ("none", "dot_product_attention")):
    c = ltx2_config.get_config("tiny")
    c.parallel.remat, c.parallel.attention_impl = remat, impl
    io = config_lib.model_io(c)
    graphdef, state = nnx.split(config_lib.build_model(c, nnx.Rngs(0)))
    rng = np.random.default_rng(0)
    v = jnp.asarray(rng.standard_normal((2, *io.video_shape)), jnp.float32)
    a = jnp.asarray(rng.standard_normal((2, *io.audio_shape)), jnp.float32)
    t, cond = jnp.array([0.3, 0.8]), {"label": jnp.array([0, 1])}

    def loss(st):
      ov, oa = nnx.merge(graphdef, st)(v, a, t, t[::-1], cond)
      return jnp.sum(ov**2) + jnp.sum(oa**2)

    text = str(jax.make_jaxpr(jax.grad(loss))(state))
    assert (("remat" in text) or ("checkpoint" in text)) == (remat == "full"), remat
    outs[remat, impl] = float(jax.jit(loss)(state))
  np.testing.assert_allclose(outs["none", "dot_product_attention"], outs["none", "xla"], rtol=1e-5)
  np.testing.assert_allclose(outs["full", "xla"], outs["none", "xla"], rtol=1e-6)


def _mem_model(remat: str):
  """A tiny LTX-2 with 512 video tokens (activations dominate) and its backward's inputs."""
  from syncdpo_jax.model import factory, get_parallel_config
  from syncdpo_jax.model.io import ModelIO

  from configs import ltx2 as ltx2_config

  mc = ltx2_config.get_config("tiny").model
  par = get_parallel_config()
  par.remat = remat
  io = ModelIO(48, 16, 10.0, 50.0, 3, 0, T_v=8, h=8, w=8, T_a=40)
  gd, params, rest = nnx.split(factory.build_abstract(mc, io, par), nnx.Param, ...)
  B = 8
  f32 = jnp.float32
  args = (
      jax.ShapeDtypeStruct((B, *io.video_shape), f32),
      jax.ShapeDtypeStruct((B, *io.audio_shape), f32),
      jax.ShapeDtypeStruct((B,), f32),
      jax.ShapeDtypeStruct((B,), jnp.int32),
  )

  def loss(params, v, a, t, label):
    ov, oa = nnx.merge(gd, params, rest)(v, a, t, t, {"label": label})
    return jnp.mean(ov**2) + jnp.mean(oa**2)

  return factory.resolve(mc, io, par), B, loss, params, args


@pytest.mark.parametrize("remat", ["full", "dots_no_batch"])
def test_the_activation_estimate_is_what_jax_saves_and_bounds_xla(remat):
  """The plan's LTX-2 estimate: its 'saved' part equals JAX's saved residuals exactly under the presets'
  policies, and XLA's buffer assignment for the backward stays under saved + one layer's working set,
  which is not more than 1.5x it (measured: 'full' 89 MB vs 101, 'dots_no_batch' 92 vs 108)."""
  import math

  from jax._src.ad_checkpoint import saved_residuals  # private in jax 0.10.2; as test_scale_configs

  spec, B, loss, params, args = _mem_model(remat)
  zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), (params,) + args)
  stacked = sum(
      math.prod(a.shape) * a.dtype.itemsize
      for a, src in saved_residuals(loss, *zeros)
      if "argument" not in src and a.shape[:1] == (spec.num_layers,)
  )
  est = ltx2_lib.activation_bytes(spec, per_device_batch=B)
  assert est["saved"] == stacked
  opts = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
  temp = (
      jax.jit(jax.grad(loss))
      .lower(params, *args)
      .compile(compiler_options=opts)
      .memory_analysis()
      .temp_size_in_bytes
  )
  assert temp <= est["saved"] + est["layer"] <= 1.5 * temp, (temp, est)
