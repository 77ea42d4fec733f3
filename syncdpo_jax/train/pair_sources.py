"""Where a DPO step's (winner, loser) pairs come from: `make_pair_source(codec, config)`.

  config.dpo.pairs = 'rules'        `RuleNegatives` (SyncDPO): the batch holds real clips; each loser is
                                    built inside the jitted step by temporal distortions of its winner,
                                    and the curriculum advances in the step.
  config.dpo.pairs = 'sample_rank'  `RankedPairs` (the conventional DPO baseline): pairs sampled from the
                                    reference and ranked before step 1 (runs/pairs.py), fed as latents.

A source has a host side, used by the loop (`prepare` once before step 1, `host_batch` for each step),
and a device side, traced inside the step (`pairs`, `next_curriculum`). The step (train/steps.py) and
the loop never branch on which source they hold; a new source (pairs from a reward model, say) is one
more class with these four methods.
"""

from __future__ import annotations

from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from syncdpo_jax import codec as codec_lib, perturb
from syncdpo_jax.objectives import sft as sft_lib
from syncdpo_jax.perturb import curriculum as curriculum_lib


def make_rule_negatives(codec, config) -> Callable:
  """SyncDPO's losers: fn(key, curriculum_state, video_w, audio_w, task, context) -> (video_l, audio_l, info).

  Latents in and out ([B, T_v, h, w, C_v], [B, T_a, C_a]; context, if given, the same clips' latents
  cropped wider: perturb.make_negatives); the perturbation strength and mix come from
  the curriculum state (config.curriculum, config.perturb). `task` (int32 [B] or None: all joint) and
  config.dpo.distort = 'given' make a conditional pair's loser distort its given stream: the batch of
  negatives is then also built with every rule forced onto the video (video-driven pairs) or the audio
  (audio-driven pairs), with the same key (the same rule and magnitude), and each pair takes its
  task's. Only the variants some pair can use are built. Pure and jit-able.
  """
  cur_cfg, pert_cfg = config.curriculum, config.perturb
  fps_v, fps_a = float(codec.fps), float(codec.audio_fps)
  default_mix = perturb.probs_from_config(pert_cfg)
  pert_options = perturb.options_from_config(pert_cfg)
  probs_t = tuple(float(p) for p in config.dpo.task_probs)
  given = config.dpo.distort == "given"
  forced = {m: {n: dict(o, modality=m) for n, o in pert_options.items()} for m in ("video", "audio")}
  # Which option set each task uses; a task that never occurs builds nothing.
  variants = {
      sft_lib.TASK_JOINT: pert_options,
      sft_lib.TASK_AUDIO_DRIVEN: forced["audio"] if given else pert_options,
      sft_lib.TASK_VIDEO_DRIVEN: forced["video"] if given else pert_options,
  }

  def negatives(key, curriculum, video_w, audio_w, task=None, context=None):
    strength = curriculum_lib.strength(curriculum)
    probs = curriculum_lib.mix_probs(curriculum, cur_cfg, default_mix)
    build = lambda opts: perturb.make_negatives(
        key, video_w, audio_w, strength, fps_v, fps_a, probs, opts, context=context
    )
    if task is None or not given:
      return build(pert_options)
    out = None
    for k in (sft_lib.TASK_JOINT, sft_lib.TASK_AUDIO_DRIVEN, sft_lib.TASK_VIDEO_DRIVEN):
      if probs_t[k] == 0:
        continue
      neg = build(variants[k])
      if out is None:
        out = neg
        continue
      pick = task == k
      out = jax.tree.map(
          lambda n, o: jnp.where(pick.reshape(pick.shape + (1,) * (n.ndim - 1)), n, o), neg, out
      )
    return out

  return negatives


CLIP_KEYS = ("video", "audio", "label")  # a pipeline batch's fields the steps read
TEXT_KEYS = ("text", "text_mask")  # and its caption embeddings, where the dataset has them


CONTEXT_KEYS = ("video_context", "audio_context")


def latent_context_margins(codec, data_cfg) -> tuple[int, int]:
  """Latent frames of context on each side of the window (video, audio) for data.context_s."""
  out = []
  for name, fps in (("video", codec.fps), ("audio", codec.audio_fps)):
    m = float(data_cfg.context_s) * float(fps)
    if abs(m - round(m)) > 1e-6:
      raise ValueError(
          f"data.context_s={data_cfg.context_s} s is {m:g} {name} latent frames at {fps:g}/s: use a "
          "context that is a whole number of latent frames of both streams"
      )
    out.append(int(round(m)))
  return out[0], out[1]


