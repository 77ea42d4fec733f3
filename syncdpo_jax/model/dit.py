"""Harmony-style joint video-audio DiT (Flax NNX).

    v_video, v_audio = model.build(cfg, io, nnx.Rngs(0))(video, audio, t_v, t_a, cond)

(JointDiT itself takes `model.resolve(cfg, io, parallel)`: the architecture plus the latents it is
built for and the parallel settings it reads.)

Two token streams joined in every block:
  video  [B, T_v, h, w, C_v] -> patch (1, ph, pw) -> [B, T_v*(h/ph)*(w/pw), Dv], 3D RoPE (t, h, w)
  audio  [B, T_a, C_a]       -> patch pa          -> [B, G + T_a/pa, Da], 1D RoPE; the first G tokens
                                                     are learned global tokens (Harmony's global path)
Each joint block, per stream: adaLN-zero(self-attn) -> adaLN-zero(cross-attn to the conditioning
sequence) -> adaLN-zero(cross-modal interaction) -> adaLN-zero(MLP), modulated by that stream's own
timestep embedding (t = 0 clean/given, t = 1 noise), so t_a = 0 is audio-driven video and t_v = 0
video-driven audio. The interaction is local and RoPE-aligned in both directions (banded, linear
in clip length: each frame sees the other stream within +-local_window_s seconds) plus the global
path: global tokens read the whole video, video tokens read the global tokens.
All output layers and gates are zero-initialised: the initial model predicts zero velocity.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from syncdpo_jax.model import layers as L
from syncdpo_jax.model.config import validate_config
from syncdpo_jax.model.sharding import check_batch_divides, constrain, gather_data_parallel

N_MOD = 12  # (shift, scale, gate) x (self-attn, cond cross-attn, interaction, MLP)
ACT = ("batch", "length", "act_embed")


class Attention(nnx.Module):
  """Multi-head attention projections: queries from a [B, Lq, dq] stream, keys/values from dkv."""

  def __init__(
      self, dq: int, dkv: int, heads: int, *, qk_norm: bool, dtype, rngs: nnx.Rngs, zero_out: bool = False
  ):
    inner = dq  # heads * head_dim == query width
    self.heads = heads
    self.q = L.dense(dq, inner, ("embed", "heads"), dtype=dtype, rngs=rngs)
    self.k = L.dense(dkv, inner, ("embed", "heads"), dtype=dtype, rngs=rngs)
    self.v = L.dense(dkv, inner, ("embed", "heads"), dtype=dtype, rngs=rngs)
    self.o = L.dense(inner, dq, ("heads", "embed"), dtype=dtype, rngs=rngs, zero=zero_out)
    self.q_norm = L.RMSNorm(inner, "heads") if qk_norm else None
    self.k_norm = L.RMSNorm(inner, "heads") if qk_norm else None

  def project_q(self, x: jax.Array) -> jax.Array:
    """x [B, L, dq] -> [B, L, H, hd]."""
    q = self.q(x)
    if self.q_norm is not None:
      q = self.q_norm(q)
    return L.split_heads(q, self.heads)

  def project_kv(self, c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """c [B, L, dkv] -> k, v [B, L, H, hd]."""
    k = self.k(c)
    if self.k_norm is not None:
      k = self.k_norm(k)
    return L.split_heads(k, self.heads), L.split_heads(self.v(c), self.heads)

  def out(self, o: jax.Array) -> jax.Array:
    """o [B, L, H, hd] -> [B, L, dq]."""
    return self.o(L.merge_heads(o))


class StreamBlock(nnx.Module):
  """One stream's self-attn, conditioning cross-attn, MLP and per-block adaLN table."""

  def __init__(
      self,
      dim: int,
      heads: int,
      mlp_dim: int,
      *,
      qk_norm: bool,
      dtype,
      rngs: nnx.Rngs,
      zero_out: bool = False,
  ):
    self.self_attn = Attention(dim, dim, heads, qk_norm=qk_norm, dtype=dtype, rngs=rngs, zero_out=zero_out)
    self.cond_attn = Attention(dim, dim, heads, qk_norm=qk_norm, dtype=dtype, rngs=rngs, zero_out=zero_out)
    self.fc1 = L.dense(dim, mlp_dim, ("embed", "mlp"), dtype=dtype, rngs=rngs)
    self.fc2 = L.dense(mlp_dim, dim, ("mlp", "embed"), dtype=dtype, rngs=rngs, zero=zero_out)
    # Per-block adaLN offsets added to the stream's shared projection of its timestep embedding
    # (Wan-style sharing: a per-block D x 12D projection would be ~10% of a 5B model).
    # Zero-init with a zero shared projection = adaLN-zero: every gate starts at 0.
    self.mod = nnx.Param(jnp.zeros((N_MOD, dim), jnp.float32), out_sharding=("mod", "embed"))

  def mods(self, e: jax.Array) -> list[jax.Array]:
    """e [B, 12, D] (shared projection) -> 12 arrays [B, D]."""
    m = e + self.mod[...][None]
    return [m[:, i] for i in range(N_MOD)]

  def mlp(self, x: jax.Array) -> jax.Array:
    return self.fc2(jax.nn.gelu(self.fc1(x), approximate=True))


