"""Flow-DPO in the Diffusion-DPO form (Wallace et al. 2023), with the flow-matching velocity error.

With the same noise eps and time t for the winner w (the real, aligned pair) and the loser l (its
temporally distorted copy), let e(x) be the per-sample mean squared velocity error. Then

  L = -log sigmoid( -beta/2 * [ (e_theta(w) - e_ref(w)) - (e_theta(l) - e_ref(l)) ] )

The argument of the sigmoid is the implicit reward margin: positive when the policy, relative to the
frozen reference, denoises the winner better than the loser. beta is tied to the error reduction
(Diffusion-DPO: mean over elements, beta = 5000); it is a config value.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def implicit_margin(err_w, err_l, ref_err_w, ref_err_l, beta: float) -> jax.Array:
  """-beta/2 * [(e_theta(w) - e_ref(w)) - (e_theta(l) - e_ref(l))], per sample [B]."""
  return -0.5 * beta * ((err_w - ref_err_w) - (err_l - ref_err_l))


def flow_dpo_loss(
    err_w: jax.Array, err_l: jax.Array, ref_err_w: jax.Array, ref_err_l: jax.Array, beta: float
):
  """Mean Diffusion-DPO loss over the batch.

  Args:
    err_w, err_l: [B] per-sample velocity errors of the policy on winner / loser.
    ref_err_w, ref_err_l: [B] the same for the frozen reference (treated as constants).
    beta: > 0, the KL-regularisation strength.
  Returns:
    (loss scalar, metrics) with `reward_accuracy` (fraction of samples with positive margin),
    `reward_margin` (mean margin), and the four mean errors.
  """
  ref_err_w = jax.lax.stop_gradient(ref_err_w)
  ref_err_l = jax.lax.stop_gradient(ref_err_l)
  margin = implicit_margin(err_w, err_l, ref_err_w, ref_err_l, beta)
  loss = -jax.nn.log_sigmoid(margin).mean()
  metrics = {
      "reward_accuracy": (margin > 0).astype(jnp.float32).mean(),
      "reward_margin": margin.mean(),
      "err_w": err_w.mean(),
      "err_l": err_l.mean(),
      "ref_err_w": ref_err_w.mean(),
      "ref_err_l": ref_err_l.mean(),
  }
  return loss, metrics
