"""Building blocks of run configs (`configs/*.py` compose these) and the checks every run makes.

A run config has these sections (each a ConfigDict; every field documented where it is defined):
  mode, seed, init_from, load_ema   what to run, the global seed, where to start from and which weights
  data                              syncdpo_jax.data.config.get_data_config
  codec                             latent codec (embedded: pixel space-to-depth + log-mel)
  model                             syncdpo_jax.model.config.get_model_config (the architecture only:
                                    the latents it is built for come from data + codec, `model_io`)
  parallel                          mesh, logical-axis rules, remat, attention kernel (get_parallel_config)
  objective                         flow matching + SFT cross-task synergy
  dpo                               flow-DPO (beta, modality weights, optional SFT term)
  perturb, curriculum               syncdpo_jax.perturb
  optim, train                      optimizer and loop
  sample, eval                      sampling and evaluation
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from syncdpo_jax import codec as codec_lib
from syncdpo_jax import perturb as perturb_lib
from syncdpo_jax.data.config import get_data_config
from syncdpo_jax.model import factory as model_factory
from syncdpo_jax.model.config import get_model_config, get_parallel_config, validate_parallel
from syncdpo_jax.model.io import ModelIO
from syncdpo_jax.perturb import get_curriculum_config, get_perturb_config
from syncdpo_jax.sample import get_sample_config
from syncdpo_jax.sample.config import MODES as SAMPLE_MODES

MODES = ("sft", "dpo", "eval", "sample", "codec")
DPO_PAIRS = ("rules", "sample_rank")


def objective_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # What the network outputs: 'x' (clean signal, JiT), 'v' (velocity) or 'eps' (noise); converted to
  # the velocity for losses and samplers (objectives/flow.py). Raw pixel / log-mel tokens want 'x'; a
  # ported model keeps the parametrization it was pretrained with.
  c.prediction = "x"
  # The per-sample error of SFT and DPO: the velocity MSE ('velocity'), the MSE of the implied clean
  # estimate ('x0' = velocity MSE x max(t, 0.05)^2), or that times the SNR clipped to [1, snr_cap]
  # ('x0_snr': low-noise steps weigh up to snr_cap times more; objectives/flow.error_weight).
  c.error_space = "velocity"
  c.snr_cap = 5.0
  # Training times: 'uniform' | 'logit_normal' | 'shifted' (uniform, then t' = s t / (1 + (s - 1) t)).
  # Shifted uniform by default: every sample starts at t = 1, where a logit-normal almost never draws
  # (P(t > 0.97) = 2.5e-4 at mean 0, 3.7e-3 at mean 0.8), and the demo's x0-hat at t = 1 was then
  # worse than the mean frame.
  c.t_sampling = "shifted"
  c.t_logit_mean = 0.0
  c.t_logit_std = 1.0
  c.t_shift = 3.0  # timestep shift applied after sampling (1 = none)
  c.p_uncond = 0.1  # label dropout that trains the unconditional (CFG) branch
  # Harmony's cross-task synergy: L = L_joint + lambda_v L_audio-driven + lambda_a L_video-driven.
  c.lambda_v = 0.1
  c.lambda_a = 0.3
  # Probability that an example trains (joint, audio-driven, video-driven); see objectives/sft.py.
  c.task_probs = (0.6, 0.2, 0.2)
  c.video_weight = 1.0
  c.audio_weight = 1.0
  return c


def dpo_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.beta = 5000.0  # Diffusion-DPO's value for mean-reduced errors; > 0
  c.video_weight = 1.0  # per-sample error e = w_v * mse_video + w_a * mse_audio
  c.audio_weight = 1.0
  # Per-stream KL strengths (None: beta); JavisDiT++'s audio-video DPO uses 3000 / 1000.
  c.beta_video = config_dict.placeholder(float)
  c.beta_audio = config_dict.placeholder(float)
  # Keeping the policy on the data (objectives/dpo.flow_dpo_loss_given; 0 / None = off):
  c.sft_weight = 0.0  # + sft_weight * e_theta(winner), the SFT term (JavisDiT++: 0.1)
  c.hinge_weight = 0.0  # + hinge_weight * max(0, e_theta(w) - e_ref(w)), DPO-positive
  c.sdpo_mu = config_dict.placeholder(
      float
  )  # Diffusion-SDPO's safeguard on the loser's gradient, mu in [0, 1)
  # Cross-task DPO: probability that a pair is scored in (joint, audio-driven, video-driven) generation;
  # the given stream is clean and carries no error (objectives/dpo.pair_times). (1, 0, 0) = joint only.
  c.task_probs = (1.0, 0.0, 0.0)
  # Which stream a rule-based loser distorts in a conditional pair:
  #   'given'  the GIVEN stream (audio-driven pair: the audio; video-driven: the video), so the
  #            generated stream stays the real one in winner and loser and e(w) - e(l) can only come
  #            from how it fits the condition ("this audio given this video" vs "given it shifted");
  #   'rule'   every rule's own modality (perturb.modality), whatever the task: most rules distort
  #            the audio, which in a video-driven pair is the denoised target itself.
  # Joint pairs always take the rule's own modality.
  c.distort = "given"
  # Where the (winner, loser) pairs come from:
  #   'rules'        SyncDPO: the real pair wins, a rule-based temporal perturbation of it loses, built
  #                  inside the jitted step (perturb, curriculum);
  #   'sample_rank'  conventional DPO baseline: before step 1, sample num_candidates candidates per
  #                  condition from the reference model, rank them by the sync metrics and keep the best
  #                  as winner and the worst as loser (runs/pairs.py; saved in WORKDIR/pairs.npz).
  c.pairs = "rules"
  c.rank = ml_collections.ConfigDict()
  c.rank.num_candidates = 4  # K samples per condition (>= 2)
  c.rank.num_pairs = 64  # conditions drawn from data.split_train = pairs built; steps cycle over them
  c.rank.mode = "joint"  # which streams are sampled: 'joint' | 'v2a' (real video given, audios
  # sampled) | 'a2v' (real audio given, videos sampled)
  c.rank.sample_steps = config_dict.placeholder(int)  # ODE steps per candidate; None = sample.num_steps
  return c


def optim_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.lr = 3e-4
  c.schedule = "cosine"  # 'cosine' | 'constant' (after linear warm-up)
  c.warmup_steps = 50
  c.end_lr_frac = 0.1
  c.b1 = 0.9
  c.b2 = 0.99
  c.weight_decay = 0.0
  c.grad_clip = 1.0  # global-norm clipping; 0 disables
  # Micro-batches per step: the step's data.batch_size examples go through the model k at a time
  # (1/k of the activations live) and make one update; results equal k = 1 (train/steps.py).
  c.grad_accum_steps = 1
  return c


def train_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.num_steps = 100
  c.log_every = 10
  c.checkpoint_every = 50
  c.keep_checkpoints = 3
  c.async_checkpoint = True
  # > 0 keeps EMA params in the TrainState (warmed up: train/steps.ema_decay_at); eval, sampling and
  # init_from then load them (config.load_ema).
  c.ema_decay = 0.0
  c.eval_every = 0  # > 0: sample + score config.train.eval_clips clips every that many steps
  c.eval_clips = 8
  c.profile_step = -1  # >= 0: write a profiler trace of steps [s, s+2) to WORKDIR/profile
  return c


def eval_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.checkpoints = ""  # 'name=workdir,...' to compare (mode='eval'); bare paths are named by basename
  c.split = "test"  # 'test' (in distribution) or 'ood' (held-out kinds/speeds/timbres)
  c.num_clips = 16
  # Sampler seeds per clip: every generated row is num_seeds x num_clips samples (seed-major), and two
  # runs see the same noise for the same (seed, clip), so their per-clip values pair up (paired.json).
  c.num_seeds = 1
  c.batch_size = 8
  c.modes = ("joint", "v2a", "a2v")
  # Also sample every mode with sample.sync_cfg flipped (same noise), as rows '<run>/<mode>/synccfg_off'
  # (or '_on'): SyncCFG's own effect, measured on the same clips.
  c.sync_cfg_both = True
  # The sync-sensitivity probe (runs/probe.py): this many whole clips of eval.split, the given stream
  # shifted by 0, +-1, +-2, +-3, +-5 video frames; eval/probe.json + probe.png. 0 = off.
  c.probe_clips = 64
  c.event_tol_ms = 100.0  # event matching tolerance (one video frame at 10 fps)
  c.num_samples_to_write = 3
  return c


def sample_run_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.checkpoint = ""  # workdir or checkpoint to sample from (mode='sample')
  c.input = ""  # v2a: an mp4 whose video is given; a2v: a wav/mp3/flac (or mp4's audio)
  c.label = 0  # class to condition on (data.num_classes = unconditional)
  c.num_samples = 2
  return c


def codec_config() -> ml_collections.ConfigDict:
  """What the model sees (syncdpo_jax.codec): 'pixel_mel' | 'autoencoder' | 'flax_vae' | 'precomputed'."""
  from syncdpo_jax import autoencoder

  c = ml_collections.ConfigDict()
  c.name = "pixel_mel"
  c.patch = 4  # pixel_mel: video space-to-depth factor (32x32 px -> 8x8x48 latents)
  # pixel_mel: (mean, std) of each stream's raw latents, standardised away by the codec; (0, 1) = none.
  # Measure a dataset's with `python tools/latent_stats.py --config configs/X.py`.
  c.video_norm = (0.0, 1.0)
  c.audio_norm = (0.0, 1.0)
  # autoencoder: the workdir of a mode='codec' run, and the network it trained (syncdpo_jax.autoencoder).
  c.checkpoint = ""
  c.autoencoder = autoencoder.config()
  c.factory = ""  # flax_vae: 'package.module:function' (codec_cfg, data_cfg) -> dict of NNX modules
  # Latent layout of a flax_vae codec, or of precomputed latents not made by pixel_mel (0 = unset).
  c.video_channels = 0
  c.audio_channels = 0
  c.spatial_downsample = 0
  c.temporal_downsample = 1  # pixel frames per video latent frame
  c.audio_temporal_downsample = 1  # log-mel frames per audio latent frame
  # precomputed: the codec that made the latents, used to decode them (eval, sample); '' = none.
  c.decoder = ""  # '' | 'pixel_mel' | 'flax_vae'
  return c


def demo_generator(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The demo generator's recipe (README, "The demo's generator", fifth round), on a config built
  from data='demo' and model='demo'; configs/demo.py and configs/reproduce.py use it.

  Measured on 16 test clips at 1000 steps on the per-group quality gate, against the fourth round's
  recipe, at seeds 0 / 1: joint generation with SyncCFG (the demo's sampler) 1.49 / 2.04 against
  3.03 / 4.57, without it 0.78 / 1.25 against 1.12 / 1.01 (no plain-mode gain shown); flicker and edges
  better at both seeds. Still short of the 0.25 pass.
  """
  # Standardised latents (python tools/latent_stats.py --config configs/demo.py: 256 training clips).
  c.codec.video_norm = (-0.4895, 0.3656)
  c.codec.audio_norm = (-0.4629, 0.3737)
  # A per-token MLP head, and open residual gates over zero-initialised branches.
  c.model.head_mlp_dim = 512
  c.model.zero_init_branches = True
  # A rank-16 video patch embedding (768 values -> 16 -> 128): it passes 16 / 768 of the input's noise
  # into the model instead of 128 / 768 (fifth round: rank 32 / 16 / 8 measured).
  c.model.video_patch_bottleneck = 16
  # Training times shifted towards noise (what the raw latents' std of 0.36 did implicitly, and more),
  # the error of the clean estimate (every t weighted alike, not 1 / t^2), a sampling grid shifted
  # towards noise too.
  c.objective.t_shift = 8.0
  c.objective.error_space = "x0"
  c.sample.shift = 3.0
  return c


