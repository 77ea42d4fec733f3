"""syncdpo_jax.eval: synchronization metrics, event scores, quality proxies and the eval report.

Contracts: ``av_align(frames, fps, audio, sr)`` and ``estimate_offset(frames, fps, audio, sr,
max_offset=2.0)`` (seconds, positive = audio late) on uint8 ``[T, H, W, 3]`` frames and a mono float
waveform; ``write_report`` writes ``report.json`` with at least desync / av_align / event_f1 per run.
"""
from syncdpo_jax.eval.metrics import (
    ClipError,
    av_align,
    check_clip,
    detect_audio_events,
    detect_mel_events,
    detect_video_events,
    estimate_offset,
    evaluate_clips,
    event_metrics,
    fd_logmel_proxy,
    fd_video_proxy,
    frechet_distance,
    mean_ci95,
    video_frame_features,
)
from syncdpo_jax.eval.report import write_report

__all__ = [
    "ClipError", "av_align", "check_clip", "detect_audio_events", "detect_mel_events", "detect_video_events",
    "estimate_offset", "evaluate_clips",
    "event_metrics", "fd_logmel_proxy", "fd_video_proxy", "frechet_distance", "mean_ci95",
    "video_frame_features", "write_report",
]
