"""syncdpo_jax.perturb"""
