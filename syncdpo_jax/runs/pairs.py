"""Conventional DPO baseline: preference pairs by sampling K candidates and ranking them by sync metrics.

SyncDPO (config.dpo.pairs='rules') builds each loser inside the jitted step from the real pair by a
rule-based temporal perturbation: no sampling, no scoring. The conventional recipe it is compared with
(config.dpo.pairs='sample_rank') is:

  for each condition (a train-split clip: its label, and its real video for v2a / its real audio for a2v)
    sample K candidates from the reference model        train/generate_lib.make_generate (jitted sampler)
    decode and score every candidate on the host         eval.estimate_offset, eval.av_align
    winner = best ranked, loser = worst ranked (latents)

Ranking (`rank_candidates`): by |estimated offset| ascending (the DeSync-style number: how far audio
and video are apart), ties broken by AV-Align descending (more onsets matched to motion peaks), then by
candidate index. A candidate the metrics cannot score (silent audio, static video, no peaks:
eval.ClipError) ranks below every scored one, exactly as a clip with that failure is skipped by
eval.evaluate_clips: the sampler produced nothing to synchronise.

Both recipes report their cost per pair with the same keys (`build_ranked_pairs`, `rule_pair_cost`)
so a report can put them side by side. The loop (train/loop.py) builds the pairs once before step 1,
saves them to WORKDIR/pairs.npz + WORKDIR/pairs_cost.json, and cycles through them in a seeded order
indexed by the step (`pair_batch_indices`), so a resumed run needs no iterator state.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from syncdpo_jax import codec as codec_lib
from syncdpo_jax import eval as eval_lib
from syncdpo_jax.data import pipeline
from syncdpo_jax.perturb import curriculum as curriculum_lib
from syncdpo_jax.runs import generate as generate_lib
from syncdpo_jax.sample.ode import EVALS_PER_STEP
from syncdpo_jax.train import pair_sources

PAIR_KEYS = (
    "winner_video",
    "winner_audio",
    "loser_video",
    "loser_audio",
    "label",
    "winner_desync",
    "loser_desync",
)
COST_KEYS = (
    "num_pairs",
    "num_candidates",
    "sampler_forward_passes_per_pair",
    "seconds_per_pair_sampling",
    "seconds_per_pair_scoring",
    "seconds_per_pair",
)
PAIRS_FILE = "pairs.npz"
COST_FILE = "pairs_cost.json"


# ----------------------------------------------------------------------------------------------------
# Cost accounting and ranking (pure)


def passes_per_velocity(sample_cfg: ml_collections.ConfigDict) -> int:
  """Model forward passes (per example) behind one guided velocity in `sample_cfg.mode`.

  Mirrors sample/guidance.guided_velocity: the conditional pass, + 1 for CFG (cfg_scale != 1), + 1 per
  generated stream with a SyncCFG negative (sync_cfg and its scale != 1). Passes that the sampler
  batches into one call still cost one forward each.
  """
  mode = sample_cfg.mode
  gen_v, gen_a = mode in ("joint", "a2v"), mode in ("joint", "v2a")
  sync = bool(sample_cfg.sync_cfg)
  return (
      1
      + int(float(sample_cfg.cfg_scale) != 1.0)
      + int(gen_v and sync and float(sample_cfg.s_v) != 1.0)
      + int(gen_a and sync and float(sample_cfg.s_a) != 1.0)
  )


def sampler_forward_passes(sample_cfg: ml_collections.ConfigDict, num_candidates: int) -> int:
  """Forward passes to sample `num_candidates` candidates: K x steps x evals/step x passes/eval."""
  if sample_cfg.sampler not in EVALS_PER_STEP:
    raise ValueError(f"sample.sampler={sample_cfg.sampler!r}; expected one of {sorted(EVALS_PER_STEP)}.")
  return (
      int(num_candidates)
      * int(sample_cfg.num_steps)
      * EVALS_PER_STEP[sample_cfg.sampler]
      * passes_per_velocity(sample_cfg)
  )


def rank_candidates(desync: np.ndarray, av_align: np.ndarray) -> np.ndarray:
  """Candidate order, best first: |offset| ascending, then AV-Align descending, then index.

  Args:
    desync: [N, K] |estimated offset| in seconds; NaN = the candidate could not be scored.
    av_align: [N, K] AV-Align in [0, 1]; NaN = not scored.
  Returns:
    int [N, K]: row i lists condition i's candidate indices from best to worst. Unscored candidates
    come last.
  """
  desync, av_align = np.asarray(desync, np.float64), np.asarray(av_align, np.float64)
  if desync.shape != av_align.shape or desync.ndim != 2:
    raise ValueError(f"desync {desync.shape} and av_align {av_align.shape} must both be [N, K]")
  scored = np.isfinite(desync) & np.isfinite(av_align)
  d = np.where(scored, desync, np.inf)
  a = np.where(scored, av_align, -np.inf)
  # lexsort sorts by its LAST key first; it is stable, so equal keys keep the candidate index order.
  return np.lexsort((-a, d), axis=-1)


def best_and_worst(desync: np.ndarray, av_align: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(winner index [N], loser index [N]): the first and last of `rank_candidates`."""
  order = rank_candidates(desync, av_align)
  return order[:, 0], order[:, -1]


