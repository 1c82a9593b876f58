"""Any entropy-control lever (`pic.levers`) on the sampled softmax bandit.

One step = one rollout of G arms per context from π_old, Bernoulli rewards, GRPO
advantages, ``lever.update(StepStats)``, then M = epochs × minibatches updates. Each update
flattens its (B, S, n) samples into a `pic.levers.TokenBatch` of shape (B, S·n) — B loops
(seeds) of S·n tokens — asks the lever for its `LossModifiers`, and moves the logits by the
exact derivative of the shared per-token loss (`pic.levers.token_loss_grad`; the trainer
differentiates `token_loss` itself with autograd)::

    Δz_s = −η · ∂/∂z_s [ Σ_{samples i in s} ℓ_i / n  −  c·H_s ]
         = η · ( Σ_i f_i (e_{a_i} − π_s) / n  −  c·π_s ⊙ (log π_s + H_s) ),   f_i = −∂ℓ_i/∂log π(a_i)

(Lemma A gives ∂H/∂z_b = −π_b(log π_b + H)). This is `sim.plant.sampled_rollout` with the
EntroPIC weights replaced by whatever the lever asks for; with the EntroPIC lever the two
coincide (tested). Every loop b draws its samples and its mini-batch permutations from its
own generator, so a seed's trajectory does not depend on which other seeds run beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pic.grpo import group_advantages
from pic.levers import Lever, PolicyDefaults, StepStats, TokenBatch, check_plant, token_loss_grad
from pic.levers.loss import clip_mask, resolve

from .bandit import Bandit
from .plant import PlantConfig, _normalise

__all__ = ["LeverRun", "lever_rollout", "run_lever"]


def _policy_defaults(cfg: PlantConfig) -> PolicyDefaults:
    return PolicyDefaults(cfg.eps_low, cfg.eps_high, cfg.dual_clip)


def lever_rollout(
    z: np.ndarray,
    pi: np.ndarray,
    lever: Lever,
    p: np.ndarray,
    cfg: PlantConfig,
    rngs: list[np.random.Generator],
    *,
    step: int,
    total_steps: int,
    perm_rng: np.random.Generator | None = None,
    z_ref: np.ndarray | None = None,
    clip_frac: np.ndarray | float = np.nan,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One rollout and M lever-modified updates; returns (z', π', step info per loop).

    z, pi: (B, S, K) log-probs and probs; ``rngs``: one generator per loop; ``perm_rng``: one
    generator whose permutation of the group is shared by all loops (as `sim.plant.sampled_rollout`
    does), or None to shuffle each loop with its own generator from ``rngs``; ``z_ref``: reference
    log-probs for a KL lever. Info: entropy (of π_old), reward (sample mean), clip_frac of the updates, each (B,).
    """
    b, s, k = z.shape
    g = cfg.group_size
    cdf = np.cumsum(pi, axis=-1)
    u = np.stack([r.random((s, g)) for r in rngs]) * cdf[..., -1:]
    arms = np.minimum((u[..., None] > cdf[:, :, None, :]).sum(-1), k - 1)  # (B, S, G)
    p_arm = np.take_along_axis(np.broadcast_to(p, z.shape), arms, axis=-1)
    rewards = (np.stack([r.random((s, g)) for r in rngs]) < p_arm) * 1.0
    adv = group_advantages(rewards, eps=cfg.adv_eps, scale_by_std=cfg.scale_by_std)
    logp_old = np.take_along_axis(z, arms, axis=-1)
    entropy = -(pi * z).sum(axis=-1).mean(axis=-1)
    lever.update(
        StepStats(
            step=step,
            total_steps=total_steps,
            entropy=entropy,
            nll=-logp_old.mean(axis=(1, 2)),
            reward_mean=rewards.mean(axis=(1, 2)),
            clip_frac=clip_frac,
        )
    )
    defaults = _policy_defaults(cfg)
    onehot = arms[..., None] == np.arange(k)  # (B, S, G, K)
    per_mb = g // cfg.minibatches
    n_tok = s * per_mb
    clipped, updates = np.zeros(b), 0
    shufflers = rngs if perm_rng is None else [perm_rng]
    for _ in range(cfg.epochs):
        orders = np.stack([r.permutation(g) for r in shufflers])  # (B or 1, G)
        for mb in range(cfg.minibatches):
            sel = orders[:, None, mb * per_mb : (mb + 1) * per_mb]  # (B or 1, 1, n): samples of this mini-batch
            arms_mb = np.take_along_axis(arms, sel, axis=-1)  # (B, S, n)
            old = np.take_along_axis(logp_old, sel, axis=-1).reshape(b, n_tok)
            mask = np.ones((b, n_tok))
            tok = TokenBatch(
                logp=np.take_along_axis(z, arms_mb, axis=-1).reshape(b, n_tok),
                old_logp=old,
                adv=np.take_along_axis(adv, sel, axis=-1).reshape(b, n_tok),
                mask=mask,
                num_tokens=np.full((b, 1), float(n_tok)),
                counts=lever.counts(old, mask),
                ref_logp=None if z_ref is None else np.take_along_axis(z_ref, arms_mb, axis=-1).reshape(b, n_tok),
            )
            mods = lever.modify(tok)
            f = -token_loss_grad(tok, mods, defaults).reshape(b, s, per_mb)
            onehot_mb = np.take_along_axis(onehot, sel[..., None], axis=-2)  # (B, S, n, K)
            push = (onehot_mb * f[..., None]).sum(-2) - pi * f.sum(-1, keepdims=True)
            dz = cfg.lr * push / per_mb
            coef = np.broadcast_to(np.asarray(mods.entropy_coef, dtype=float).reshape(-1, 1, 1), (b, 1, 1))
            if np.any(coef):
                h_ctx = -(pi * z).sum(axis=-1, keepdims=True)
                dz = dz - cfg.lr * coef * pi * (z + h_ctx)
            eff = resolve(mods, defaults)
            ratio = np.exp(tok.logp - tok.old_logp)
            clipped += clip_mask(ratio, tok.adv, eff["eps_low"], eff["eps_high"], eff["clip"], eff["dual_clip"]).mean(
                -1
            )
            updates += 1
            z, pi = _normalise(z + dz, np)
    return z, pi, {"entropy": entropy, "reward": rewards.mean(axis=(1, 2)), "clip_frac": clipped / updates}


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
    ent, rew, clip = np.zeros((steps, b)), np.zeros((steps, b)), np.zeros((steps, b))
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
        ent[t], clip[t] = info["entropy"], clip_frac
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
    )