class JointBlock(nnx.Module):
  """Video and audio sub-blocks plus the bidirectional local/global interaction."""

  def __init__(self, cfg: Any, *, rngs: nnx.Rngs):
    with nnx.use_eager_sharding(False):  # metadata only; see JointDiT.__init__
      self._build(cfg, rngs)

  def _build(self, cfg: Any, rngs: nnx.Rngs) -> None:
    dtype = L.as_dtype(cfg.dtype)
    zero = bool(cfg.zero_init_branches)
    self.video = StreamBlock(
        cfg.video_dim,
        cfg.video_heads,
        cfg.video_mlp_dim,
        qk_norm=cfg.qk_norm,
        dtype=dtype,
        rngs=rngs,
        zero_out=zero,
    )
    self.audio = StreamBlock(
        cfg.audio_dim,
        cfg.audio_heads,
        cfg.audio_mlp_dim,
        qk_norm=cfg.qk_norm,
        dtype=dtype,
        rngs=rngs,
        zero_out=zero,
    )
    # v_from_a: video queries audio; a_from_v: audio (and global tokens) query video.
    self.v_from_a = Attention(
        cfg.video_dim,
        cfg.audio_dim,
        cfg.interaction_heads,
        qk_norm=cfg.qk_norm,
        dtype=dtype,
        rngs=rngs,
        zero_out=zero,
    )
    self.a_from_v = Attention(
        cfg.audio_dim,
        cfg.video_dim,
        cfg.interaction_heads,
        qk_norm=cfg.qk_norm,
        dtype=dtype,
        rngs=rngs,
        zero_out=zero,
    )
    self.impl = cfg.attention_impl
    self.window_s = float(cfg.local_window_s)
    self.video_fps = float(cfg.video_fps)
    self.audio_token_rate = float(cfg.audio_fps) / cfg.audio_patch
    self.num_global = int(cfg.global_tokens.num) if cfg.global_tokens.enabled else 0
    self.rules = tuple(cfg.logical_axis_rules)
    self.gate_init = float(cfg.gate_init)

  def interact(
      self,
      hv: jax.Array,
      ha: jax.Array,
      T: int,
      S: int,
      rope_vfa: tuple[jax.Array, jax.Array],
      rope_afv: tuple[jax.Array, jax.Array],
  ) -> tuple[jax.Array, jax.Array]:
    """Cross-modal attention, both directions.

    hv: [B, T*S, Dv] normalised video tokens (frame-major, S tokens per frame);
    ha: [B, G + Ta, Da] normalised audio tokens (G global tokens first);
    rope_vfa / rope_afv: (video frames [T, hd/2], audio tokens [Ta, hd/2]) 1D RoPE angles for the
    head dim of each direction, both on the video-frame timeline.
    Returns updates [B, T*S, Dv], [B, G + Ta, Da].
    """
    B = hv.shape[0]
    G = self.num_global
    hg, ht = ha[:, :G], ha[:, G:]
    Ta = ht.shape[1]
    # video <- audio (local band; + global tokens when enabled)
    qv = self.v_from_a.project_q(hv)  # [B, T*S, H, hd]
    ka, va = self.v_from_a.project_kv(ht)  # [B, Ta, H, hd]
    qv_r = L.apply_rope(qv, jnp.repeat(rope_vfa[0], S, axis=0))
    ka_r = L.apply_rope(ka, rope_vfa[1])
    ov = L.local_cross_attention(
        qv_r.reshape(B, T, S, *qv.shape[2:]),
        ka_r[:, :, None],
        va[:, :, None],
        self.video_fps,
        self.audio_token_rate,
        self.window_s,
        self.impl,
    ).reshape(qv.shape)
    if G:
      # Global tokens carry no time: un-rotated queries and keys.
      kg, vg = self.v_from_a.project_kv(hg)
      ov = ov + L.attention(qv, kg, vg, None, self.impl)
    # audio <- video (local band for audio tokens; global tokens read the whole video)
    qa = self.a_from_v.project_q(ha)  # [B, G+Ta, H, hd]
    kv, vv = self.a_from_v.project_kv(hv)  # [B, T*S, H, hd]
    qa_r = L.apply_rope(qa[:, G:], rope_afv[1])
    kv_r = L.apply_rope(kv, jnp.repeat(rope_afv[0], S, axis=0))
    H, hd = qa.shape[2:]
    oa = L.local_cross_attention(
        qa_r[:, :, None],
        kv_r.reshape(B, T, S, H, hd),
        vv.reshape(B, T, S, H, hd),
        self.audio_token_rate,
        self.video_fps,
        self.window_s,
        self.impl,
    )[:, :, 0]
    if G:
      og = L.attention(qa[:, :G], kv, vv, None, self.impl)  # [B, G, H, hd]
      oa = jnp.concatenate([og, oa], axis=1)
    return self.v_from_a.out(ov), self.a_from_v.out(oa)

  def __call__(
      self,
      xv: jax.Array,
      xa: jax.Array,
      ev: jax.Array,
      ea: jax.Array,
      cv: jax.Array,
      ca: jax.Array,
      cmask: jax.Array,
      rope_v: jax.Array,
      rope_a: jax.Array,
      rope_vfa: tuple[jax.Array, jax.Array],
      rope_afv: tuple[jax.Array, jax.Array],
      T: int,
      S: int,
  ) -> tuple[jax.Array, jax.Array]:
    """xv [B, T*S, Dv], xa [B, G+Ta, Da] (float32 residual streams); ev [B, 12, Dv], ea [B, 12, Da];
    cv [B, Lc, Dv], ca [B, Lc, Da], cmask [B, Lc]; rope_v [T*S, hd_v/2] (3D), rope_a [G+Ta, hd_a/2];
    rope_vfa, rope_afv: interaction RoPE tables (see `interact`). Returns updated xv, xa."""
    mv, ma = self.video.mods(ev), self.audio.mods(ea)
    dt = L.as_dtype("float32")

    def gated(x, m, i, f):
      h = L.modulate(L.layer_norm(x), m[3 * i], m[3 * i + 1])
      return x + (self.gate_init + m[3 * i + 2][:, None]) * f(h).astype(dt)

    def self_attn(blk, rope):
      def f(h):
        q, (k, v) = blk.self_attn.project_q(h), blk.self_attn.project_kv(h)
        o = L.attention(L.apply_rope(q, rope), L.apply_rope(k, rope), v, None, self.impl)
        return blk.self_attn.out(o)

      return f

    def cond_attn(blk, c):
      def f(h):
        q, (k, v) = blk.cond_attn.project_q(h), blk.cond_attn.project_kv(c)
        return blk.cond_attn.out(L.attention(q, k, v, cmask[:, None, None, :], self.impl))

      return f

    xv = gated(xv, mv, 0, self_attn(self.video, rope_v))
    xa = gated(xa, ma, 0, self_attn(self.audio, rope_a))
    xv = gated(xv, mv, 1, cond_attn(self.video, cv))
    xa = gated(xa, ma, 1, cond_attn(self.audio, ca))
    hv = L.modulate(L.layer_norm(xv), mv[6], mv[7])
    ha = L.modulate(L.layer_norm(xa), ma[6], ma[7])
    uv, ua = self.interact(hv, ha, T, S, rope_vfa, rope_afv)
    xv = xv + (self.gate_init + mv[8][:, None]) * uv.astype(dt)
    xa = xa + (self.gate_init + ma[8][:, None]) * ua.astype(dt)
    xv = gated(xv, mv, 3, self.video.mlp)
    xa = gated(xa, ma, 3, self.audio.mlp)
    return constrain(xv, ACT, self.rules), constrain(xa, ACT, self.rules)