def pair_batch_indices(num_pairs: int, batch_size: int, step: int, seed: int) -> np.ndarray:
  """Indices [batch_size] of the pairs that train step `step` (1-based) sees.

  The pairs are read in epochs, each a fresh permutation drawn from (seed, epoch); step s takes the
  positions (s - 1) * B ... s * B - 1 of that endless stream. A pure function of its arguments: a
  resumed run sees exactly the batches an uninterrupted one would.
  """
  pos = (int(step) - 1) * int(batch_size) + np.arange(int(batch_size))
  epochs, within = pos // num_pairs, pos % num_pairs
  perms = {
      int(e): np.random.default_rng([int(seed), int(e)]).permutation(num_pairs) for e in np.unique(epochs)
  }
  return np.array([perms[int(e)][i] for e, i in zip(epochs, within)], np.int64)


# ----------------------------------------------------------------------------------------------------
# Building the pairs (host side effects: data reading, timing)


def rank_sample_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """config.sample with the ranking's mode and number of steps (config.dpo.rank)."""
  scfg = config.sample.copy_and_resolve_references()
  scfg.mode = config.dpo.rank.mode
  if config.dpo.rank.sample_steps is not None:
    scfg.num_steps = int(config.dpo.rank.sample_steps)
  return scfg


def load_conditions(config: ml_collections.ConfigDict, num: int, seed: int) -> dict[str, np.ndarray]:
  """The first `num` examples of the train pipeline (config.data.split_train, random crops, `seed`).

  Returns numpy {'video': [num, T_v, H, W, 3], 'audio': [num, T_a, n_mels], 'label': int32 [num]}.
  """
  return pipeline.first_examples(
      config.data, config.data.split_train, num, ("label", "video", "audio"), seed=seed, train=True
  )


def _check_single_host() -> None:
  if jax.process_count() > 1:
    raise NotImplementedError(
        "config.dpo.pairs='sample_rank' builds and feeds its pairs on one host (each process would read "
        "a different shard of the conditions); run it single-host, or use config.dpo.pairs='rules'."
    )


def score_clip(clip: dict) -> tuple[float, float]:
  """(|estimated offset| s, AV-Align) of one decoded clip, or (nan, nan) if it cannot be scored."""
  try:
    off = eval_lib.estimate_offset(clip["frames"], clip["fps"], clip["audio"], clip["sr"])
    align = eval_lib.av_align(clip["frames"], clip["fps"], clip["audio"], clip["sr"])
  except eval_lib.ClipError:
    return float("nan"), float("nan")
  return abs(off), align


