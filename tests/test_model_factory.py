"""The model factory: every part of the library builds through it, and a user's own NNX module
trains by registering a name."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from syncdpo_jax import codec as codec_lib
from syncdpo_jax import config_lib, model
from syncdpo_jax.data import pipeline
from syncdpo_jax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from configs import test as test_config  # noqa: E402


class PerCellModel(nnx.Module):
  """A user's architecture: one linear map per latent cell, the label as a bias."""

  def __init__(self, cfg, rngs: nnx.Rngs):
    self.video = nnx.Linear(cfg.video_channels, cfg.video_channels, rngs=rngs)
    self.audio = nnx.Linear(cfg.audio_channels, cfg.audio_channels, rngs=rngs)
    self.label = nnx.Embed(cfg.num_classes + 1, 1, rngs=rngs)

  def __call__(self, video, audio, t_v, t_a, cond):
    bias = self.label(cond["label"])  # [B, 1]
    return (
        self.video(video) + bias[:, None, None, None] * t_v[:, None, None, None, None],
        self.audio(audio) + bias[:, None] * t_a[:, None, None],
    )


@model.register("per_cell_test_model")
def _make(cfg, rngs):
  return PerCellModel(cfg, rngs)


def test_a_registered_model_trains_through_the_loop(tmp_path):
  c = test_config.get_config("sft")
  c.data.data_dir = str(tmp_path.parent / "tfds_shared")
  c.model.name = "per_cell_test_model"
  setup = loop.build(c)
  assert isinstance(nnx.merge(setup.graphdef, setup.state.params, setup.rest), PerCellModel)
  b = next(iter(pipeline.make_dataset(c.data, c.data.split_train, seed=0, train=True)))
  batch = jax.device_put({k: jnp.asarray(b[k]) for k in ("video", "audio", "label")}, setup.batch_sharding)
  state = setup.state
  before = [np.asarray(x) for x in jax.tree.leaves(state.params)]  # the step donates its input
  with jax.set_mesh(setup.mesh):
    for _ in range(3):
      state, m = setup.step_fn(state, batch)
  assert int(state.step) == 3 and np.isfinite(float(m["loss"]))
  assert any(not np.allclose(a, b) for a, b in zip(before, jax.tree.leaves(state.params)))


def test_an_unknown_model_name_names_the_registered_ones():
  c = test_config.get_config("sft")
  c.model.name = "no_such_model"
  with pytest.raises(ValueError, match=r"model.name='no_such_model'.*joint_dit"):
    config_lib.validate(c)


def test_build_abstract_allocates_nothing_and_matches_build():
  cfg, io = model.get_model_config("tiny"), model.example_io("tiny")
  abstract = nnx.state(model.build_abstract(cfg, io), nnx.Param)
  real = nnx.state(model.build(cfg, io, nnx.Rngs(0)), nnx.Param)
  assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(abstract))
  assert [x.shape for x in jax.tree.leaves(abstract)] == [x.shape for x in jax.tree.leaves(real)]


def test_the_model_is_built_for_the_latents_data_and_codec_make():
  """Nothing derived is stored in config.model: the spec a model is built from takes the latents'
  channels, rates, classes and shapes from data + codec, and a config.model that sets one is refused."""
  c = test_config.get_config("sft")
  io = config_lib.model_io(c)
  spec = config_lib.model_spec(c)
  layout = codec_lib.latent_layout(c.codec, c.data)
  assert (spec.video_channels, spec.audio_channels) == (layout.video_channels, layout.audio_channels)
  assert (spec.video_fps, spec.num_classes, spec.remat) == (layout.fps, c.data.num_classes, c.parallel.remat)
  assert (io.T_v, io.T_a) == (round(c.data.window_s * layout.fps), round(c.data.window_s * layout.audio_fps))
  for derived in ("video_channels", "num_classes", "remat"):
    assert derived not in c.model
  c.model.num_classes = 8
  with pytest.raises(ValueError, match=r"config.model sets \['num_classes'\]"):
    config_lib.validate(c)
