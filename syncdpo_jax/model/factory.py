"""The one place a model is built: `build(model_cfg, rngs)` picks the architecture by `model_cfg.name`.

  from syncdpo_jax import model
  m = model.build(config.model, nnx.Rngs(0))      # parameters allocated
  a = model.build_abstract(config.model)          # shapes only (nnx.eval_shape): restore targets, plans

Every part of the library (training, eval, sampling, sharded init, memory plans, benchmarks) builds
through here, so a new architecture is one registration:

  @model.register("my_model")
  def make_my_model(cfg, rngs):
    return MyModel(cfg, rngs=rngs)

and `--config.model.name=my_model`. The module must be called as
`model(video, audio, t_v, t_a, cond) -> (out_video, out_audio)` with latents video [B, T_v, h, w, C_v]
and audio [B, T_a, C_a], t_v / t_a [B] in [0, 1] (0 = clean), cond {'label': [B] int32 (with
cfg.num_classes the null class), optional 'text' / 'text_mask'}; the outputs have the latents' shapes
and mean what `objective.prediction` says ('x', 'v' or 'eps'). Its nnx.Param leaves are what the
optimizer trains; give them logical-axis metadata (`sharding_names`, see model/sharding.py) to shard
them on a mesh. The config fields the data and codec fix (video_channels, audio_channels, video_fps,
audio_fps, num_classes, shapes) are set on `cfg` before `build` sees it.
"""

from __future__ import annotations

from typing import Callable

from flax import nnx

Factory = Callable[..., nnx.Module]  # (model_cfg, rngs: nnx.Rngs) -> module
_FACTORIES: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
  """Decorator: `factory(model_cfg, rngs)` builds the architecture `model.name = name`."""

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


def build(model_cfg, rngs: nnx.Rngs) -> nnx.Module:
  """The model `model_cfg.name` names, with its parameters initialised from `rngs`."""
  return factory(model_cfg.name)(model_cfg, rngs)


def build_abstract(model_cfg) -> nnx.Module:
  """The same model with ShapeDtypeStructs for arrays (nothing allocated)."""
  make = factory(model_cfg.name)  # outside eval_shape: a bad name raises as itself
  return nnx.eval_shape(lambda: make(model_cfg, nnx.Rngs(0)))


@register("joint_dit")
def _joint_dit(model_cfg, rngs: nnx.Rngs) -> nnx.Module:
  from syncdpo_jax.model.dit import JointDiT  # local: dit imports sharding, which builds through here

  return JointDiT(model_cfg, rngs=rngs)
