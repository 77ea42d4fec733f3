"""Pure-functional temporal perturbations (SyncDPO negatives) and the coarse -> subtle curriculum.

Public API (no state, no I/O; everything jit- and vmap-able):
  names() -> list[str]
  apply(name, key, video, audio, strength, fps_v, fps_a, other=None, options=None, context=None)
      -> (video, audio, info); context = the example cropped wider (the window in its middle)
  sample_apply(key, video, audio, strength, fps_v, fps_a, probs, other=None, options=None, context=None)
  make_negatives(key, video_b, audio_b, strength, fps_v, fps_a, probs, options=None, context=None)
  TIMING_RULES (the rules that change only cross-modal timing, given a context)
  MAGNITUDES (the strength -> magnitude table), INFO_SCHEMA, DEFAULT_OPTIONS
  get_perturb_config(), get_curriculum_config(schedule), probs_from_config, options_from_config
  curriculum: CurriculumState, init, update, strength, mix_probs, log_metrics
  audit: stream_statistics, auc, probe_auc, audit_rule (can one stream alone tell a loser? numpy)

Typical use inside a jitted DPO step:
  s = curriculum.strength(state.curriculum)
  p = curriculum.mix_probs(state.curriculum, cfg.curriculum, probs_from_config(cfg.perturb))
  video_l, audio_l, info = make_negatives(key, batch['video'], batch['audio'], s, fps_v, fps_a, p,
                                          options_from_config(cfg.perturb))
  ...
  curriculum_state = curriculum.update(state.curriculum, cfg.curriculum, metrics['reward_accuracy'])
"""

from syncdpo_jax.perturb import curriculum
from syncdpo_jax.perturb.config import (
    SCHEDULES,
    get_curriculum_config,
    get_perturb_config,
    options_from_config,
    probs_from_config,
)
from syncdpo_jax.perturb.ops import (
    DEFAULT_OPTIONS,
    INFO_SCHEMA,
    MAGNITUDES,
    TIMING_RULES,
    Magnitude,
    TimeMap,
    apply,
    kind_index,
    magnitude,
    names,
)
from syncdpo_jax.perturb.negatives import make_negatives, probs_vector, sample_apply

__all__ = [
    "DEFAULT_OPTIONS",
    "INFO_SCHEMA",
    "MAGNITUDES",
    "Magnitude",
    "SCHEDULES",
    "TIMING_RULES",
    "TimeMap",
    "apply",
    "curriculum",
    "get_curriculum_config",
    "get_perturb_config",
    "kind_index",
    "magnitude",
    "make_negatives",
    "names",
    "options_from_config",
    "probs_from_config",
    "probs_vector",
    "sample_apply",
]
