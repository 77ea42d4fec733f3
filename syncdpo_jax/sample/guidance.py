"""Guided velocity: classifier-free guidance (CFG) on the conditioning and SyncCFG (Harmony).

Passes of the model `fn(video, audio, t_v, t_a, cond) -> (v_video, v_audio)` used for one velocity:

  pos      (x_v, x_a, t_v, t_a, cond)                      the plain conditional prediction
  uncond   (x_v, x_a, t_v, t_a, null(cond))                CFG only; label -> null label
  v-neg    (x_v, SILENT, t_v, 0, cond)                     SyncCFG for video: audio replaced by a clean
                                                           silent anchor (every latent = silence_value)
  a-neg    (STATIC, x_a, 0, t_a, cond)                     SyncCFG for audio: video replaced by a clean
                                                           static anchor

STATIC = the first frame of a clean video repeated over time. When the video is given (v2a) that clean
video is the given one. In joint mode the video is still noisy, so we use the first frame of the current
step's conditional x0 estimate x0 = x_t - t_v * v_video(pos) (exact for the flow x_t = (1-t) x0 + t eps);
that makes joint SyncCFG two model calls per evaluation ([pos, uncond] then [v-neg, a-neg]), while
v2a / a2v need one.

Combination (per modality m, CFG scale w, SyncCFG scale s_m), guidance terms added around the
conditional prediction as in composable / multi-condition CFG (Liu et al. 2022; Brooks et al. 2023):

  v_m = v_m(pos) + (w - 1) (v_m(pos) - v_m(uncond)) + (s_m - 1) (v_m(pos) - v_m(neg))

With w = 1 this is exactly Harmony's SyncCFG v_m(neg) + s_m (v_m(pos) - v_m(neg)); with s_m = 1 it is
plain CFG v(uncond) + w (v(pos) - v(uncond)); with w = s_m = 1 it is v_m(pos). A scale equal to 1
(a Python float, static under jit) drops its pass entirely.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

ModelFn = Callable[..., tuple[jax.Array, jax.Array]]


def null_cond(cond: Mapping[str, jax.Array], null_label: int) -> dict[str, jax.Array]:
  """The unconditional version of `cond`: label -> `null_label` (= model num_classes); text, if any,
  becomes all-masked zeros (empty prompt)."""
  out = dict(cond)
  out["label"] = jnp.full_like(cond["label"], null_label)
  if "text" in cond:
    out["text"] = jnp.zeros_like(cond["text"])
  if "text_mask" in cond:
    out["text_mask"] = jnp.zeros_like(cond["text_mask"])
  return out


def silent_audio_anchor(audio: jax.Array, silence_value: float = -1.0) -> jax.Array:
  """Clean silent audio like `audio` [B, T_a, C_a]: every latent = silence_value (-1 = -80 dB log-mel)."""
  return jnp.full_like(audio, silence_value)


def static_video_anchor(clean_video: jax.Array) -> jax.Array:
  """Clean static video: frame 0 of `clean_video` [B, T_v, h, w, C] repeated over T_v (same shape)."""
  return jnp.broadcast_to(clean_video[:, :1], clean_video.shape)


def _concat(trees: list[Any]) -> Any:
  return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *trees)


def _call_batched(model_fn: ModelFn, passes: list[tuple]) -> list[tuple[jax.Array, jax.Array]]:
  """Runs several passes as ONE model call, concatenated along batch, and splits the outputs."""
  if len(passes) == 1:
    return [tuple(model_fn(*passes[0]))]
  b = passes[0][0].shape[0]
  v_v, v_a = model_fn(*_concat([list(p) for p in passes]))
  return [(v_v[i * b : (i + 1) * b], v_a[i * b : (i + 1) * b]) for i in range(len(passes))]


def _combine(pos, uncond, neg, w: float, s: float):
  v = pos
  if uncond is not None:
    v = v + (w - 1.0) * (pos - uncond)
  if neg is not None:
    v = v + (s - 1.0) * (pos - neg)
  return v


def guided_velocity(
    model_fn: ModelFn,
    video: jax.Array,
    audio: jax.Array,
    t: jax.Array,
    cond: Mapping[str, jax.Array],
    *,
    mode: str = "joint",
    cfg_scale: float = 1.0,
    sync_cfg: bool = False,
    s_v: float = 3.0,
    s_a: float = 2.0,
    null_label: int,
    silence_value: float = -1.0,
) -> tuple[jax.Array | None, jax.Array | None]:
  """Guided velocities at flow time t (see the module docstring for the passes and the formula).

  Args:
    model_fn: fn(video, audio, t_v, t_a, cond) -> (v_video, v_audio).
    video: [B, T_v, h, w, C_v] current video latents (clean and given when mode == 'v2a').
    audio: [B, T_a, C_a] current audio latents (clean and given when mode == 'a2v').
    t: scalar or [B] flow time of the generated stream(s); a given stream always gets t = 0.
    cond: {'label': int32 [B], optional 'text': [B, L, D], 'text_mask': bool [B, L]}.
    mode: 'joint' | 'v2a' | 'a2v' (static).
    cfg_scale, s_v, s_a: Python floats (static); 1.0 disables that guidance term.
    sync_cfg: enable SyncCFG.
    null_label: the unconditional class id (model num_classes).
    silence_value: latent value of silent audio.
  Returns:
    (v_video [B, T_v, h, w, C_v] or None when video is given, v_audio [B, T_a, C_a] or None when audio is
    given).
  """
  b = video.shape[0]
  t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (b,))
  zero = jnp.zeros((b,), jnp.float32)
  gen_v, gen_a = mode in ("joint", "a2v"), mode in ("joint", "v2a")
  t_v, t_a = (t if gen_v else zero), (t if gen_a else zero)
  use_cfg = cfg_scale != 1.0
  neg_v = gen_v and sync_cfg and s_v != 1.0
  neg_a = gen_a and sync_cfg and s_a != 1.0

  first = [(video, audio, t_v, t_a, cond)]
  if use_cfg:
    first.append((video, audio, t_v, t_a, null_cond(cond, null_label)))
  second = []
  if neg_v:
    second.append((video, silent_audio_anchor(audio, silence_value), t_v, zero, cond))
  # In joint mode the static anchor needs the conditional x0 estimate -> a second call; otherwise the
  # video is clean already and every pass fits into one call.
  joint_anchor = neg_a and gen_v
  if neg_a and not gen_v:
    second.append((static_video_anchor(video), audio, zero, t_a, cond))
  outs = _call_batched(model_fn, first + second if not joint_anchor else first)
  pos = outs[0]
  uncond = outs[1] if use_cfg else None
  rest = outs[len(first) :]
  if joint_anchor:
    x0_video = jax.lax.stop_gradient(video - t_v[:, None, None, None, None] * pos[0])
    second.append((static_video_anchor(x0_video), audio, zero, t_a, cond))
    rest = _call_batched(model_fn, second)
  it = iter(rest)
  vneg = next(it)[0] if neg_v else None
  aneg = next(it)[1] if neg_a else None
  v_video = (
      _combine(pos[0], uncond[0] if uncond is not None else None, vneg, cfg_scale, s_v) if gen_v else None
  )
  v_audio = (
      _combine(pos[1], uncond[1] if uncond is not None else None, aneg, cfg_scale, s_a) if gen_a else None
  )
  return v_video, v_audio
