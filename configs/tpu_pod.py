"""Cloud TPU slices (v5p, v6e) with `jax[tpu]`: one process per host, one command for all hosts.

  python launch/plan.py --config configs/tpu_pod.py:v5p-128,mode=dpo      # does it fit? (any machine)
  launch/tpu_pod.sh MY_TPU us-east5-a configs/tpu_pod.py:v5p-128 /mnt/shared/runs/sft_5b

Argument: SLICE[,size=1b|5b][,mode=sft|dpo][,data=latents|av_folder]
  v5p-8      4 chips (one host, 95 GB each): the 1b model, FSDP over the 4 chips; a first real run
  v5p-128    64 chips (16 hosts): the 5b model, FSDP 16 x data 4, full remat (14.5k video tokens
             per example: saving every matmul output would not fit)
  v6e-256    256 chips (64 hosts, 32 GB each): 5b, FSDP 64 x tensor 4 and full remat: one example
             per 4 chips, whose attention heads and MLP are split over them
Defaults: the slice's size, mode=sft, data=latents (precomputed VAE latents; av_folder reads mp4s).
Every host runs the same command (launch/tpu_pod.sh: `gcloud ... ssh --worker=all`); the workdir and
data must be on storage all hosts mount (set --config.data.data_dir). bf16 compute with f32 params
and optimizer, remat per slice, Pallas splash attention; a preempted run (SIGTERM) saves a checkpoint
and the same command resumes from it (syncdpo_jax/hardware.py has the shared settings).
"""

from syncdpo_jax import config_lib, hardware

# slice: (default model size, mesh, global batch, remat policy)
PRESETS = {
    "v5p-8": ("1b", {"data": 1, "fsdp": 4, "tensor": 1}, 8, "dots_no_batch"),
    "v5p-128": ("5b", {"data": 4, "fsdp": 16, "tensor": 1}, 128, "full"),
    "v6e-256": ("5b", {"data": 1, "fsdp": 64, "tensor": 4}, 64, "full"),
}


def get_config(arg: str = "v5p-8"):
  preset, opts = hardware.parse_arg(arg, PRESETS, {"size": "", "mode": "sft", "data": "latents"})
  size, mesh, batch, remat = PRESETS[preset]
  accelerator, chips = hardware.tpu_slice(preset)
  c = config_lib.base_config(data="demo", model=opts["size"] or size, mode=opts["mode"])
  c.hardware = hardware.hardware_config(preset, accelerator, chips)
  hardware.set_data_source(c, opts["data"], resolution=704)
  # Spot/preemptible slices get SIGTERM ~30 s before they go and the loop saves then; periodic saves
  # bound what a hard failure (a host lost without notice) costs.
  hardware.configure_run(
      c, mesh=mesh, batch_size=batch, remat=remat, attention_impl="splash", checkpoint_every=250
  )
  return c