class StreamEmbed(nnx.Module):
  """Per-stream input/output layers: patch embed, timestep MLP, labels, text projection, head."""

  def __init__(
      self,
      patch_dim: int,
      dim: int,
      cfg: Any,
      *,
      rngs: nnx.Rngs,
      bottleneck: int = 0,
      head_bottleneck: int = 0,
  ):
    dtype = L.as_dtype(cfg.dtype)
    # A rank-`bottleneck` patch embedding (JiT's bottleneck: patch -> r -> dim): a linear embedding
    # passes rank / patch_dim of the input's white noise into the model, which the demo's low-noise
    # clean estimates kept as per-pixel noise (README, "The demo's generator").
    self.patch_down = (
        L.dense(patch_dim, bottleneck, ("patch", None), dtype=dtype, rngs=rngs, use_bias=False)
        if bottleneck
        else None
    )
    self.patch = L.dense(bottleneck or patch_dim, dim, ("patch", "embed"), dtype=dtype, rngs=rngs)
    self.t1 = L.dense(cfg.time_embed_dim, dim, ("patch", "embed"), dtype=dtype, rngs=rngs)
    self.t2 = L.dense(dim, dim, ("embed", "mlp"), dtype=dtype, rngs=rngs)
    self.t_mod = L.dense(dim, N_MOD * dim, ("embed", "mlp"), dtype=dtype, rngs=rngs, zero=True)
    self.labels = nnx.Param(
        0.02 * jax.random.normal(rngs.params(), (cfg.num_classes + 1, dim)), out_sharding=("vocab", "embed")
    )
    self.text = (
        L.dense(cfg.text_dim, dim, ("text", "embed"), dtype=dtype, rngs=rngs) if cfg.text_dim else None
    )
    self.head_mod = L.dense(dim, 2 * dim, ("embed", "mlp"), dtype=dtype, rngs=rngs, zero=True)
    # Optional per-token MLP before the output projection (model.head_mlp_dim): a linear head
    # can only emit a token from a dim-dimensional subspace, too few for a 16x16-px token's
    # content (its PCA needs ~150 components for 99% of the variance on the demo data).
    hidden = int(cfg.head_mlp_dim)
    # model.head_patch_skip: the head also reads the token's own noisy input patch, so its detail
    # need not pass through the model's width (a U-Net's finest-scale skip, here at the patch).
    self.patch_skip = bool(cfg.get("head_patch_skip", False))
    d_in = dim + (patch_dim if self.patch_skip else 0)
    self.head_fc = L.dense(d_in, hidden, ("embed", "mlp"), dtype=dtype, rngs=rngs) if hidden else None
    d_head = hidden or d_in
    self.head_down = (
        L.dense(d_head, head_bottleneck, ("mlp" if hidden else "embed", None), dtype=dtype, rngs=rngs)
        if head_bottleneck
        else None
    )
    self.head = L.dense(
        head_bottleneck or d_head,
        patch_dim,
        (None if head_bottleneck else "mlp" if hidden else "embed", "patch"),
        dtype=dtype,
        rngs=rngs,
        zero=True,
    )
    self.time_embed_dim = cfg.time_embed_dim

  def embed(self, patches: jax.Array) -> jax.Array:
    """[B, L, patch_dim] -> [B, L, dim] tokens."""
    return self.patch(self.patch_down(patches) if self.patch_down is not None else patches)

  def time(self, t: jax.Array, label: jax.Array) -> jax.Array:
    """t [B], label [B] -> conditioning vector [B, D] (float32)."""
    h = self.t2(jax.nn.silu(self.t1(L.timestep_features(t, self.time_embed_dim))))
    return h.astype(jnp.float32) + self.labels[...][label]

  def cond_seq(self, label: jax.Array, text: jax.Array | None) -> jax.Array:
    """Conditioning sequence [B, 1 + L_text, D]: the label token then projected caption tokens."""
    seq = self.labels[...][label][:, None]
    if text is not None:
      seq = jnp.concatenate([seq, self.text(text).astype(jnp.float32)], axis=1)
    return seq

  def out(self, x: jax.Array, c: jax.Array, patches: jax.Array) -> jax.Array:
    """x [B, L, D], c [B, D], patches [B, L, patch_dim] (the tokens' input, read with
    head_patch_skip) -> [B, L, patch_dim] float32 (zero at init)."""
    shift, scale = jnp.split(self.head_mod(jax.nn.silu(c)).astype(jnp.float32), 2, axis=-1)
    h = L.modulate(L.layer_norm(x), shift, scale)
    if self.patch_skip:
      h = jnp.concatenate([h, patches.astype(h.dtype)], axis=-1)
    if self.head_fc is not None:
      h = jax.nn.gelu(self.head_fc(h), approximate=True)
    if self.head_down is not None:
      h = self.head_down(h)
    return self.head(h).astype(jnp.float32)


