"""Paired comparisons of two runs scored on the same clips and sampler noise.

Two checkpoints evaluated by `syncdpo_jax.runs.evaluate` see the same eval clips and, per generation
mode and sampler seed, the same noise, so the per-clip values of a metric pair up: a run's effect is
the distribution of its per-clip differences against the other run, and the clip-to-clip spread that
both runs share cancels. `paired_difference` summarises one such set (mean with a Student-t 95% CI,
median with a bootstrap 95% CI for heavy-tailed metrics); `resolvable_difference` is the arithmetic
that sizes an eval: the half-width of that CI for a given per-clip SD and number of pairs.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import scipy.stats

BOOTSTRAP = 2000  # resamples for the median's CI (fixed seed: the same inputs give the same CI)


def resolvable_difference(sd: float, n: int, level: float = 0.95) -> float:
  """Half-width of the `level` Student-t CI of a mean of n paired differences of per-pair SD `sd`.

  A true difference larger than this is what an eval of n pairs can tell from zero (at 50% power; twice
  it at ~97%). Inverted: n ~ (t * sd / d)^2 pairs resolve a difference d.
  """
  if n < 2:
    return float("nan")
  return float(scipy.stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n))


def pairs_needed(sd: float, difference: float, level: float = 0.95) -> int:
  """The smallest n whose `resolvable_difference(sd, n)` is at most `difference`."""
  if not difference > 0:
    raise ValueError(f"difference={difference} must be > 0")
  n = 2
  while resolvable_difference(sd, n, level) > difference:
    n = max(n + 1, int(n * 1.1))
  while n > 2 and resolvable_difference(sd, n - 1, level) <= difference:
    n -= 1
  return n


def paired_difference(a: Sequence[float], b: Sequence[float], seed: int = 0) -> dict:
  """Summary of b - a over the pairs where both are finite (a clip NaN in either run drops out).

  a, b: per-pair values of one metric, same order (clip i under seed s in both). Returns {'n', 'mean',
  'ci95' (Student-t half-width: the smallest difference these pairs resolve), 'median', 'median_ci95'
  ([lo, hi], percentile bootstrap), 'sd' (of the differences), 'sd_a' (of a: the clip-to-clip spread
  the pairing removes)}; NaN fields where n < 2.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape or a.ndim != 1:
    raise ValueError(
        f"paired values need the same 1-D shape, got {a.shape} and {b.shape} (the two runs "
        "must be scored on the same clips and seeds)"
    )
  ok = np.isfinite(a) & np.isfinite(b)
  d = b[ok] - a[ok]
  n = int(d.size)
  nan = float("nan")
  out = {"n": n, "mean": nan, "ci95": nan, "median": nan, "median_ci95": [nan, nan], "sd": nan, "sd_a": nan}
  if n == 0:
    return out
  out["mean"], out["median"] = float(d.mean()), float(np.median(d))
  if n < 2:
    return out
  sd = float(d.std(ddof=1))
  out.update(sd=sd, sd_a=float(a[ok].std(ddof=1)), ci95=resolvable_difference(sd, n))
  rng = np.random.default_rng(seed)
  med = np.median(d[rng.integers(0, n, (BOOTSTRAP, n))], axis=1)
  out["median_ci95"] = [float(np.percentile(med, 2.5)), float(np.percentile(med, 97.5))]
  return out
