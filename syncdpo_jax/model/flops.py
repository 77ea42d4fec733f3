"""Analytic forward FLOPs of `JointDiT` per example (matmuls and attention; 1 multiply-add = 2 FLOPs).

Used for MFU: train FLOPs per example = 3 x forward (backward is ~2 x forward); with full
rematerialisation add one more forward. Elementwise work (norms, RoPE, softmax, GELU) is not
counted, following the usual MFU convention; on the tiny test config it is a few percent of XLA's
count. The local interaction is counted as the banded kernel computes it (whole key blocks), which
is what the hardware executes.
"""

from __future__ import annotations

from typing import Any

from syncdpo_jax.model.layers import band_plan


def _attn_proj(nq: int, nkv: int, dq: int, dkv: int) -> float:
  """q, k, v, o projections: q/o on nq tokens (dq -> dq), k/v on nkv tokens (dkv -> dq)."""
  return 2.0 * (2 * nq * dq * dq + 2 * nkv * dkv * dq)


def flops_per_example(cfg: Any, T_v: int, h: int, w: int, T_a: int, text_len: int = 0) -> float:
  """Forward FLOPs for one example with video latents [T_v, h, w, C_v] and audio [T_a, C_a].

  cfg: a model spec (model.resolve: the architecture, the latents' channels and rates, the remat policy).
  text_len: caption tokens in the conditioning sequence (0 = label token only).
  """
  if cfg.get("name") == "ltx2":  # the ported LTX-2 counts its own layers
    from syncdpo_jax.model import ltx2

    return ltx2.flops_per_example(cfg, T_v, h, w, T_a, text_len)
  ph, pw = tuple(cfg.video_patch)
  pa = cfg.audio_patch
  S = (h // ph) * (w // pw)
  Nv = T_v * S
  Tt = T_a // pa
  G = cfg.global_tokens.num if cfg.global_tokens.enabled else 0
  Na = G + Tt
  Lc = 1 + (text_len if cfg.text_dim else 0)
  Dv, Da = cfg.video_dim, cfg.audio_dim
  Pv, Pa = ph * pw * cfg.video_channels, pa * cfg.audio_channels
  Te = cfg.time_embed_dim
  rate_a = cfg.audio_fps / pa
  W = cfg.local_window_s

  f = 0.0
  # Embeddings, timestep MLP + adaLN projections, caption projection, output heads.
  video_ranks = (int(cfg.get("video_patch_bottleneck", 0)), int(cfg.get("video_head_bottleneck", 0)))
  for N, D, P, NP, (R, Ro) in ((Nv, Dv, Pv, Nv, video_ranks), (Na, Da, Pa, Tt, (0, 0))):
    f += 2.0 * NP * (P * R + R * D) if R else 2.0 * NP * P * D  # patch embed (bottlenecked or not)
    f += 2.0 * (Te * D + D * D + D * 12 * D + D * 2 * D)  # t1, t2, t_mod, head_mod
    f += 2.0 * (Lc - 1) * cfg.text_dim * D  # caption projection
    Hm = int(cfg.get("head_mlp_dim", 0))
    Din = D + (P if cfg.get("head_patch_skip", False) else 0)  # + the input patch
    f += 2.0 * NP * Din * Hm if Hm else 0.0  # the head's MLP layer
    Dh = Hm or Din
    f += 2.0 * NP * (Dh * Ro + Ro * P) if Ro else 2.0 * NP * Dh * P  # its output map (rank Ro or full)

  def stream_block(N: int, D: int, M: int) -> float:
    g = _attn_proj(N, N, D, D) + 4.0 * N * N * D  # self-attention
    g += _attn_proj(N, Lc, D, D) + 4.0 * N * Lc * D  # conditioning cross-attention
    g += 4.0 * N * D * M  # MLP
    return g

  block = stream_block(Nv, Dv, cfg.video_mlp_dim) + stream_block(Na, Da, cfg.audio_mlp_dim)
  # Interaction projections: video <- audio (all audio incl. global tokens as keys), audio <- video.
  block += _attn_proj(Nv, Na, Dv, Da) + _attn_proj(Na, Nv, Da, Dv)
  # Banded local attention: every query block times its (2n+1) key blocks.
  p = band_plan(T_v, Tt, cfg.video_fps, rate_a, W)
  block += 4.0 * p.nb * (p.bq * S) * ((2 * p.n + 1) * p.bk) * Dv
  p = band_plan(Tt, T_v, rate_a, cfg.video_fps, W)
  block += 4.0 * p.nb * p.bq * ((2 * p.n + 1) * p.bk * S) * Da
  # Global path: video reads G global tokens; global tokens read the whole video.
  block += 4.0 * Nv * G * Dv + 4.0 * G * Nv * Da
  return f + cfg.depth * block


def train_flops_per_example(cfg: Any, T_v: int, h: int, w: int, T_a: int, text_len: int = 0) -> float:
  """Forward + backward (3x forward), plus one forward more when blocks are rematerialised."""
  mult = 3.0 if cfg.remat == "none" else 4.0
  return mult * flops_per_example(cfg, T_v, h, w, T_a, text_len)


def train_step_flops(
    cfg: Any, T_v: int, h: int, w: int, T_a: int, batch: int, *, dpo: bool = False, text_len: int = 0
) -> float:
  """Model FLOPs of one optimizer step on `batch` examples (what the loop's FLOP/s and MFU divide).

  SFT: `train_flops_per_example` on B. DPO: the policy's forward + backward on [winner; loser] (2B) and
  the frozen reference's forward on the same 2B: 2B x (3 + 1) forwards, 2B x (4 + 1) with remat.
  """
  policy = train_flops_per_example(cfg, T_v, h, w, T_a, text_len)
  if not dpo:
    return batch * policy
  return 2 * batch * (policy + flops_per_example(cfg, T_v, h, w, T_a, text_len))
