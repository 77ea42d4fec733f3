"""SyncBench-Synth: a procedural audio-video benchmark with EXACT ground-truth event times.

Pure numpy, deterministic from a seed. Every sound-making event happens on a video frame instant
``k / fps`` and its audio onset starts at sample ``k * sr / fps`` (an integer: `SynthSpec` requires
``sr % fps == 0``), so the frame that shows a contact and the first sample of its sound coincide.
Each visible event also has a visible change AT its frame (a contact flash + squash, a mouth that opens,
a pad that lights up), so motion energy peaks where the audio onsets are.

Scene families (`label` = index in FAMILIES):
  * ``impact``: balls/boxes/cans that bounce, fall or collide on a floor; each contact emits a modal
    percussive sound whose timbre depends on the object kind (ambient-sound videos).
  * ``speech``: a face-like sprite whose mouth opening follows the syllable envelope of a voiced,
    formant-filtered pulse train (LRS2-like).
  * ``rhythm``: drum pads with sticks hit periodically (on the beat) and syncopated (off-beat).
Nuisances: background noise, an off-screen distractor sound (slow swell, no visible source), camera
jitter, silent moving objects (only some objects sound). ``SynthSpec.ood=True`` draws held-out object
kinds, speeds, tempi, voice pitches and timbres (the 'ood' split).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import signal

FAMILIES = ("impact", "speech", "rhythm")
# Global event-kind vocabulary (event_kinds ids). The last entries of each family are OOD-only.
EVENT_KINDS = (
    "rubber",
    "wood",
    "metal",
    "glass",
    "plastic",  # impact (glass, plastic: OOD)
    "syllable",  # speech
    "kick",
    "snare",
    "hat",
    "cowbell",
    "clave",
)  # rhythm (cowbell, clave: OOD)
KIND_ID = {k: i for i, k in enumerate(EVENT_KINDS)}
IMPACT_KINDS_ID, IMPACT_KINDS_OOD = ("rubber", "wood", "metal"), ("glass", "plastic")
DRUM_KINDS_ID, DRUM_KINDS_OOD = ("kick", "snare", "hat"), ("cowbell", "clave")

# Object kind -> (shape, rgb, modal partials Hz, decay s, noise share). The timbre is what tells kinds apart.
_OBJECTS = {
    "rubber": ("disc", (0.85, 0.2, 0.2), (130.0, 270.0), 0.03, 0.5),
    "wood": ("square", (0.75, 0.55, 0.25), (620.0, 1450.0, 2330.0), 0.045, 0.3),
    "metal": ("can", (0.7, 0.75, 0.8), (910.0, 2440.0, 4120.0, 5730.0), 0.3, 0.05),
    "glass": ("triangle", (0.55, 0.9, 0.95), (2210.0, 3930.0, 6120.0), 0.2, 0.05),
    "plastic": ("diamond", (0.3, 0.85, 0.35), (360.0, 1120.0, 1940.0), 0.06, 0.45),
}
_VOWELS = ((730.0, 1090.0), (270.0, 2290.0), (300.0, 870.0), (530.0, 1840.0), (570.0, 840.0))


@dataclasses.dataclass(frozen=True)
class SynthSpec:
  """What one clip looks like. Times in seconds."""

  duration_s: float = 4.0
  fps: int = 10
  sr: int = 16000
  resolution: int = 32
  ood: bool = False
  nuisance: bool = True  # background noise, off-screen distractor, jitter, silent objects

  def __post_init__(self):
    if self.sr % self.fps:
      raise ValueError(
          f"SynthSpec needs sr % fps == 0 so that frame instants fall on samples; got "
          f"sr={self.sr}, fps={self.fps}"
      )
    if abs(self.duration_s * self.fps - round(self.duration_s * self.fps)) > 1e-6:
      raise ValueError(f"duration_s * fps must be an integer, got {self.duration_s} * {self.fps}")

  @property
  def num_frames(self) -> int:
    return int(round(self.duration_s * self.fps))

  @property
  def num_samples(self) -> int:
    return self.num_frames * (self.sr // self.fps)


# ----------------------------------------------------------------------------------------------- audio


def _add(audio: np.ndarray, start: int, snd: np.ndarray) -> None:
  end = min(audio.shape[0], start + snd.shape[0])
  if end > start:
    audio[start:end] += snd[: end - start]


def impact_sound(kind: str, rng: np.random.Generator, sr: int, gain: float = 1.0) -> np.ndarray:
  """Percussive modal sound of an object `kind`, instantaneous attack at sample 0. -> float32 [n]."""
  _, _, partials, decay, noise_share = _OBJECTS[kind]
  n = int(sr * min(1.0, 6 * decay + 0.02))
  t = np.arange(n) / sr
  out = np.zeros(n)
  for i, f in enumerate(partials):
    f = f * rng.uniform(0.95, 1.05)
    out += np.sin(2 * np.pi * f * t) * np.exp(-t / (decay / (1 + 0.5 * i))) / (1 + i)
  click = rng.standard_normal(n) * np.exp(-t / 0.004)
  out = (1 - noise_share) * out / np.abs(out).max() + noise_share * click / np.abs(click).max()
  return (gain * out).astype(np.float32)


def drum_sound(kind: str, rng: np.random.Generator, sr: int, gain: float = 1.0) -> np.ndarray:
  """One drum hit, attack at sample 0. -> float32 [n]."""
  n = int(0.35 * sr)
  t = np.arange(n) / sr
  noise = rng.standard_normal(n)
  if kind == "kick":  # pitch sweep 160 -> 50 Hz
    f = 50 + 110 * np.exp(-t / 0.03)
    out = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.09) + 0.3 * noise * np.exp(-t / 0.003)
  elif kind == "snare":
    out = 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.05) + 0.7 * noise * np.exp(-t / 0.06)
  elif kind == "hat":
    out = np.diff(noise, prepend=0.0) * np.exp(-t / 0.02) * 0.6
  elif kind == "cowbell":
    out = (signal.square(2 * np.pi * 540 * t) + signal.square(2 * np.pi * 800 * t)) * np.exp(-t / 0.08) * 0.4
  elif kind == "clave":
    out = np.sin(2 * np.pi * 2500 * t) * np.exp(-t / 0.025)
  else:
    raise ValueError(f"unknown drum kind {kind!r}; expected one of {DRUM_KINDS_ID + DRUM_KINDS_OOD}")
  out = out / np.abs(out).max()
  return (gain * out).astype(np.float32)


def _background_noise(rng: np.random.Generator, n: int, level: float) -> np.ndarray:
  # Brownish + white noise: a room tone, not a click track.
  white = rng.standard_normal(n)
  brown = signal.lfilter([1.0], [1.0, -0.98], white)
  brown /= np.abs(brown).max() + 1e-9
  return (level * (0.6 * brown + 0.4 * white / 3)).astype(np.float32)


def _distractor(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
  """Off-screen sound: a slowly swelling tone (no visible source, no sharp onset)."""
  t = np.arange(n) / sr
  f0 = rng.uniform(150, 600)
  centre, width = rng.uniform(0.2, 0.8) * t[-1], rng.uniform(0.5, 1.5)
  env = np.exp(-0.5 * ((t - centre) / width) ** 2)
  tone = np.sin(2 * np.pi * f0 * t + 2 * np.sin(2 * np.pi * 0.7 * t)) + 0.3 * np.sin(4 * np.pi * f0 * t)
  return (rng.uniform(0.04, 0.1) * env * tone).astype(np.float32)


# ----------------------------------------------------------------------------------------------- video


class _Canvas:
  """Float video [T, H, W, 3] in [0, 1] with soft-edged shape drawing in unit coordinates (y down)."""

  def __init__(self, t: int, res: int, bg_top, bg_bottom):
    self.res = res
    ramp = np.linspace(0, 1, res)[:, None, None]
    bg = (1 - ramp) * np.asarray(bg_top) + ramp * np.asarray(bg_bottom)  # [H, 1, 3]
    self.v = np.broadcast_to(bg[None], (t, res, res, 3)).copy()
    c = (np.arange(res) + 0.5) / res
    self.yy, self.xx = np.meshgrid(c, c, indexing="ij")

  def _blend(self, k: int, alpha: np.ndarray, rgb) -> None:
    a = np.clip(alpha, 0, 1)[..., None]
    self.v[k] = (1 - a) * self.v[k] + a * np.asarray(rgb)

  def shape(self, k: int, kind: str, x: float, y: float, rx: float, ry: float, rgb) -> None:
    px = 1.0 / self.res  # soft edge of one pixel: sub-pixel motion stays visible
    dx, dy = (self.xx - x) / rx, (self.yy - y) / ry
    if kind in ("disc", "ellipse"):
      d = (np.sqrt(dx**2 + dy**2) - 1) * min(rx, ry)
    elif kind in ("square", "can"):
      d = np.maximum(np.abs(self.xx - x) - rx, np.abs(self.yy - y) - ry)
    elif kind == "diamond":
      d = (np.abs(dx) + np.abs(dy) - 1) * min(rx, ry) / 1.4
    elif kind == "triangle":  # apex up
      d = np.maximum(dy - 1, (np.abs(dx) * 2 - (1 - dy)) / 2.2) * min(rx, ry)
    else:
      raise ValueError(kind)
    self._blend(k, 0.5 - d / px, rgb)

  def rect(self, k: int, x0: float, y0: float, x1: float, y1: float, rgb, alpha: float = 1.0) -> None:
    m = (self.xx >= x0) & (self.xx < x1) & (self.yy >= y0) & (self.yy < y1)
    self._blend(k, alpha * m, rgb)


def _jitter(video: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Camera shake: per-frame integer shifts (random walk within +-m px), edges replicated."""
  t, res = video.shape[0], video.shape[1]
  m = max(1, res // 32)
  steps = rng.integers(-1, 2, size=(t, 2))
  offs = np.clip(np.cumsum(steps, axis=0), -m, m)
  pad = np.pad(video, ((0, 0), (m, m), (m, m), (0, 0)), mode="edge")
  return np.stack([pad[i, m + dy : m + dy + res, m + dx : m + dx + res] for i, (dy, dx) in enumerate(offs)])


def _silent_object(cv: _Canvas, rng: np.random.Generator, t: int, fps: float) -> str:
  """A smoothly drifting object that makes no sound (only some objects sound)."""
  x0, y0 = rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.4)
  ax, fx, ph = rng.uniform(0.05, 0.2), rng.uniform(0.1, 0.4), rng.uniform(0, 2 * np.pi)
  rgb = rng.uniform(0.3, 0.9, 3)
  for k in range(t):
    s = k / fps
    cv.shape(
        k, "ellipse", x0 + ax * np.sin(2 * np.pi * fx * s + ph), y0 + 0.03 * np.sin(3 * s), 0.07, 0.05, rgb
    )
  return "a silent balloon drifts"


