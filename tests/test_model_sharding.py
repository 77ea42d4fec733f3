"""Sharding tests on 8 virtual CPU devices: mesh (data=2, fsdp=2, tensor=2) matches one device."""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from syncdpo_jax.model import (
    JointDiT,
    create_sharded_model,
    example_io,
    example_spec,
    get_model_config,
    get_parallel_config,
    logical_to_mesh,
    make_mesh,
    param_table,
    replicated_large_params,
    state_shardings,
)
from syncdpo_jax.model.config import DEFAULT_RULES
from test_model_dit import inputs, randomize

MESH = {"data": 2, "fsdp": 2, "tensor": 2}


def test_make_mesh_fills_the_rest():
  mesh = make_mesh({"data": -1, "fsdp": 2, "tensor": 2})
  assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
  with pytest.raises(ValueError, match="parallel.mesh"):
    make_mesh({"data": 3, "fsdp": 1, "tensor": 1})
  with pytest.raises(ValueError, match="at most one"):
    make_mesh({"data": -1, "fsdp": -1, "tensor": 1})


def test_logical_to_mesh_rules():
  shape = {"data": 2, "fsdp": 2, "tensor": 2}
  assert logical_to_mesh(("embed", "heads"), DEFAULT_RULES, shape, (32, 32)) == P("fsdp", "tensor")
  assert logical_to_mesh(("batch", "length", "act_embed"), DEFAULT_RULES, shape, (4, 7, 8)) == P(
      ("data", "fsdp"), None, None
  )
  # A dimension the mesh axis does not divide stays replicated instead of failing to compile.
  assert logical_to_mesh(("embed", "heads"), DEFAULT_RULES, shape, (5, 32)) == P(None, "tensor")
  with pytest.raises(KeyError, match="logical_axis_rules"):
    logical_to_mesh(("embedd",), DEFAULT_RULES, shape, (4,))


def _loss_fn(graphdef, video, audio, t_v, t_a, cond):
  def loss(state):
    vv, va = nnx.merge(graphdef, state)(video, audio, t_v, t_a, cond)
    return jnp.mean(jnp.sin(vv)) + jnp.mean(jnp.cos(va)), (vv, va)

  return loss


@pytest.mark.parametrize("scan_layers", [True, False])
def test_sharded_forward_and_grad_match_single_device(scan_layers):
  cfg = example_spec("tiny")
  cfg.scan_layers = scan_layers
  mesh = make_mesh(MESH)
  rules = cfg.logical_axis_rules
  # Weights of std 0.05 keep activations O(1), so 1e-5 is a statement about f32 reduction order
  # across shards rather than about the size of the numbers.
  model = randomize(JointDiT(cfg, rngs=nnx.Rngs(0)), scale=0.05)
  graphdef, state = nnx.split(model)
  video, audio, cond = inputs(cfg, B=4)
  t_v, t_a = jnp.array([0.1, 0.5, 0.9, 0.0]), jnp.array([0.0, 0.7, 0.2, 1.0])
  args = (video, audio, t_v, t_a, cond)

  def step(state, *a):
    (l, out), g = jax.value_and_grad(_loss_fn(graphdef, *a), has_aux=True)(state)
    return l, out, g

  ref = jax.jit(step)(state, *args)

  shardings = state_shardings(state, mesh, rules)
  batch = NamedSharding(mesh, P(("data", "fsdp")))
  with jax.set_mesh(mesh):
    s_state = jax.device_put(state, shardings)
    s_args = jax.device_put(args, batch)
    got = jax.jit(step, in_shardings=(shardings,) + (batch,) * 5, out_shardings=(None, None, shardings))(
        s_state, *s_args
    )
  for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(got)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-5, rtol=1e-5)
  assert float(jnp.abs(ref[1][0]).max()) > 1e-2 and float(jnp.abs(ref[1][1]).max()) > 1e-2
  # The gradient comes back with the parameter shardings (what an optimizer update needs).
  if scan_layers:  # stacked [depth, D, D]: the 'layers' axis is replicated
    g_q = got[2]["blocks"]["video"]["self_attn"]["q"]["kernel"]
    assert g_q.get_value().sharding.spec == P(None, "fsdp", "tensor")
  else:
    g_q = got[2]["blocks"][0]["video"]["self_attn"]["q"]["kernel"]
    assert g_q.get_value().sharding.spec == P("fsdp", "tensor")


def test_create_sharded_model_inits_in_shards_and_large_weights_are_sharded():
  cfg = get_model_config("tiny")
  mesh = make_mesh(MESH)
  model = create_sharded_model(cfg, example_io("tiny"), mesh, seed=0)
  ref = JointDiT(example_spec("tiny"), rngs=nnx.Rngs(0))
  for (p, a), (_, b) in zip(nnx.to_flat_state(nnx.state(model)), nnx.to_flat_state(nnx.state(ref))):
    np.testing.assert_allclose(
        np.asarray(a.get_value()), np.asarray(b.get_value()), atol=1e-6, err_msg=str(p)
    )
  # Blocks are stacked on a leading, replicated 'layers' axis (cfg.scan_layers).
  q = model.blocks.video.self_attn.q.kernel
  assert q.get_metadata()["out_sharding"] == ("layers", "embed", "heads")
  q = q.get_value()
  assert q.sharding.spec == P(None, "fsdp", "tensor")
  assert q.addressable_shards[0].data.shape == (cfg.depth, cfg.video_dim // 2, cfg.video_dim // 2)
  fc1 = model.blocks.audio.fc1.kernel.get_value()
  assert fc1.sharding.spec == P(None, "fsdp", "tensor")
  # Every weight of >= 1024 elements (all matmul kernels of the tiny model) is sharded.
  assert replicated_large_params(model, large=1024) == []
  table = param_table(model, large=1024)
  assert "blocks/video/self_attn/q/kernel" in table and "('layers', 'embed', 'heads')" in table
  assert "REPLICATED" not in table


def test_param_table_warns_on_replicated_large_weights():
  parallel = get_parallel_config()
  parallel.logical_axis_rules = tuple(
      (name, None) for name, _ in parallel.logical_axis_rules
  )  # all replicated
  model = create_sharded_model(
      get_model_config("tiny"), example_io("tiny"), make_mesh(MESH), parallel, seed=0
  )
  table = param_table(model, large=1024)
  assert "WARNING" in table and "REPLICATED" in table
  assert "blocks/video/self_attn/q/kernel" in replicated_large_params(model, large=1024)


def test_mesh_must_divide_batch_and_heads():
  cfg = example_spec("tiny")
  mesh = make_mesh(MESH)
  model = JointDiT(cfg, rngs=nnx.Rngs(0))
  video, audio, cond = inputs(cfg, B=2)  # batch 2 over data*fsdp = 4 devices
  t = jnp.zeros(2)
  with jax.set_mesh(mesh), pytest.raises(ValueError, match="parallel.mesh"):
    jax.eval_shape(lambda: model(video, audio, t, t, cond))
  c = get_model_config("tiny")
  c.video_heads = 1
  with pytest.raises(ValueError, match="video_heads"):
    create_sharded_model(c, example_io("tiny"), mesh)
