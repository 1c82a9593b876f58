"""A lever's extra rollout on the sampled bandit (`pic.levers.Lever.extra_samples`).

When a lever asks for `pic.levers.ExtraSamples` (T, fraction) the plant draws, after the
main rollout and the lever's update, G more arms for each of the first S_x = ⌈fraction·S⌉
contexts from the tempered policy π_T ∝ π^{1/T} (one T per loop), scores them, computes GRPO
advantages among those extra groups and lets the lever pick which are trained and with what
advantage (`Lever.extra_advantages`). Their behaviour log-probability is log π_old at the
training temperature (the AEPO code recomputes it at T = 1), so in the loss they are ordinary
tokens of π_old with the lever's advantages. The entropy the lever measured stays the main
rollout's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pic.grpo import group_advantages
from pic.levers import ExtraSamples, Lever

from .bandit import draw_groups

__all__ = ["ExtraRollout", "draw_extra", "tempered"]


@dataclass
class ExtraRollout:
    """The extra samples of one step, padded to all S contexts; arrays (B, S, G)."""

    arms: np.ndarray
    logp_old: np.ndarray
    adv: np.ndarray
    keep: np.ndarray
    """1.0 where the sample is trained (0 on dropped samples and on contexts not re-sampled)."""
    sampled: np.ndarray
    """Extra samples drawn per loop, (B,): S_x·G."""


def tempered(z: np.ndarray, temperature) -> np.ndarray:
    """π_T = softmax(z / T) over the last axis; z (B, S, K) log-probs, T scalar or (B,)."""
    t = np.broadcast_to(np.asarray(temperature, dtype=float).reshape(-1), (z.shape[0],)).reshape(-1, 1, 1)
    y = z / t
    y = y - y.max(-1, keepdims=True)
    e = np.exp(y)
    return e / e.sum(-1, keepdims=True)


def draw_extra(
    z: np.ndarray, p: np.ndarray, lever: Lever, spec: ExtraSamples, group_size: int, rngs, *, adv_eps, scale_by_std
) -> ExtraRollout:
    """Draw, score and select the extra samples of ``spec`` (each loop from its own generator)."""
    b, s, _ = z.shape
    g = group_size
    s_x = min(s, max(1, math.ceil(spec.fraction * s)))
    arms, rewards = draw_groups(tempered(z[:, :s_x], spec.temperature), p[:s_x], rngs, g)  # (B, S_x, G)
    adv = group_advantages(rewards, eps=adv_eps, scale_by_std=scale_by_std)
    adv, keep = lever.extra_advantages(adv.reshape(b, s_x * g), main_samples=s * g)

    def pad(x, fill):  # (B, S_x·G) → (B, S, G), contexts not re-sampled filled
        x = np.asarray(x, dtype=float).reshape(b, s_x, g)
        return np.concatenate([x, np.full((b, s - s_x, g), fill)], axis=1)

    full_arms = pad(arms, 0).astype(int)
    return ExtraRollout(
        arms=full_arms,
        logp_old=np.take_along_axis(z, full_arms, axis=-1),
        adv=pad(adv, 0.0),
        keep=pad(keep, 0.0),
        sampled=np.full(b, float(s_x * g)),
    )
