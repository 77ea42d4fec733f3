"""syncdpo_jax.train"""
