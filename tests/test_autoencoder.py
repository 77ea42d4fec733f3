"""The learned video codec: a codec run trains, stores and reloads it; the codec it makes encodes and
decodes frame by frame at the declared layout; SFT trains on its latents; bad checkpoints are refused
by name; the eval's ruler (real clips, gate anchors) does not depend on the model's codec."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from syncdpo_jax import autoencoder
from syncdpo_jax import codec as codec_lib
from syncdpo_jax import config_lib
from syncdpo_jax.runs import generate
from syncdpo_jax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from configs import test as test_config  # noqa: E402


def _config(tmp_path_factory, mode="codec"):
  c = test_config.get_config(mode)
  c.data.data_dir = str(tmp_path_factory.getbasetemp() / "tfds_shared")  # shared with test_train
  ac = c.codec.autoencoder
  ac.channels, ac.width, ac.steps, ac.batch_size, ac.warmup_steps, ac.log_every = 4, 16, 40, 16, 5, 10
  c.eval.num_clips = 4
  return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A codec run of 40 steps on the test dataset's training frames (its workdir, config, metrics)."""
  c = _config(tmp_path_factory)
  w = str(tmp_path_factory.mktemp("codec"))
  final = autoencoder.train(c, w)
  return w, c, final


def test_a_codec_run_learns_and_writes_what_a_user_needs(trained):
  w, c, final = trained
  rows = [json.loads(line) for line in open(os.path.join(w, "metrics.jsonl"))]
  l1 = [r["l1"] for r in rows if "l1" in r]
  assert len(l1) >= 4 and l1[-1] < 0.7 * l1[0], l1  # it learns
  meta = json.load(open(os.path.join(w, "autoencoder", "meta.json")))
  assert np.asarray(meta["latent_std"]).shape == (4,) and min(meta["latent_std"]) > 0
  assert os.path.isfile(os.path.join(w, "reconstructions.png"))
  assert os.path.isdir(os.path.join(w, "tensorboard"))
  # (The gate's position itself is NaN here: 4 eval clips of the test data do not separate its anchors.)
  assert isinstance(final["recon_gate_video"], float) and final["recon_mean_abs_error_levels"] > 0
  # A finished codec run is not retrained.
  assert json.dumps(autoencoder.train(c, w)) == json.dumps(final)


def test_the_codec_encodes_frame_by_frame_at_its_layout(trained):
  w, c, _ = trained
  c = c.copy_and_resolve_references()
  c.codec.name, c.codec.checkpoint = "autoencoder", w
  codec = codec_lib.make_codec(c.codec, c.data)
  codec_lib.check_codec_layout(codec, c.data)
  r = int(c.data.resolution)
  assert codec.layout.video_channels == 4 and codec.layout.spatial_downsample == 4
  assert config_lib.model_io(c).video_channels == 4
  video = jax.random.uniform(jax.random.key(0), (2, 3, r, r, 3), minval=-1, maxval=1)
  z = codec.encode_video(video)
  assert z.shape == (2, 3, r // 4, r // 4, 4)
  # Frame by frame, standardised with the stored per-channel statistics.
  model, stats = autoencoder.load(c.codec, c.data)
  want = (model.encode(video[1, 2][None]) - stats[0]) / stats[1]
  np.testing.assert_allclose(z[1, 2], want[0], rtol=1e-5, atol=1e-5)
  x = codec.decode_video(z)
  assert x.shape == video.shape and float(jnp.max(jnp.abs(x))) <= 1.0
  np.testing.assert_allclose(x[1, 2], jnp.clip(model.decode(want * stats[1] + stats[0])[0], -1, 1), atol=1e-5)
  mel = jnp.zeros((2, 10, int(c.data.n_mels)))
  np.testing.assert_allclose(codec.decode_audio(codec.encode_audio(mel)), mel, atol=1e-6)
  # SyncCFG's silent anchor (sample.silence_value, -1 = -80 dB log-mel) is the standardised silence,
  # as for pixel_mel: with audio_norm set, the raw -1 would be a louder frame than the data's floor.
  c.codec.audio_norm = (-0.4, 0.5)
  codec = codec_lib.make_codec(c.codec, c.data)
  assert generate.silence_latent(codec, -1.0) == pytest.approx(float(codec.encode_audio(jnp.asarray(-1.0))))
  assert generate.silence_latent(codec, -1.0) == pytest.approx(-1.2)


def test_sft_trains_on_the_autoencoder_latents(trained, tmp_path):
  w, _, _ = trained
  c = _config_for_sft(trained)
  c.train.num_steps, c.train.checkpoint_every = 2, 2
  state = loop.train(c, str(tmp_path / "sft"))
  assert int(state.step) == 2
  rows = [json.loads(line) for line in open(tmp_path / "sft" / "metrics.jsonl")]
  assert rows and all(np.isfinite(r["loss"]) for r in rows if "loss" in r)


def _config_for_sft(trained):
  w, c, _ = trained
  c = c.copy_and_resolve_references()
  c.mode = "sft"
  c.codec.name, c.codec.checkpoint = "autoencoder", w
  return c


def test_bad_codec_checkpoints_are_refused_by_name(trained, tmp_path):
  w, c, _ = trained
  c = _config_for_sft(trained)
  c.codec.checkpoint = ""
  with pytest.raises(ValueError, match="config.codec.checkpoint"):
    config_lib.validate(c)
  c.codec.checkpoint = str(tmp_path)
  with pytest.raises(FileNotFoundError, match="config.codec.checkpoint"):
    codec_lib.make_codec(c.codec, c.data)
  c.codec.checkpoint = w
  c.codec.autoencoder.channels = 8
  with pytest.raises(ValueError, match=r"config.codec.autoencoder.*train a codec"):
    codec_lib.make_codec(c.codec, c.data)


def test_the_eval_ruler_is_the_media_whatever_the_codec(trained):
  """The eval's real clips are the media themselves, not their lossy reconstruction."""
  c = _config_for_sft(trained)
  data = generate.load_eval_set(c, 2)
  real = generate.media_clips(c, data)
  np.testing.assert_array_equal(np.stack([r["frames"] for r in real]), generate.to_uint8(data["video"]))
  np.testing.assert_allclose(np.stack([r["mel"] for r in real]), data["audio"], atol=1e-6)


def test_the_network_maps_shapes_as_documented():
  model = autoencoder.VideoAutoencoder(channels=3, width=16, rngs=nnx.Rngs(0))
  x = jnp.zeros((5, 24, 16, 3))
  assert model.encode(x).shape == (5, 6, 4, 3)
  assert model.decode(model.encode(x)).shape == x.shape
  with pytest.raises(ValueError, match="width"):
    autoencoder.VideoAutoencoder(channels=3, width=24, rngs=nnx.Rngs(0))