def build_ranked_pairs(
    config: ml_collections.ConfigDict, params, graphdef, rest, codec, num_pairs: int, seed: int
) -> tuple[dict[str, np.ndarray], dict]:
  """Samples config.dpo.rank.num_candidates candidates per condition, keeps the best and the worst.

  Args:
    config: the run config (dpo.rank: num_candidates K, mode, sample_steps; sample: solver, guidance;
      data: the train split the conditions come from and the batch size sampled at once).
    params: the model parameters to sample from (the DPO reference), on any device(s).
    graphdef, rest: the model's NNX graph definition and non-parameter state (nnx.split).
    codec: the latent codec (syncdpo_jax.codec).
    num_pairs: conditions to draw = pairs returned.
    seed: fixes the conditions (pipeline seed) and the sampler noise.
  Returns:
    pairs: numpy {'winner_video', 'loser_video': [N, T_v, h, w, C_v] latents, 'winner_audio',
      'loser_audio': [N, T_a, C_a] latents, 'label': int32 [N], 'winner_desync', 'loser_desync':
      float32 [N] |estimated offset| in s (inf = the candidate could not be scored)}. In v2a the winner's
      and loser's video are the real one (the given stream); in a2v, their audio.
    cost: {'num_pairs', 'num_candidates', 'sampler_forward_passes_per_pair' (K x steps x evals per
      step x passes per evaluation), 'seconds_per_pair_sampling', 'seconds_per_pair_scoring' (decode
      incl. Griffin-Lim + metrics), 'seconds_per_pair' (their sum)}. Wall times exclude the one-off
      compilation; the last chunk of conditions is padded to the sampling batch, so its waste counts.
  """
  _check_single_host()
  num_pairs, k = int(num_pairs), int(config.dpo.rank.num_candidates)
  scfg = rank_sample_config(config)
  cond = load_conditions(config, num_pairs, seed)
  chunk = min(int(config.data.batch_size), num_pairs)
  generate = generate_lib.make_generate(
      graphdef, rest, codec, scfg, int(config.data.num_classes), config.objective.prediction
  )
  key = jax.random.key(int(seed))
  compiled = None
  parts: dict[str, list] = {name: [] for name in PAIR_KEYS}
  t_sample = t_score = 0.0
  for start in range(0, num_pairs, chunk):
    n = min(chunk, num_pairs - start)
    # Pad the last chunk with repeats of its last condition: one compiled shape for every chunk.
    idx = np.minimum(np.arange(start, start + chunk), num_pairs - 1)
    video = codec.encode_video(jnp.asarray(cond["video"][idx]))
    audio = codec.encode_audio(jnp.asarray(cond["audio"][idx]))
    label = jnp.asarray(cond["label"][idx], jnp.int32)
    if compiled is None:  # compiled ahead of time so that the timings below are steady-state
      compiled = generate.lower(params, key, video, audio, label, mode=scfg.mode).compile()
    t0 = time.perf_counter()
    cands = [compiled(params, jax.random.fold_in(key, start * k + j), video, audio, label) for j in range(k)]
    cands = [(np.asarray(v)[:n], np.asarray(a)[:n]) for v, a in jax.block_until_ready(cands)]
    t1 = time.perf_counter()
    desync, align = np.empty((n, k)), np.empty((n, k))
    for j, (v, a) in enumerate(cands):
      for i, clip in enumerate(generate_lib.decode_clips(codec, config.data, v, a)):
        desync[i, j], align[i, j] = score_clip(clip)
    t_sample, t_score = t_sample + t1 - t0, t_score + time.perf_counter() - t1
    best, worst = best_and_worst(desync, align)
    rows = np.arange(n)
    for role, pick in (("winner", best), ("loser", worst)):
      parts[f"{role}_video"].append(np.stack([cands[j][0][i] for i, j in zip(rows, pick)]))
      parts[f"{role}_audio"].append(np.stack([cands[j][1][i] for i, j in zip(rows, pick)]))
      parts[f"{role}_desync"].append(np.nan_to_num(desync[rows, pick], nan=np.inf))
    parts["label"].append(cond["label"][start : start + n])
  pairs = {name: np.concatenate(v) for name, v in parts.items()}
  pairs["label"] = pairs["label"].astype(np.int32)
  pairs["winner_desync"] = pairs["winner_desync"].astype(np.float32)
  pairs["loser_desync"] = pairs["loser_desync"].astype(np.float32)
  cost = dict(
      num_pairs=num_pairs,
      num_candidates=k,
      sampler_forward_passes_per_pair=sampler_forward_passes(scfg, k),
      seconds_per_pair_sampling=t_sample / num_pairs,
      seconds_per_pair_scoring=t_score / num_pairs,
      seconds_per_pair=(t_sample + t_score) / num_pairs,
  )
  return pairs, cost


def rule_pair_cost(config: ml_collections.ConfigDict, batch_size: int, repeats: int) -> dict:
  """SyncDPO's cost per pair, in `build_ranked_pairs`' keys: the jitted rule-based negatives.

  Times pair_sources.make_rule_negatives (perturb.make_negatives at the curriculum's initial strength and mix)
  on `batch_size` train-split clips, `repeats` times after an ahead-of-time compile. No sampler runs
  (0 forward passes, 0 candidates) and nothing is scored. The loop builds these negatives inside the
  jitted step, fused with it and with no dispatch, so this stand-alone time is an upper bound.
  """
  batch_size, repeats = int(batch_size), int(repeats)
  if batch_size < 1 or repeats < 1:
    raise ValueError(f"rule_pair_cost needs batch_size >= 1 and repeats >= 1, got {batch_size}, {repeats}.")
  codec = codec_lib.make_codec(config.codec, config.data)
  cond = load_conditions(config, batch_size, int(config.seed))
  video = codec.encode_video(jnp.asarray(cond["video"]))
  audio = codec.encode_audio(jnp.asarray(cond["audio"]))
  cur = curriculum_lib.init(config.curriculum)
  key = jax.random.key(int(config.seed))
  negatives = jax.jit(pair_sources.make_rule_negatives(codec, config)).lower(key, cur, video, audio).compile()
  t0 = time.perf_counter()
  outs = [negatives(jax.random.fold_in(key, r), cur, video, audio) for r in range(repeats)]
  jax.block_until_ready(outs)
  seconds = (time.perf_counter() - t0) / (repeats * batch_size)
  return dict(
      num_pairs=batch_size * repeats,
      num_candidates=0,
      sampler_forward_passes_per_pair=0,
      seconds_per_pair_sampling=0.0,
      seconds_per_pair_scoring=0.0,
      seconds_per_pair=seconds,
  )