def _stacked_blocks(cfg: Any, rngs: nnx.Rngs) -> JointBlock:
  """`depth` JointBlocks as one module whose parameters have a leading [depth] axis (layers.stacked_layers)."""
  return L.stacked_layers(lambda r: JointBlock(cfg, rngs=r), cfg.depth, rngs)


class JointDiT(nnx.Module):
  """Joint video-audio DiT; see the module docstring. Parameters carry logical axis names."""

  def __init__(self, cfg: Any, *, rngs: nnx.Rngs):
    validate_config(cfg)
    self.cfg = cfg
    ph, pw = tuple(cfg.video_patch)
    # Logical names go into metadata only; shards are placed by create_sharded_model (or not at
    # all on one device), so construction never needs an active mesh.
    with nnx.use_eager_sharding(False):
      self.v_embed = StreamEmbed(
          ph * pw * cfg.video_channels,
          cfg.video_dim,
          cfg,
          rngs=rngs,
          bottleneck=int(cfg.get("video_patch_bottleneck", 0)),
          head_bottleneck=int(cfg.get("video_head_bottleneck", 0)),
      )
      self.a_embed = StreamEmbed(cfg.audio_patch * cfg.audio_channels, cfg.audio_dim, cfg, rngs=rngs)
      G = cfg.global_tokens.num if cfg.global_tokens.enabled else 0
      self.global_tokens = (
          nnx.Param(
              0.02 * jax.random.normal(rngs.params(), (max(G, 1), cfg.audio_dim)),
              out_sharding=("global", "embed"),
          )
          if G
          else None
      )
      if cfg.scan_layers:
        self.blocks = _stacked_blocks(cfg, rngs)
      else:
        self.blocks = nnx.List([JointBlock(cfg, rngs=rngs) for _ in range(cfg.depth)])

  # ------------------------------------------------------------------ validation
  def _check_inputs(
      self, video: jax.Array, audio: jax.Array, t_v: jax.Array, t_a: jax.Array, cond: Mapping[str, jax.Array]
  ) -> None:
    c = self.cfg
    if video.ndim != 5 or audio.ndim != 3:
      raise ValueError(
          f"expected video [B, T_v, h, w, C_v] and audio [B, T_a, C_a], got "
          f"{video.shape} and {audio.shape}"
      )
    B, T, h, w, C = video.shape
    Ta, Ca = audio.shape[1:]
    ph, pw = tuple(c.video_patch)
    if audio.shape[0] != B or t_v.shape != (B,) or t_a.shape != (B,) or cond["label"].shape != (B,):
      raise ValueError(
          f"batch mismatch: video {video.shape}, audio {audio.shape}, t_v {t_v.shape}, "
          f"t_a {t_a.shape}, label {cond['label'].shape}; all need batch {B}"
      )
    if C != c.video_channels:
      raise ValueError(
          f"video latents have {C} channels; the model was built for video_channels={c.video_channels} "
          "(ModelIO: the latents config.data + config.codec make, config_lib.model_io)"
      )
    if Ca != c.audio_channels:
      raise ValueError(
          f"audio latents have {Ca} channels; the model was built for audio_channels={c.audio_channels} "
          "(ModelIO: the latents config.data + config.codec make, config_lib.model_io)"
      )
    if h % ph or w % pw:
      raise ValueError(f"video latent size {h}x{w} is not divisible by model.video_patch={(ph, pw)}")
    if Ta % c.audio_patch:
      raise ValueError(f"audio length T_a={Ta} is not divisible by model.audio_patch={c.audio_patch}")
    dv, da = T / c.video_fps, Ta / c.audio_fps
    if abs(dv - da) > 1e-6 * max(dv, da):
      raise ValueError(
          f"clip durations differ: video {T} frames at {c.video_fps} fps = {dv:.6g} s but audio "
          f"{Ta} frames at {c.audio_fps} fps = {da:.6g} s; the latents' rates come from config.data "
          "and config.codec (ModelIO.video_fps / audio_fps): make T_a / audio_fps == T_v / video_fps"
      )
    text = cond.get("text")
    if text is not None and not c.text_dim:
      raise ValueError(
          "cond['text'] given but the model was built with text_dim=0 (no caption conditioning); "
          "build it with ModelIO.text_dim = the caption embedding width"
      )
    if text is not None and text.shape[-1] != c.text_dim:
      raise ValueError(
          f"cond['text'] has width {text.shape[-1]}; the model was built for text_dim={c.text_dim}"
      )
    Tt = Ta // c.audio_patch
    rate_a = c.audio_fps / c.audio_patch
    L.check_local_window(T, Tt, c.video_fps, rate_a, c.local_window_s)
    L.check_local_window(Tt, T, rate_a, c.video_fps, c.local_window_s)
    check_batch_divides(B, c.logical_axis_rules)

  # ------------------------------------------------------------------ forward
  def __call__(
      self, video: jax.Array, audio: jax.Array, t_v: jax.Array, t_a: jax.Array, cond: Mapping[str, jax.Array]
  ) -> tuple[jax.Array, jax.Array]:
    """Velocities for noisy latents.

    video: [B, T_v, h, w, C_v]; audio: [B, T_a, C_a]; t_v, t_a: [B] in [0, 1] (0 = clean);
    cond: {'label': int32 [B] (num_classes = null class), optional 'text': [B, L, text_dim],
    'text_mask': bool [B, L]}. Returns (v_video [B, T_v, h, w, C_v], v_audio [B, T_a, C_a]), f32.
    """
    c = self.cfg
    self._check_inputs(video, audio, t_v, t_a, cond)
    rules = tuple(c.logical_axis_rules)
    B, T, h, w, C = video.shape
    Ta = audio.shape[1]
    ph, pw = tuple(c.video_patch)
    pa = c.audio_patch
    hp, wp, Tt = h // ph, w // pw, Ta // pa
    S = hp * wp
    G = self.global_tokens.shape[0] if self.global_tokens is not None else 0

    # Patchify: [B, T, h, w, C] -> [B, T*hp*wp, ph*pw*C] (frame-major); [B, Ta, C] -> [B, Tt, pa*C].
    pv = video.reshape(B, T, hp, ph, wp, pw, C).transpose(0, 1, 2, 4, 3, 5, 6)
    pv = pv.reshape(B, T * S, ph * pw * C)
    pa_ = audio.reshape(B, Tt, pa * audio.shape[-1])
    xv = self.v_embed.embed(pv).astype(jnp.float32)
    if c.video_pos_embed == "sincos":
      pos = L.sincos_2d(hp, wp, c.video_dim)  # [S, Dv], a constant
      xv = (xv.reshape(B, T, S, -1) + pos).reshape(B, T * S, -1)
    xa = self.a_embed.embed(pa_).astype(jnp.float32)
    if G:
      xa = jnp.concatenate([jnp.broadcast_to(self.global_tokens[...][None], (B, G, c.audio_dim)), xa], axis=1)
    xv, xa = constrain(xv, ACT, rules), constrain(xa, ACT, rules)

    label = jnp.clip(cond["label"].astype(jnp.int32), 0, c.num_classes)
    text = cond.get("text")
    tv_vec = self.v_embed.time(t_v, label)  # [B, Dv]
    ta_vec = self.a_embed.time(t_a, label)  # [B, Da]
    ev = self.v_embed.t_mod(jax.nn.silu(tv_vec)).astype(jnp.float32).reshape(B, N_MOD, -1)
    ea = self.a_embed.t_mod(jax.nn.silu(ta_vec)).astype(jnp.float32).reshape(B, N_MOD, -1)
    cv, ca = self.v_embed.cond_seq(label, text), self.a_embed.cond_seq(label, text)
    cmask = jnp.ones((B, 1), bool)
    if text is not None:
      tm = cond.get("text_mask")
      tm = jnp.ones(text.shape[:2], bool) if tm is None else tm.astype(bool)
      cmask = jnp.concatenate([cmask, tm], axis=1)

    # RoPE tables (static shapes; constants under jit).
    theta = c.rope_theta
    rope_v = L.rope_3d_angles(T, hp, wp, c.video_dim // c.video_heads, theta)
    # Global tokens sit at position 0 (identity rotation): they have no time.
    pos_a = np.concatenate([np.zeros(G), np.arange(Tt)])
    rope_a = L.rope_angles(pos_a, c.audio_dim // c.audio_heads, theta)
    hdi_v = c.video_dim // c.interaction_heads
    hdi_a = c.audio_dim // c.interaction_heads
    rate_a = c.audio_fps / pa
    # Interaction RoPE: both streams on the video-frame timeline (Harmony's index scaling).
    pos_t = L.positions_on_video_timeline(Tt, rate_a, c.video_fps)
    rope_vfa = (L.rope_angles(np.arange(T), hdi_v, theta), L.rope_angles(pos_t, hdi_v, theta))
    rope_afv = (L.rope_angles(np.arange(T), hdi_a, theta), L.rope_angles(pos_t, hdi_a, theta))

    def run(carry, block):
      if c.scan_layers:
        # FSDP: this layer's weights are gathered over the data-parallel mesh axes right
        # here, one layer at a time. Left implicit, XLA's partitioner mis-slices stacked
        # weights sharded over both 'fsdp' and 'tensor' when the batch is split over
        # 'data' and 'fsdp' (wrong values for some examples, jax 0.10 / 2x2x2 mesh).
        block = gather_data_parallel(block, rules)
      xv, xa = carry
      return block(xv, xa, ev, ea, cv, ca, cmask, rope_v, rope_a, rope_vfa, rope_afv, T, S)

    if c.remat != "none":
      # Inside a scan the loop boundary already stops XLA from CSE-ing the recomputation
      # into the forward pass, so prevent_cse (extra barriers) is only needed unrolled.
      run = nnx.remat(run, policy=L.REMAT_POLICY_FNS[c.remat], prevent_cse=not c.scan_layers)
    if c.scan_layers:
      # A plain lax.scan over the stacked layer state (rather than nnx.scan): the module is
      # rebuilt from the per-layer slice inside the body, so the forward works at any trace
      # level, e.g. inside a sampler's own lax.scan over ODE steps with closed-over params.
      graphdef, stacked = nnx.split(self.blocks)

      def body(carry, layer_state):
        return run(carry, nnx.merge(graphdef, layer_state)), None

      (xv, xa), _ = jax.lax.scan(body, (xv, xa), stacked)
    else:
      for block in self.blocks:
        xv, xa = run((xv, xa), block)

    ov = self.v_embed.out(xv, tv_vec, pv)  # [B, T*S, ph*pw*C]
    oa = self.a_embed.out(xa[:, G:], ta_vec, pa_)  # [B, Tt, pa*C_a]
    ov = ov.reshape(B, T, hp, wp, ph, pw, C).transpose(0, 1, 2, 4, 3, 5, 6).reshape(B, T, h, w, C)
    oa = oa.reshape(B, Ta, audio.shape[-1])
    return ov, oa
