"""Quality PROXIES (not FAD / FVD: no pretrained network, only fixed hand-made features): Fréchet
distances between Gaussian fits of per-frame video and log-mel features of two sets of clips."""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np


def frechet_distance(x: Any, y: Any) -> float:
  """Fréchet distance between Gaussian fits of two sample sets (Dowson & Landau 1982; as used by FID,
  Heusel et al., NeurIPS 2017): |mu_x - mu_y|^2 + Tr(S_x + S_y - 2 (S_x S_y)^(1/2)).

  Tr((S_x S_y)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric PSD
  matrix S_x^(1/2) S_y S_x^(1/2) (same spectrum), which stays exact when a covariance is singular (e.g.
  a histogram bin that is always empty) instead of needing an eps fallback.

  Args:
    x: float [N, D] samples; y: float [M, D] samples, N, M >= 2.
  Returns:
    The distance, >= 0 (round-off below zero, e.g. for identical sets, is clipped to 0).
  """
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(x.shape[0], y.shape[0]) < 2:
    raise ValueError(f"frechet_distance needs [N, D] and [M, D] with N, M >= 2, got {x.shape}, {y.shape}")
  mu1, mu2 = x.mean(0), y.mean(0)
  s1, s2 = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
  w, q = np.linalg.eigh(s1)
  sqrt_s1 = (q * np.sqrt(np.clip(w, 0.0, None))) @ q.T
  m = sqrt_s1 @ s2 @ sqrt_s1
  tr_covmean = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None))))
  return max(0.0, float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean))


def logmel_frame_features(mel: Any) -> np.ndarray:
  """Per-frame features of :func:`fd_logmel_proxy`: the frame and its absolute change from the
  previous frame (0 for the first). [T, n_mels] -> float64 [T, 2 n_mels].

  The change is what a frame-pooled spectrum cannot see: real audio is mostly steady with sparse
  onsets, generated noise flickers in every frame.
  """
  m = np.asarray(mel, np.float64)
  return np.concatenate([m, np.abs(np.diff(m, axis=0, prepend=m[:1]))], axis=1)


def fd_logmel_proxy(generated: Sequence[Any], real: Sequence[Any]) -> float:
  """PROXY audio quality: Fréchet distance between Gaussian fits of :func:`logmel_frame_features`
  (log-mel frames and their frame-to-frame change) pooled over the frames of two sets.

  Every frame of every clip is one sample (pooling frames keeps the covariance estimable with a
  handful of clips). It compares spectral statistics only; it is not FAD (no VGGish / PANN embedding).

  Args:
    generated, real: sequences of float [T_i, n_mels] normalised log-mels (same n_mels).
  """
  return frechet_distance(
      np.concatenate([logmel_frame_features(m) for m in generated], 0),
      np.concatenate([logmel_frame_features(m) for m in real], 0),
  )


# A grey-level step below this (6 of 256 levels) counts as flat in the edge and motion features: the
# per-pixel noise of a couple of grey levels that any generator leaves is invisible and must not read
# as texture or motion (with a threshold of 1 level, sigma = 2 levels of noise on real clips sat
# farther from the data than the shuffled-cell anchor; benchmarks/bench_quality_gate.py).
FLAT_TOL = 6.0 / 256.0
VIDEO_FEATURE_GROUPS = ("layout", "colour", "edges", "grid", "motion")


