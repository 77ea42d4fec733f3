"""The one place a model is built: `build(model_cfg, io, rngs)` picks the architecture by `model_cfg.name`.

  from syncdpo_jax import config_lib, model
  io = config_lib.model_io(config)                       # latents the data + codec make (model/io.py)
  m = model.build(config.model, io, nnx.Rngs(0), config.parallel)  # parameters allocated
  a = model.build_abstract(config.model, io, config.parallel)      # shapes only: restore targets, plans

Without a dataset, `model.example_io(size)` gives the latents a size preset was designed for. Every part
of the library (training, eval, sampling, sharded init, memory plans, benchmarks) builds through here,
so a new architecture is one registration:

  @model.register("my_model")
  def make_my_model(spec, rngs):
    return MyModel(spec, rngs=rngs)

and `--config.model.name=my_model`. `spec = resolve(model_cfg, io, parallel)` is one frozen view of the
architecture's fields, the derived input fields (video_channels, audio_channels, video_fps, audio_fps,
num_classes, text_dim, T_v, h, w, T_a, text_len) and the parallel section's (remat, attention_impl,
logical_axis_rules; the mesh is the caller's). The module must be called as
`model(video, audio, t_v, t_a, cond) -> (out_video, out_audio)` with latents video [B, T_v, h, w, C_v]
and audio [B, T_a, C_a], t_v / t_a [B] in [0, 1] (0 = clean), cond {'label': [B] int32 (with
num_classes the null class), optional 'text' / 'text_mask'}; the outputs have the latents' shapes and
mean what `objective.prediction` says ('x', 'v' or 'eps'). Its nnx.Param leaves are what the optimizer
trains; give them logical-axis metadata (`sharding_names`, see model/sharding.py) to shard them on a mesh.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import ml_collections
from flax import nnx

from syncdpo_jax.model import config as model_config
from syncdpo_jax.model.io import ModelIO, example_io

Factory = Callable[..., nnx.Module]  # (spec: resolve()'s view, rngs: nnx.Rngs) -> module
_FACTORIES: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
  """Decorator: `factory(spec, rngs)` builds the architecture `model.name = name`."""

  def add(factory: Factory) -> Factory:
    if name in _FACTORIES and _FACTORIES[name] is not factory:
      raise ValueError(f"a model named {name!r} is already registered ({_FACTORIES[name]!r})")
    _FACTORIES[name] = factory
    return factory

  return add


def available() -> tuple[str, ...]:
  return tuple(sorted(_FACTORIES))


def factory(name: str) -> Factory:
  if name not in _FACTORIES:
    raise ValueError(
        f"config.model.name={name!r} is not a registered model; registered: "
        f"{available()}. Register yours with @syncdpo_jax.model.register({name!r}) in a "
        "module the run imports."
    )
  return _FACTORIES[name]


# Fields of config.parallel a module reads; the mesh itself is placed by the caller (sharding.py).
PARALLEL_FIELDS = ("logical_axis_rules", "remat", "attention_impl")


def resolve(model_cfg, io: ModelIO, parallel=None) -> ml_collections.FrozenConfigDict:
  """One frozen view of what builds a model: model_cfg's fields, io's and parallel's (PARALLEL_FIELDS).

  parallel: config.parallel (default: `get_parallel_config()`, one device's settings).
  """
  parallel = model_config.get_parallel_config() if parallel is None else parallel
  model_config.validate_parallel(parallel)
  fields = model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else dict(model_cfg)
  derived = dataclasses.asdict(io)
  derived.update({k: parallel[k] for k in PARALLEL_FIELDS})
  clash = sorted(set(fields) & set(derived))
  if clash:
    raise ValueError(
        f"config.model sets {clash}, which the data + codec (or config.parallel) fix; remove them from "
        "config.model (the model is built for the latents config.data and config.codec make)."
    )
  return ml_collections.FrozenConfigDict({**fields, **derived})


def example_spec(size: str, parallel=None) -> ml_collections.ConfigDict:
  """`resolve` of size preset `size` for the latents it was designed for (`example_io`), as a mutable
  ConfigDict: what a standalone JointDiT takes in notebooks and unit tests (`JointDiT(spec, rngs=...)`)."""
  return resolve(model_config.get_model_config(size), example_io(size), parallel).as_configdict()


def build(model_cfg, io: ModelIO, rngs: nnx.Rngs, parallel=None) -> nnx.Module:
  """The model `model_cfg.name` names, built for latents `io`, with its parameters initialised from `rngs`."""
  make = factory(model_cfg.name)
  return make(resolve(model_cfg, io, parallel), rngs)


def build_abstract(model_cfg, io: ModelIO, parallel=None) -> nnx.Module:
  """The same model with ShapeDtypeStructs for arrays (nothing allocated)."""
  make = factory(model_cfg.name)  # outside eval_shape: a bad name raises as itself
  spec = resolve(model_cfg, io, parallel)
  return nnx.eval_shape(lambda: make(spec, nnx.Rngs(0)))


@register("joint_dit")
def _joint_dit(spec, rngs: nnx.Rngs) -> nnx.Module:
  from syncdpo_jax.model.dit import JointDiT  # local: dit imports sharding, which builds through here

  return JointDiT(spec, rngs=rngs)


@register("ltx2")
def _ltx2(spec, rngs: nnx.Rngs) -> nnx.Module:
  from syncdpo_jax.model.ltx2 import LTX2  # the port of diffusers' LTX2VideoTransformer3DModel

  return LTX2(spec, rngs=rngs)