def timing_negatives(c: ml_collections.ConfigDict, context_s: float = 0.5) -> ml_collections.ConfigDict:
  """SyncDPO's losers from the rules that change only cross-modal timing (perturb.TIMING_RULES), with
  `context_s` seconds of real content on each side of every training window to take what they move in
  from (data.context_s), offsets from context_s (strength 1) down to one audio frame (strength 0):
  the shortcut audit finds no single-stream cue in them
  (benchmarks/bench_shortcut_audit.py). The default of every DPO config (base_config); the staged
  9-rule mix of the SyncDPO paper on the bare window stays available: `--config.curriculum.
  use_stage_mixes=True --config.data.context_s=0 --config.perturb.shift.subtle_s=0.1
  --config.perturb.shift.coarse_s=1.0 --config.perturb.shift.floor=coarse` (its rules leave
  single-stream artefacts: README, "Which rules can be won without looking at the other stream").
  """
  c.data.context_s = float(context_s)
  c.perturb.mix = {n: (1.0 if n in perturb_lib.TIMING_RULES else 0.0) for n in perturb_lib.names()}
  c.curriculum.use_stage_mixes = False
  # The curriculum in physical units: offsets from the context's margin (coarse) down to one frame of
  # the shifted stream (subtle: 20 ms of audio at the demo's 50 frames/s, below one video frame).
  c.perturb.shift.coarse_s = float(context_s)
  c.perturb.shift.subtle_s = float(c.data.hop) / float(c.data.sr)
  c.perturb.shift.floor = "frame"
  return c