def video_feature_groups(
    frames: Any, grid: int = 4, bins: int = 8, flat_tol: float = FLAT_TOL
) -> dict[str, np.ndarray]:
  """Per-frame video features for :func:`fd_video_proxy`, by what they see (VIDEO_FEATURE_GROUPS).

  layout  a grid x grid x 3 thumbnail (area average, in [0, 1]): where the colours are;
  colour  a `bins`-bin histogram per colour channel (fractions);
  edges   `bins`-bin histograms of the grey level's horizontal and vertical pixel differences (first
          bin: flat, below `flat_tol`; then log-spaced to 1): the mix of flat regions, soft ramps and
          edges (blur empties the upper bins, blocks and noise fill others);
  grid    the mean |difference| at each column boundary and at each row boundary: the data's edges
          fall anywhere, the seams of a patch-based generator whose patches disagree always at the
          same columns and rows;
  motion  mean |frame_i - frame_{i-1}| and the fraction of grey levels changing by more than
          `flat_tol` (0 for the first frame): per-patch flicker moves many pixels a little.

  Args:
    frames: uint8 [T, H, W, 3].
  Returns:
    {'layout': [T, 3 grid^2], 'colour': [T, 3 bins], 'edges': [T, 2 bins], 'grid': [T, W + H - 2],
     'motion': [T, 2]}, float64.
  """
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
    raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
  t = frames.shape[0]
  thumbs = np.stack([cv2.resize(f, (grid, grid), interpolation=cv2.INTER_AREA) for f in frames])
  thumbs = thumbs.reshape(t, -1).astype(np.float64) / 255.0
  idx = (frames.astype(np.int64) * bins) // 256  # [T, H, W, 3] bin index
  hist = np.stack(
      [np.stack([np.bincount(idx[i, ..., c].ravel(), minlength=bins) for c in range(3)]) for i in range(t)]
  ).reshape(t, -1)
  hist = hist / float(frames.shape[1] * frames.shape[2])
  f = frames.astype(np.float64) / 255.0
  gray = f.mean(-1)  # [T, H, W]
  dx, dy = np.abs(np.diff(gray, axis=2)), np.abs(np.diff(gray, axis=1))
  edges = np.concatenate([[0.0], np.geomspace(flat_tol, 1.0, bins)])
  ghist = np.stack(
      [np.stack([np.histogram(d[i], edges)[0] / d[i].size for d in (dx, dy)]) for i in range(t)]
  ).reshape(t, -1)
  seams = np.concatenate([dx.mean(1), dy.mean(2)], axis=1)  # [T, (W - 1) + (H - 1)]
  change = np.abs(np.diff(gray, axis=0))  # [T - 1, H, W]
  motion = np.concatenate(
      [
          np.zeros((1, 2)),
          np.stack(
              [np.mean(np.abs(np.diff(f, axis=0)), axis=(1, 2, 3)), np.mean(change > flat_tol, axis=(1, 2))],
              axis=1,
          ),
      ],
      axis=0,
  )
  return {"layout": thumbs, "colour": hist, "edges": ghist, "grid": seams, "motion": motion}


def video_frame_features(frames: Any, grid: int = 4, bins: int = 8) -> np.ndarray:
  """:func:`video_feature_groups` concatenated: uint8 [T, H, W, 3] -> float64 [T, D]."""
  g = video_feature_groups(frames, grid, bins)
  return np.concatenate([g[k] for k in VIDEO_FEATURE_GROUPS], axis=1)


def fd_video_proxy(generated: Sequence[Any], real: Sequence[Any]) -> dict[str, float]:
  """PROXY video quality: per group of :func:`video_feature_groups`, the Fréchet distance between
  Gaussian fits of that group's features pooled over all frames of two sets; 'all' for every group
  at once.

  Not FVD (no I3D embedding): it sees colour layout, edges, seams and flicker, not content or realism.
  Separate groups keep a small group (motion: 2 numbers) from drowning in a large one (a 32x32 clip
  has 62 seam features), so each failure shows on its own scale (eval/quality.py).

  Args:
    generated, real: sequences of uint8 [T_i, H, W, 3] clips.
  Returns:
    {'all': fd, 'layout': fd, 'colour': fd, 'edges': fd, 'grid': fd, 'motion': fd}.
  """

  def pooled(clips):
    per = [video_feature_groups(v) for v in clips]
    return {k: np.concatenate([p[k] for p in per], 0) for k in VIDEO_FEATURE_GROUPS}

  a, b = pooled(generated), pooled(real)
  out = {
      "all": frechet_distance(
          np.concatenate([a[k] for k in VIDEO_FEATURE_GROUPS], 1),
          np.concatenate([b[k] for k in VIDEO_FEATURE_GROUPS], 1),
      )
  }
  out.update({k: frechet_distance(a[k], b[k]) for k in VIDEO_FEATURE_GROUPS})
  return out
