"""Any entropy-control lever (`pic.levers`) on the sampled softmax bandit: `run_lever`.

The one sampled rollout is `sim.plant.lever_rollout` (re-exported here). One step = one
rollout of G arms per context from π_old, Bernoulli rewards, GRPO advantages,
``lever.update(StepStats)``, then M = epochs × minibatches updates. Each update flattens
its (B, S, n) samples into a `pic.levers.TokenBatch` of shape (B, S·n) — B loops (seeds)
of S·n tokens — asks the lever for its `LossModifiers`, and moves the logits by the exact
derivative of the shared per-token loss (`pic.levers.token_loss_grad`; the trainer
differentiates `token_loss` itself with autograd)::

    Δz_s = −η · ∂/∂z_s [ Σ_{samples i in s} ℓ_i / n  −  c·H_s ]
         = η · ( Σ_i f_i (e_{a_i} − π_s) / n  −  c·π_s ⊙ (log π_s + H_s) ),   f_i = −∂ℓ_i/∂log π(a_i)

(Lemma A gives ∂H/∂z_b = −π_b(log π_b + H)). `sim.plant.sampled_rollout` is this rollout with
the fixed-α EntroPIC actuator (`sim.plant.FixedAlphaActuator`); the EntroPIC lever reproduces
it (tested). Every loop b draws its samples and its mini-batch permutations from its
own generator, so a seed's trajectory does not depend on which other seeds run beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pic.levers import Lever, check_plant

from .bandit import Bandit
from .plant import PlantConfig, lever_rollout

__all__ = ["LeverRun", "lever_rollout", "run_lever"]


@dataclass
class LeverRun:
    """Trajectories of one lever over B seeds; arrays of shape (steps, B)."""

    name: str
    entropy: np.ndarray
    reward: np.ndarray
    clip_frac: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    target: np.ndarray | None = None
    seconds: float = 0.0
    extra_samples: np.ndarray | None = None
    """Extra samples drawn per step for the lever (`pic.levers.Lever.extra_samples`), (steps, B); 0 without."""


def run_lever(
    bandit: Bandit,
    z0: np.ndarray,
    lever: Lever,
    cfg: PlantConfig,
    *,
    steps: int,
    seeds: list[int],
) -> LeverRun:
    """Run ``lever`` for ``steps`` RL steps from the policy ``z0`` (S, K), one loop per seed.

    The reward logged is the expected reward Σ_a π_a p_a of the policy (mean over contexts);
    the entropy that of the policy each rollout samples from. Loop i draws its samples and
    shuffles from ``np.random.default_rng(seeds[i])`` alone, so adding seeds leaves the others'
    trajectories unchanged.
    """
    import time

    if cfg.mode != "sampled":
        raise ValueError("levers run on the sampled bandit (PlantConfig.mode = 'sampled')")
    check_plant(lever, updates_per_rollout=cfg.updates_per_rollout, field_hint="--off-epochs >= 2")
    t0 = time.perf_counter()
    b = len(seeds)
    z = np.broadcast_to(np.asarray(z0, dtype=float), (b, *bandit.success.shape)).copy()
    z = z - np.log(np.exp(z).sum(-1, keepdims=True))
    pi = np.exp(z)
    z_ref = z.copy() if lever.needs_reference else None
    rngs = [np.random.default_rng(seed) for seed in seeds]
    ent, rew, clip, extra = (np.zeros((steps, b)) for _ in range(4))
    metrics: dict[str, list] = {}
    target = np.full(steps, np.nan)
    clip_frac = np.full(b, np.nan)
    for t in range(steps):
        rew[t] = (pi * bandit.success).sum(-1).mean(-1)
        z, pi, info = lever_rollout(
            z,
            pi,
            lever,
            bandit.success,
            cfg,
            rngs,
            step=t,
            total_steps=steps,
            z_ref=z_ref,
            clip_frac=clip_frac,
        )
        clip_frac = info["clip_frac"]
        ent[t], clip[t], extra[t] = info["entropy"], clip_frac, info["extra_samples"]
        for key, value in lever.metrics().items():
            metrics.setdefault(key, []).append(value)
        if hasattr(lever, "target_at"):
            target[t] = lever.target_at(t)
    return LeverRun(
        name=lever.name,
        entropy=ent,
        reward=rew,
        clip_frac=clip,
        metrics={k: np.asarray(v, dtype=float) for k, v in metrics.items()},
        target=None if np.all(np.isnan(target)) else target,
        seconds=time.perf_counter() - t0,
        extra_samples=extra,
    )
