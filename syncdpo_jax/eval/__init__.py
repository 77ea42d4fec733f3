"""syncdpo_jax.eval: synchronization metrics, event scores, quality proxies and the eval report.

Contracts: ``av_align(frames, fps, audio, sr)`` and ``estimate_offset(frames, fps, audio, sr,
max_offset=2.0)`` (seconds, positive = audio late) on uint8 ``[T, H, W, 3]`` frames and a mono float
waveform; ``audio_timing(audio, sr, gt_times, *, mel=None, mel_fps=None)`` and
``video_timing(frames, fps, gt_times)`` (eval/timing.py: the generated stream against ground-truth event
times); ``write_report`` writes ``report.json`` with at least desync / av_align / event_f1 per run.
"""

from syncdpo_jax.eval.clips import ClipError, check_clip
from syncdpo_jax.eval.events import event_metrics
from syncdpo_jax.eval.fidelity import fd_logmel_proxy, fd_video_proxy, frechet_distance, video_frame_features
from syncdpo_jax.eval.metrics import evaluate_clips, mean_ci95
from syncdpo_jax.eval.signals import detect_audio_events, detect_mel_events, detect_video_events
from syncdpo_jax.eval.sync import av_align, estimate_offset
from syncdpo_jax.eval.report import write_report
from syncdpo_jax.eval.timing import audio_timing, video_timing

__all__ = [
    "ClipError",
    "audio_timing",
    "av_align",
    "check_clip",
    "detect_audio_events",
    "detect_mel_events",
    "detect_video_events",
    "estimate_offset",
    "evaluate_clips",
    "event_metrics",
    "fd_logmel_proxy",
    "fd_video_proxy",
    "frechet_distance",
    "mean_ci95",
    "video_frame_features",
    "video_timing",
    "write_report",
]
