"""Real-hardware configs and the memory plan: every preset builds (eval_shape) and fits its target, the
plan's state bytes are those of the real sharded TrainState, the activation estimate matches JAX's
saved residuals and bounds XLA's compiled memory, and splash attention equals the einsum path."""

import dataclasses
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

# Private in jax 0.10.2 (requirements.txt pins it); the public twin only prints.
from jax._src.ad_checkpoint import saved_residuals

from syncdpo_jax import config_lib
from syncdpo_jax.model import example_io, get_model_config, get_parallel_config
from syncdpo_jax.model import layers as L
from syncdpo_jax.model import factory as model_lib
from syncdpo_jax.model.sharding import make_mesh
from syncdpo_jax.train import loop, plan

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from configs import gpu, test as test_config, tpu_pod  # noqa: E402

PRESETS = [(gpu, p) for p in gpu.PRESETS] + [(tpu_pod, p) for p in tpu_pod.PRESETS]


@pytest.mark.parametrize(
    "module,preset", PRESETS, ids=[f"{m.__name__.split('.')[-1]}:{p}" for m, p in PRESETS]
)
def test_preset_builds_and_fits_its_target(module, preset):
  # DPO is the heavier mode (reference params, winner + loser activations): the preset must fit it.
  c = module.get_config(f"{preset},mode=dpo")
  p = plan.make_plan(c)
  assert p.num_devices == c.hardware.num_devices and math.prod(p.mesh.values()) == p.num_devices
  assert all(r.per_device > 0 for r in p.rows), p.format()
  # FSDP x tensor split every large weight. Replicated: small vectors (norms, biases) and, with
  # tensor > 1, the tensor axis of weights with no heads/MLP axis (patch embeds, label table, adaLN
  # offsets: sharded over fsdp only). Measured: < 0.6% extra without tensor parallelism, 2.5% with 4.
  shards = p.mesh["fsdp"] * p.mesh["tensor"]
  extra = 1.01 if p.mesh["tensor"] == 1 else 1.03
  for name in ("params", "optimizer", "reference (DPO)"):
    r = p.row(name)
    assert r.total / shards <= r.per_device <= extra * r.total / shards, (name, r)
  assert p.fits and p.total_per_device <= 0.85 * p.hbm_bytes, p.format()
  assert "FITS" in p.format()


def test_presets_take_options_and_refuse_unknown_ones():
  c = tpu_pod.get_config("v5p-8,size=5b,mode=sft,data=av_folder")
  assert (c.model.size, c.mode, c.data.name, c.codec.name) == ("5b", "sft", "av_folder", "pixel_mel")
  config_lib.validate(c)  # the av_folder layout (pixels, log-mel) is consistent with the model
  assert gpu.get_config("1x80gb").data.name == "precomputed_latents"
  with pytest.raises(ValueError, match="preset"):
    gpu.get_config("2x80gb")
  with pytest.raises(ValueError, match="key=value"):
    tpu_pod.get_config("v6e-256,remat=full")


def _per_device_bytes(tree) -> int:
  """Bytes of `tree`'s real arrays held by the first device."""
  dev = jax.devices()[0]
  return sum(s.data.nbytes for x in jax.tree.leaves(tree) for s in x.addressable_shards if s.device == dev)


def test_plan_state_bytes_equal_the_real_sharded_train_state():
  c = test_config.get_config("dpo")
  c.init_from = "unused: build() does not read it"
  c.train.ema_decay = 0.99
  c.parallel.mesh.update({"data": 2, "fsdp": 2, "tensor": 2})
  p = plan.make_plan(c, num_devices=8)
  state = loop.build(c, mesh=make_mesh(c.parallel.mesh, jax.devices()[:8])).state
  assert p.row("params").per_device == _per_device_bytes(state.params)
  assert p.row("optimizer").per_device == _per_device_bytes(state.opt_state)
  assert p.row("reference (DPO)").per_device == _per_device_bytes(state.ref_params)
  assert p.row("EMA").per_device == _per_device_bytes(state.ema_params)
  # Something really is sharded: a device holds less than the whole.
  assert p.row("params").per_device < p.row("params").total