def base_config(*, data: str = "demo", model: str = "demo", mode: str = "sft") -> ml_collections.ConfigDict:
  """A complete run config (the model's latent shapes and rates are derived from data + codec: model_io)."""
  c = ml_collections.ConfigDict()
  c.mode = mode
  c.seed = 0
  c.init_from = ""  # workdir or checkpoint dir to start from (DPO: also the reference)
  # Loading a checkpoint's parameters (init_from, eval.checkpoints, sample.checkpoint): its EMA
  # parameters where it has them (train.ema_decay > 0), else the raw ones; False: always the raw ones.
  c.load_ema = True
  c.data = get_data_config(data)
  c.codec = codec_config()
  c.model = get_model_config(model)
  c.parallel = get_parallel_config(model)
  c.objective = objective_config()
  c.dpo = dpo_config()
  c.perturb = get_perturb_config()
  c.curriculum = get_curriculum_config()
  c.optim = optim_config()
  c.train = train_config()
  c.sample = get_sample_config()
  c.eval = eval_config()
  c.sample_run = sample_run_config()
  if mode == "dpo":
    timing_negatives(c)
  return c


def model_io(c: ml_collections.ConfigDict) -> ModelIO:
  """The latents a run's model is built for, derived from config.data and config.codec (never stored).

  Channels and frame rates from the codec's latent layout, one window's shapes from data.window_s and
  data.resolution, the class count from the dataset, the caption width from data.text_dim (0: the
  class label alone conditions).
  """
  layout = codec_lib.latent_layout(c.codec, c.data)
  (t_v, h, w, c_v), (t_a, c_a) = layout.window_shapes(c.data)
  return ModelIO(
      video_channels=c_v,
      audio_channels=c_a,
      video_fps=layout.fps,
      audio_fps=layout.audio_fps,
      num_classes=int(c.data.num_classes),
      text_dim=int(c.data.get("text_dim", 0)),
      T_v=t_v,
      h=h,
      w=w,
      T_a=t_a,
      text_len=int(c.data.get("text_len", 0)) if int(c.data.get("text_dim", 0)) else 0,
  )


