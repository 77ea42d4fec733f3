"""Mesh, logical-axis rules and sharded init for the joint DiT.

Every parameter is created with logical axis names in its `out_sharding` metadata (e.g. a q kernel is
('embed', 'heads')). A rules table (config `logical_axis_rules`) maps logical names to mesh axes of a
mesh ('data', 'fsdp', 'tensor'). Typical use in a trainer:

    mesh = make_mesh(config.parallel.mesh)
    model = create_sharded_model(config.model, io, mesh, config.parallel, seed=0)
    shardings = state_shardings(nnx.state(model), mesh, config.parallel.logical_axis_rules)
    with jax.set_mesh(mesh):            # activates the block-boundary activation constraints
        step = jax.jit(train_step, in_shardings=..., out_shardings=...)
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")
Rules = Sequence[tuple[str, Any]]

log = logging.getLogger(__name__)


def make_mesh(mesh_cfg: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Builds a `Mesh` with axes ('data', 'fsdp', 'tensor') from `{'data': d, 'fsdp': f, 'tensor': t}`.

  At most one size may be -1 (= all remaining devices). Axis types are Auto so XLA's sharding
  propagation fills in everything between the explicit constraints.
  """
  devices = list(jax.devices() if devices is None else devices)
  sizes = resolve_mesh_shape(mesh_cfg, len(devices))
  shape = tuple(sizes[a] for a in MESH_AXES)
  return jax.make_mesh(shape, MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3, devices=devices)


def resolve_mesh_shape(mesh_cfg: Mapping[str, int], n: int) -> dict[str, int]:
  """`{'data': d, 'fsdp': f, 'tensor': t}` for `n` devices, with a -1 resolved to the rest.

  Pure (no devices needed): the memory plan uses it for a pod this machine does not have.
  """
  sizes = {a: int(mesh_cfg.get(a, 1)) for a in MESH_AXES}
  unknown = set(mesh_cfg.keys()) - set(MESH_AXES)
  if unknown:
    raise ValueError(
        f"mesh config has unknown axes {sorted(unknown)}; expected {MESH_AXES} "
        "(config field parallel.mesh)"
    )
  rest = [a for a, s in sizes.items() if s == -1]
  if len(rest) > 1:
    raise ValueError(f"mesh config {dict(sizes)}: at most one axis may be -1 (config field parallel.mesh)")
  fixed = math.prod(s for s in sizes.values() if s != -1)
  if any(s == 0 or s < -1 for s in sizes.values()):
    raise ValueError(f"mesh config {dict(sizes)}: sizes must be >= 1 or -1 (config field parallel.mesh)")
  if rest:
    if n % fixed:
      raise ValueError(
          f"mesh config {dict(sizes)}: {n} devices are not divisible by the fixed axes "
          f"(product {fixed}); change parallel.mesh"
      )
    sizes[rest[0]] = n // fixed
  if math.prod(sizes.values()) != n:
    raise ValueError(
        f"mesh config {dict(sizes)} needs {math.prod(sizes.values())} devices but {n} "
        "are available; change parallel.mesh (use -1 for 'the rest')"
    )
  return sizes


def _rules_dict(rules: Rules) -> dict[str, tuple[str, ...]]:
  out = {}
  for name, axes in rules:
    if axes is None:
      out[name] = ()
    elif isinstance(axes, str):
      out[name] = (axes,)
    else:
      out[name] = tuple(axes)
  return out


def logical_to_mesh(
    logical_axes: Sequence[str | None],
    rules: Rules,
    mesh_shape: Mapping[str, int] | None = None,
    shape: Sequence[int] | None = None,
) -> PartitionSpec:
  """Maps logical axis names to a `PartitionSpec` with the rules table.

  logical_axes: one name (or None) per array dimension, e.g. ('embed', 'heads').
  mesh_shape: {axis: size}; mesh axes not in it, or of size 1, are dropped. With `shape`, a mesh
    axis that does not divide its dimension is dropped too (that dimension stays replicated;
    `param_table` reports it), and a mesh axis is never used twice in one spec.
  Unknown logical names raise: a typo would otherwise silently replicate a weight.
  """
  table = _rules_dict(rules)
  used: set[str] = set()
  spec = []
  for i, name in enumerate(logical_axes):
    if name is None:
      spec.append(None)
      continue
    if name not in table:
      raise KeyError(
          f"logical axis {name!r} has no rule in parallel.logical_axis_rules " f"(known: {sorted(table)})"
      )
    axes = []
    for ax in table[name]:
      if ax in used:
        continue
      if mesh_shape is not None and mesh_shape.get(ax, 1) == 1:
        continue
      if shape is not None and mesh_shape is not None:
        size = math.prod(mesh_shape[a] for a in axes) * mesh_shape[ax]
        if shape[i] % size:
          continue
      axes.append(ax)
    used.update(axes)
    spec.append(None if not axes else axes[0] if len(axes) == 1 else tuple(axes))
  return PartitionSpec(*spec)


