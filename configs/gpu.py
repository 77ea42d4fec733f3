"""NVIDIA GPUs with `jax[cuda12]`: one GPU, one 8-GPU node, or several nodes.

  python launch/plan.py --config configs/gpu.py:8x80gb,mode=dpo          # does it fit? (any machine)
  python launch/main.py --config configs/gpu.py:1x80gb --workdir /mnt/shared/runs/sft_1b
  python launch/main.py --config configs/gpu.py:8x80gb,mode=dpo --workdir /mnt/shared/runs/dpo_5b \
      --config.init_from=/mnt/shared/runs/sft_5b
  sbatch --nodes=4 launch/gpu_multinode.sh configs/gpu.py:4x8x80gb /mnt/shared/runs/sft_5b   # SLURM

Argument: PRESET[,size=1b|5b][,mode=sft|dpo][,data=latents|av_folder]
  1x80gb     one H100 80GB: the 1b model, no sharding
  8x80gb     one node of 8 H100s: the 5b model, FSDP over the node (ZeRO-3 over NVLink)
  4x8x80gb   4 nodes x 8 H100s: 5b, FSDP inside each node, data parallel across nodes (only the
             gradient all-reduce crosses the slower inter-node network)
Defaults: the preset's size, mode=sft, data=latents (precomputed VAE latents; av_folder reads mp4s).
Set the paths: --config.data.data_dir (and --config.data.manual_dir for av_folder), and a workdir on
storage every node mounts. bf16 compute with f32 params and optimizer, remat per preset, cuDNN flash
attention for the long unmasked attention (syncdpo_jax/hardware.py has the shared settings).
The plan budgets the whole card: export XLA_PYTHON_CLIENT_MEM_FRACTION=0.92 (JAX reserves 75% by default).
"""

from syncdpo_jax import config_lib, hardware

# preset: (GPUs, default model size, mesh, global batch, remat policy)
PRESETS = {
    "1x80gb": (1, "1b", {"data": 1, "fsdp": 1, "tensor": 1}, 2, "dots_no_batch"),
    "8x80gb": (8, "5b", {"data": 1, "fsdp": 8, "tensor": 1}, 16, "full"),
    "4x8x80gb": (32, "5b", {"data": 4, "fsdp": 8, "tensor": 1}, 64, "full"),
}


def get_config(arg: str = "1x80gb"):
  preset, opts = hardware.parse_arg(arg, PRESETS, {"size": "", "mode": "sft", "data": "latents"})
  devices, size, mesh, batch, remat = PRESETS[preset]
  c = config_lib.base_config(data="demo", model=opts["size"] or size, mode=opts["mode"])
  c.hardware = hardware.hardware_config(preset, "h100-80gb", devices)
  hardware.set_data_source(c, opts["data"], resolution=512)
  # A lost node costs at most checkpoint_every steps; SIGTERM (SLURM preemption, scancel) also saves.
  hardware.configure_run(
      c, mesh=mesh, batch_size=batch, remat=remat, attention_impl="cudnn", checkpoint_every=500
  )
  return c