def _small_model(remat: str):
  model_cfg, parallel = get_model_config("tiny"), get_parallel_config()
  model_cfg.depth, parallel.remat = 2, remat
  io = dataclasses.replace(example_io("tiny"), text_dim=0, T_v=8, h=8, w=8, T_a=40)
  cfg = model_lib.resolve(model_cfg, io, parallel)
  gd, params, rest = nnx.split(model_lib.build_abstract(model_cfg, io, parallel), nnx.Param, ...)
  B, s = 8, cfg
  args = (
      jax.ShapeDtypeStruct((B, s.T_v, s.h, s.w, cfg.video_channels), jnp.float32),
      jax.ShapeDtypeStruct((B, s.T_a, cfg.audio_channels), jnp.float32),
      jax.ShapeDtypeStruct((B,), jnp.float32),
      jax.ShapeDtypeStruct((B,), jnp.int32),
  )

  def loss(params, video, audio, t, label):
    v, a = nnx.merge(gd, params, rest)(video, audio, t, t, {"label": label})
    return jnp.mean(v**2) + jnp.mean(a**2)

  return cfg, B, loss, params, args


def test_saved_activations_are_jax_saved_residuals():
  """The estimate's 'saved' part is what JAX keeps, exactly, under the presets' 'dots_no_batch' (the
  layer-scan carry + every dense output; 'full' keeps the carry alone)."""
  cfg, B, loss, params, args = _small_model("dots_no_batch")
  zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), (params,) + args)
  res = saved_residuals(loss, *zeros)
  # Per-layer residuals come out of the layer scan stacked on a leading [depth] axis.
  stacked = sum(
      math.prod(a.shape) * a.dtype.itemsize
      for a, src in res
      if "argument" not in src and a.shape[:1] == (cfg.depth,)
  )
  assert plan.activation_bytes(cfg, per_device_batch=B)["saved"] == stacked


def test_activation_estimate_bounds_xla_compiled_memory():
  """XLA's buffer assignment for the whole backward stays under the estimate (saved + one layer's
  working set), and the estimate is not more than 1.5x it (it counts the recomputed layer's
  intermediates as all live at once; XLA frees some as it goes)."""
  cfg, B, loss, params, args = _small_model("dots_no_batch")
  # Backend optimisation only changes the generated code, not the buffer assignment; off, the
  # compile is twice as fast.
  compiled = (
      jax.jit(jax.grad(loss))
      .lower(params, *args)
      .compile(
          compiler_options={"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
      )
  )
  temp = compiled.memory_analysis().temp_size_in_bytes
  est = plan.activation_bytes(cfg, per_device_batch=B)
  assert temp <= est["saved"] + est["layer"] <= 1.5 * temp, (temp, est)


def test_splash_attention_equals_xla_sharded_with_key_mask():
  B, Lq, Lk, H, D = 4, 40, 24, 2, 16
  ks = jax.random.split(jax.random.key(0), 4)
  q, k, v = (jax.random.normal(kk, (B, L, H, D)) for kk, L in zip(ks[:3], (Lq, Lk, Lk)))
  key_mask = (jax.random.uniform(ks[3], (B, Lk)) > 0.3).at[:, 0].set(True)

  def value_and_grads(attn):
    return jax.jit(jax.value_and_grad(lambda q, k, v: jnp.sum(jnp.sin(attn(q, k, v))), argnums=(0, 1, 2)))

  ref = value_and_grads(lambda q, k, v: L.attention(q, k, v, key_mask[:, None, None, :], "xla"))(q, k, v)
  # Batch over data x fsdp and heads over tensor: the shard_map path; the Pallas interpreter on CPU.
  with jax.set_mesh(make_mesh({"data": 2, "fsdp": 2, "tensor": 2}, jax.devices()[:8])):
    got = value_and_grads(lambda q, k, v: L.splash_attention(q, k, v, key_mask, interpret=True))(q, k, v)
  # f32 throughout; the kernel's online softmax reorders sums: 1e-5 of values of order 1.
  np.testing.assert_allclose(got[0], ref[0], rtol=1e-5)
  for g, r in zip(got[1], ref[1]):
    np.testing.assert_allclose(g, r, atol=1e-5)


def test_splash_refuses_to_run_off_tpu():
  x = jnp.zeros((1, 8, 2, 8))
  with pytest.raises(ValueError, match="attention_impl='splash'.*TPU"):
    L.attention(x, x, x, None, "splash")