def _var_logical_axes(v: nnx.Variable) -> tuple | None:
  meta = v.get_metadata()
  axes = meta.get("out_sharding")
  return tuple(axes) if axes else None


def state_shardings(state: Any, mesh: Mesh, rules: Rules) -> Any:
  """Pytree of `NamedSharding` with the structure of `state` (an `nnx.State` or any pytree of Variables).

  Variables carrying logical axes get the spec from the rules; anything else is replicated.
  """
  mesh_shape = dict(mesh.shape)

  def one(x):
    if isinstance(x, nnx.Variable):
      axes = _var_logical_axes(x)
      shape = getattr(x.get_value(), "shape", ())
      spec = logical_to_mesh(axes, rules, mesh_shape, shape) if axes else PartitionSpec()
      return x.replace(NamedSharding(mesh, spec))
    return NamedSharding(mesh, PartitionSpec())

  return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def constrain(x: jax.Array, logical_axes: Sequence[str | None], rules: Rules) -> jax.Array:
  """Sharding constraint on an activation by logical names; a no-op without an active mesh.

  The mesh comes from `jax.set_mesh(mesh)` around the jitted call, so the same model code runs
  un-sharded on a laptop and sharded on a pod.
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return x
  spec = logical_to_mesh(logical_axes, rules, dict(mesh.shape), x.shape)
  return jax.lax.with_sharding_constraint(x, spec)


def gather_data_parallel(module: nnx.Module, rules: Rules) -> nnx.Module:
  """A copy of `module` whose weights are constrained to their compute sharding: every mesh axis
  of the 'batch' rule (the data-parallel axes, e.g. 'data' and 'fsdp') is dropped from their
  specs, so FSDP-sharded weights are all-gathered while tensor-parallel axes stay sharded.

  Used on one layer inside the layer scan (ZeRO-3: gather a layer's weights just before it
  runs). A no-op without an active mesh. Variables without logical axes are left alone.
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return module
  data_axes = set(_rules_dict(rules).get("batch", ()))
  compute_rules = [
      (name, tuple(a for a in axes if a not in data_axes)) for name, axes in _rules_dict(rules).items()
  ]

  def one(v):
    axes = _var_logical_axes(v)
    if not axes:
      return v
    value = v.get_value()
    if len(axes) == value.ndim + 1 and axes[0] == "layers":
      axes = axes[1:]  # one layer's slice of a stacked (scanned) weight
    return v.replace(constrain(value, axes, compute_rules))

  graphdef, state = nnx.split(module)
  state = jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))
  return nnx.merge(graphdef, state)


def batch_axes(mesh: Mesh, rules: Rules) -> tuple[str, ...]:
  """The mesh axes the logical 'batch' axis maps to (those the mesh has), in rule order."""
  return tuple(a for a in _rules_dict(rules).get("batch", ()) if a in mesh.shape)


def batch_axes_size(mesh: Mesh, rules: Rules) -> int:
  """How many ways the rules split a batch on `mesh` (the product of `batch_axes`)."""
  return math.prod(mesh.shape[a] for a in batch_axes(mesh, rules))


def batch_sharding(mesh: Mesh, rules: Rules) -> NamedSharding:
  """The sharding of an input batch [B, ...]: its leading axis over `batch_axes`, the rest replicated."""
  axes = batch_axes(mesh, rules)
  return NamedSharding(mesh, PartitionSpec(axes if axes else None))