# ----------------------------------------------------------------------------------------------------
# The loop's side: files, batches


def save_pairs(workdir: str, pairs: dict[str, np.ndarray], cost: dict) -> None:
  """Writes WORKDIR/pairs.npz and WORKDIR/pairs_cost.json, each atomically (temp file + rename), the
  cost last: a run killed midway leaves no cost file and rebuilds the pairs."""
  for name, write in (
      (PAIRS_FILE, lambda f: np.savez(f, **pairs)),
      (COST_FILE, lambda f: f.write(json.dumps(cost, indent=1).encode())),
  ):
    fd, tmp = tempfile.mkstemp(dir=workdir, prefix=f".{name}.")
    try:
      with os.fdopen(fd, "wb") as f:
        write(f)
      os.replace(tmp, os.path.join(workdir, name))
    except BaseException:
      os.unlink(tmp)
      raise


def load_pairs(workdir: str, config: ml_collections.ConfigDict) -> tuple[dict, dict] | None:
  """(pairs, cost) saved in `workdir`, or None when there are none; refuses pairs built for another
  config.dpo.rank."""
  path, cost_path = os.path.join(workdir, PAIRS_FILE), os.path.join(workdir, COST_FILE)
  if not (os.path.exists(path) and os.path.exists(cost_path)):
    return None
  with np.load(path) as f:
    pairs = {k: f[k] for k in PAIR_KEYS}
  with open(cost_path) as f:
    cost = json.load(f)
  want = (int(config.dpo.rank.num_pairs), int(config.dpo.rank.num_candidates))
  have = (len(pairs["label"]), int(cost["num_candidates"]))
  if want != have:
    raise ValueError(
        f"{path} holds {have[0]} pairs from {have[1]} candidates, but config.dpo.rank asks for "
        f"num_pairs={want[0]}, num_candidates={want[1]}. Use a fresh --workdir, or delete {path} and "
        f"{cost_path} to resample."
    )
  return pairs, cost


def to_batches(pairs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Pairs -> the DPO step's batch fields, latents as sampled (train/pair_sources.RankedPairs): video /
  audio (winner), loser_video / loser_audio, label."""
  return {
      "video": pairs["winner_video"],
      "audio": pairs["winner_audio"],
      "loser_video": pairs["loser_video"],
      "loser_audio": pairs["loser_audio"],
      "label": pairs["label"].astype(np.int32),
  }


def step_batch(
    batches: dict[str, np.ndarray], step: int, batch_size: int, seed: int
) -> dict[str, np.ndarray]:
  """The numpy batch of train step `step` (1-based): see pair_batch_indices."""
  idx = pair_batch_indices(len(batches["label"]), batch_size, step, seed)
  return {k: v[idx] for k, v in batches.items()}


def cost_line(cost: dict, pairs: dict[str, np.ndarray], mode: str) -> str:
  """One printable line: the cost per pair and how far apart winners and losers are."""

  def mean_finite(x):
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")

  unscored = int(np.sum(~np.isfinite(pairs["loser_desync"])))
  return (
      f"[pairs] sample_rank ({mode}, K={cost['num_candidates']}, {cost['num_pairs']} pairs): "
      f"{cost['sampler_forward_passes_per_pair']} sampler forward passes/pair, "
      f"{cost['seconds_per_pair']:.3f} s/pair (sampling {cost['seconds_per_pair_sampling']:.3f} + "
      f"scoring {cost['seconds_per_pair_scoring']:.3f}); mean |offset| winners "
      f"{mean_finite(pairs['winner_desync']):.3f} s, scored losers "
      f"{mean_finite(pairs['loser_desync']):.3f} s, "
      f"{unscored} unscorable losers"
  )


def prepare(
    config: ml_collections.ConfigDict, workdir: str, graphdef, rest, codec, ref_params
) -> dict[str, np.ndarray]:
  """The loop's entry: the saved pairs of `workdir`, else built from `ref_params` and saved; prints the
  cost line and returns the step's batch fields (to_batches)."""
  _check_single_host()
  loaded = load_pairs(workdir, config)
  if loaded is None:
    pairs, cost = build_ranked_pairs(
        config, ref_params, graphdef, rest, codec, int(config.dpo.rank.num_pairs), int(config.seed)
    )
    save_pairs(workdir, pairs, cost)
    where = f"built and saved to {os.path.join(workdir, PAIRS_FILE)}"
  else:
    pairs, cost = loaded
    where = f"loaded from {os.path.join(workdir, PAIRS_FILE)}"
  print(cost_line(cost, pairs, config.dpo.rank.mode) + f"; {where}", flush=True)
  return to_batches(pairs)
