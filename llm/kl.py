"""KL to a frozen reference policy as a trainer option (``[kl]``), independent of the entropy lever.

Per response token, with δ = log π_ref(y_t) − log π_θ(y_t) (both at the rollout temperature), the
estimators of KL(π_θ ‖ π_ref) of Schulman's "Approximating KL divergence" note are::

    k1 = −δ = log π_θ − log π_ref                (unbiased, high variance, can be negative)
    k3 = e^δ − δ − 1                              (unbiased, ≥ 0, low variance; verl's low_var_kl)

δ is clamped to [−20, 20] and k3 to [−10, 10], as verl does. The loss term added to the policy loss
of a micro-batch is ``coef · Σ_t k_t · mask_t / N``, N the mini-batch's token count (the same N as
the policy loss, so gradient accumulation and data parallelism give the token mean). The reference
is the frozen starting policy, scored in the same micro-batch loop as the policy (`llm.trainer`):
under DDP and FSDP each rank holds a full frozen copy, so its memory is one more model in the
training dtype per rank.
"""

from __future__ import annotations

import copy

import torch

__all__ = ["ESTIMATORS", "add_kl", "frozen_copy", "kl_per_token", "kl_term"]

ESTIMATORS = ("k1", "k3")


def kl_per_token(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """The per-token estimate of KL(π_θ ‖ π_ref), same shape as ``logp`` (see the module docstring)."""
    delta = (ref_logp - logp).clamp(-20.0, 20.0)
    if estimator == "k1":
        return -delta
    if estimator == "k3":
        return (delta.exp() - delta - 1.0).clamp(-10.0, 10.0)
    raise ValueError(f"kl.estimator must be one of {ESTIMATORS}, got {estimator!r}")


def kl_term(logp, ref_logp, mask, num_tokens: float, coef: float, estimator: str) -> tuple[torch.Tensor, float]:
    """(coef · Σ k·mask / N, the sum Σ k·mask for the metric) of one micro-batch; shapes (m, t)."""
    k = kl_per_token(logp, ref_logp, estimator) * mask
    total = k.sum()
    return coef * total / num_tokens, float(total.detach())


def add_kl(loss_and_stats, logp, ref_logp, mask, num_tokens: float, kl_cfg):
    """(loss + the KL term, stats + ``kl_ref``) of a micro-batch when ``kl_cfg.coef`` > 0, else as given."""
    loss, stats = loss_and_stats
    if kl_cfg.coef <= 0:
        return loss, stats
    term, total = kl_term(logp, ref_logp, mask, num_tokens, kl_cfg.coef, kl_cfg.estimator)
    return loss + term, {**stats, "kl_ref": total}


def frozen_copy(model):
    """The reference policy: a copy of ``model``'s starting weights in eval mode, without gradients."""
    return copy.deepcopy(model).eval().requires_grad_(False)
