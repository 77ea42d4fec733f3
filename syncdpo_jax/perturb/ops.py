"""Rule-based temporal perturbations of one aligned (video, audio) example.

Every perturbation here is a *time map*: for each output frame of the distorted modality it says which
source frame to read (`src`), whether to read it from another example (`oth`, Swap / cross-example
Replace) and whether to write "silence" instead (`sil`, Mute and the padded edge of Shift/Scale). A
perturbation is therefore a cheap computation on `[T]` integer vectors (plus, for the rules that look
for events, one change curve of the distorted modality), and the data is touched by a single gather
per modality and source (`apply_map`; per-example gathers in `negatives.make_negatives`). Content is
never blended across frames (nearest-frame resampling): a blended frame is a *quality* cue (ghosting)
that DPO could learn to avoid instead of the *timing* cue we want it to learn.

Local rules (Replace, Reverse, Shuffle, Mute, Freeze, Repeat) centre their segment on a salient change
of the distorted modality (`_salient_frame`): distorting unchanging background would give a loser
identical to the winner. Shift and Scale act on the whole clip; Swap on the whole modality.

Conventions (see DESIGN.md): one example, time first (`video [T_v, ...]`, `audio [T_a, ...]`, any
trailing dims), `strength` in [0, 1] (1 = coarse/obvious, 0 = subtle, never the identity; may be traced),
`fps_v`/`fps_a` static Python floats, `info` a dict of scalars with one schema for all perturbations
(`INFO_SCHEMA`), `offset_s` positive = audio late.

"Silence" in latent space is the per-channel minimum over time of the example's own clip: for the
normalised log-mel (silence ~ -1) it is the quietest level of every mel bin, i.e. the clip's background;
for video latents it is the per-pixel minimum, a still background without the bright moving parts.

The strength -> magnitude rule is the single table `MAGNITUDES`; the floor that keeps strength 0 from
being an identity is one frame of the coarser modality (`1 / min(fps_v, fps_a)` seconds), enforced in
frames of the distorted modality after rounding.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp

VIDEO, AUDIO = 0, 1
MODALITY_IDS = {"video": VIDEO, "audio": AUDIO}


# ----------------------------------------------------------------------------------------------------
# The strength -> magnitude table.
# ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Magnitude:
  """Physical size of a perturbation at strength 0 (`subtle`) and strength 1 (`coarse`).

  `unit` is 's' (seconds) or 'factor' (time-stretch factor >= 1, applied as a or 1/a at random).
  `None` means "the whole clip". Between the ends the magnitude is interpolated geometrically
  (log-linear; for factors log-linear in log(factor)), so equal strength steps are equal *ratios*,
  which matches how perceptual offset thresholds scale.
  """

  quantity: str
  unit: str
  subtle: float | None
  coarse: float | None
  meaning: str


MAGNITUDES: dict[str, Magnitude] = {
    "shift": Magnitude(
        "offset",
        "s",
        0.1,
        1.0,
        "the distorted modality is displaced by +-offset s (random sign) over the whole clip; the "
        "shifted-in edge is silence for audio, the held edge frame for video",
    ),
    "replace": Magnitude(
        "segment",
        "s",
        0.1,
        1.0,
        "a segment of this length (capped at half the clip), centred on a salient change, is "
        "overwritten by the same-length segment displaced by the Shift offset at this strength "
        "(random sign), or, with prob. other_prob when available, the same moment of another example",
    ),
    "scale": Magnitude(
        "factor",
        "factor",
        1.05,
        2.0,
        "time-stretch x'(t) = x(t / a), anchored at the clip start, a = factor or 1/factor; a "
        "multiplies inter-onset intervals; floor: the most displaced frame moves >= 1 coarse frame",
    ),
    "reverse": Magnitude(
        "segment",
        "s",
        0.2,
        None,
        "a segment of this length is played backwards in place (>= 2 coarse frames; whole clip at 1)",
    ),
    "shuffle": Magnitude(
        "segment",
        "s",
        0.1,
        0.5,
        "a window of `num_segments` consecutive segments of this length is permuted (never the "
        "identity permutation)",
    ),
    "swap": Magnitude(
        "clip",
        "s",
        None,
        None,
        "the distorted modality comes from another example: always the whole clip (the coarsest "
        "negative, strength-independent); without another example it falls back to whole-clip "
        "reverse and reports kind 'reverse'",
    ),
    "mute": Magnitude(
        "segment",
        "s",
        0.1,
        1.0,
        "a segment of this length, centred on a salient change (an audio onset: 'drop an event'), "
        "is replaced by silence",
    ),
    "freeze": Magnitude(
        "hold", "s", 0.1, 1.0, "the frame before a salient change is held for this long (video stops moving)"
    ),
    "repeat": Magnitude(
        "segment",
        "s",
        0.1,
        1.0,
        "a segment of this length is replayed immediately after itself (a stutter), so the replayed "
        "span lags by the segment length; capped at half the clip",
    ),
}

# Which modality each perturbation distorts unless options say otherwise, and its extra options.
# Audio carries the sharp onsets, so timing distortions act on audio; reverse/freeze/repeat are
# natural video artefacts (played backwards, a stalled decoder, a stutter).
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    # subtle_s / coarse_s: the offset range in seconds over strength 0 -> 1 (None: MAGNITUDES'); floor
    # 'coarse' keeps every offset >= one frame of the coarser modality, 'frame' >= one frame of the
    # shifted one (sub-video-frame audio offsets: the curriculum in physical units).
    "shift": {"modality": "audio", "pad": "auto", "subtle_s": None, "coarse_s": None, "floor": "coarse"},
    "replace": {"modality": "audio", "other_prob": 0.5},
    "scale": {"modality": "audio", "pad": "auto"},
    "reverse": {"modality": "video"},
    "shuffle": {"modality": "audio", "num_segments": 4},
    "swap": {"modality": "audio"},
    "mute": {"modality": "audio"},
    "freeze": {"modality": "video"},
    "repeat": {"modality": "video"},
}

_NAMES: tuple[str, ...] = tuple(MAGNITUDES)

# The rules that change only cross-modal timing: given a context (`apply(..., context=)`), the
# distorted stream is itself a real crop of the clip, so one stream alone cannot tell the loser from the
# winner (the shortcut audit: benchmarks/bench_shortcut_audit.py, tests/test_perturb_audit.py). The
# others leave single-stream cues even with a context: Replace and Shuffle splice (a jump larger than
# the clip's own), Scale's nearest-frame resampling repeats or drops frames, Mute writes levels below
# the clip, Freeze and Repeat hold or replay frames, Reverse plays motion backwards, and Swap changes
# which scene the stream shows, not when.
TIMING_RULES: tuple[str, ...] = ("shift",)

# Every perturbation returns exactly these scalars (so lax.switch / vmap over them works).
INFO_SCHEMA: dict[str, Any] = {
    "kind": jnp.int32,  # index into names() of the perturbation actually applied
    "modality": jnp.int32,  # 0 = video distorted, 1 = audio distorted
    "strength": jnp.float32,  # the strength it was called with (clipped to [0, 1])
    "offset_s": jnp.float32,  # constant offset of the affected span, + = audio late; 0 if none
    "magnitude": jnp.float32,  # the physical amount realised after rounding: s, or the factor a
    "start_s": jnp.float32,  # start of the affected span (s from window start)
    "duration_s": jnp.float32,  # length of the affected span (s)
}


def names() -> list[str]:
  """Names of all perturbations, in the order used by `info['kind']` and probability vectors."""
  return list(_NAMES)


def kind_index(name: str) -> int:
  """Index of `name` in `names()`; raises a ValueError listing the valid names."""
  if name not in _NAMES:
    raise ValueError(
        f"unknown perturbation {name!r}; expected one of {list(_NAMES)} "
        "(syncdpo_jax.perturb.names()); fix the perturb config `mix`/`modality` keys"
    )
  return _NAMES.index(name)


def resolve_options(name: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """Defaults of `name` overridden by `options` (a flat dict of that perturbation's options)."""
  kind_index(name)
  opts = dict(DEFAULT_OPTIONS[name])
  for k, v in dict(options or {}).items():
    if k not in opts:
      raise ValueError(f"perturbation {name!r} has no option {k!r}; valid options: {sorted(opts)}")
    opts[k] = v
  if opts["modality"] not in MODALITY_IDS:
    raise ValueError(
        f"perturbation {name!r}: modality must be 'audio' or 'video', got "
        f"{opts['modality']!r} (perturb config field `modality.{name}`)"
    )
  if "pad" in opts and opts["pad"] not in ("auto", "silence", "edge"):
    raise ValueError(
        f"perturbation {name!r}: pad must be 'auto', 'silence' or 'edge', got " f"{opts['pad']!r}"
    )
  if name == "shift":
    if opts["floor"] not in ("coarse", "frame"):
      raise ValueError(
          f"shift: floor must be 'coarse' or 'frame', got {opts['floor']!r} (perturb config shift.floor)"
      )
    lo, hi = opts["subtle_s"], opts["coarse_s"]
    if (
        (lo is not None and not lo > 0)
        or (hi is not None and not hi > 0)
        or (None not in (lo, hi) and lo > hi)
    ):
      raise ValueError(
          f"shift: need 0 < subtle_s <= coarse_s seconds, got subtle_s={lo!r}, coarse_s={hi!r} "
          "(perturb config shift.subtle_s / shift.coarse_s)"
      )
  if name == "shuffle" and (not isinstance(opts["num_segments"], int) or opts["num_segments"] < 2):
    raise ValueError(f"shuffle: num_segments must be an int >= 2, got {opts['num_segments']!r}")
  if name == "replace" and not 0.0 <= float(opts["other_prob"]) <= 1.0:
    raise ValueError(f"replace: other_prob must be in [0, 1], got {opts['other_prob']!r}")
  return opts


def uses_silence(name: str, opts: Mapping[str, Any]) -> bool:
  """Whether `name` with resolved `opts` may write silence (so the caller must compute the fill)."""
  if name == "mute":
    return True
  if name in ("shift", "scale"):
    return _pad_mode(opts) == "silence"
  return False


def _pad_mode(opts: Mapping[str, Any]) -> str:
  # Audio edges are silence: repeating a loud edge frame would add a spurious sustained sound.
  # Video edges hold the edge frame: a black frame would be a non-temporal (quality) cue.
  if opts["pad"] != "auto":
    return opts["pad"]
  return "silence" if opts["modality"] == "audio" else "edge"


def magnitude(
    name: str,
    strength: jax.Array | float,
    clip_s: float,
    subtle: float | None = None,
    coarse: float | None = None,
) -> jax.Array:
  """Table magnitude of `name` at `strength` (before the frame floor/rounding), f32 scalar.

  clip_s: clip duration in seconds (static), resolves `None` (= whole clip) entries; subtle / coarse:
  the ends to use instead of the table's (static; None = the table's).
  """
  m = MAGNITUDES[name]
  subtle = m.subtle if subtle is None else subtle
  coarse = m.coarse if coarse is None else coarse
  lo = clip_s if subtle is None else subtle
  hi = clip_s if coarse is None else coarse
  s = jnp.clip(jnp.asarray(strength, jnp.float32), 0.0, 1.0)
  if m.unit == "factor":
    llo, lhi = math.log(lo), math.log(hi)
    return jnp.exp(llo * (lhi / llo) ** s)
  return jnp.asarray(lo, jnp.float32) * (hi / lo) ** s


# ----------------------------------------------------------------------------------------------------
# Time maps.
# ----------------------------------------------------------------------------------------------------
class TimeMap(NamedTuple):
  """Per output frame of one modality: `src` int32 [T] source frame, `oth` bool [T] read it from the
  other example, `sil` bool [T] write silence instead."""

  src: jax.Array
  oth: jax.Array
  sil: jax.Array


def identity_map(num_frames: int) -> TimeMap:
  t = jnp.arange(num_frames, dtype=jnp.int32)
  z = jnp.zeros((num_frames,), bool)
  return TimeMap(t, z, z)


def silence_of(x: jax.Array) -> jax.Array:
  """Latent "silence" of a clip: per-channel minimum over time. x: [T, ...] -> [...]."""
  return jnp.min(x, axis=0)


def apply_map(
    x: jax.Array, m: TimeMap, other: jax.Array | None = None, fill: jax.Array | None = None
) -> jax.Array:
  """Gathers one modality through a time map. x, other: [T, ...]; fill: [...] or None -> [T, ...]."""
  bshape = (-1,) + (1,) * (x.ndim - 1)
  out = jnp.take(x, m.src, axis=0)
  if other is not None:
    out = jnp.where(m.oth.reshape(bshape), jnp.take(other, m.src, axis=0), out)
  if fill is not None:
    out = jnp.where(m.sil.reshape(bshape), fill[None].astype(x.dtype), out)
  return out


@dataclasses.dataclass(frozen=True)
class Clip:
  """Static facts about the clip a perturbation is built for (all Python numbers)."""

  t_v: int
  t_a: int
  fps_v: float
  fps_a: float
  has_other: bool
  # Context frames on each side of the window (0: no context): timing rules read real content there
  # instead of padding (`apply(..., context=)`).
  margin_v: int = 0
  margin_a: int = 0

  @property
  def fps_coarse(self) -> float:
    return min(self.fps_v, self.fps_a)

  @property
  def clip_s(self) -> float:
    return min(self.t_v / self.fps_v, self.t_a / self.fps_a)

  def frames(self, modality: str) -> tuple[int, float]:
    return (self.t_v, self.fps_v) if modality == "video" else (self.t_a, self.fps_a)

  def margin(self, modality: str) -> int:
    return self.margin_v if modality == "video" else self.margin_a

  def coarse_frame(self, fps: float) -> int:
    """Frames of a modality at `fps` that span one frame of the coarser modality (rounded up)."""
    return max(1, math.ceil(fps / self.fps_coarse - 1e-6))


def _to_frames(seconds: jax.Array, fps: float, lo: int, hi: int) -> jax.Array:
  """round(seconds * fps) clipped to [lo, hi] frames, int32 scalar."""
  return jnp.clip(jnp.round(seconds * fps), lo, hi).astype(jnp.int32)


def _info(
    kind: str, modality: str, strength, offset_s=0.0, magnitude_=0.0, start_s=0.0, duration_s=0.0
) -> dict[str, jax.Array]:
  vals = dict(
      kind=kind_index(kind),
      modality=MODALITY_IDS[modality],
      strength=strength,
      offset_s=offset_s,
      magnitude=magnitude_,
      start_s=start_s,
      duration_s=duration_s,
  )
  return {k: jnp.asarray(vals[k], dt) for k, dt in INFO_SCHEMA.items()}


def _late_sign(modality: str) -> float:
  # Content of the distorted modality displaced *later* by d s means: audio late (+d) if it is the
  # audio, audio early (-d) if it is the video.
  return 1.0 if modality == "audio" else -1.0


def change_curve(x: jax.Array) -> jax.Array:
  """How much the content changes into each frame. x: [T, ...] -> f32 [T] (0 at t = 0).

  Mean |x[t] - x[t-1]| over trailing dims: the motion energy of video, a spectral flux of log-mel.
  """
  axes = tuple(range(1, x.ndim))
  change = jnp.mean(jnp.abs(jnp.diff(x.astype(jnp.float32), axis=0)), axis=axes)
  return jnp.concatenate([jnp.zeros((1,), jnp.float32), change])


def _salient_frame(key: jax.Array, change: jax.Array) -> jax.Array:
  """Samples a frame index c where the content changes (x[c] != x[c-1]), favouring large changes.

  Local rules (Replace, Reverse, Shuffle, Mute, Freeze, Repeat) centre their segment on c: a
  segment of unchanging background distorted in time is the identity (a winner == loser pair that
  teaches nothing), while an event moved by one frame is exactly the subtle negative we want.
  softmax(8 * change / max) keeps some randomness while mostly hitting real events; a constant clip
  gives a uniform choice. change: f32 [T] from `change_curve` -> int32 [].
  """
  logits = 8.0 * change / (jnp.max(change) + 1e-6)
  return jax.random.categorical(key, logits).astype(jnp.int32)


# Rules that read the change curve of the distorted modality (to place a segment on a salient
# change, or for Scale to keep the salient frame when decimating).
SALIENT_RULES = ("replace", "scale", "reverse", "shuffle", "mute", "freeze", "repeat")


class Salient(NamedTuple):
  """What the content-aware rules read of the distorted modality: `change` f32 [T] from
  `change_curve` and `centre` int32 [] a salient frame drawn by `_salient_frame`."""

  change: jax.Array
  centre: jax.Array


def salient(key: jax.Array, x: jax.Array) -> Salient:
  """Change curve and a sampled salient frame of one modality x: [T, ...]."""
  change = change_curve(x)
  return Salient(change, _salient_frame(key, change))


Maps = tuple[TimeMap, TimeMap, dict[str, jax.Array]]


def to_context(m: TimeMap, n_t: int, margin: int, pad: str) -> TimeMap:
  """A map in window coordinates (src may fall outside [0, n_t)) -> indices into the clip's context.

  The window is context[margin : margin + n_t] (margin = 0: no context, the clip itself). A source
  frame outside the context is padded: silence (`sil`, pad 'silence') or the context's edge frame
  (pad 'edge').
  """
  src = m.src + margin
  outside = (src < 0) | (src >= n_t + 2 * margin)
  sil = m.sil | outside if pad == "silence" else m.sil
  return TimeMap(jnp.clip(src, 0, n_t + 2 * margin - 1), m.oth, sil)


def _place(clip: Clip, modality: str, m: TimeMap, info: dict) -> Maps:
  """Puts the map on the distorted modality and the identity on the other."""
  if modality == "video":
    return m, identity_map(clip.t_a), info
  return identity_map(clip.t_v), m, info


# ----------------------------------------------------------------------------------------------------
# Perturbation map builders: (key, strength, sal, clip, opts) -> (map_v, map_a, info), where
# `sal` is the Salient of the distorted modality (None for rules not in SALIENT_RULES, which do not
# look at the content).
# ----------------------------------------------------------------------------------------------------
def _no_flags(n_t: int) -> jax.Array:
  return jnp.zeros((n_t,), bool)


def _shift(key, strength, sal, clip, opts) -> Maps:
  mod = opts["modality"]
  n_t, fps = clip.frames(mod)
  k = clip.coarse_frame(fps) if opts["floor"] == "coarse" else 1
  mag = magnitude("shift", strength, clip.clip_s, opts["subtle_s"], opts["coarse_s"])
  # With context the offset is capped at its margin: every shifted-in frame is real content.
  d = _to_frames(mag, fps, k, clip.margin(mod) or n_t - 1)
  d = jnp.where(jax.random.bernoulli(key), d, -d)
  t = jnp.arange(n_t, dtype=jnp.int32)
  m = TimeMap(t - d, _no_flags(n_t), _no_flags(n_t))  # out[t] = x[t - d]: content d frames later
  info = _info("shift", mod, strength, _late_sign(mod) * d / fps, jnp.abs(d) / fps, 0.0, n_t / fps)
  return _place(clip, mod, m, info)


def _replace(key, strength, sal, clip, opts) -> Maps:
  mod = opts["modality"]
  n_t, fps = clip.frames(mod)
  k = clip.coarse_frame(fps)
  n = _to_frames(magnitude("replace", strength, clip.clip_s), fps, k, n_t // 2)
  starts = n_t - n + 1  # valid segment starts [0, starts)
  k_src, k_oth = jax.random.split(key)
  dst = jnp.clip(sal.centre - n // 2, 0, starts - 1)
  # The source is displaced by the Shift offset at the same strength (>= one coarse frame), so a
  # subtle Replace is a locally mistimed segment, not a random chunk from seconds away. Direction:
  # random, flipped if it leaves the clip (and its context, if any); if neither fits, the side with
  # more room, shortened.
  mg = clip.margin(mod)
  lo, hi = -mg, starts - 1 + mg  # source starts that stay inside the clip (and its context)
  d = _to_frames(magnitude("shift", strength, clip.clip_s), fps, k, hi)
  sign = jnp.where(jax.random.bernoulli(k_src), 1, -1)
  fits = lambda sg: (dst - sg * d >= lo) & (dst - sg * d <= hi)  # noqa: E731
  roomier = jnp.where(dst - lo >= hi - dst, 1, -1)
  sign = jnp.where(fits(sign), sign, jnp.where(fits(-sign), -sign, roomier))
  d = jnp.where(fits(sign), d, jnp.maximum(dst - lo, hi - dst))
  src0 = dst - sign * d  # content from earlier (sign +) = audio late
  use_other = jax.random.bernoulli(k_oth, float(opts["other_prob"])) if clip.has_other else False
  src_start = jnp.where(use_other, dst, src0)  # from the other example: the same moment
  t = jnp.arange(n_t, dtype=jnp.int32)
  inseg = (t >= dst) & (t < dst + n)
  m = TimeMap(jnp.where(inseg, t - dst + src_start, t), inseg & use_other, _no_flags(n_t))
  offset = jnp.where(use_other, 0.0, _late_sign(mod) * (dst - src0) / fps)
  info = _info("replace", mod, strength, offset, n / fps, dst / fps, n / fps)
  return _place(clip, mod, m, info)


def _scale(key, strength, sal, clip, opts) -> Maps:
  mod = opts["modality"]
  n_t, fps = clip.frames(mod)
  # Floor: the most displaced visible frame moves (T - 1) * (1 - 1/f) frames for both a = f
  # (stretch) and a = 1/f (compress); asking for k + 1/2 (k = one coarse frame in this modality's
  # frames, the 1/2 for nearest-frame rounding) keeps it >= k frames after rounding.
  k = clip.coarse_frame(fps)
  f_min = (n_t - 1.0) / (n_t - 1.0 - k - 0.5)
  f = magnitude("scale", strength, clip.clip_s)
  mg = clip.margin(mod)
  if mg:
    # With context, compressing by 1 / f reads up to (T - 1) f frames: keep that inside the context.
    f = jnp.minimum(f, (n_t - 1.0 + mg) / (n_t - 1.0))
  f = jnp.maximum(f, f_min)
  a = jnp.where(jax.random.bernoulli(key), f, 1.0 / f)
  # x'(t) = x(t / a): intervals multiply by a. Output frame t covers source times
  # [(t - 1/2) / a, (t + 1/2) / a). Stretching (a > 1) covers <= 1 source frame: nearest frame.
  # Compressing covers up to 1/a frames, and plain nearest-frame decimation would drop short events
  # (a one-frame click can vanish); instead take the covered frame that differs most from both of
  # its neighbours (change[t] + change[t + 1]), a peak-preserving decimation that keeps onsets.
  t = jnp.arange(n_t, dtype=jnp.float32)
  centre = jnp.round(t / a)
  half = math.ceil(MAGNITUDES["scale"].coarse / 2.0)  # static bound on the span radius (a >= 1/2)
  cand = centre[:, None] + jnp.arange(-half, half + 1, dtype=jnp.float32)[None, :]  # [T, 2h+1]
  lo, hi = (t - 0.5) / a, (t + 0.5) / a
  inspan = (cand >= lo[:, None] - 1e-4) & (cand < hi[:, None] - 1e-4) | (cand == centre[:, None])
  cand_i = cand.astype(jnp.int32)
  peak = sal.change + jnp.concatenate([sal.change[1:], jnp.zeros((1,), jnp.float32)])
  score = jnp.where(
      inspan & (cand_i >= 0) & (cand_i < n_t), jnp.take(peak, jnp.clip(cand_i, 0, n_t - 1)), -1.0
  )
  score = jnp.where(cand == centre[:, None], score + 1e-6, score)  # ties -> nearest frame
  src = jnp.take_along_axis(cand_i, jnp.argmax(score, axis=1)[:, None], axis=1)[:, 0]
  # Past the window's end: read from the context if there is one, else padded (`to_context`).
  src = jnp.where(centre >= n_t, centre.astype(jnp.int32), src)
  m = TimeMap(src, _no_flags(n_t), _no_flags(n_t))
  info = _info("scale", mod, strength, 0.0, a, 0.0, n_t / fps)
  return _place(clip, mod, m, info)


def _reverse_map(start, n, n_t) -> TimeMap:
  t = jnp.arange(n_t, dtype=jnp.int32)
  inseg = (t >= start) & (t < start + n)
  return TimeMap(jnp.where(inseg, 2 * start + n - 1 - t, t), _no_flags(n_t), _no_flags(n_t))


def _reverse(key, strength, sal, clip, opts) -> Maps:
  mod = opts["modality"]
  n_t, fps = clip.frames(mod)
  k = clip.coarse_frame(fps)
  n = _to_frames(magnitude("reverse", strength, clip.clip_s), fps, min(2 * k, n_t), n_t)
  # Centred on a change at c: frames c-1 and c differ, so even the 2-frame reversal is not identity.
  start = jnp.clip(sal.centre - n // 2, 0, n_t - n)
  info = _info("reverse", mod, strength, 0.0, n / fps, start / fps, n / fps)
  return _place(clip, mod, _reverse_map(start, n, n_t), info)


def _shuffle(key, strength, sal, clip, opts) -> Maps:
  mod = opts["modality"]
  n_t, fps = clip.frames(mod)
  k = clip.coarse_frame(fps)
  s = opts["num_segments"]
  n = _to_frames(magnitude("shuffle", strength, clip.clip_s), fps, k, n_t // s)
  k_perm = key
  start = jnp.clip(sal.centre - (s * n) // 2, 0, n_t - s * n)
  ident = jnp.arange(s, dtype=jnp.int32)
  # argsort of uniforms: one small sort (jax.random.permutation's multi-round shuffle compiles to
  # much more code, and under vmap every rule's code runs).
  perm = jnp.argsort(jax.random.uniform(k_perm, (s,))).astype(jnp.int32)
  perm = jnp.where(jnp.all(perm == ident), jnp.roll(ident, 1), perm)  # never the identity
  t = jnp.arange(n_t, dtype=jnp.int32)
  rel = t - start
  inwin = (rel >= 0) & (rel < s * n)
  seg = jnp.clip(rel // n, 0, s - 1)
  m = TimeMap(jnp.where(inwin, start + perm[seg] * n + rel % n, t), _no_flags(n_t), _no_flags(n_t))
  info = _info("shuffle", mod, strength, 0.0, n / fps, start / fps, s * n / fps)
  return _place(clip, mod, m, info)


def _swap(key, strength, sal, clip, opts) -> Maps:
  mod = opts["modality"]
  n_t, fps = clip.frames(mod)
  if not clip.has_other:
    # Documented fallback: without another example the coarsest self-contained negative is the
    # whole clip played backwards; info reports it honestly as 'reverse'.
    m = _reverse_map(0, n_t, n_t)
    return _place(clip, mod, m, _info("reverse", mod, strength, 0.0, n_t / fps, 0.0, n_t / fps))
  t = jnp.arange(n_t, dtype=jnp.int32)
  m = TimeMap(t, jnp.ones((n_t,), bool), _no_flags(n_t))
  return _place(clip, mod, m, _info("swap", mod, strength, 0.0, n_t / fps, 0.0, n_t / fps))


def _mute(key, strength, sal, clip, opts) -> Maps:
  mod = opts["modality"]
  n_t, fps = clip.frames(mod)
  k = clip.coarse_frame(fps)
  n = _to_frames(magnitude("mute", strength, clip.clip_s), fps, k, n_t)
  start = jnp.clip(sal.centre - n // 2, 0, n_t - n)
  t = jnp.arange(n_t, dtype=jnp.int32)
  m = TimeMap(t, _no_flags(n_t), (t >= start) & (t < start + n))
  info = _info("mute", mod, strength, 0.0, n / fps, start / fps, n / fps)
  return _place(clip, mod, m, info)


def _freeze(key, strength, sal, clip, opts) -> Maps:
  mod = opts["modality"]
  n_t, fps = clip.frames(mod)
  k = clip.coarse_frame(fps)
  n = _to_frames(magnitude("freeze", strength, clip.clip_s), fps, k, n_t - 1)
  # Hold frame `start` over (start, start + n], with the change at c inside the held span.
  start = jnp.clip(sal.centre - 1 - (n - 1) // 2, 0, n_t - 1 - n)
  t = jnp.arange(n_t, dtype=jnp.int32)
  held = (t > start) & (t <= start + n)
  m = TimeMap(jnp.where(held, start, t), _no_flags(n_t), _no_flags(n_t))
  info = _info("freeze", mod, strength, 0.0, n / fps, (start + 1) / fps, n / fps)
  return _place(clip, mod, m, info)


def _repeat(key, strength, sal, clip, opts) -> Maps:
  mod = opts["modality"]
  n_t, fps = clip.frames(mod)
  k = clip.coarse_frame(fps)
  n = _to_frames(magnitude("repeat", strength, clip.clip_s), fps, k, n_t // 2)
  # Segment [start, start + n) is replayed over [start + n, start + 2n), which covers the change c.
  start = jnp.clip(sal.centre - n, 0, n_t - 2 * n)
  t = jnp.arange(n_t, dtype=jnp.int32)
  replay = (t >= start + n) & (t < start + 2 * n)
  m = TimeMap(jnp.where(replay, t - n, t), _no_flags(n_t), _no_flags(n_t))
  info = _info("repeat", mod, strength, _late_sign(mod) * n / fps, n / fps, (start + n) / fps, n / fps)
  return _place(clip, mod, m, info)


BUILDERS: dict[str, Callable[..., Maps]] = {
    "shift": _shift,
    "replace": _replace,
    "scale": _scale,
    "reverse": _reverse,
    "shuffle": _shuffle,
    "swap": _swap,
    "mute": _mute,
    "freeze": _freeze,
    "repeat": _repeat,
}
assert tuple(BUILDERS) == _NAMES and tuple(DEFAULT_OPTIONS) == _NAMES


def check_clip(clip: Clip) -> None:
  """Static (trace-time) check that the clip is long enough for every rule to be a real distortion."""
  for mod in ("video", "audio"):
    n_t, fps = clip.frames(mod)
    k = clip.coarse_frame(fps)
    if 0 < clip.margin(mod) < k:
      raise ValueError(
          f"{mod} context of {clip.margin(mod)} frames on each side at {fps} fps is shorter than one "
          f"frame of the coarser modality ({k} frames), the smallest offset: use a longer "
          "data.context_s"
      )
    # Replace needs a source start >= k frames from any destination with segments up to n_t // 2:
    # the larger side of the remaining n_t - n >= n_t / 2 starts is >= n_t / 4 >= k.
    if n_t < 4 * k:
      raise ValueError(
          f"{mod} clip of {n_t} frames at {fps} fps is too short for temporal perturbations: one "
          f"frame of the coarser modality is {k} {mod} frames, and at least {4 * k} frames are "
          "needed; use a longer window (data config `window_s`)"
      )
  if clip.clip_s * clip.fps_coarse < 2:
    raise ValueError(f"clip of {clip.clip_s:.3f} s has fewer than 2 frames at {clip.fps_coarse} fps")


def build_maps(
    name: str,
    key: jax.Array,
    video: jax.Array,
    audio: jax.Array,
    strength: jax.Array | float,
    fps_v: float,
    fps_a: float,
    has_other: bool,
    options: Mapping[str, Any] | None = None,
    saliency: tuple[Salient | None, Salient | None] | None = None,
    margins: tuple[int, int] = (0, 0),
) -> Maps:
  """Time maps and info of perturbation `name` for one example (no data gathered yet).

  video: [T_v, ...], audio: [T_a, ...]: the window; only their shapes and, for SALIENT_RULES, the
  `Salient` of the distorted modality are used (`saliency` = precomputed (video, audio) Salients, as
  negatives.py shares one draw among all candidate rules; computed here from `key` otherwise).
  margins: context frames on each side of the window (video, audio); 0 = no context.
  Returns (map_v: TimeMap of [T_v], map_a: TimeMap of [T_a], info: INFO_SCHEMA dict); the maps index
  the context [T + 2 * margin] (the clip itself without context, see `to_context`).
  """
  t_v, t_a = int(video.shape[0]), int(audio.shape[0])
  clip = Clip(t_v, t_a, float(fps_v), float(fps_a), bool(has_other), int(margins[0]), int(margins[1]))
  check_clip(clip)
  opts = resolve_options(name, options)
  strength = jnp.clip(jnp.asarray(strength, jnp.float32), 0.0, 1.0)
  k_sal, k_rule = jax.random.split(key)
  sal = None
  if name in SALIENT_RULES:
    i = MODALITY_IDS[opts["modality"]]
    sal = saliency[i] if saliency is not None else None
    if sal is None:
      sal = salient(k_sal, (video, audio)[i])
  map_v, map_a, info = BUILDERS[name](k_rule, strength, sal, clip, opts)
  pad_v = _pad_mode(opts) if "pad" in opts and opts["modality"] == "video" else "edge"
  pad_a = _pad_mode(opts) if "pad" in opts and opts["modality"] == "audio" else "edge"
  return to_context(map_v, t_v, clip.margin_v, pad_v), to_context(map_a, t_a, clip.margin_a, pad_a), info


def apply(
    name: str,
    key: jax.Array,
    video: jax.Array,
    audio: jax.Array,
    strength: jax.Array | float,
    fps_v: float,
    fps_a: float,
    other: tuple[jax.Array, jax.Array] | None = None,
    options: Mapping[str, Any] | None = None,
    context: Mapping[str, jax.Array] | None = None,
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
  """Applies perturbation `name` to ONE example.

  Args:
    name: one of `names()` (static).
    key: PRNG key; the result is a deterministic function of it.
    video: [T_v, ...] latents or pixels at `fps_v` (static Python float).
    audio: [T_a, ...] log-mel frames or latents at `fps_a` (static Python float).
    strength: scalar in [0, 1] (may be traced): 1 = coarse, 0 = subtle but never the identity.
    other: another example's (video [T_v, ...], audio [T_a, ...]) for Swap and cross-example
      Replace. Without it Swap falls back to whole-clip reverse and Replace uses the clip itself.
    options: overrides of `DEFAULT_OPTIONS[name]`, e.g. {'modality': 'video'} (static).
    context: {'video': [T_v + 2 m_v, ...], 'audio': [T_a + 2 m_a, ...]}, the same example cropped
      wider by m frames on each side (video = context['video'][m_v : m_v + T_v], likewise audio):
      Shift, Scale and Replace then read the content they move in from it instead of padding (Shift's
      offset is capped at the margin). `other`, if given, must then be the other example's context.
  Returns:
    (video' [T_v, ...], audio' [T_a, ...], info) with dtypes preserved; `info` follows INFO_SCHEMA.
  """
  opts = resolve_options(name, options)
  margins = context_margins(video, audio, context)
  map_v, map_a, info = build_maps(
      name, key, video, audio, strength, fps_v, fps_a, other is not None, opts, margins=margins
  )
  # Only the distorted modality can receive silence (the window's own floor); skip the other's.
  fill = uses_silence(name, opts)
  fills = (fill and opts["modality"] == "video", fill and opts["modality"] == "audio")
  return (*apply_maps(video, audio, map_v, map_a, other, context, fills), info)


def apply_maps(video, audio, map_v, map_a, other, context, fills: tuple[bool, bool]):
  """Gathers one example's two streams through their maps: (video', audio') [T, ...] each.

  video, audio: the window (its floor is the silence written where `fills` says a stream may get it);
  map_v, map_a: `build_maps`' maps, indexing `context`'s streams when given, else the window's;
  other: another example's (video, audio) (its context when `context` is given) or None.
  """
  ov, oa = (None, None) if other is None else other
  src_v, src_a = (video, audio) if context is None else (context["video"], context["audio"])
  fill_v, fill_a = fills
  return (
      apply_map(src_v, map_v, ov, silence_of(video) if fill_v else None),
      apply_map(src_a, map_a, oa, silence_of(audio) if fill_a else None),
  )


def context_margins(
    video, audio, context: Mapping[str, jax.Array] | None, time_axis: int = 0
) -> tuple[int, int]:
  """Context frames on each side of the window, (m_v, m_a), from the shapes (static); (0, 0) without."""
  if context is None:
    return 0, 0
  out = []
  for mod, x in (("video", video), ("audio", audio)):
    extra = int(context[mod].shape[time_axis]) - int(x.shape[time_axis])
    if extra < 0 or extra % 2:
      raise ValueError(
          f"context['{mod}'] has {context[mod].shape[time_axis]} frames for a window of "
          f"{x.shape[time_axis]}: a context adds the same number of frames on both sides"
      )
    out.append(extra // 2)
  return out[0], out[1]
