"""Shortcut audit: can ONE stream of a (winner, loser) pair alone tell the loser from the winner?

A SyncDPO loser should differ from the real pair only in how its two streams line up in time. If the
distorted stream on its own looks unlike real data — exact repeated frames, a level below anything
the clip contains, a splice jump larger than the clip's own changes — the model can win the DPO
contrast by spotting that artefact without looking at the other modality, and learns the artefact
instead of synchronization. This module measures that, per rule:

  stream_statistics(x)     a handful of single-stream statistics per clip (numpy, float64 [B, F]):
                           frame-to-frame change (mean, the largest jump over the median one, the
                           fraction of exactly repeated frames) and frame level (lowest, highest,
                           spread over time); each sees one of the artefacts above;
  auc(pos, neg)            the rank AUC of one score (0.5: no separation), folded to >= 0.5 by
                           `separation` so a direction need not be guessed;
  probe_auc(w, l)          a small logistic probe on all statistics, trained on half the clips and
                           scored on the other half (and vice versa): the best a simple detector
                           gets from one stream;
  audit_rule(...)          both, for the stream a rule distorts, on a batch of real clips.

A rule that changes only cross-modal timing leaves each stream a real clip of the data, so every AUC
sits at chance; `benchmarks/bench_shortcut_audit.py` prints the table for every rule and strength.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np
import scipy.stats

STATISTICS = ("mean_change", "max_jump", "repeats", "min_level", "max_level", "level_spread")


def stream_statistics(x: Any) -> np.ndarray:
  """Single-stream statistics of a batch of clips: x [B, T, ...] (latent frames) -> float64 [B, 6].

  Columns (STATISTICS): mean |frame change|; the largest change over the median change (a splice);
  the fraction of frame pairs whose change is exactly 0 (a frozen or stretched stream); the lowest and
  the highest frame level (mean over a frame's values; silence below the clip's floor); the standard
  deviation of the frame levels over time.
  """
  x = np.asarray(x, np.float64)
  x = x.reshape(x.shape[0], x.shape[1], -1)  # [B, T, D]
  change = np.abs(np.diff(x, axis=1)).mean(-1)  # [B, T - 1]
  level = x.mean(-1)  # [B, T]
  med = np.median(change, axis=1)
  return np.stack(
      [
          change.mean(1),
          change.max(1) / (med + 1e-6),
          (change == 0).mean(1),
          level.min(1),
          level.max(1),
          level.std(1),
      ],
      axis=1,
  )


def auc(pos: Any, neg: Any) -> float:
  """P(score of a positive > score of a negative), ties counting half (Mann-Whitney U / (n m))."""
  pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
  ranks = scipy.stats.rankdata(np.concatenate([pos, neg]))  # ties get their average rank
  u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
  return float(u / (pos.size * neg.size))


def separation(pos: Any, neg: Any) -> float:
  """max(AUC, 1 - AUC): how well one score separates the two sets in either direction."""
  a = auc(pos, neg)
  return max(a, 1.0 - a)


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 50) -> np.ndarray:
  """Newton's method for L2-regularised logistic regression; x [N, F] (a bias column added) -> w."""
  xb = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
  w = np.zeros(xb.shape[1])
  for _ in range(iters):
    p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -30, 30)))
    grad = xb.T @ (p - y) + l2 * w
    hess = (xb * (p * (1 - p))[:, None]).T @ xb + l2 * np.eye(xb.shape[1])
    w = w - np.linalg.solve(hess, grad)
  return w


def probe_auc(stats_w: np.ndarray, stats_l: np.ndarray) -> float:
  """Two-fold cross-validated AUC of a logistic probe telling losers from winners by their statistics.

  The folds are the first and the second half of the clips, and clip i's winner and loser stay in the
  same fold: a loser made from a neighbouring clip (Swap, the batch rolled by one) then stays in its
  winners' fold, so the probe cannot learn "clips of the other fold" and score that as separation.
  Features are standardised with the training fold's mean and spread. Folded to >= 0.5 like
  `separation` (an AUC below 0.5 on held-out clips is chance too).
  """
  n = stats_w.shape[0]
  folds = (np.arange(n) < n // 2, np.arange(n) >= n // 2)
  scores_w, scores_l = np.empty(n), np.empty(n)
  for train, test in (folds, folds[::-1]):
    x = np.concatenate([stats_w[train], stats_l[train]])
    y = np.concatenate([np.zeros(train.sum()), np.ones(train.sum())])
    mu, sd = x.mean(0), x.std(0) + 1e-9
    w = _fit_logistic((x - mu) / sd, y)
    score = lambda s: np.concatenate([(s - mu) / sd, np.ones((s.shape[0], 1))], axis=1) @ w
    scores_w[test], scores_l[test] = score(stats_w[test]), score(stats_l[test])
  return separation(scores_l, scores_w)


def audit_rule(
    name: str,
    key: jax.Array,
    video: jax.Array,
    audio: jax.Array,
    strength: float,
    fps_v: float,
    fps_a: float,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
  """How well the distorted stream of rule `name`'s losers alone separates them from the winners.

  video [B, T_v, ...], audio [B, T_a, ...]: real clips (latents); context: the same clips cropped
  wider (`negatives.make_negatives`), so the rules can move real content in. Returns {'stream': 'video' |
  'audio', 'auc': {statistic: separation}, 'max_auc': the largest of them, 'probe_auc': the logistic
  probe's, 'changed': fraction of losers that differ from their winner}.
  """
  from syncdpo_jax.perturb import negatives  # local: the statistics above need no jax

  video_l, audio_l, info = negatives.make_negatives(
      key, video, audio, strength, fps_v, fps_a, {name: 1.0}, options, context=context
  )
  stream = "audio" if int(np.asarray(info["modality"])[0]) == 1 else "video"
  w, l = (audio, audio_l) if stream == "audio" else (video, video_l)
  sw, sl = stream_statistics(w), stream_statistics(l)
  aucs = {s: separation(sl[:, i], sw[:, i]) for i, s in enumerate(STATISTICS)}
  changed = np.abs(np.asarray(l) - np.asarray(w)).reshape(w.shape[0], -1).max(1) > 0
  return {
      "stream": stream,
      "auc": aucs,
      "max_auc": max(aucs.values()),
      "probe_auc": probe_auc(sw, sl),
      "changed": float(changed.mean()),
  }


__all__ = ["STATISTICS", "audit_rule", "auc", "probe_auc", "separation", "stream_statistics"]