# -------------------------------------------------------------------------------------------- families


def _event_frames(
    rng: np.random.Generator,
    t: int,
    fps: float,
    gap_s: tuple[float, float],
    first_min: int = 2,
    min_gap: int = 2,
) -> list[int]:
  """Increasing frame indices in [first_min, t - 1) with gaps drawn from gap_s (seconds)."""
  frames, k = [], int(rng.integers(first_min, max(first_min + 1, int(gap_s[1] * fps) + 1)))
  while k < t - 1:
    frames.append(k)
    k += max(min_gap, int(round(rng.uniform(*gap_s) * fps)))
  return frames


def _impact(spec: SynthSpec, rng, cv: _Canvas, audio: np.ndarray):
  t, fps, sr = spec.num_frames, spec.fps, spec.sr
  spf = sr // fps
  kinds = IMPACT_KINDS_OOD if spec.ood else IMPACT_KINDS_ID
  gap = (0.25, 0.35) if spec.ood else (0.4, 0.9)  # OOD: held-out (faster) bounce rates
  floor = 0.85
  for k in range(t):
    cv.rect(k, 0.0, floor, 1.0, 1.0, (0.25, 0.25, 0.22))
  events: list[tuple[int, int]] = []
  motion = rng.choice(["bounce", "fall", "collide"])
  words = []
  flashes: list[tuple[int, float, float, str]] = []
  if motion == "collide":
    ka, kb = rng.choice(kinds, 2)
    frames = _event_frames(rng, t, fps, (gap[0] * 1.5, gap[1] * 1.5), min_gap=3)
    # Gap between the two boxes is a triangle wave touching 0 exactly on the contact frames.
    knots = [-int(rng.integers(2, 5))] + frames + [t + int(rng.integers(2, 5))]
    gapx = np.zeros(t)
    for a, b in zip(knots[:-1], knots[1:]):
      mid, half = (a + b) / 2, (b - a) / 2
      for k in range(max(a, 0), min(b, t)):
        gapx[k] = 0.3 * (1 - abs(k - mid) / half) * min(1.0, half / 4)
    r = 0.09
    for k in range(t):
      cv.shape(k, _OBJECTS[ka][0], 0.5 - r - gapx[k] / 2, floor - r, r, r, _OBJECTS[ka][1])
      cv.shape(k, _OBJECTS[kb][0], 0.5 + r + gapx[k] / 2, floor - r, r, r, _OBJECTS[kb][1])
    for k in frames:
      events.append((k, KIND_ID[ka]))
      flashes.append((k, 0.5, floor - r, ka))
      _add(audio, k * spf, 0.5 * impact_sound(ka, rng, sr))
      _add(audio, k * spf, 0.5 * impact_sound(kb, rng, sr))
    words.append(f"a {ka} block and a {kb} block slide and collide {len(frames)} times")
  else:
    n_obj = int(rng.integers(1, 3))
    for o in range(n_obj):
      kind = rng.choice(kinds)
      shape, rgb = _OBJECTS[kind][0], _OBJECTS[kind][1]
      r = rng.uniform(0.07, 0.1)
      ry = r * (1.4 if shape == "can" else 1.0)
      if motion == "bounce":
        frames = _event_frames(rng, t, fps, gap)
      else:  # falls once and rests
        frames = [int(rng.integers(2, t - 2))]
      if motion == "bounce":  # the first arc starts before the clip: no silent take-off on screen
        knots = [-int(rng.integers(1, 6))] + frames + [t + int(rng.integers(1, 6))]
      else:
        knots = [frames[0] - int(rng.integers(3, 8))] + frames
      x0 = rng.uniform(0.15, 0.85)
      vx = rng.uniform(-0.05, 0.05)
      for k in range(t):
        x = float(np.clip(x0 + vx * k / fps, r, 1 - r))
        s = k / fps
        # At rest on the floor after the last contact; a falling object hangs at its drop height
        # until it is released.
        y = floor - ry
        if motion == "fall" and s < knots[0] / fps:
          y = floor - ry - min(0.65, 1.2 * ((knots[1] - knots[0]) / fps) ** 2)
        for a, b in zip(knots[:-1], knots[1:]):
          ta, tb = a / fps, b / fps
          if ta <= s < tb:  # ballistic arc between contacts; apex height ~ g * dt^2 / 8
            h = min(0.65, 1.2 * (tb - ta) ** 2)
            if motion == "fall" and b == knots[-1] and a == knots[0]:
              u = (s - ta) / (tb - ta)  # from rest at the top: y ~ u^2
              y = floor - ry - h * (1 - u**2)
            else:
              y = floor - ry - h * 4 * (s - ta) * (tb - s) / (tb - ta) ** 2
        if k in frames:  # squashed against the floor on the contact frame
          cv.shape(k, shape, x, floor - 0.75 * ry, r / 0.75**0.5, 0.75 * ry, rgb)
        else:
          cv.shape(k, shape, x, y, r, ry, rgb)
      for k in frames:
        events.append((k, KIND_ID[kind]))
        x = float(np.clip(x0 + vx * k / fps, r, 1 - r))
        flashes.append((k, x, floor - 0.01, kind))
        _add(audio, k * spf, impact_sound(kind, rng, sr, gain=rng.uniform(0.6, 1.0)))
      words.append(
          f"a {kind} {shape} {'bounces' if motion == 'bounce' else 'falls'}"
          f"{f' {len(frames)} times' if motion == 'bounce' else ''}"
      )
  # Contact flash: a bright dust puff on the contact frame, fading over the next frame.
  for k, x, y, kind in flashes:
    for dk, a in ((0, 0.9), (1, 0.35)):
      if k + dk < t:
        cv._blend(
            k + dk, a * np.exp(-(((cv.xx - x) / 0.12) ** 2 + ((cv.yy - y) / 0.05) ** 2)), (1.0, 1.0, 0.85)
        )
  return events, " and ".join(words)