def build_model(c: ml_collections.ConfigDict, rngs):
  """The run's model: config.model's architecture built for model_io(c), with config.parallel's settings."""
  return model_factory.build(c.model, model_io(c), rngs, c.parallel)


def build_abstract_model(c: ml_collections.ConfigDict):
  """build_model's shapes only (nothing allocated): restore targets, plans."""
  return model_factory.build_abstract(c.model, model_io(c), c.parallel)


def model_spec(c: ml_collections.ConfigDict) -> ml_collections.FrozenConfigDict:
  """What the run's model is built from (model.resolve): FLOP counts and plans read it."""
  return model_factory.resolve(c.model, model_io(c), c.parallel)


def validate(c: ml_collections.ConfigDict) -> None:
  """Checks made before anything compiles; each error names the field and the fix."""
  if c.mode not in MODES:
    raise ValueError(f"config.mode={c.mode!r}; expected one of {MODES}.")
  model_factory.factory(c.model.name)  # a registered architecture
  if c.mode == "dpo":
    if not c.init_from:
      raise ValueError(
          "config.mode='dpo' needs a reference model: set --config.init_from=<SFT workdir or "
          "checkpoint>. DPO from a random reference has nothing to prefer against."
      )
    if not c.dpo.beta > 0:
      raise ValueError(
          f"config.dpo.beta={c.dpo.beta} must be > 0 (Diffusion-DPO uses 5000 with " "mean-reduced errors)."
      )
    validate_dpo_pairs(c)
    validate_dpo_regularisers(c)
  if c.codec.name == "autoencoder" and c.mode != "codec" and not c.codec.checkpoint:
    raise ValueError(
        "config.codec.name='autoencoder' needs --config.codec.checkpoint=<workdir of a mode='codec' "
        "run> (train one: python launch/main.py --config configs/demo.py:codec --workdir W)."
    )
  if c.mode == "eval" and not c.eval.checkpoints:
    raise ValueError("config.mode='eval' needs --config.eval.checkpoints='name=workdir,...'.")
  if c.mode == "sample" and not c.sample_run.checkpoint:
    raise ValueError("config.mode='sample' needs --config.sample_run.checkpoint=<workdir or checkpoint>.")
  if int(c.train.num_steps) < 1:
    raise ValueError(f"config.train.num_steps={c.train.num_steps} must be >= 1.")
  if not float(c.objective.snr_cap) >= 1.0:
    raise ValueError(
        f"config.objective.snr_cap={c.objective.snr_cap}: expected >= 1 (1 = the plain x0 error)"
    )
  if c.dpo.distort not in ("given", "rule"):
    raise ValueError(
        f"config.dpo.distort={c.dpo.distort!r}; expected 'given' (a conditional pair's loser "
        "distorts its given stream) or 'rule' (each rule's own modality)"
    )
  for field in ("objective.task_probs", "dpo.task_probs"):
    section, name = field.split(".")
    p = list(c[section][name])
    if len(p) != 3 or min(p) < 0 or sum(p) <= 0:
      raise ValueError(
          f"config.{field}={p}: need 3 non-negative probabilities " "(joint, audio-driven, video-driven)."
      )
  probs = list(c.objective.task_probs)
  for i, (lam, name) in enumerate(((c.objective.lambda_v, "lambda_v"), (c.objective.lambda_a, "lambda_a"))):
    if lam > 0 and probs[i + 1] == 0:
      raise ValueError(
          f"config.objective.{name}={lam} > 0 but task_probs[{i + 1}] = 0: that task would "
          "never be sampled. Give it a probability or set the lambda to 0."
      )
  if (c.codec.name == "precomputed") != (c.data.name == "precomputed_latents"):
    raise ValueError(
        f"config.codec.name={c.codec.name!r} with config.data.name={c.data.name!r}: latents "
        "stored by syncdpo_jax.data.precompute are read with data.name='precomputed_latents' "
        "and codec.name='precomputed' together (the command prints both flags)."
    )
  layout = codec_lib.latent_layout(c.codec, c.data)
  (_, h, w, _), (t_a, _) = layout.window_shapes(c.data)
  # Patch sizes of architectures that patchify (the DiT); a model without them takes latents as they are.
  ph, pw = tuple(c.model.get("video_patch", (1, 1)))
  if h % ph or w % pw:
    raise ValueError(
        f"config.data.resolution={c.data.resolution} gives {h}x{w} video latents (codec "
        f"downsampling {layout.spatial_downsample}), not divisible by model.video_patch="
        f"{(ph, pw)}: pick a resolution whose latent size the patch divides."
    )
  if t_a % int(c.model.get("audio_patch", 1)):
    raise ValueError(
        f"config.data.window_s={c.data.window_s} gives {t_a} audio latent frames (at "
        f"{layout.audio_fps:g}/s), not divisible by model.audio_patch={c.model.audio_patch}: "
        f"use a window of a multiple of {c.model.audio_patch / layout.audio_fps:g} s."
    )
  validate_parallel(c.parallel)
  model_factory.resolve(c.model, model_io(c), c.parallel)  # no derived field set in config.model


