"""Latent codecs and precomputed latents: stored latents equal the codec's encoding of the pixels, the
pipeline crops the same windows from them, SFT from latents equals SFT from pixels, a Flax VAE slots in."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from syncdpo_jax import codec as codec_lib
from syncdpo_jax import config_lib
from syncdpo_jax.data import builders, pipeline, precompute
from syncdpo_jax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from configs import test as test_config  # noqa: E402

# float16 keeps 11 significant bits: rounding a value in [-1, 1] moves it by at most 2^-12.
F16_ERR = 2.0**-12


def _config(tmp_path_factory, **data):
  c = test_config.get_config("sft")
  c.data.data_dir = str(tmp_path_factory.getbasetemp() / "tfds_shared")  # shared with test_train
  c.data.update(data)
  return c


def _on_latents(c, out_dir, name):
  c = c.copy_and_resolve_references()
  c.data = precompute.latent_data_config(c.data, out_dir, name)
  c.codec.name, c.codec.decoder = "precomputed", "pixel_mel"
  return c


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
  """pixel_mel latents (+ caption embeddings) of the 9 train clips of the test dataset, written once."""
  c = _config(tmp_path_factory)
  out = str(tmp_path_factory.mktemp("latents"))
  builder = precompute.precompute(c, out, splits=["train"], text_dim=8, text_len=4)
  return c, out, builder


def test_stored_latents_are_the_encoded_clips(stored):
  c, _, builder = stored
  codec = codec_lib.make_codec(c.codec, c.data)
  src = builders.build_dataset(c.data).as_data_source(split="train")
  lat = builder.as_data_source(split="train")
  assert len(lat) == len(src) == 9
  for i in range(len(src)):
    ex, st = src[i], lat[i]
    assert st["clip_id"] == ex["clip_id"]  # the source's order: same shuffles for the same seed
    video, mel, _, _ = precompute.clip_media(ex, c.data)
    want_v = np.asarray(codec.encode_video(video[None])[0])
    # Whole 2 s clips: 20 frames of 4x4x48 at 10 fps, 100 log-mel frames at 50 fps.
    assert st["video_latent"].dtype == np.float16 and st["video_latent"].shape == (20, 4, 4, 48)
    assert st["audio_latent"].shape == (100, 16)
    np.testing.assert_array_equal(st["video_latent"], want_v.astype(np.float16))
    np.testing.assert_allclose(st["video_latent"].astype(np.float32), want_v, rtol=0, atol=F16_ERR)
    np.testing.assert_allclose(st["audio_latent"].astype(np.float32), mel, rtol=0, atol=F16_ERR)
    np.testing.assert_array_equal(st["event_times"], ex["event_times"])
    emb, mask = precompute.hash_text_embedding(ex["caption"].decode(), 4, 8)
    np.testing.assert_array_equal(st["caption_embedding"], emb.astype(np.float16).reshape(-1))
    np.testing.assert_array_equal(st["caption_mask"], mask)
  # A second call with the same settings reuses the dataset; other settings under its name are refused.
  assert (
      precompute.precompute(c, builder.data_dir_root, splits=["train"], text_dim=8, text_len=4).data_dir
      == builder.data_dir
  )
  with pytest.raises(ValueError, match="other settings"):
    precompute.precompute(c, builder.data_dir_root, splits=["train"], text_dim=0)


def test_pipeline_crops_the_same_windows_as_on_pixels(stored, tmp_path_factory):
  c_pix, out, builder = stored  # a 1 s window inside the 2 s stored clips
  c_lat = _on_latents(c_pix, out, builder.builder_config.name)
  codec = codec_lib.make_codec(c_pix.codec, c_pix.data)
  for train in (True, False):
    bp = next(iter(pipeline.make_dataset(c_pix.data, "train", seed=3, train=train)))
    bl = next(iter(pipeline.make_dataset(c_lat.data, "train", seed=3, train=train)))
    assert bl["video"].shape == (8, 10, 4, 4, 48) and bl["audio"].shape == (8, 50, 16)
    assert bl["text"].shape == (8, 4, 8) and bl["text_mask"].shape == (8, 4)
    for k in ("label", "events", "event_kinds"):
      np.testing.assert_array_equal(bl[k], bp[k])
    np.testing.assert_array_equal(bl["video"], np.asarray(codec.encode_video(bp["video"])).astype(np.float16))
    # Audio frames whose STFT (n_fft=1024, hop=320, centred) lies inside the window match up to float16
    # rounding (+ float32 noise of the STFT run on other frame batches, ~1e-6); frames 0, 1 and 49 saw
    # the clip around the window where the pixel pipeline's window-local log-mel saw zeros.
    np.testing.assert_allclose(bl["audio"][:, 2:49], bp["audio"][:, 2:49], rtol=0, atol=F16_ERR + 1e-5)
    assert np.abs(bl["audio"][:, :2] - bp["audio"][:, :2]).max() > 10 * F16_ERR  # the edge, as documented


def test_the_eval_ruler_on_precomputed_latents_decodes_them(stored):
  """An eval set of stored latents holds no media: its real clips are the stored latents decoded (what
  the pixels encode to, to float16 rounding), not the latents run through the pixel codec."""
  from syncdpo_jax.runs import generate

  c_pix, out, builder = stored
  c_lat = _on_latents(c_pix, out, builder.builder_config.name)
  real_lat = generate.media_clips(c_lat, generate.load_eval_set(c_lat, 2, split="train"))
  real_pix = generate.media_clips(c_pix, generate.load_eval_set(c_pix, 2, split="train"))
  for a, b in zip(real_lat, real_pix):
    assert a["frames"].shape == b["frames"].shape
    assert np.abs(a["frames"].astype(int) - b["frames"].astype(int)).max() <= 1  # float16, then uint8


def test_sft_from_latents_equals_sft_from_pixels(tmp_path_factory, tmp_path):
  # The window is the whole 2 s clip, so latents and pixels hold the same content (no window-edge
  # difference); 5 fps video and 25 fps audio keep the model's shapes those of the test config.
  c_pix = _config(tmp_path_factory, window_s=2.0, fps=5.0, hop=640)
  c_pix.train.num_steps, c_pix.train.log_every, c_pix.train.checkpoint_every = 2, 1, 100
  out = str(tmp_path / "latents")
  builder = precompute.precompute(c_pix, out, splits=["train"])
  c_lat = _on_latents(c_pix, out, builder.builder_config.name)
  assert c_lat.model.to_dict() == c_pix.model.to_dict()
  loop.train(c_lat, str(tmp_path / "run"))
  on_latents = [json.loads(l)["loss"] for l in open(tmp_path / "run" / "metrics.jsonl")]
  assert len(on_latents) == 2 and np.all(np.isfinite(on_latents))

  # Training from pixels with the same seed: the pixel pipeline's batches, encoded as the pixel run's
  # step encodes them (space-to-depth, a bit-exact reshape), through the step loop.train compiled above
  # (a persistent-cache hit: a second compile would double this test's time).
  setup = loop.build(c_lat)
  pixel_codec = codec_lib.make_codec(c_pix.codec, c_pix.data)
  data = iter(pipeline.make_dataset(c_pix.data, c_pix.data.split_train, seed=c_pix.seed, train=True))
  state, on_pixels = setup.state, []
  for _ in range(2):
    b = next(data)
    b = dict(video=np.asarray(pixel_codec.encode_video(b["video"])), audio=b["audio"], label=b["label"])
    with jax.set_mesh(setup.mesh):
      state, m = setup.step_fn(state, pipeline.make_global_batch(b, setup.batch_sharding))
    on_pixels.append(float(m["loss"]))
  # The only difference is float16 storage: inputs move by at most 2^-12. At step 1 the zero-initialised
  # heads predict 0, so each mse is mean((eps - x0)^2) (~1 or more) and moves by at most
  # 2^-11 * mean|eps - x0| + 2^-24 <= 2^-11 * sqrt(mse): < 5e-4 relative. Step 2 follows Adam's first
  # update (~lr * sign(grad)), where a near-zero gradient component may flip sign: 1e-3 relative there
  # (measured: 1e-5 at both steps).
  np.testing.assert_allclose(on_latents[0], on_pixels[0], rtol=5e-4)
  np.testing.assert_allclose(on_latents[1], on_pixels[1], rtol=1e-3)


# ------------------------------------------------------------------------------------ flax_vae


class _Encoder(nnx.Module):
  """A strided conv: the shape of a VAE encoder (random weights: plumbing, not a trained codec)."""

  def __init__(self, cin, cout, stride, rngs):
    self.conv = nnx.Conv(cin, cout, stride, strides=stride, padding="VALID", rngs=rngs)

  def __call__(self, x):
    return self.conv(x)


class _Decoder(nnx.Module):

  def __init__(self, cin, cout, stride, rngs):
    self.conv = nnx.ConvTranspose(cin, cout, stride, strides=stride, padding="VALID", rngs=rngs)

  def __call__(self, x):
    return self.conv(x)


def toy_vae(codec_cfg, data_cfg):
  """config.codec.factory for the test: video /2 in time, /4 in space, 8 channels; audio /2, 6 channels."""
  r = nnx.Rngs(0)
  s, st, sa = codec_cfg.spatial_downsample, codec_cfg.temporal_downsample, codec_cfg.audio_temporal_downsample
  return dict(
      video_encoder=_Encoder(3, 8, (st, s, s), r),
      video_decoder=_Decoder(8, 3, (st, s, s), r),
      audio_encoder=_Encoder(data_cfg.n_mels, 6, (sa,), r),
      audio_decoder=_Decoder(6, data_cfg.n_mels, (sa,), r),
  )


def _vae_config(tmp_path_factory):
  c = _config(tmp_path_factory, window_s=2.0)  # 10 video / 50 audio latent frames in a window
  c.codec.update(
      name="flax_vae",
      factory=f"{__name__}:toy_vae",
      video_channels=8,
      audio_channels=6,
      spatial_downsample=4,
      temporal_downsample=2,
      audio_temporal_downsample=2,
  )
  return c


def test_flax_vae_codec_plumbing(tmp_path_factory):
  c = _vae_config(tmp_path_factory)
  codec = codec_lib.make_codec(c.codec, c.data)
  assert (codec.fps, codec.audio_fps, codec.temporal_downsample, codec.spatial_downsample) == (5, 25, 2, 4)
  io = config_lib.model_io(c)  # the model is built for what the codec makes
  assert (io.video_channels, io.audio_channels, io.video_fps, io.audio_fps) == (8, 6, 5.0, 25.0)
  assert (io.T_v, io.h, io.T_a) == (10, 4, 50)
  v = jnp.zeros((2, 20, 16, 16, 3))
  lv, la = codec.encode_video(v), codec.encode_audio(jnp.zeros((2, 100, 16)))
  assert lv.shape == (2, 10, 4, 4, 8) and la.shape == (2, 50, 6)
  assert codec.decode_video(lv).shape == v.shape and codec.decode_audio(la).shape == (2, 100, 16)
  # The config must say what the VAE produces; a wrong number is refused before anything runs.
  c.codec.video_channels = 16
  with pytest.raises(ValueError, match="config.codec.video_channels"):
    codec_lib.make_codec(c.codec, c.data)


def test_flax_vae_latents_are_stored_and_cropped_at_their_rates(tmp_path_factory):
  c = _vae_config(tmp_path_factory)
  out = str(tmp_path_factory.mktemp("vae_latents"))
  builder = precompute.precompute(c, out, splits=["val"])
  c_lat = c.copy_and_resolve_references()
  c_lat.data = precompute.latent_data_config(c.data, out, builder.builder_config.name)
  c_lat.codec.name = "precomputed"
  c_lat.data.window_s = 1.0
  codec = codec_lib.make_codec(c_lat.codec, c_lat.data)
  b = next(iter(pipeline.make_dataset(c_lat.data, "val", seed=0, train=True)))
  assert b["video"].shape == (8, 5, 4, 4, 8) and b["audio"].shape == (8, 25, 6) and "text" not in b
  assert codec.encode_video(b["video"]) is b["video"]
  with pytest.raises(ValueError, match="config.codec.decoder"):
    codec.decode_video(b["video"])
  # A model built for another layout than the stored one is refused, naming the fields.
  c_lat.codec.temporal_downsample = 1
  with pytest.raises(ValueError, match="temporal_downsample"):
    codec_lib.make_codec(c_lat.codec, c_lat.data)


def test_latent_config_errors_name_the_fields(tmp_path_factory):
  c = _config(tmp_path_factory)
  c.codec.name = "precomputed"
  with pytest.raises(ValueError, match="precomputed_latents"):
    config_lib.validate(c)
  c.codec.name = "flax_vae"
  with pytest.raises(ValueError, match="--config.codec.video_channels"):
    codec_lib.latent_layout(c.codec, c.data)
  c.codec.name = "vqgan"
  with pytest.raises(ValueError, match="config.codec.name='vqgan'"):
    codec_lib.make_codec(c.codec, c.data)


def test_pixel_mel_standardisation_round_trips_and_maps_silence(tmp_path_factory):
  # codec.video_norm / audio_norm: latent = (x - mean) / std, decode inverts it exactly; the sampler's
  # silent anchor (sample.silence_value, -1 = -80 dB log-mel) lands on the standardised silence.
  from syncdpo_jax.runs import generate as generate_lib

  c = _config(tmp_path_factory)
  plain = codec_lib.make_codec(c.codec, c.data)
  c.codec.video_norm, c.codec.audio_norm = (-0.5, 0.25), (-0.4, 0.5)
  codec = codec_lib.make_codec(c.codec, c.data)
  rng = np.random.default_rng(0)
  video = jnp.asarray(rng.uniform(-1, 1, (2, 4, 16, 16, 3)), jnp.float32)
  mel = jnp.asarray(rng.uniform(-1, 1, (2, 20, c.data.n_mels)), jnp.float32)
  np.testing.assert_allclose(codec.encode_video(video), (plain.encode_video(video) + 0.5) / 0.25, rtol=1e-6)
  np.testing.assert_allclose(codec.encode_audio(mel), (mel + 0.4) / 0.5, rtol=1e-6)
  np.testing.assert_allclose(codec.decode_video(codec.encode_video(video)), video, atol=1e-6)
  np.testing.assert_allclose(codec.decode_audio(codec.encode_audio(mel)), mel, atol=1e-6)
  assert generate_lib.silence_latent(codec, -1.0) == pytest.approx(-1.2)
  assert generate_lib.silence_latent(plain, -1.0) == -1.0
  c.codec.audio_norm = (0.0, 0.0)
  with pytest.raises(ValueError, match="config.codec.audio_norm"):
    codec_lib.make_codec(c.codec, c.data)


def test_stored_captions_condition_the_model(stored, tmp_path):
  """data.text_dim = the stored captions' width: the step feeds them (the model is built with a caption
  projection, which then learns); a width that disagrees with the dataset is refused by name."""
  c, out, builder = stored
  c = _on_latents(c, out, builder.builder_config.name)
  c.data.text_dim, c.data.text_len = 8, 4
  c.train.num_steps = 3  # lr 0 at the first step; then the zero-initialised heads, then the body learn
  c.model.gate_init = 1.0  # open residual gates: the caption attention gets gradients from step 1
  setup = loop.build(c)
  before = np.asarray(setup.state.params["v_embed"]["text"]["kernel"].get_value())
  state = loop.train(c, str(tmp_path / "run"))
  after = np.asarray(state.params["v_embed"]["text"]["kernel"].get_value())
  assert np.abs(after - before).max() > 0  # the captions reached the model and it learned from them
  c.data.text_dim = 5
  with pytest.raises(ValueError, match="data.text_dim=5 .* 8-wide caption embeddings"):
    next(iter(pipeline.make_dataset(c.data, c.data.split_train, seed=0, train=True)))
