"""syncdpo_jax.model"""