class RuleNegatives:
  """SyncDPO's pairs: winner = the real clip, loser = its rule-based temporal distortion, in the step.

  The batch: video [B, T_v, H, W, 3] in [-1, 1], audio [B, T_a, n_mels], label [B] (pipeline clips);
  with data.context_s > 0 also video_context / audio_context, the clips cropped wider. The winners are
  then the middle of the encoded context (so a loser and its winner are cut from the same latents)
  and the timing rules take what they move into the window from the context.
  """

  name = "rules"

  def __init__(self, codec, config):
    self.codec = codec
    self.cur_cfg = config.curriculum
    self.negatives = make_rule_negatives(codec, config)
    has_context = config.data.get("context_s", 0.0) > 0
    self.margins = latent_context_margins(codec, config.data) if has_context else (0, 0)
    self.batch_keys = CLIP_KEYS + (CONTEXT_KEYS if any(self.margins) else ())

  # Host side.
  def prepare(self, config, workdir: str, graphdef, rest, ref_params) -> None:
    """Nothing to build: the losers are made in the step."""

  def host_batch(self, step: int, data_iter: Iterator[dict]) -> dict:
    return next(data_iter)

  # Device side (traced in the step).
  def pairs(self, key, curriculum, batch: dict, task):
    """(video_w, audio_w, video_l, audio_l, info) latents of the batch; info as perturb.make_negatives'."""
    if not any(self.margins):
      video_w, audio_w = codec_lib.encode_batch(self.codec, batch)
      video_l, audio_l, info = self.negatives(key, curriculum, video_w, audio_w, task)
      return video_w, audio_w, video_l, audio_l, info
    ctx_v = self.codec.encode_video(batch["video_context"])
    ctx_a = self.codec.encode_audio(batch["audio_context"])
    (m_v, m_a), t_v, t_a = self.margins, ctx_v.shape[1], ctx_a.shape[1]
    video_w, audio_w = ctx_v[:, m_v : t_v - m_v], ctx_a[:, m_a : t_a - m_a]
    context = {"video": ctx_v, "audio": ctx_a}
    video_l, audio_l, info = self.negatives(key, curriculum, video_w, audio_w, task, context)
    return video_w, audio_w, video_l, audio_l, info

  def next_curriculum(self, curriculum, metrics: dict, info) -> tuple[object, dict]:
    """The curriculum after this step (it advances on the step's reward accuracy) and extra metrics."""
    cur = curriculum_lib.update(curriculum, self.cur_cfg, metrics["reward_accuracy"])
    return cur, {"neg_abs_offset_s": jnp.abs(info["offset_s"]).mean()}


class RankedPairs:
  """The conventional baseline's pairs: K samples of the reference per condition, ranked by a sync
  metric, best = winner, worst = loser (runs/pairs.py), built once before step 1.

  The batch holds LATENTS: video / audio (winner) and loser_video / loser_audio, [B, T_v', h, w, C_v] /
  [B, T_a', C_a], and label. The pairs were sampled in latent space; a decode -> encode round trip
  would cost a VAE pass per step and change what was ranked. The curriculum is carried through
  untouched: its difficulty does not describe sampled pairs.
  """

  name = "sample_rank"
  batch_keys = ("video", "audio", "loser_video", "loser_audio", "label")

  def __init__(self, codec, config):
    self.codec = codec
    self.batch_size, self.seed = int(config.data.batch_size), int(config.seed)
    self.ranked: dict[str, np.ndarray] | None = None

  def prepare(self, config, workdir: str, graphdef, rest, ref_params) -> None:
    """The pairs saved in `workdir`, else sampled from `ref_params` (the reference: init_from, or after
    a resume the restored reference, the same model) and saved."""
    from syncdpo_jax.runs import pairs as pairs_lib  # a run mode: it samples on the mesh

    self.ranked = pairs_lib.prepare(config, workdir, graphdef, rest, self.codec, ref_params)

  def host_batch(self, step: int, data_iter: Iterator[dict]) -> dict:
    """Step `step`'s pairs (1-based), indexed by the step: a resume needs no iterator state."""
    from syncdpo_jax.runs import pairs as pairs_lib

    if self.ranked is None:
      raise RuntimeError("RankedPairs.host_batch before prepare(): the loop builds the pairs first.")
    return pairs_lib.step_batch(self.ranked, step, self.batch_size, self.seed)

  def pairs(self, key, curriculum, batch: dict, task):
    del key, curriculum, task
    if "loser_video" not in batch:
      raise ValueError(
          "config.dpo.pairs='sample_rank' but the batch has no 'loser_video' / 'loser_audio': "
          "feed the ranked pairs (runs/pairs.py), or set config.dpo.pairs='rules'."
      )
    return batch["video"], batch["audio"], batch["loser_video"], batch["loser_audio"], None

  def next_curriculum(self, curriculum, metrics: dict, info) -> tuple[object, dict]:
    return curriculum, {}


SOURCES = {RuleNegatives.name: RuleNegatives, RankedPairs.name: RankedPairs}


def make_pair_source(codec, config):
  """The pair source config.dpo.pairs names (validated by config_lib.validate_dpo_pairs)."""
  return SOURCES[config.dpo.pairs](codec, config)