def check_batch_divides(batch: int, rules: Rules) -> None:
  """Raises if the active mesh's batch axes do not divide `batch` (trace time)."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return
  axes, size = list(batch_axes(mesh, rules)), batch_axes_size(mesh, rules)
  if batch % size:
    raise ValueError(
        f"batch size {batch} is not divisible by the mesh batch axes {axes} "
        f"(product {size}); change the batch size or parallel.mesh "
        f"({', '.join(f'{a}={mesh.shape[a]}' for a in axes)})"
    )


def check_heads_divide(cfg: Any, mesh: Mesh, rules: Rules) -> None:
  """Raises if the mesh axes of logical 'heads' do not divide every stream's head count."""
  table = _rules_dict(rules)
  axes = [a for a in table.get("heads", ()) if a in mesh.shape]
  size = math.prod(mesh.shape[a] for a in axes)
  for field in ("video_heads", "audio_heads", "interaction_heads"):
    if field in cfg and cfg[field] % size:
      raise ValueError(
          f"model.{field}={cfg[field]} is not divisible by the tensor-parallel mesh "
          f"axes {axes} (product {size}); change model.{field} or parallel.mesh.tensor"
      )


def create_sharded_model(cfg: Any, io, mesh: Mesh, parallel=None, seed: int = 0):
  """Builds the model `cfg.name` names for latents `io` with its parameters created in their shards.

  parallel: config.parallel (its logical_axis_rules place the shards; default: one device's settings).
  The init function is jitted with `out_shardings`, so no device (or host) ever holds the full
  parameter set — the only way a 5B model fits when its weights exceed one chip's memory.
  """
  from syncdpo_jax.model import config as config_lib
  from syncdpo_jax.model import factory

  parallel = config_lib.get_parallel_config() if parallel is None else parallel
  rules = tuple(parallel.logical_axis_rules)
  check_heads_divide(cfg, mesh, rules)
  abstract = factory.build_abstract(cfg, io, parallel)
  graphdef, abs_state = nnx.split(abstract)
  shardings = state_shardings(abs_state, mesh, rules)

  @jax.jit
  def init():
    return nnx.state(factory.build(cfg, io, nnx.Rngs(seed), parallel))

  with jax.set_mesh(mesh):
    state = jax.jit(init, out_shardings=shardings)()
  return nnx.merge(graphdef, state)


def _spec_of(value: Any) -> str:
  sh = getattr(value, "sharding", None)
  if isinstance(sh, NamedSharding):
    return str(tuple(sh.spec))
  if sh is None:
    return "-"
  return "replicated" if getattr(sh, "is_fully_replicated", False) else type(sh).__name__


def param_table(model: nnx.Module, large: int = 1 << 20) -> str:
  """Human-readable table: name, shape, logical axes, actual sharding; warns on replicated large weights.

  A weight with >= `large` elements that is fully replicated on a multi-device mesh wastes HBM on
  every chip; such rows are flagged and listed (and logged) at the end.
  """
  rows, warnings_ = [], []
  total = 0
  for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    value = var.get_value()
    name = "/".join(str(p) for p in path)
    shape = tuple(value.shape)
    size = int(np.prod(shape)) if shape else 1
    total += size
    axes = _var_logical_axes(var)
    spec = _spec_of(value)
    sh = getattr(value, "sharding", None)
    replicated = (
        sh is not None
        and getattr(sh, "is_fully_replicated", False)
        and len(getattr(sh, "device_set", ())) > 1
    )
    flag = ""
    if size >= large and replicated:
      flag = "  <-- REPLICATED"
      warnings_.append(
          f"WARNING: {name} {shape} ({size:,} elements) is replicated on every "
          f"device; give it logical axes that map to mesh axes (logical={axes})"
      )
    rows.append((name, str(shape), str(axes), spec, flag))
  w = [max(len(r[i]) for r in rows + [("name", "shape", "logical", "sharding", "")]) for i in range(4)]
  lines = [f"{'name':<{w[0]}}  {'shape':<{w[1]}}  {'logical':<{w[2]}}  {'sharding':<{w[3]}}"]
  lines += [f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]:<{w[3]}}{r[4]}" for r in rows]
  lines.append(f"total params: {total:,}")
  for msg in warnings_:
    log.warning(msg)
  return "\n".join(lines + warnings_)


def replicated_large_params(model: nnx.Module, large: int = 1 << 20) -> list[str]:
  """Names of parameters with >= `large` elements that are fully replicated over >1 device."""
  out = []
  for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    value = var.get_value()
    sh = getattr(value, "sharding", None)
    if value.size >= large and sh is not None and sh.is_fully_replicated and len(sh.device_set) > 1:
      out.append("/".join(str(p) for p in path))
  return out
