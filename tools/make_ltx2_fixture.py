"""Reference outputs of diffusers' LTX-2 transformer at a tiny random configuration (the port's oracle).

Runs in its own virtualenv with the reference pinned (`make ltx2-fixture` makes it; never in CI):

  torch==2.13.0 diffusers==0.42.1 safetensors==0.8.0

and writes, per RoPE layout ('interleaved', the reference's default, and 'split'), a folder under
tests/fixtures/ltx2_tiny_<rope>/:
  config.json, diffusion_pytorch_model.safetensors   the model, exactly as `save_pretrained` writes it
  io.safetensors   inputs, the forward's outputs, the gradients of a scalar loss w.r.t. the inputs,
                   and the reference's timestep frequencies (time_freqs)
  call.json        the forward's non-tensor arguments (num_frames, height, width, fps, audio_num_frames)

Everything is seeded and written without timestamps, so a rerun from a fresh virtualenv reproduces the
files bit for bit. tests/test_ltx2.py converts the safetensors with syncdpo_jax.convert.ltx2 and checks
our forward and gradients against these.
"""

from __future__ import annotations

import argparse
import json
import math
import os

import torch
from diffusers import LTX2VideoTransformer3DModel
from safetensors.torch import save_file

# diffusers' own unit test of this model uses 2 layers, 2 heads of 8 (video), 2 of 4 (audio); the
# latents here are those configs/ltx2.py:tiny trains on (the test data through pixel_mel: 48 video
# channels at one pixel frame per latent frame and 4 px cells, 16 log-mel bins at 16 kHz / hop 320),
# so a converted fixture also trains with that config as it is.
TINY = dict(
    in_channels=48,
    out_channels=48,
    patch_size=1,
    patch_size_t=1,
    num_attention_heads=2,
    attention_head_dim=8,
    cross_attention_dim=16,
    audio_in_channels=16,
    audio_out_channels=16,
    audio_num_attention_heads=2,
    audio_attention_head_dim=4,
    audio_cross_attention_dim=8,
    num_layers=2,
    caption_channels=12,
    vae_scale_factors=(1, 4, 4),
    audio_scale_factor=1,
    audio_sampling_rate=16000,
    audio_hop_length=320,
)
# One example's latents: 3 latent frames of 2x4 (24 video tokens), 10 audio latent frames, 5 caption tokens.
B, F, H, W, T_A, L = 2, 3, 2, 4, 10, 5
FPS = 10.0
# Every parameter ~ N(0, SCALE^2): large enough that no term vanishes, small enough that the outputs
# stay O(1) (then float32 roundoff stays far below the 1e-5 the parity test asks).
SCALE = 0.2


def reference_time_freqs(half: int = 128) -> torch.Tensor:
  """The 128 float32 frequencies of the reference's timestep sinusoid, as diffusers'
  `get_timestep_embedding` computes them (torch's float32 exp; it differs from the correctly rounded
  value by one ulp in a couple of entries, which at t ~ 1000 moves the embedding by ~3e-5)."""
  exponent = -math.log(10000) * torch.arange(start=0, end=half, dtype=torch.float32)
  return torch.exp(exponent / half)


def _randomise(model: torch.nn.Module, gen: torch.Generator) -> None:
  """Every parameter drawn at random: the reference zero-initialises nothing that matters, but its
  biases start at 0 and its norms at 1, which would hide a transposed or dropped bias."""
  with torch.no_grad():
    for p in model.parameters():
      p.copy_(SCALE * torch.randn(p.shape, generator=gen))


def make(rope_type: str, out_dir: str) -> None:
  torch.manual_seed(0)
  gen = torch.Generator().manual_seed(0)
  model = LTX2VideoTransformer3DModel(**TINY, rope_type=rope_type).eval()
  _randomise(model, gen)
  cfg = model.config
  inputs = {
      "hidden_states": torch.randn(B, F * H * W, cfg.in_channels, generator=gen),
      "audio_hidden_states": torch.randn(B, T_A, cfg.audio_in_channels, generator=gen),
      "encoder_hidden_states": torch.randn(B, L, cfg.caption_channels, generator=gen),
      "audio_encoder_hidden_states": torch.randn(B, L, cfg.caption_channels, generator=gen),
  }
  # Different video and audio noise levels per example (the audio-driven and video-driven tasks), on
  # the reference's scale (timestep = sigma x timestep_scale_multiplier).
  sigma = torch.tensor([0.7, 0.2])
  audio_sigma = torch.tensor([0.1, 0.9])
  mask = torch.ones(B, L)
  mask[1, 3:] = 0.0  # example 1 has 3 caption tokens
  call = dict(num_frames=F, height=H, width=W, fps=FPS, audio_num_frames=T_A)
  for t in inputs.values():
    t.requires_grad_(True)
  video, audio = model(
      **inputs,
      timestep=sigma * cfg.timestep_scale_multiplier,
      audio_timestep=audio_sigma * cfg.timestep_scale_multiplier,
      encoder_attention_mask=mask,
      audio_encoder_attention_mask=mask,
      **call,
      return_dict=False,
  )
  w_v = torch.randn(video.shape, generator=gen)
  w_a = torch.randn(audio.shape, generator=gen)
  loss = (video * w_v).sum() + (audio * w_a).sum()
  grads = torch.autograd.grad(loss, list(inputs.values()))

  os.makedirs(out_dir, exist_ok=True)
  model.save_pretrained(out_dir, safe_serialization=True)
  io = {k: v.detach().contiguous() for k, v in inputs.items()}
  io.update(
      sigma=sigma,
      audio_sigma=audio_sigma,
      encoder_attention_mask=mask,
      loss_weight_video=w_v,
      loss_weight_audio=w_a,
      out_video=video.detach().contiguous(),
      out_audio=audio.detach().contiguous(),
      loss=loss.detach().reshape(1),
  )
  io.update({f"grad_{k}": g.contiguous() for k, g in zip(inputs, grads)})
  io["time_freqs"] = reference_time_freqs()
  save_file(io, os.path.join(out_dir, "io.safetensors"))
  with open(os.path.join(out_dir, "call.json"), "w") as f:
    json.dump(call, f, indent=2, sort_keys=True)
    f.write("\n")
  print(f"{out_dir}: loss {loss.item():.6f}, {sum(p.numel() for p in model.parameters())} params")


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
  args = ap.parse_args()
  torch.use_deterministic_algorithms(True)
  torch.set_num_threads(1)  # one summation order: bit-identical reruns
  for rope_type in ("interleaved", "split"):
    make(rope_type, os.path.normpath(os.path.join(args.out, f"ltx2_tiny_{rope_type}")))


if __name__ == "__main__":
  main()
