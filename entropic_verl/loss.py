"""The ``entropic`` policy loss in verl's registry: verl's ``vanilla`` clipped loss + α·term.

Per micro-batch, with the raw (unclipped) ratio r = exp(clamp(log π − log π_old, ±20)), the
current-policy probability p = exp(log π) (no gradient through the mask) and the valid-token
mask m, the term is `pic.actuator.entropic_adjustment`::

    term = α · Σ_{m ∧ p>τ} (−r·|A|) / D

verl's engine path sums micro-batch losses and normalises the base loss globally:
``Σ_mb m·ℓ / N_glob · dp_size`` (N_glob = ``batch_num_tokens``, the step's valid tokens on all
DP ranks; DP then averages gradients over ranks). The term is normalised the same way:

- ``all_tokens``: D = N_glob / dp_size, so over the step term = α·Σ_{all high}(−r|A|)/N_glob and
  the high-probability weights are exactly 1 ± α (the paper);
- ``high_prob_tokens``: each micro-batch's mean over its own N_h tokens, weighted by its token
  share N_mb·dp_size/N_glob: the official per-micro-batch ``masked_mean`` (weights 1 ± α·N/N_h),
  split-invariant only when the high-probability fraction is uniform.

The term ignores the PPO clip, the dual clip and ``rollout_is_weights`` (as the official code).
Only ``loss_agg_mode=token-mean`` is supported (the official setting).
"""

from __future__ import annotations

from typing import Any

import torch
from verl.trainer.ppo import core_algos

from pic.actuator import entropic_adjustment

from .runtime import get_runtime

__all__ = ["LOSS_MODE", "compute_policy_loss_entropic", "entropic_term"]

LOSS_MODE = "entropic"


def entropic_term(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    alpha: float,
    *,
    tau: float,
    normalization: str,
    global_batch_info: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The EntroPIC term of one micro-batch, scaled like verl's token-mean loss; returns (term, metrics)."""
    info = global_batch_info or {}
    dp_size = int(info.get("dp_size") or 1)
    n_global = info.get("batch_num_tokens")
    if n_global is None and dp_size > 1:
        raise ValueError("entropic loss: global batch_num_tokens is required when dp_size > 1")
    mask = response_mask.to(log_prob.dtype)
    ratio = torch.exp(torch.clamp(log_prob - old_log_prob, min=-20.0, max=20.0))
    prob = torch.exp(log_prob.detach())
    n_local = mask.sum()
    if normalization == "all_tokens":
        denom = None if n_global is None else float(n_global) / dp_size
        term = entropic_adjustment(
            ratio, advantages, prob, alpha, mask=mask, tau=tau, normalization=normalization, num_tokens=denom
        )
    else:  # "high_prob_tokens": the micro-batch's own N_h, times its share of the global tokens
        term = entropic_adjustment(ratio, advantages, prob, alpha, mask=mask, tau=tau, normalization=normalization)
        if n_global is not None:
            term = term * (n_local * dp_size / float(n_global))
    n_high = ((prob > tau).to(mask.dtype) * mask).sum()
    metrics = {
        "actor/entropic_alpha": float(alpha),
        "actor/entropic_high_frac": float(n_high / n_local) if n_local > 0 else 0.0,
    }
    return term, metrics


@core_algos.register_policy_loss(LOSS_MODE)
def compute_policy_loss_entropic(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config: Any = None,
    rollout_is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """verl's ``vanilla`` loss plus `entropic_term`, with α and τ from this process's controller."""
    if loss_agg_mode != "token-mean":
        raise ValueError(
            f"actor_rollout_ref.actor.loss_agg_mode must be 'token-mean' for loss_mode=entropic, got {loss_agg_mode!r}"
        )
    runtime = get_runtime()
    base, metrics = core_algos.get_policy_loss_fn("vanilla")(
        old_log_prob=old_log_prob,
        log_prob=log_prob,
        advantages=advantages,
        response_mask=response_mask,
        loss_agg_mode=loss_agg_mode,
        config=config,
        rollout_is_weights=rollout_is_weights,
    )
    term, term_metrics = entropic_term(
        old_log_prob,
        log_prob,
        advantages,
        response_mask,
        runtime.alpha,
        tau=runtime.config.tau,
        normalization=runtime.config.normalization,
        global_batch_info=getattr(config, "global_batch_info", None),
    )
    metrics.update(term_metrics)
    return base + term, metrics