def _speech(spec: SynthSpec, rng, cv: _Canvas, audio: np.ndarray):
  t, fps, sr = spec.num_frames, spec.fps, spec.sr
  spf, n = sr // fps, spec.num_samples
  f0 = rng.uniform(240, 320) if spec.ood else rng.uniform(95, 210)  # OOD: held-out voice pitch
  gap = (0.2, 0.3) if spec.ood else (0.25, 0.5)
  onsets = _event_frames(rng, t, fps, gap, first_min=2, min_gap=2)
  # Word breaks: drop ~1 in 5 syllables (a pause), keeping at least one.
  onsets = [k for i, k in enumerate(onsets) if i == 0 or rng.uniform() > 0.2]
  env = np.zeros(n)
  ts = np.arange(n) / sr
  src_phase = np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * ts))) / sr
  source = 2 * (src_phase % 1.0) - 1  # sawtooth glottal-like pulse train (rich harmonics)
  voiced = np.zeros(n)
  for i, k in enumerate(onsets):
    start = k * spf
    nxt = onsets[i + 1] * spf if i + 1 < len(onsets) else n
    # The mouth must be closed for >= 1 frame before the next syllable, else no visible onset.
    length = max(int(0.06 * sr), min(int(rng.uniform(0.12, 0.25) * sr), nxt - start - spf - int(0.03 * sr)))
    u = np.arange(nxt - start) / sr
    e = np.minimum(1.0, u / 0.005) * np.where(
        u < length / sr, 1.0 - 0.3 * u / (length / sr), 0.7 * np.exp(-(u - length / sr) / 0.01)
    )
    env[start:nxt] = e
    f1, f2 = _VOWELS[int(rng.integers(len(_VOWELS)))]
    seg = source[start:nxt]
    y = np.zeros_like(seg)
    for fc, g in ((f1, 1.0), (f2, 0.6)):  # two-pole formant resonators
      rr = np.exp(-np.pi * 90 / sr)
      y += g * signal.lfilter([1 - rr], [1, -2 * rr * np.cos(2 * np.pi * fc / sr), rr * rr], seg)
    voiced[start:nxt] = y / (np.abs(y).max() + 1e-9)
  audio += (0.7 * env * voiced).astype(np.float32)
  # The frame k shows the mouth during [k/fps, (k+1)/fps): its opening is the envelope max there.
  mouth = env[: t * spf].reshape(t, spf).max(axis=1)
  skin = np.array((0.55, 0.7, 0.95)) if spec.ood else np.array((0.95, 0.78, 0.62)) * rng.uniform(0.7, 1.0)
  cx, cy = rng.uniform(0.4, 0.6), rng.uniform(0.45, 0.55)
  for k in range(t):
    sway = 0.015 * np.sin(2 * np.pi * 0.3 * k / fps)
    x = cx + sway
    cv.shape(k, "ellipse", x, cy, 0.28, 0.36, skin)
    blink = (k % 23) == 7  # eye blinks: silent facial motion
    for ex in (-0.1, 0.1):
      cv.shape(k, "ellipse", x + ex, cy - 0.1, 0.045, 0.008 if blink else 0.04, (0.1, 0.1, 0.15))
    cv.shape(k, "ellipse", x, cy + 0.17, 0.12, 0.015 + 0.11 * mouth[k], (0.35, 0.05, 0.08))
  events = [(k, KIND_ID["syllable"]) for k in onsets]
  voice = "high-pitched" if f0 > 230 else ("low" if f0 < 150 else "mid-pitched")
  return events, f"a face says {len(onsets)} syllables in a {voice} voice"


