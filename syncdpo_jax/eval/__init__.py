"""syncdpo_jax.eval"""
