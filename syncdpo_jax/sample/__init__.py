"""syncdpo_jax.sample"""
