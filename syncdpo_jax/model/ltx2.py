"""LTX-2's audio-video transformer in Flax NNX (`model.name = 'ltx2'`), a port of diffusers'
`LTX2VideoTransformer3DModel` (diffusers 0.42.1, `models/transformers/transformer_ltx2.py`).

    out_video, out_audio = model(video, audio, t_v, t_a, cond)

How our interface maps onto the reference's forward (`syncdpo_jax.convert.ltx2` loads its weights;
tests/test_ltx2.py checks forward and input gradients against the reference at a tiny random config):
  video [B, T, h, w, C]      hidden_states = video.reshape(B, T*h*w, C) (frame-major, then rows, then
                             columns: the reference's (frame, height, width) grid with patch size 1);
                             num_frames, height, width = T, h, w
  audio [B, T_a, C_a]        audio_hidden_states (LTX-2's audio latents [B, 8, T_a, 16] packed to
                             [B, T_a, 128] as its pipeline does); audio_num_frames = T_a
  t_v, t_a [B] in [0, 1]     timestep = t_v * timestep_scale_multiplier, audio_timestep = t_a * the same
                             (0 = clean: a given stream)
  cond['text'] [B, L, D]     encoder_hidden_states (the text connector's video output);
  cond['audio_text']         audio_encoder_hidden_states (its audio output; default: cond['text'])
  cond['text_mask'] [B, L]   encoder_attention_mask = audio_encoder_attention_mask (1 = a real token;
                             cond['audio_text_mask'] overrides the audio one)
  fps                        ModelIO.video_fps x vae_scale_factors[0] (latent frame rate x the VAE's
                             temporal stride: the pixel frame rate the RoPE positions are in)
  outputs                    sample.reshape(B, T, h, w, C_out) and audio_sample: the velocity
                             eps - x0 of x_t = (1 - t) x0 + t eps (objective.prediction = 'v')
Left at the reference's defaults: sigma / audio_sigma (LTX-2.3 only), video_coords / audio_coords
(computed from the shapes), isolate_modalities=False, no spatio-temporal guidance, use_cross_timestep
=False (LTX-2.0), no self-attention masks, no keyframe markers.

Ported: the LTX-2.0 configuration (rope_type 'interleaved' and 'split', caption projections, per-stream
AdaLN-single timestep embeddings, the cross-modal scale/shift and gate embeddings, patch size 1). Not
ported (refused at build, naming the switch): LTX-2.3's gated attention (`gated_attn`,
`audio_gated_attn`), prompt AdaLN (`cross_attn_mod`, `audio_cross_attn_mod`), the connector-side
caption projection (`use_prompt_embeddings=False`), perturbed attention, keyframe embeddings, and
spatial / temporal patch sizes above 1.

For datasets without caption embeddings (the class-labelled demo and test data), `label_text=True`
adds a learned caption token per class (our addition, not in the reference; a converted checkpoint has
it off): cond without 'text' then conditions on cond['label'].
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from syncdpo_jax.model import layers as L
from syncdpo_jax.model.sharding import check_batch_divides, constrain, gather_data_parallel

ACT = ("batch", "length", "act_embed")
# LTX-2.3 and inference-only switches of the reference's config, and the value this port requires.
UNPORTED = {
    "gated_attn": False,
    "audio_gated_attn": False,
    "cross_attn_mod": False,
    "audio_cross_attn_mod": False,
    "use_prompt_embeddings": True,
    "perturbed_attn": False,
    "use_keyframes_abs_pos_embedding": False,
    "patch_size": 1,
    "patch_size_t": 1,
    "audio_patch_size": 1,
    "audio_patch_size_t": 1,
    "qk_norm": "rms_norm_across_heads",
    "activation_fn": "gelu-approximate",
    "norm_elementwise_affine": False,
}


# ----------------------------------------------------------------------------- config


def reference_fields() -> dict:
  """The reference's config fields this port reads, at the reference's defaults (its __init__)."""
  return dict(
      num_layers=48,
      num_attention_heads=32,
      attention_head_dim=128,
      cross_attention_dim=4096,
      caption_channels=3840,
      out_channels=128,
      vae_scale_factors=(8, 32, 32),
      pos_embed_max_pos=20,
      base_height=2048,
      base_width=2048,
      audio_num_attention_heads=32,
      audio_attention_head_dim=64,
      audio_cross_attention_dim=2048,
      audio_out_channels=128,
      audio_scale_factor=4,
      audio_pos_embed_max_pos=20,
      audio_sampling_rate=16000,
      audio_hop_length=160,
      norm_eps=1e-6,
      attention_bias=True,
      attention_out_bias=True,
      ff_bias=True,
      audio_ff_bias=True,
      rope_theta=10000.0,
      rope_type="interleaved",
      causal_offset=1,
      timestep_scale_multiplier=1000,
      cross_attn_timestep_scale_multiplier=1000,
  )


def get_config(size: str = "19b") -> ml_collections.ConfigDict:
  """config.model for LTX-2: '19b' (LTX-2.0: 48 layers, video 32 x 128, audio 32 x 64, rope 'split')
  or 'tiny' (2 layers, video 2 x 8, audio 2 x 4: diffusers' own test size; runs in seconds on a CPU).

  The latents' channels (in_channels, audio_in_channels) and the class count come from ModelIO;
  out_channels / audio_out_channels default to them (None).
  """
  c = ml_collections.ConfigDict(reference_fields())
  c.name, c.size = "ltx2", size
  c.out_channels = ml_collections.config_dict.placeholder(int)  # None = the latents' channels
  c.audio_out_channels = ml_collections.config_dict.placeholder(int)
  c.label_text = False  # a learned caption token per class when cond has no 'text' (see module doc)
  c.dtype, c.param_dtype = "float32", "float32"
  c.scan_layers = True
  if size == "19b":
    c.rope_type = "split"
  elif size == "tiny":
    c.num_layers, c.num_attention_heads, c.attention_head_dim, c.cross_attention_dim = 2, 2, 8, 16
    c.audio_num_attention_heads, c.audio_attention_head_dim, c.audio_cross_attention_dim = 2, 4, 8
    c.caption_channels = 12
    c.label_text = True
  else:
    raise ValueError(f"unknown LTX-2 size {size!r}; expected '19b' or 'tiny' (config field model.size)")
  return c


def validate(c: Any) -> None:
  """Checks a resolved spec (model.resolve); each error names the field."""
  for k, want in UNPORTED.items():
    if k in c and c[k] != want:
      raise ValueError(f"model.{k}={c[k]!r} is not ported (this port covers LTX-2.0: {k}={want!r})")
  inner, a_inner = (
      c.num_attention_heads * c.attention_head_dim,
      c.audio_num_attention_heads * c.audio_attention_head_dim,
  )
  if c.cross_attention_dim != inner or c.audio_cross_attention_dim != a_inner:
    raise ValueError(
        f"model.cross_attention_dim={c.cross_attention_dim} / audio_cross_attention_dim="
        f"{c.audio_cross_attention_dim} must equal the streams' widths {inner} / {a_inner} (the captions are "
        "projected to them)"
    )
  if c.rope_type not in ("interleaved", "split"):
    raise ValueError(f"model.rope_type={c.rope_type!r}; expected 'interleaved' or 'split'")
  rate = float(c.audio_sampling_rate) / c.audio_hop_length / c.audio_scale_factor
  if abs(rate - float(c.audio_fps)) > 1e-6 * rate:
    raise ValueError(
        f"the audio latents run at {c.audio_fps} frames/s but LTX-2's audio RoPE assumes "
        f"audio_sampling_rate / audio_hop_length / audio_scale_factor = {rate:g}: set those model fields "
        "to the audio VAE the latents come from"
    )


# ----------------------------------------------------------------------------- RoPE (positions in seconds)


def video_coords(T: int, h: int, w: int, c: Any) -> np.ndarray:
  """Patch midpoints [T*h*w, 3]: (seconds, pixel row, pixel column), frame-major. The reference's
  `prepare_video_coords` and the midpoint its RoPE's `forward` takes."""
  f32 = np.float32
  st, sh, sw = (f32(s) for s in c.vae_scale_factors)
  fps = f32(float(c.video_fps) * float(c.vae_scale_factors[0]))
  grid = np.stack(
      np.meshgrid(np.arange(T, dtype=f32), np.arange(h, dtype=f32), np.arange(w, dtype=f32), indexing="ij")
  )
  start, end = grid.reshape(3, -1), grid.reshape(3, -1) + f32(1)
  scale = np.array([st, sh, sw], f32)[:, None]
  start, end = start * scale, end * scale
  # The causal VAE's first latent frame covers one pixel frame: shift and clamp the frame times.
  off = f32(c.causal_offset) - st
  start[0] = np.maximum(start[0] + off, f32(0)) / fps
  end[0] = np.maximum(end[0] + off, f32(0)) / fps
  return ((start + end) / f32(2)).T.astype(f32)


def audio_positions(T_a: int, c: Any, base_frames: float) -> np.ndarray:
  """Audio latent frame midpoints [T_a, 1] in seconds / base_frames (the reference's
  `prepare_audio_coords`: mel frames -> seconds, with the causal first frame)."""
  f32 = np.float32
  s = f32(c.audio_scale_factor)
  grid = np.arange(T_a, dtype=f32)
  to_s = (
      lambda mel: np.maximum(mel + f32(c.causal_offset) - s, f32(0))
      * f32(c.audio_hop_length)
      / f32(c.audio_sampling_rate)
  )
  mid = (to_s(grid * s) + to_s((grid + f32(1)) * s)) / f32(2)
  return (mid / f32(base_frames))[:, None].astype(f32)


def rope_angles(pos: np.ndarray, dim: int, theta: float, rope_type: str, groups: int) -> np.ndarray:
  """Rotation angle per rotated pair for positions pos [N, P] (fractions of the base grid) over a
  `dim`-wide projection: [N, dim // 2], the pairs the reference pads with the identity first.

  Frequencies theta^linspace(0, 1, dim // 2P) * pi / 2 at (2 pos - 1), position dims fastest (the
  reference's `LTX2AudioVideoRotaryPosEmbed.forward`). 'split' lays them out per group of
  dim // groups channels (the reference reshapes by its rope's head count).
  """
  P = pos.shape[-1]
  nf = dim // (2 * P)
  freqs = (np.power(theta, np.linspace(0.0, 1.0, nf, dtype=np.float64)) * np.pi / 2.0).astype(np.float32)
  ang = (pos[:, :, None] * np.float32(2) - np.float32(1)) * freqs  # [N, P, nf]
  ang = ang.transpose(0, 2, 1).reshape(pos.shape[0], nf * P)
  pad = dim // 2 - nf * P
  out = np.concatenate([np.zeros((pos.shape[0], pad), np.float32), ang], axis=1)
  if rope_type == "split" and (dim // 2) % groups:
    raise ValueError(f"split RoPE over {dim} channels does not divide into {groups} heads")
  return out


def apply_rope(x: jax.Array, angles: jax.Array, rope_type: str, groups: int) -> jax.Array:
  """Rotates x [B, N, D] by angles [N, D/2] (float32 math, x's dtype back).

  'interleaved': pairs (x[2i], x[2i+1]); 'split': within each of `groups` blocks of D / groups
  channels, pairs (first half, second half) (the reference's `apply_*_rotary_emb`).
  """
  B, N, D = x.shape
  cos, sin = jnp.cos(angles), jnp.sin(angles)
  xf = x.astype(jnp.float32)
  if rope_type == "interleaved":
    xr = xf.reshape(B, N, D // 2, 2)
    x0, x1 = xr[..., 0], xr[..., 1]
    out = jnp.stack([x0 * cos - x1 * sin, x1 * cos + x0 * sin], axis=-1).reshape(B, N, D)
  else:
    r = D // (2 * groups)
    xg = xf.reshape(B, N, groups, 2, r)
    c, s = cos.reshape(N, groups, r), sin.reshape(N, groups, r)
    x0, x1 = xg[..., 0, :], xg[..., 1, :]
    out = jnp.stack([x0 * c - x1 * s, x1 * c + x0 * s], axis=-2).reshape(B, N, D)
  return out.astype(x.dtype)


def flops_per_example(c: Any, T: int, h: int, w: int, T_a: int, text_len: int = 1) -> float:
  """Forward matmul FLOPs of one example (1 multiply-add = 2): N = T h w video and T_a audio tokens,
  `text_len` caption tokens (1 with label_text). Elementwise work and the timestep MLPs (per example,
  not per token) are left out, as for our DiT (model/flops.py)."""
  N, Na, Lt = T * h * w, T_a, max(int(text_len), 1)
  D, Da = (
      c.num_attention_heads * c.attention_head_dim,
      c.audio_num_attention_heads * c.audio_attention_head_dim,
  )
  Cv, Ca, Cap = c.video_channels, c.audio_channels, c.caption_channels
  mac = N * Cv * D + Na * Ca * Da + N * D * (c.out_channels or Cv) + Na * Da * (c.audio_out_channels or Ca)
  mac += Lt * (Cap * D + D * D) + Lt * (Cap * Da + Da * Da)  # caption projections
  layer = 4 * N * D * D + 2 * N * N * D + 4 * Na * Da * Da + 2 * Na * Na * Da  # self-attention
  layer += 2 * N * D * D + 2 * Lt * D * D + 2 * N * Lt * D  # video <- caption
  layer += 2 * Na * Da * Da + 2 * Lt * Da * Da + 2 * Na * Lt * Da  # audio <- caption
  layer += 2 * N * D * Da + 2 * Na * Da * Da + 2 * N * Na * Da  # a2v: q, o on video; k, v on audio
  layer += 2 * Na * Da * Da + 2 * N * D * Da + 2 * Na * N * Da  # v2a: q, o on audio; k, v on video
  layer += 8 * N * D * D + 8 * Na * Da * Da  # FFNs (4x)
  return 2.0 * (mac + c.num_layers * layer)


def activation_bytes(c: Any, *, per_device_batch: int, tensor: int = 1, passes: int = 1) -> dict:
  """ESTIMATED activation bytes per device of one training step (train/plan.py's categories for our
  DiT, counted for LTX-2's block): {'saved': kept for the backward by all layers, 'layer': the working
  set of the layer whose backward runs}. c: a resolved spec (model.resolve); heads and FFN widths are
  split over `tensor`; passes: examples through the policy per batch example (DPO: 2).

  Per example and layer (N video, Na audio, L caption tokens; c bytes of the compute dtype):
    carry   4 (N D + Na Da)  f32 residual streams (the layer scan's input)
    proj    c x every dense output: self-attention q k v o, caption q (k v on L tokens) o, the
            a2v / v2a cross-attention q k v o (audio-wide heads), FFN hidden and output
    pv      c x attention outputs before their o projections
    scores  [H, Lq, Lk] per attention call a kernel materialises (flash kernels: none for the unmasked
            self and cross-modal calls; 'splash' also takes the key-masked caption calls)
    elem    ~29 f32 elementwise intermediates per residual element (norms, modulation, RoPE in f32),
            5 c per FFN hidden element around the GELU (our DiT's measured constants)
  Saved by the remat policy: 'full' carry | 'dots_no_batch' + proj | 'dots' + pv + f32 scores |
  'none' everything. Measured (tests/test_ltx2.py): 'saved' is JAX's saved residuals exactly for 'full',
  'dots_no_batch' and 'dots' (4.5% over for 'none'); XLA's backward buffers stay under saved + layer
  for 'full' and 'dots_no_batch' (the presets' policies; 1% over it for 'none').
  """
  t = float(tensor)
  N, Na = c.T_v * c.h * c.w, c.T_a
  Lt = max(int(c.text_len), 1)
  D, Da = (
      c.num_attention_heads * c.attention_head_dim,
      c.audio_num_attention_heads * c.audio_attention_head_dim,
  )
  Hv, Ha = c.num_attention_heads / t, c.audio_num_attention_heads / t
  cb = jnp.dtype(c.dtype).itemsize
  nd = N * D + Na * Da
  proj = 3 * N * D / t + N * D + 3 * Na * Da / t + Na * Da  # self-attention
  proj += N * D / t + 2 * Lt * D / t + N * D + Na * Da / t + 2 * Lt * Da / t + Na * Da  # caption
  proj += N * Da / t + 2 * Na * Da / t + N * D + Na * Da / t + 2 * N * Da / t + Na * Da  # a2v, v2a
  proj += 4 * N * D / t + N * D + 4 * Na * Da / t + Na * Da  # FFNs
  proj *= cb
  pv = cb * (2 * nd + N * Da + Na * Da) / t
  unmasked = Hv * N * N + Ha * Na * Na + 2 * Ha * N * Na
  masked = Hv * N * Lt + Ha * Na * Lt
  impl = str(c.attention_impl)
  scores = (0.0 if impl in L.FLASH_IMPLS else unmasked) + (0.0 if impl == "splash" else masked)
  elem = 4.0 * 29 * nd + 5.0 * cb * 4 * nd / t
  saved, layer = L.remat_activation_bytes(4.0 * nd, proj, pv, scores, elem, cb, c.remat)
  n = per_device_batch * passes
  return {"saved": c.num_layers * n * saved, "layer": n * layer}


# ----------------------------------------------------------------------------- layers


def _rms(x: jax.Array, eps: float) -> jax.Array:
  """The reference's parameter-free RMSNorm (float32 statistics)."""
  xf = x.astype(jnp.float32)
  return (xf * jax.lax.rsqrt(jnp.mean(xf * xf, -1, keepdims=True) + eps)).astype(x.dtype)


def _modulate(x: jax.Array, scale: jax.Array, shift: jax.Array) -> jax.Array:
  return x * (1 + scale) + shift


def _time_freqs(half: int = 128) -> np.ndarray:
  """exp(-ln(1e4) i / half) for i < half: the float32 rounding of the exact exponential of the
  reference's float32 exponents. (The reference's torch exp differs by one ulp in a couple of entries;
  at t ~ 1000 that moves the embedding by ~3e-5. tests/test_ltx2.py shows it is the only difference.)"""
  exponent = np.float32(-np.log(10000.0)) * np.arange(half, dtype=np.float32) / np.float32(half)
  return np.exp(exponent.astype(np.float64)).astype(np.float32)


TIME_FREQS = _time_freqs()


def timestep_sinusoid(t: jax.Array) -> jax.Array:
  """diffusers' `Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)`: t [B] -> [B, 256]
  (t on the reference's scale, up to 1000)."""
  a = t.astype(jnp.float32)[:, None] * jnp.asarray(TIME_FREQS)[None]
  return jnp.concatenate([jnp.cos(a), jnp.sin(a)], axis=-1)


class AdaLayerNormSingle(nnx.Module):
  """The reference's LTX2AdaLayerNormSingle: t [B] -> (linear(silu(emb)) [B, n*D], emb [B, D])."""

  def __init__(self, dim: int, n: int, dtype, rngs: nnx.Rngs):
    self.linear_1 = L.dense(256, dim, ("patch", "embed"), dtype=dtype, rngs=rngs)
    self.linear_2 = L.dense(dim, dim, ("embed", "mlp"), dtype=dtype, rngs=rngs)
    self.linear = L.dense(dim, n * dim, ("embed", "mlp"), dtype=dtype, rngs=rngs)

  def __call__(self, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    emb = self.linear_2(jax.nn.silu(self.linear_1(timestep_sinusoid(t))))
    return self.linear(jax.nn.silu(emb)), emb


class CaptionProjection(nnx.Module):
  """PixArtAlphaTextProjection: linear -> GELU (tanh) -> linear."""

  def __init__(self, din: int, dim: int, dtype, rngs: nnx.Rngs):
    self.linear_1 = L.dense(din, dim, ("text", "embed"), dtype=dtype, rngs=rngs)
    self.linear_2 = L.dense(dim, dim, ("embed", "mlp"), dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.linear_2(jax.nn.gelu(self.linear_1(x), approximate=True))


class Attention(nnx.Module):
  """LTX2Attention: q from x [B, Nq, Dq], k/v from ctx [B, Nk, Dk], each `heads` x `head_dim`; RMS
  norm of q and k across all heads (with a learned scale), RoPE on q / k, softmax attention, output
  projection back to Dq."""

  def __init__(self, dq: int, dk: int, heads: int, head_dim: int, c: Any, rngs: nnx.Rngs):
    dtype, inner = L.as_dtype(c.dtype), heads * head_dim
    bias, out_bias = bool(c.attention_bias), bool(c.attention_out_bias)
    self.to_q = L.dense(dq, inner, ("embed", "heads"), dtype=dtype, rngs=rngs, use_bias=bias)
    self.to_k = L.dense(dk, inner, ("embed", "heads"), dtype=dtype, rngs=rngs, use_bias=bias)
    self.to_v = L.dense(dk, inner, ("embed", "heads"), dtype=dtype, rngs=rngs, use_bias=bias)
    self.to_out = L.dense(inner, dq, ("heads", "embed"), dtype=dtype, rngs=rngs, use_bias=out_bias)
    self.norm_q = L.RMSNorm(inner, eps=float(c.norm_eps))
    self.norm_k = L.RMSNorm(inner, eps=float(c.norm_eps))
    self.heads = heads
    self.rope_type = str(c.rope_type)
    self.impl = str(c.attention_impl)

  def __call__(self, x, ctx, mask=None, q_rope=None, k_rope=None) -> jax.Array:
    """q_rope / k_rope: (angles [N, inner/2], groups) or None; mask: bool [B, 1, 1, Nk] or None."""
    q, k, v = self.norm_q(self.to_q(x)), self.norm_k(self.to_k(ctx)), self.to_v(ctx)
    if q_rope is not None:
      k_rope = q_rope if k_rope is None else k_rope
      q = apply_rope(q, q_rope[0], self.rope_type, q_rope[1])
      k = apply_rope(k, k_rope[0], self.rope_type, k_rope[1])
    o = L.attention(
        L.split_heads(q, self.heads),
        L.split_heads(k, self.heads),
        L.split_heads(v, self.heads),
        mask,
        self.impl,
    )
    return self.to_out(L.merge_heads(o))


class FeedForward(nnx.Module):
  """diffusers' FeedForward with 'gelu-approximate': dim -> 4 dim (GELU, tanh) -> dim."""

  def __init__(self, dim: int, bias: bool, dtype, rngs: nnx.Rngs):
    self.fc1 = L.dense(dim, 4 * dim, ("embed", "mlp"), dtype=dtype, rngs=rngs, use_bias=bias)
    self.fc2 = L.dense(4 * dim, dim, ("mlp", "embed"), dtype=dtype, rngs=rngs, use_bias=bias)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fc2(jax.nn.gelu(self.fc1(x), approximate=True))


def _table(n: int, dim: int, rngs: nnx.Rngs) -> nnx.Param:
  # The reference's init (randn / sqrt(dim)); a converted checkpoint overwrites it.
  return nnx.Param(jax.random.normal(rngs.params(), (n, dim)) / np.sqrt(dim), out_sharding=("mod", "embed"))


class Block(nnx.Module):
  """LTX2VideoTransformerBlock: per stream self-attention, caption cross-attention, audio<->video
  cross-attention, FFN, each modulated by its stream's timestep embedding."""

  def __init__(self, c: Any, *, rngs: nnx.Rngs):
    with nnx.use_eager_sharding(False):
      dtype = L.as_dtype(c.dtype)
      D, Da = (
          c.num_attention_heads * c.attention_head_dim,
          c.audio_num_attention_heads * c.audio_attention_head_dim,
      )
      vh, vd, ah, ad = (
          c.num_attention_heads,
          c.attention_head_dim,
          c.audio_num_attention_heads,
          c.audio_attention_head_dim,
      )
      self.attn1 = Attention(D, D, vh, vd, c, rngs)
      self.audio_attn1 = Attention(Da, Da, ah, ad, c, rngs)
      self.attn2 = Attention(D, D, vh, vd, c, rngs)
      self.audio_attn2 = Attention(Da, Da, ah, ad, c, rngs)
      self.audio_to_video_attn = Attention(D, Da, ah, ad, c, rngs)  # q: video; k, v: audio
      self.video_to_audio_attn = Attention(Da, D, ah, ad, c, rngs)  # q: audio; k, v: video
      self.ff = FeedForward(D, bool(c.ff_bias), dtype, rngs)
      self.audio_ff = FeedForward(Da, bool(c.audio_ff_bias), dtype, rngs)
      self.scale_shift_table = _table(6, D, rngs)
      self.audio_scale_shift_table = _table(6, Da, rngs)
      self.video_a2v_cross_attn_scale_shift_table = _table(5, D, rngs)
      self.audio_a2v_cross_attn_scale_shift_table = _table(5, Da, rngs)
    self.eps = float(c.norm_eps)
    self.rules = tuple(c.logical_axis_rules)

  def __call__(self, x, a, ctx):
    """x [B, N, D] video, a [B, Na, Da] audio; ctx: the per-forward tensors (see LTX2.__call__)."""
    B, eps = x.shape[0], self.eps
    mods = lambda table, e, n: list(jnp.moveaxis(table[...][None] + e.reshape(B, n, -1), 1, 0)[:, :, None])
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods(
        self.scale_shift_table, ctx["temb"], 6
    )
    a_shift_msa, a_scale_msa, a_gate_msa, a_shift_mlp, a_scale_mlp, a_gate_mlp = mods(
        self.audio_scale_shift_table, ctx["temb_audio"], 6
    )
    # 1. self-attention
    x = x + self.attn1(h := _modulate(_rms(x, eps), scale_msa, shift_msa), h, None, ctx["rope_v"]) * gate_msa
    a = (
        a
        + self.audio_attn1(h := _modulate(_rms(a, eps), a_scale_msa, a_shift_msa), h, None, ctx["rope_a"])
        * a_gate_msa
    )
    # 2. caption cross-attention (no modulation in LTX-2.0)
    x = x + self.attn2(_rms(x, eps), ctx["text"], ctx["text_mask"])
    a = a + self.audio_attn2(_rms(a, eps), ctx["audio_text"], ctx["audio_text_mask"])
    # 3. audio -> video and video -> audio, both from the streams as they are now
    nv, na = _rms(x, eps), _rms(a, eps)
    tv, ta = (
        self.video_a2v_cross_attn_scale_shift_table[...],
        self.audio_a2v_cross_attn_scale_shift_table[...],
    )
    v_a2v_scale, v_a2v_shift, v_v2a_scale, v_v2a_shift = list(
        jnp.moveaxis(tv[None, :4] + ctx["v_ca"].reshape(B, 4, -1), 1, 0)[:, :, None]
    )
    a_a2v_scale, a_a2v_shift, a_v2a_scale, a_v2a_shift = list(
        jnp.moveaxis(ta[None, :4] + ctx["a_ca"].reshape(B, 4, -1), 1, 0)[:, :, None]
    )
    a2v_gate = (tv[None, 4] + ctx["v_gate"])[:, None]
    v2a_gate = (ta[None, 4] + ctx["a_gate"])[:, None]
    x_new = x + a2v_gate * self.audio_to_video_attn(
        _modulate(nv, v_a2v_scale, v_a2v_shift),
        _modulate(na, a_a2v_scale, a_a2v_shift),
        None,
        ctx["ca_v"],
        ctx["ca_a"],
    )
    a = a + v2a_gate * self.video_to_audio_attn(
        _modulate(na, a_v2a_scale, a_v2a_shift),
        _modulate(nv, v_v2a_scale, v_v2a_shift),
        None,
        ctx["ca_a"],
        ctx["ca_v"],
    )
    x = x_new
    # 4. FFN
    x = x + self.ff(_modulate(_rms(x, eps), scale_mlp, shift_mlp)) * gate_mlp
    a = a + self.audio_ff(_modulate(_rms(a, eps), a_scale_mlp, a_shift_mlp)) * a_gate_mlp
    return constrain(x, ACT, self.rules), constrain(a, ACT, self.rules)


def _stacked_blocks(c: Any, rngs: nnx.Rngs) -> Block:
  """`num_layers` Blocks as one module with a leading ['layers'] axis on every parameter (scanned)."""
  return L.stacked_layers(lambda r: Block(c, rngs=r), c.num_layers, rngs)


class LTX2(nnx.Module):
  """The LTX-2 audio-video transformer (see the module docstring for the reference mapping)."""

  def __init__(self, c: Any, *, rngs: nnx.Rngs):
    validate(c)
    self.cfg = c
    dtype = L.as_dtype(c.dtype)
    D, Da = (
        c.num_attention_heads * c.attention_head_dim,
        c.audio_num_attention_heads * c.audio_attention_head_dim,
    )
    out_v = c.out_channels or c.video_channels
    out_a = c.audio_out_channels or c.audio_channels
    with nnx.use_eager_sharding(False):
      self.proj_in = L.dense(c.video_channels, D, ("patch", "embed"), dtype=dtype, rngs=rngs)
      self.audio_proj_in = L.dense(c.audio_channels, Da, ("patch", "embed"), dtype=dtype, rngs=rngs)
      self.caption_projection = CaptionProjection(c.caption_channels, D, dtype, rngs)
      self.audio_caption_projection = CaptionProjection(c.caption_channels, Da, dtype, rngs)
      self.time_embed = AdaLayerNormSingle(D, 6, dtype, rngs)
      self.audio_time_embed = AdaLayerNormSingle(Da, 6, dtype, rngs)
      self.av_cross_attn_video_scale_shift = AdaLayerNormSingle(D, 4, dtype, rngs)
      self.av_cross_attn_audio_scale_shift = AdaLayerNormSingle(Da, 4, dtype, rngs)
      self.av_cross_attn_video_a2v_gate = AdaLayerNormSingle(D, 1, dtype, rngs)
      self.av_cross_attn_audio_v2a_gate = AdaLayerNormSingle(Da, 1, dtype, rngs)
      self.scale_shift_table = _table(2, D, rngs)
      self.audio_scale_shift_table = _table(2, Da, rngs)
      if c.scan_layers:
        self.transformer_blocks = _stacked_blocks(c, rngs)
      else:
        self.transformer_blocks = nnx.List([Block(c, rngs=rngs) for _ in range(c.num_layers)])
      self.proj_out = L.dense(D, out_v, ("embed", "patch"), dtype=dtype, rngs=rngs)
      self.audio_proj_out = L.dense(Da, out_a, ("embed", "patch"), dtype=dtype, rngs=rngs)
      self.label_embedding = (
          nnx.Param(
              0.02 * jax.random.normal(rngs.params(), (c.num_classes + 1, c.caption_channels)),
              out_sharding=("vocab", "text"),
          )
          if c.label_text
          else None
      )

  def _text(self, cond: Mapping[str, jax.Array], B: int) -> tuple[jax.Array, ...]:
    """(text, text_mask, audio_text, audio_text_mask): [B, L, caption_channels] and bool [B, L]."""
    if "text" in cond:
      text = cond["text"]
      mask = cond.get("text_mask", jnp.ones(text.shape[:2], bool)).astype(bool)
    elif self.label_embedding is not None:
      label = jnp.clip(cond["label"].astype(jnp.int32), 0, self.cfg.num_classes)
      text, mask = self.label_embedding[...][label][:, None], jnp.ones((B, 1), bool)
    else:
      raise ValueError(
          "LTX-2 conditions on caption embeddings: give cond['text'] [B, L, caption_channels] (and "
          "'text_mask'), or build with model.label_text=True to condition on cond['label']"
      )
    audio = cond.get("audio_text", text)
    audio_mask = cond.get(
        "audio_text_mask", mask if "audio_text" not in cond else jnp.ones(audio.shape[:2], bool)
    )
    return text, mask, audio, audio_mask.astype(bool)

  def __call__(self, video, audio, t_v, t_a, cond):
    """video [B, T, h, w, C], audio [B, T_a, C_a], t_v / t_a [B] in [0, 1]; cond as the module doc says.
    Returns the velocities (video [B, T, h, w, C_out], audio [B, T_a, C_a_out])."""
    c = self.cfg
    B, T, h, w, C = video.shape
    T_a = audio.shape[1]
    if C != c.video_channels or audio.shape[-1] != c.audio_channels:
      raise ValueError(
          f"latents have {C} video / {audio.shape[-1]} audio channels; the model was built for "
          f"video_channels={c.video_channels}, audio_channels={c.audio_channels} (ModelIO)"
      )
    check_batch_divides(B, c.logical_axis_rules)
    rules = tuple(c.logical_axis_rules)
    text, mask, a_text, a_mask = self._text(cond, B)
    if text.shape[-1] != c.caption_channels:
      raise ValueError(
          f"cond['text'] has width {text.shape[-1]}; model.caption_channels={c.caption_channels}"
      )
    scale = float(c.timestep_scale_multiplier)
    tv, ta = t_v.astype(jnp.float32) * scale, t_a.astype(jnp.float32) * scale
    gate_factor = float(c.cross_attn_timestep_scale_multiplier) / scale

    # RoPE tables: static (shapes only). Cross-attention uses the time coordinate alone.
    D, Da = (
        c.num_attention_heads * c.attention_head_dim,
        c.audio_num_attention_heads * c.audio_attention_head_dim,
    )
    vh, ah, th = c.num_attention_heads, c.audio_num_attention_heads, float(c.rope_theta)
    # Positions as fractions of the reference's base grid (20 s, 2048 px).
    coords = video_coords(T, h, w, c)
    pv = coords / np.array([c.pos_embed_max_pos, c.base_height, c.base_width], np.float32)
    pa = audio_positions(T_a, c, c.audio_pos_embed_max_pos)
    cross_base = max(c.pos_embed_max_pos, c.audio_pos_embed_max_pos)
    pv_t = coords[:, :1] / np.float32(cross_base)
    pa_t = audio_positions(T_a, c, cross_base)
    Dc = c.audio_cross_attention_dim
    ctx = dict(
        rope_v=(jnp.asarray(rope_angles(pv, D, th, c.rope_type, vh)), vh),
        rope_a=(jnp.asarray(rope_angles(pa, Da, th, c.rope_type, ah)), ah),
        # The reference builds the video side of the cross-modal RoPE with the video head count.
        ca_v=(jnp.asarray(rope_angles(pv_t, Dc, th, c.rope_type, vh)), vh),
        ca_a=(jnp.asarray(rope_angles(pa_t, Dc, th, c.rope_type, ah)), ah),
    )

    # FSDP (ZeRO-3): every weight is gathered over the data-parallel axes where it is used, the
    # layers one at a time inside the scan. Left to XLA, the partitioner gets the gradients of the
    # 8-wide audio timestep MLPs of the tiny config wrong on a (2, 2, 2) mesh (72% off; jax 0.10.2;
    # 16 wide is right); gathered, they equal one device's (tests/test_ltx2.py).
    g = lambda module: gather_data_parallel(module, rules)
    x = g(self.proj_in)(video.reshape(B, T * h * w, C))
    a = g(self.audio_proj_in)(audio)
    temb, emb_v = g(self.time_embed)(tv)
    temb_a, emb_a = g(self.audio_time_embed)(ta)
    ctx.update(
        temb=temb,
        temb_audio=temb_a,
        v_ca=g(self.av_cross_attn_video_scale_shift)(tv)[0],
        a_ca=g(self.av_cross_attn_audio_scale_shift)(ta)[0],
        v_gate=g(self.av_cross_attn_video_a2v_gate)(tv * gate_factor)[0],
        a_gate=g(self.av_cross_attn_audio_v2a_gate)(ta * gate_factor)[0],
        text=g(self.caption_projection)(text),
        text_mask=mask[:, None, None, :],
        audio_text=g(self.audio_caption_projection)(a_text),
        audio_text_mask=a_mask[:, None, None, :],
    )

    def run(carry, block):
      return g(block)(*carry, ctx)  # this layer's weights, gathered

    if c.remat != "none":
      run = nnx.remat(run, policy=L.REMAT_POLICY_FNS[c.remat], prevent_cse=not c.scan_layers)
    if c.scan_layers:
      graphdef, stacked = nnx.split(self.transformer_blocks)
      (x, a), _ = jax.lax.scan(lambda carry, st: (run(carry, nnx.merge(graphdef, st)), None), (x, a), stacked)
    else:
      for block in self.transformer_blocks:
        x, a = run((x, a), block)

    def out(hs, table, emb, proj):
      shift, scale_ = jnp.moveaxis(table[...][None] + emb[:, None], 1, 0)[:, :, None]
      return proj(_modulate(L.layer_norm(hs, 1e-6), scale_, shift))

    ov = out(x, self.scale_shift_table, emb_v, g(self.proj_out))
    oa = out(a, self.audio_scale_shift_table, emb_a, g(self.audio_proj_out))
    return ov.reshape(B, T, h, w, ov.shape[-1]), oa