def validate_dpo_regularisers(c: ml_collections.ConfigDict) -> None:
  """Checks config.dpo's per-stream betas and the regularisers that keep the policy on the data."""
  d = c.dpo
  for k in ("beta_video", "beta_audio"):
    if d[k] is not None and not d[k] > 0:
      raise ValueError(f"config.dpo.{k}={d[k]} must be > 0 (or None: config.dpo.beta).")
  for k in ("sft_weight", "hinge_weight"):
    if not d[k] >= 0:
      raise ValueError(f"config.dpo.{k}={d[k]} must be >= 0 (0 = off).")
  if d.sdpo_mu is not None and not 0 <= d.sdpo_mu < 1:
    raise ValueError(f"config.dpo.sdpo_mu={d.sdpo_mu} must be in [0, 1) (or None = off).")


def validate_dpo_pairs(c: ml_collections.ConfigDict) -> None:
  """Checks config.dpo.pairs and, for 'sample_rank', config.dpo.rank (see dpo_config)."""
  if c.dpo.pairs not in DPO_PAIRS:
    raise ValueError(
        f"config.dpo.pairs={c.dpo.pairs!r}; expected one of {DPO_PAIRS} ('rules' = SyncDPO's "
        "perturbed negatives, 'sample_rank' = conventional DPO on sampled, ranked pairs)."
    )
  if c.dpo.pairs != "sample_rank":
    return
  r = c.dpo.rank
  if int(r.num_candidates) < 2:
    raise ValueError(
        f"config.dpo.rank.num_candidates={r.num_candidates}: ranking needs at least 2 "
        "candidates per condition (a best and a worst); use 2 or more."
    )
  if int(r.num_pairs) < 1:
    raise ValueError(f"config.dpo.rank.num_pairs={r.num_pairs} must be >= 1.")
  if r.mode not in SAMPLE_MODES:
    raise ValueError(
        f"config.dpo.rank.mode={r.mode!r}; expected one of {SAMPLE_MODES} (which streams "
        "the candidates are sampled for)."
    )
  if r.sample_steps is not None and int(r.sample_steps) < 1:
    raise ValueError(
        f"config.dpo.rank.sample_steps={r.sample_steps} must be >= 1, or None to use "
        f"config.sample.num_steps={c.sample.num_steps}."
    )
