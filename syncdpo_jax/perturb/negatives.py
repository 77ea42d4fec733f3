"""Sampling a perturbation per example, and building a batch of DPO negatives inside the jitted step.

`probs` (the mix) is either a static mapping name -> probability (from the perturb config; names with
probability 0 are not even compiled) or a float array `[len(names())]` in `names()` order (e.g. the
traced per-stage mix of the curriculum, `curriculum.mix_probs`). Probabilities are normalised here.

`make_negatives` is the hot path: it vmaps only the cheap `[T]` index computations of the chosen rule
(a `lax.switch` that vmap turns into a select over the candidate rules, all of them O(T) integer work)
and then touches the data once per source: a per-example gather per modality, plus, only if a
candidate can use it (Swap, cross-example Replace), a gather from the "other" example (the batch
rolled by one, `jnp.roll(x, 1, 0)`, so example b pairs with b - 1). Both stay shard-local on a mesh
whose batch axis is sharded, except the roll's neighbour exchange.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from syncdpo_jax.perturb import ops

Probs = Mapping[str, float] | jax.Array | np.ndarray
Options = Mapping[str, Mapping[str, Any]] | None


def probs_vector(probs: Probs) -> tuple[tuple[str, ...], jax.Array]:
  """Candidate names and their normalised probabilities.

  A static mapping keeps only names with probability > 0 (fewer branches to compile and run); an
  array must have one entry per `names()` and may be traced.
  """
  if isinstance(probs, Mapping):
    for name, p in probs.items():
      ops.kind_index(name)
      if not float(p) >= 0.0:
        raise ValueError(
            f"perturbation probability for {name!r} must be >= 0, got {p!r} " "(perturb config `mix`)"
        )
    cands = tuple(n for n in ops.names() if float(probs.get(n, 0.0)) > 0.0)
    if not cands:
      raise ValueError(
          f"perturbation mix {dict(probs)} has no positive probability; set at least "
          "one of perturb config `mix.<name>` > 0"
      )
    p = np.asarray([float(probs[n]) for n in cands], np.float32)
    return cands, jnp.asarray(p / p.sum())
  p = jnp.asarray(probs, jnp.float32)
  if p.shape != (len(ops.names()),):
    raise ValueError(
        f"probability vector must have shape ({len(ops.names())},) in names() order "
        f"{ops.names()}, got {p.shape}"
    )
  return tuple(ops.names()), p / jnp.sum(p)


def _resolve_all(cands: tuple[str, ...], options: Options) -> dict[str, dict[str, Any]]:
  options = dict(options or {})
  for name in options:
    ops.kind_index(name)
  return {n: ops.resolve_options(n, options.get(n)) for n in cands}


def _sample_maps(key, video, audio, strength, fps_v, fps_a, cands, p, has_other, opts, margins=(0, 0)):
  """Picks a rule from `cands` with probabilities `p` and builds its maps for one example."""
  k_pick, k_sal, k_apply = jax.random.split(key, 3)
  # The change curve and salient frame are computed once, outside the switch, and only for the
  # modalities a candidate rule looks at: under vmap the switch runs every branch, and only one
  # rule is applied per example, so the candidates can share one draw.
  need = {ops.MODALITY_IDS[opts[n]["modality"]] for n in cands if n in ops.SALIENT_RULES}
  k_sal_v, k_sal_a = jax.random.split(k_sal)
  saliency = (
      ops.salient(k_sal_v, video) if ops.VIDEO in need else None,
      ops.salient(k_sal_a, audio) if ops.AUDIO in need else None,
  )
  branches = [
      (
          lambda k, s, n=n: ops.build_maps(
              n, k, video, audio, s, fps_v, fps_a, has_other, opts[n], saliency, margins
          )
      )
      for n in cands
  ]
  if len(branches) == 1:
    return branches[0](k_apply, strength)
  idx = jax.random.categorical(k_pick, jnp.log(p))
  return jax.lax.switch(idx, branches, k_apply, strength)


def _fills(cands, opts) -> tuple[bool, bool]:
  """Whether any candidate can write silence into video / audio (static)."""
  fv = any(ops.uses_silence(n, opts[n]) and opts[n]["modality"] == "video" for n in cands)
  fa = any(ops.uses_silence(n, opts[n]) and opts[n]["modality"] == "audio" for n in cands)
  return fv, fa


def sample_apply(
    key: jax.Array,
    video: jax.Array,
    audio: jax.Array,
    strength: jax.Array | float,
    fps_v: float,
    fps_a: float,
    probs: Probs,
    other: tuple[jax.Array, jax.Array] | None = None,
    options: Options = None,
    context: Mapping[str, jax.Array] | None = None,
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
  """Samples one perturbation from `probs` and applies it to ONE example.

  video: [T_v, ...], audio: [T_a, ...]; other: another example's (video, audio) or None (its context
  when `context` is given); options: {name: {option: value}} overrides of `ops.DEFAULT_OPTIONS`;
  context: as in `ops.apply`. Same contract as `ops.apply`; `info['kind']` says which rule was applied.
  """
  cands, p = probs_vector(probs)
  opts = _resolve_all(cands, options)
  margins = ops.context_margins(video, audio, context)
  map_v, map_a, info = _sample_maps(
      key, video, audio, strength, fps_v, fps_a, cands, p, other is not None, opts, margins
  )
  return (*ops.apply_maps(video, audio, map_v, map_a, other, context, _fills(cands, opts)), info)


def _uses_other(cands, opts) -> bool:
  """Whether any candidate can read the other example (static)."""
  return any(n == "swap" or (n == "replace" and float(opts[n]["other_prob"]) > 0) for n in cands)


def _gather_batch(x: jax.Array, m: ops.TimeMap, fill: jax.Array | None, use_other: bool) -> jax.Array:
  """Batched time-map gather, other example = previous one. x: [B, T, ...] -> [B, T, ...].

  The gather is per example (a gather whose batch dim is a batching dim), so on a mesh with the
  batch sharded over 'data'/'fsdp' it stays local; the other example comes from `jnp.roll` over the
  batch, a neighbour exchange (collective-permute) rather than an all-gather of the whole batch.
  """
  take = jax.vmap(lambda xi, si: jnp.take(xi, si, axis=0))
  out = take(x, m.src)
  bshape = m.src.shape + (1,) * (x.ndim - 2)
  if use_other:
    out = jnp.where(m.oth.reshape(bshape), take(jnp.roll(x, 1, axis=0), m.src), out)
  if fill is not None:
    out = jnp.where(m.sil.reshape(bshape), fill[:, None].astype(x.dtype), out)
  return out


def make_negatives(
    key: jax.Array,
    video_b: jax.Array,
    audio_b: jax.Array,
    strength: jax.Array | float,
    fps_v: float,
    fps_a: float,
    probs: Probs,
    options: Options = None,
    context: Mapping[str, jax.Array] | None = None,
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
  """Perturbed copies (DPO losers) of a batch of real pairs.

  Args:
    key: PRNG key; example b uses `jax.random.split(key, B)[b]`.
    video_b: [B, T_v, ...] at fps_v; audio_b: [B, T_a, ...] at fps_a (static floats).
    strength: scalar or [B] in [0, 1], may be traced (the curriculum's `strength(state)`).
    probs: the mix (see module docstring); options: per-rule overrides.
    context: {'video': [B, T_v + 2 m_v, ...], 'audio': [B, T_a + 2 m_a, ...]}: the same clips cropped
      wider (the window in the middle, `ops.apply`); the losers then read their content from it.
  Returns:
    (video_l [B, T_v, ...], audio_l [B, T_a, ...], info: dict of [B] arrays, ops.INFO_SCHEMA).
  Identical to `jax.vmap(sample_apply)` with `other = jnp.roll(batch, 1, axis=0)`. With B == 1 there
  is no other example: Swap falls back to whole-clip reverse (reported as 'reverse') and Replace
  takes its segment from the clip itself, as in `sample_apply(..., other=None)`.
  """
  b = video_b.shape[0]
  if audio_b.shape[0] != b:
    raise ValueError(f"video batch {video_b.shape} and audio batch {audio_b.shape} differ in size")
  cands, p = probs_vector(probs)
  opts = _resolve_all(cands, options)
  strength_b = jnp.broadcast_to(jnp.asarray(strength, jnp.float32), (b,))
  keys = jax.random.split(key, b)
  has_other = b >= 2

  margins = ops.context_margins(video_b, audio_b, context, time_axis=1)

  def one(k, s, v, a):
    return _sample_maps(k, v, a, s, fps_v, fps_a, cands, p, has_other, opts, margins)

  map_v, map_a, info = jax.vmap(one)(keys, strength_b, video_b, audio_b)
  fv, fa = _fills(cands, opts)
  use_other = has_other and _uses_other(cands, opts)
  src_v, src_a = (video_b, audio_b) if context is None else (context["video"], context["audio"])
  video_l = _gather_batch(src_v, map_v, jnp.min(video_b, axis=1) if fv else None, use_other)
  audio_l = _gather_batch(src_a, map_a, jnp.min(audio_b, axis=1) if fa else None, use_other)
  return video_l, audio_l, info
