"""Event scores: detected event times against ground-truth ones (one-to-one matching within a tolerance)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.optimize


def match_events(pred: np.ndarray, gt: np.ndarray, tol_s: float) -> tuple[np.ndarray, np.ndarray]:
  """The maximum one-to-one matching of predicted to ground-truth times within `tol_s` that, among
  maximum matchings, minimises the total |error| (Hungarian algorithm).

  Args:
    pred: float [K], gt: float [M] event times (s), both non-empty.
  Returns:
    (pred_index, gt_index), int [matched] each.
  """
  err = np.abs(pred[:, None] - gt[None, :])  # [K, M]
  ok = err <= tol_s + 1e-12  # float slack so a shift of exactly tol_s counts as inside
  # Cost: a feasible pair costs its error (< tol_s); an infeasible one costs more than any set of
  # feasible pairs together, so the assignment first maximises the match count, then minimises error.
  big = (tol_s + 1.0) * (min(pred.size, gt.size) + 1)
  rows, cols = scipy.optimize.linear_sum_assignment(np.where(ok, err, big))
  keep = ok[rows, cols]
  return rows[keep], cols[keep]


def event_metrics(pred_times: Any, gt_times: Any, tol_s: float) -> dict[str, float]:
  """Event precision / recall / F1 and mean timing error with optimal one-to-one matching.

  Follows the onset-evaluation convention of mir_eval (Raffel et al., ISMIR 2014, ``mir_eval.onset``):
  a predicted and a ground-truth event may be matched if |t_pred - t_gt| <= tol_s; each event is used at
  most once, and the matching maximises the number of matches (Hopcroft-Karp in mir_eval; here the
  Hungarian algorithm, which among maximum matchings also minimises the total timing error:
  :func:`match_events`). Negative entries (the -1 padding of ``batch['events']``) are ignored.

  Args:
    pred_times: float [K] predicted event times (s), e.g. from :func:`detect_audio_events`.
    gt_times: float [M] ground-truth times (s), -1 padded allowed.
    tol_s: matching tolerance in seconds (mir_eval default: 0.05).
  Returns:
    dict(precision, recall, f1, mean_timing_error_s, num_matched). precision/recall/f1 are 0 when
    either set is empty (mir_eval's convention; a silent generation with events expected scores 0) and
    1 when both are empty; mean_timing_error_s is NaN when nothing is matched.
  """
  pred = np.asarray(pred_times, np.float64).reshape(-1)
  gt = np.asarray(gt_times, np.float64).reshape(-1)
  pred, gt = pred[pred >= 0], gt[gt >= 0]
  if pred.size == 0 and gt.size == 0:
    return dict(precision=1.0, recall=1.0, f1=1.0, mean_timing_error_s=float("nan"), num_matched=0)
  if pred.size == 0 or gt.size == 0:
    return dict(precision=0.0, recall=0.0, f1=0.0, mean_timing_error_s=float("nan"), num_matched=0)
  rows, cols = match_events(pred, gt, tol_s)
  matched = int(rows.size)
  precision, recall = matched / pred.size, matched / gt.size
  f1 = 0.0 if matched == 0 else 2 * precision * recall / (precision + recall)
  timing = float(np.mean(np.abs(pred[rows] - gt[cols]))) if matched else float("nan")
  return dict(precision=precision, recall=recall, f1=f1, mean_timing_error_s=timing, num_matched=matched)