def _rhythm(spec: SynthSpec, rng, cv: _Canvas, audio: np.ndarray):
  t, fps, sr = spec.num_frames, spec.fps, spec.sr
  spf = sr // fps
  kinds = list(DRUM_KINDS_OOD + DRUM_KINDS_ID[:1]) if spec.ood else list(DRUM_KINDS_ID)
  n_pads = int(rng.integers(2, len(kinds) + 1))
  kinds = [kinds[i] for i in rng.permutation(len(kinds))[:n_pads]]
  beat = max(2, int(round(rng.uniform(*((0.2, 0.3) if spec.ood else (0.4, 0.6))) * fps)))
  start = int(rng.integers(1, beat + 1))
  hits: dict[int, list[int]] = {i: [] for i in range(n_pads)}
  for b, k in enumerate(range(start, t - 1, beat)):
    hits[0].append(k)  # periodic: every beat
    if n_pads > 1 and b % 2 == 1:
      hits[1].append(k)  # backbeat
    if n_pads > 2 and rng.uniform() < 0.4 and k + beat // 2 < t - 1 and beat // 2 >= 1:
      hits[2].append(k + beat // 2)  # syncopated off-beat
  if n_pads > 1 and not hits[1] and hits[0]:
    hits[1].append(hits[0][-1])
  events = []
  xs = np.linspace(0.2, 0.8, n_pads)
  pad_rgb = rng.uniform(0.2, 0.6, (n_pads, 3))
  for i in range(n_pads):
    for k in hits[i]:
      events.append((k, KIND_ID[kinds[i]]))
      _add(audio, k * spf, drum_sound(kinds[i], rng, sr, gain=rng.uniform(0.5, 0.9)))
  # Silent blinking LED at an unrelated rate: a visual distractor that makes no sound.
  led_period = int(rng.integers(3, 8))
  for k in range(t):
    for i in range(n_pads):
      since = [k - h for h in hits[i] if 0 <= k - h]
      lit = 0.9 if since and min(since) == 0 else (0.35 if since and min(since) == 1 else 0.0)  # flash, fade
      rgb = np.clip(pad_rgb[i] + lit, 0, 1)
      cv.rect(k, xs[i] - 0.1, 0.7, xs[i] + 0.1, 0.85, rgb)
      stick_y = 0.62 if (since and min(since) == 0) else 0.4  # stick down on the hit frame
      cv.rect(k, xs[i] - 0.015, stick_y - 0.2, xs[i] + 0.015, stick_y, (0.9, 0.9, 0.9))
    if spec.nuisance:
      cv.rect(k, 0.05, 0.05, 0.12, 0.12, (0.2, 1.0, 0.2), alpha=float((k % led_period) == 0))
  bpm = 60 * fps / beat
  return sorted(events), f"{n_pads} drum pads ({', '.join(kinds)}) play at {bpm:.0f} bpm"


_FAMILY_FNS = {"impact": _impact, "speech": _speech, "rhythm": _rhythm}


def generate_clip(family: str, seed: int, spec: SynthSpec | None = None) -> dict:
  """One SyncBench-Synth clip, deterministic in (family, seed, spec).

  Returns dict:
    video: uint8 [T, H, W, 3] (T = duration_s * fps, H = W = resolution)
    audio: float32 [N] mono in [-1, 1] at sr (N = T * sr / fps)
    fps: float, sr: int
    event_times: float32 [E] seconds, sorted, each equal to k / fps for the event frame k
    event_kinds: int32 [E] indices into EVENT_KINDS
    label: int (index of `family` in FAMILIES), family: str, caption: str
  """
  spec = spec or SynthSpec()
  if family not in _FAMILY_FNS:
    raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
  rng = np.random.default_rng([seed, FAMILIES.index(family), int(spec.ood)])
  t, n = spec.num_frames, spec.num_samples
  bg_top = rng.uniform(0.05, 0.35, 3)
  cv = _Canvas(t, spec.resolution, bg_top, bg_top * rng.uniform(0.5, 1.2))
  audio = np.zeros(n, np.float32)
  nuis = []
  if spec.nuisance and family != "rhythm" and rng.uniform() < 0.5:
    nuis.append(_silent_object(cv, rng, t, spec.fps))
  events, caption = _FAMILY_FNS[family](spec, rng, cv, audio)
  video = cv.v
  if spec.nuisance:
    audio += _background_noise(rng, n, rng.uniform(0.003, 0.02))
    if rng.uniform() < 0.5:
      audio += _distractor(rng, n, spec.sr)
      nuis.append("an off-screen hum")
    if rng.uniform() < 0.5:
      video = _jitter(video, rng)
      nuis.append("a shaky camera")
  peak = np.abs(audio).max()
  if peak > 0.95:  # keep headroom; scaling is global so relative levels stay
    audio *= 0.95 / peak
  events = sorted(events)
  ev_t = np.array([k / spec.fps for k, _ in events], np.float32)
  ev_k = np.array([c for _, c in events], np.int32)
  caption = caption + ("; " + ", ".join(nuis) if nuis else "")
  return dict(
      video=np.clip(np.round(video * 255), 0, 255).astype(np.uint8),
      audio=audio.astype(np.float32),
      fps=float(spec.fps),
      sr=int(spec.sr),
      event_times=ev_t,
      event_kinds=ev_k,
      label=FAMILIES.index(family),
      family=family,
      caption=caption,
  )
