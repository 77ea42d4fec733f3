"""syncdpo_jax.objectives"""
