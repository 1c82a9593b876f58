"""Vectorised softmax-bandit plants trained by GRPO, with the EntroPIC actuator.

State: log-probabilities z of shape (B, S, K) — B independent closed loops, S contexts,
K arms. One `BanditPlant.step(α)` is one rollout followed by M = epochs × minibatches
policy updates, all with the same α (one controller update per rollout, as in the trainer).

Update rule (tabular softmax, gradient descent on the token-mean loss, step size η per
context). A sample a with advantage A, importance ratio r = π(a)/π_old(a) and PPO clip
mask c (c = 0 where the clipped objective is flat) moves the logits by::

    Δz_b = η · r · A · (c + α·sign(A)·1[π(a) > τ]) · (1[b = a] − π_b)

The α-part is the EntroPIC term (weights from `pic.actuator.entropic_weights`, so
c + (w − 1)); like the official code it uses the unclipped ratio. On-policy (M = 1) r ≡ 1
and c ≡ 1, so the weight is exactly w = 1 ± α.

Two modes:

- ``"sampled"``: G arms per context are drawn from π_old, rewards are Bernoulli(p), and
  advantages are group-normalised (`pic.grpo.group_advantages`). `lever_rollout` is the one
  sampled rollout, for any `pic.levers` lever; `sampled_rollout` runs it with the EntroPIC
  actuator at a given α (`FixedAlphaActuator`, whose coefficient is `pic.actuator.entropic_coefficient`).
- ``"exact"``: the expectation of the sampled update over arms, rewards and the other
  G − 1 group members. With j ~ Binomial(G − 1, μ) successes among the others
  (μ = Σ_b π_old,b p_b), the expected advantage of a success is P₁(μ) = E_j[A(1, j)] ≥ 0
  and of a failure N₀(μ) = E_j[A(0, j)] ≤ 0, both Bernstein polynomials in μ whose
  coefficients are `group_advantages` of the enumerated groups (zero-advantage groups
  included). Using π_old·r = π the expected update is::

      Δz_b = η π_b (m_b − Σ_a π_a m_a),
      m_a  = p_a P₁ (c⁺_a + w⁺_a − 1) + (1 − p_a) N₀ (c⁻_a + w⁻_a − 1)

  with w± = entropic_weights(π, ±1, α, τ) and the clip masks c± evaluated at r_a.

Off-policy drift is not injected anywhere: it comes from the frozen advantages, the
importance ratios and the clipping of the M > 1 updates.

The math is written once for numpy and torch (`pic._array.namespace`); the torch backend
can be compiled (``compile=True``) for gain sweeps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pic._array import namespace
from pic.actuator import (
    NORMALIZATIONS,
    entropic_coefficient,
    entropic_weights,
    high_prob_mask,
    normalization_scale,
)
from pic.grpo import group_advantages
from pic.levers import Lever, LossModifiers, PolicyDefaults, StepStats, TokenBatch, token_loss_grad
from pic.levers.bonus import clamped_entropy
from pic.levers.loss import clip_mask, resolve
from pic.validation import need

from .bandit import Bandit, draw_groups
from .extra import ExtraRollout, draw_extra

__all__ = [
    "BanditPlant",
    "BernsteinMoments",
    "FixedAlphaActuator",
    "PlantConfig",
    "TabulatedMoments",
    "advantage_table",
    "bernstein",
    "exact_rollout",
    "expected_logit_step",
    "lever_rollout",
    "sampled_rollout",
]

MODES = ("exact", "sampled")


@dataclass(frozen=True)
class PlantConfig:
    """Learning dynamics of the bandit plant."""

    group_size: int = 16
    """G: samples per context per rollout (the GRPO group)."""
    lr: float = 0.5
    """η: logit step size per policy update, per context."""
    mode: str = "exact"
    """'exact' (expected update, deterministic) or 'sampled' (Monte Carlo rollouts)."""
    epochs: int = 1
    """PPO epochs over each rollout. epochs = minibatches = 1 is on-policy (ratio ≡ 1)."""
    minibatches: int = 1
    """Mini-batches per epoch; in sampled mode each takes G/minibatches samples per context."""
    eps_low: float = 0.2
    """PPO clip: a negative-advantage sample stops pushing once r < 1 − eps_low."""
    eps_high: float = 0.2
    """PPO clip: a positive-advantage sample stops pushing once r > 1 + eps_high."""
    dual_clip: float | None = 3.0
    """Dual clip c of verl: a negative-advantage sample stops once r > c (None disables)."""
    tau: float = 0.95
    """EntroPIC threshold: the actuator acts on arms with current π > tau."""
    normalization: str = "all_tokens"
    """EntroPIC term normalisation: 'all_tokens' (weights 1 ± α) or 'high_prob_tokens' (official)."""
    scale_by_std: bool = True
    """GRPO (True) or Dr.GRPO (False) advantages."""
    adv_eps: float = 1e-6
    """ε in A = (r − mean)/(std + ε)."""

    def __post_init__(self):
        def check(ok: bool, field: str, rule: str) -> None:
            need(ok, f"PlantConfig.{field}", rule, getattr(self, field))

        check(isinstance(self.group_size, int) and self.group_size >= 2, "group_size", "an integer >= 2")
        check(self.lr > 0, "lr", "> 0")
        check(self.mode in MODES, "mode", f"one of {MODES}")
        check(isinstance(self.epochs, int) and self.epochs >= 1, "epochs", "an integer >= 1")
        check(isinstance(self.minibatches, int) and self.minibatches >= 1, "minibatches", "an integer >= 1")
        check(
            self.mode != "sampled" or self.group_size % self.minibatches == 0,
            "minibatches",
            f"a divisor of group_size={self.group_size} in sampled mode",
        )
        check(0 <= self.eps_low < 1, "eps_low", "in [0, 1)")
        check(self.eps_high >= 0, "eps_high", ">= 0")
        check(self.dual_clip is None or self.dual_clip > 1, "dual_clip", "> 1 or None")
        check(0 < self.tau < 1, "tau", "in (0, 1)")
        check(self.normalization in NORMALIZATIONS, "normalization", f"one of {NORMALIZATIONS}")
        check(self.adv_eps >= 0, "adv_eps", ">= 0")

    @property
    def updates_per_rollout(self) -> int:
        return self.epochs * self.minibatches

    @property
    def on_policy(self) -> bool:
        return self.updates_per_rollout == 1


def advantage_table(group_size: int, *, eps: float = 1e-6, scale_by_std: bool = True) -> np.ndarray:
    """A(r, j) for r ∈ {0, 1} and j = 0..G−1 successes among the other members; shape (2, G).

    Computed by `pic.grpo.group_advantages` on the enumerated groups, so the exact mode
    uses the very convention of the sampled mode and the trainer.
    """
    g = group_size
    groups = np.zeros((2, g, g))
    for r in (0, 1):
        for j in range(g):
            groups[r, j, 0] = r
            groups[r, j, 1 : 1 + j] = 1.0
    return group_advantages(groups, eps=eps, scale_by_std=scale_by_std)[..., 0]


def bernstein(coeffs, t):
    """Σ_j coeffs[j]·C(n, j)·tʲ(1 − t)ⁿ⁻ʲ by de Casteljau's algorithm (stable, no powers).

    ``coeffs`` is a sequence of floats (length n + 1); ``t`` an array (numpy or torch).
    """
    u = 1.0 - t
    b = [float(c) + 0.0 * t for c in coeffs]
    for r in range(len(coeffs) - 1, 0, -1):
        b = [b[i] * u + b[i + 1] * t for i in range(r)]
    return b[0]


class BernsteinMoments:
    """(P₁(μ), N₀(μ)) evaluated exactly by de Casteljau (the numpy reference path)."""

    def __init__(self, table: np.ndarray) -> None:
        self.neg, self.pos = tuple(float(x) for x in table[0]), tuple(float(x) for x in table[1])

    def __call__(self, mu):
        return bernstein(self.pos, mu), bernstein(self.neg, mu)


class TabulatedMoments:
    """(P₁(μ), N₀(μ)) by linear interpolation in a float64-built table (the torch path).

    A short graph keeps `torch.compile` fast; with 2¹⁶ + 1 nodes the interpolation error
    (≤ h²/8·max|P''| ≈ 1e-8 relative) is below float32 rounding.
    """

    def __init__(self, table: np.ndarray, torch, dtype, size: int = 2**16 + 1) -> None:
        grid = np.linspace(0.0, 1.0, size)
        exact = BernsteinMoments(table)
        vals = np.stack(exact(grid))  # (2, size)
        self.lut = torch.tensor(vals, dtype=dtype)
        self.size = size

    def __call__(self, mu):
        x = mu * (self.size - 1)
        i = x.floor().clamp(0, self.size - 2)
        f = x - i
        i = i.long()
        lo_p, hi_p = self.lut[0][i], self.lut[0][i + 1]
        lo_n, hi_n = self.lut[1][i], self.lut[1][i + 1]
        return lo_p + f * (hi_p - lo_p), lo_n + f * (hi_n - lo_n)


def _clip_masks(ratio, cfg: PlantConfig):
    """(c⁺, c⁻): 1.0 where the PPO objective of a positive / negative sample is not flat."""
    c_pos = (ratio <= 1.0 + cfg.eps_high) * 1.0
    c_neg = ratio >= 1.0 - cfg.eps_low
    if cfg.dual_clip is not None:
        c_neg = c_neg & (ratio <= cfg.dual_clip)
    return c_pos, c_neg * 1.0


def _normalise(z, xp):
    """z − logsumexp(z) over arms; returns (log π, π)."""
    e = xp.exp(z)
    s = e.sum(axis=-1, keepdims=True)
    return z - xp.log(s), e / s


def _actuator_scale(pi_old, high_ref, cfg: PlantConfig):
    """N/D of the actuator: 1, or N/N_h for the official normalisation, with N_h/N the expected share
    of confident samples (samples from π_old, confident under the current π), shape (B, 1, 1)."""
    if cfg.normalization == "all_tokens":
        return 1.0
    share = (pi_old * high_ref).sum(axis=-1, keepdims=True).mean(axis=-2, keepdims=True)
    return normalization_scale(cfg.normalization, 1.0, share)


def exact_rollout(z, pi, alpha, p, moments, cfg: PlantConfig):
    """One rollout + M expected updates; returns (z', π', H').

    z, pi: (B, S, K) log-probs and probs (π = exp z, carried to save an exp per step);
    alpha: (B, 1, 1); ``moments(μ) -> (P₁, N₀)``; H': (B,) mean entropy of the new policy.
    """
    xp = namespace(z)
    mu = (pi * p).sum(axis=-1, keepdims=True)  # (B, S, 1)
    p1, n0 = moments(mu)
    pos = p * p1  # p_a·P₁ ≥ 0
    neg = (1.0 - p) * n0  # (1 − p_a)·N₀ ≤ 0
    z_old, pi_old = z, pi
    for _ in range(cfg.updates_per_rollout):
        dz = expected_logit_step(pi, z - z_old, pi_old, pos, neg, alpha, cfg)
        z, pi = _normalise(z + dz, xp)
    return z, pi, -(pi * z).sum(axis=-1).mean(axis=-1)


def expected_logit_step(pi, log_ratio, pi_old, pos, neg, alpha, cfg: PlantConfig):
    """E[Δz] of one policy update, before renormalisation; shape (B, S, K).

    ``pi``: current policy; ``log_ratio`` = log π − log π_old per arm; ``pos`` = p·P₁ and
    ``neg`` = (1 − p)·N₀ (expected advantage mass of successes and failures of each arm,
    frozen at the rollout); ``alpha``: (B, 1, 1).
    """
    scale = _actuator_scale(pi_old, (pi > cfg.tau) * 1.0, cfg)
    w_pos = entropic_weights(pi, 1.0, alpha, cfg.tau, scale=scale)  # 1 + α·(N/D)·1[π > τ]
    w_neg = 2.0 - w_pos  # = entropic_weights(pi, -1.0, alpha, tau, scale=scale) = 1 − α·(N/D)·1[π > τ]
    if cfg.on_policy:
        m = pos * w_pos + neg * w_neg  # ratio ≡ 1, nothing clipped
    else:
        c_pos, c_neg = _clip_masks(namespace(pi).exp(log_ratio), cfg)
        m = pos * (c_pos + w_pos - 1.0) + neg * (c_neg + w_neg - 1.0)
    m_bar = (pi * m).sum(axis=-1, keepdims=True)
    return cfg.lr * pi * (m - m_bar)


def _policy_defaults(cfg: PlantConfig) -> PolicyDefaults:
    return PolicyDefaults(cfg.eps_low, cfg.eps_high, cfg.dual_clip)


def _context_signals(z, pi, lever: Lever, per_mb: int) -> dict[str, Any]:
    """The per-token entropy signals a lever asks for, of the current policy (B, S, K) at this update.

    Every sample of context s sees its context's H_s (``needs_entropy``) and clamped H^c_s
    (``clamped_entropy_fraction`` > 0), repeated over the mini-batch's ``per_mb`` samples: (B, S·n).
    Also kept: the clamped distribution q (B, S, K) for the bonus step.
    """
    b, s, _ = z.shape
    out: dict[str, Any] = {"entropy": None, "clamped_entropy": None, "clamped_q": None, "clamped_h": None}
    if lever.needs_entropy:
        h = -(pi * z).sum(axis=-1)
        out["entropy"] = np.repeat(h[..., None], per_mb, axis=-1).reshape(b, s * per_mb)
    if lever.clamped_entropy_fraction > 0:
        hc, q = clamped_entropy(z, lever.clamped_entropy_fraction)
        out["clamped_entropy"] = np.repeat(hc[..., None], per_mb, axis=-1).reshape(b, s * per_mb)
        out["clamped_q"], out["clamped_h"] = q, hc[..., None]
    return out


def _with_bonus(dz, z, pi, mods: LossModifiers, signals: dict[str, Any], lr: float):
    """``dz`` plus the step −η·∂/∂z of the bonus terms −c·H_s − c^c·H^c_s per context, (B, S, K).

    ∂H/∂z_b = −π_b(log π_b + H) (Lemma A); ∂H^c/∂z_b = −q_b(log q_b + H^c) on the kept arms and 0 on
    the dropped ones (Lemma A on the renormalised softmax over the kept set).
    """
    b = z.shape[0]
    coef = np.broadcast_to(np.asarray(mods.entropy_coef, dtype=float).reshape(-1, 1, 1), (b, 1, 1))
    if np.any(coef):
        h_ctx = -(pi * z).sum(axis=-1, keepdims=True)
        dz = dz - lr * coef * pi * (z + h_ctx)
    c_coef = np.broadcast_to(np.asarray(mods.clamped_entropy_coef, dtype=float).reshape(-1, 1, 1), (b, 1, 1))
    if np.any(c_coef):
        if signals["clamped_q"] is None:
            raise ValueError("LossModifiers.clamped_entropy_coef needs a lever with clamped_entropy_fraction > 0")
        q, hc = signals["clamped_q"], signals["clamped_h"]
        dz = dz - lr * c_coef * q * (np.log(np.where(q > 0, q, 1.0)) + hc)
    return dz


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
    arms, rewards = draw_groups(pi, p, rngs, g)  # (B, S, G) each
    adv = group_advantages(rewards, eps=cfg.adv_eps, scale_by_std=cfg.scale_by_std)
    logp_old = np.take_along_axis(z, arms, axis=-1)
    entropy = -(pi * z).sum(axis=-1).mean(axis=-1)
    stats = StepStats(
        step=step,
        total_steps=total_steps,
        entropy=entropy,
        nll=-logp_old.mean(axis=(1, 2)),
        reward_mean=rewards.mean(axis=(1, 2)),
        clip_frac=clip_frac,
    )
    lever.update(stats)
    spec = lever.extra_samples(stats)
    extra = None
    if spec is not None:  # after the main draws, so the main rollout does not depend on it
        extra = draw_extra(z, p, lever, spec, g, rngs, adv_eps=cfg.adv_eps, scale_by_std=cfg.scale_by_std)
    defaults = _policy_defaults(cfg)
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
            adv_mb = np.take_along_axis(adv, sel, axis=-1).reshape(b, n_tok)
            flag = None
            if extra is not None:  # the extra samples of the same group slots join the mini-batch
                arms_mb, old, adv_mb, mask, flag = _with_extra(extra, sel, arms_mb, old, adv_mb, mask)
            signals = _context_signals(z, pi, lever, arms_mb.shape[-1])  # per context, for its n (or 2n) samples
            tok = TokenBatch(
                logp=np.take_along_axis(z, arms_mb, axis=-1).reshape(b, -1),
                old_logp=old,
                adv=adv_mb,
                mask=mask,
                num_tokens=mask.sum(-1, keepdims=True) if extra is not None else np.full((b, 1), float(n_tok)),
                counts=lever.counts(old, mask),
                entropy=signals["entropy"],
                ref_logp=None if z_ref is None else np.take_along_axis(z_ref, arms_mb, axis=-1).reshape(b, -1),
                clamped_entropy=signals["clamped_entropy"],
                extra=flag,
            )
            mods = lever.modify(tok)
            f = -token_loss_grad(tok, mods, defaults).reshape(b, s, -1)
            onehot_mb = arms_mb[..., None] == np.arange(k)  # (B, S, n or 2n, K)
            if extra is not None:  # masked (dropped) samples move nothing; the loss is a mean over the valid tokens
                f = f * mask.reshape(b, s, -1)
            push = (onehot_mb * f[..., None]).sum(-2) - pi * f.sum(-1, keepdims=True)
            dz = cfg.lr * push / per_mb if extra is None else cfg.lr * push * (s / tok.num_tokens[..., None])
            dz = _with_bonus(dz, z, pi, mods, signals, cfg.lr)
            eff = resolve(mods, defaults)
            ratio = np.exp(tok.logp - tok.old_logp)
            dead = clip_mask(ratio, tok.adv, eff["eps_low"], eff["eps_high"], eff["clip"], eff["dual_clip"])
            clipped += dead.mean(-1) if extra is None else (dead * mask).sum(-1) / mask.sum(-1)
            updates += 1
            z, pi = _normalise(z + dz, np)
    info = {"entropy": entropy, "reward": rewards.mean(axis=(1, 2)), "clip_frac": clipped / updates}
    info["extra_samples"] = np.zeros(b) if extra is None else extra.sampled
    return z, pi, info


def _with_extra(extra: ExtraRollout, sel, arms_mb, old, adv_mb, mask):
    """The mini-batch's main tokens, then its extra ones: arms (B, S, 2n); old, adv, mask, extra flag (B, 2·S·n).

    Tokens are laid out context by context (S, main n then extra n), the order of ``arms``.
    """
    b, s, n = arms_mb.shape
    take = lambda x: np.take_along_axis(x, sel, axis=-1)  # noqa: E731 - (B, S, G) → (B, S, n)
    join = lambda main, x: np.concatenate([main.reshape(b, s, n), take(x)], axis=-1).reshape(b, -1)  # noqa: E731
    arms = np.concatenate([arms_mb, take(extra.arms)], axis=-1)
    flag = join(np.zeros((b, s, n)), np.ones_like(extra.keep))
    return arms, join(old, extra.logp_old), join(adv_mb, extra.adv), join(mask, extra.keep), flag


class FixedAlphaActuator(Lever):
    """The EntroPIC actuator at a given α, shape (B, 1, 1), with no controller: the plant's sampled update.

    Its per-token coefficient is `pic.actuator.entropic_coefficient`; for ``"high_prob_tokens"``
    N_h counts the mini-batch's samples that are confident under the *current* policy (as
    `expected_logit_step` does in expectation).
    """

    name = "entropic_actuator"

    def __init__(self, alpha: np.ndarray, cfg: PlantConfig) -> None:
        super().__init__(loops=int(np.shape(alpha)[0]))
        self.fixed = np.asarray(alpha, dtype=float).reshape(-1, 1)  # (B, 1): one α per loop
        self.tau, self.normalization = cfg.tau, cfg.normalization

    def modify(self, tok: TokenBatch) -> LossModifiers:
        prob = np.exp(tok.logp)
        n_high = (high_prob_mask(prob, self.tau) * tok.mask).sum(axis=-1, keepdims=True)
        scale = normalization_scale(self.normalization, tok.num_tokens, n_high)
        coef = entropic_coefficient(prob, tok.adv, self.fixed, tau=self.tau, mask=tok.mask, scale=scale)
        return LossModifiers(ratio_coef=coef)


def sampled_rollout(z, pi, alpha, p, cfg: PlantConfig, rng: np.random.Generator):
    """One Monte-Carlo rollout + M sampled updates (numpy); same arguments as `exact_rollout`.

    `lever_rollout` with the `FixedAlphaActuator`, every loop drawing from the one ``rng``.
    """
    actuator = FixedAlphaActuator(alpha, cfg)
    loops = z.shape[0]
    z, pi, _ = lever_rollout(z, pi, actuator, p, cfg, [rng] * loops, step=0, total_steps=1, perm_rng=rng)
    return z, pi, -(pi * z).sum(axis=-1).mean(axis=-1)


class BanditPlant:
    """B closed-loop softmax bandits; implements the `pic.plant.Plant` protocol.

    Parameters
    ----------
    bandit : the problem (S contexts × K arms).
    logits : initial logits, shape (S, K) (shared by all loops) or (B, S, K).
    loops : B, the number of independent loops (ignored if ``logits`` is 3-D).
    config : `PlantConfig`.
    rng : numpy Generator for sampled mode (required there).
    backend : "numpy" (float64) or "torch" (exact mode only; float32 by default).
    compile : compile the torch step with ``torch.compile`` (sweeps; first call compiles).
    """

    def __init__(
        self,
        bandit: Bandit,
        logits: np.ndarray,
        *,
        loops: int = 1,
        config: PlantConfig | None = None,
        rng: np.random.Generator | None = None,
        backend: str = "numpy",
        dtype: Any = None,
        compile: bool = False,
    ) -> None:
        self.bandit = bandit
        self.config = config or PlantConfig()
        if self.config.mode == "sampled" and rng is None:
            raise ValueError("rng (a numpy Generator) is required in sampled mode")
        need(backend in ("numpy", "torch"), "backend", "'numpy' or 'torch'", backend)
        if backend == "torch" and self.config.mode != "exact":
            raise ValueError("the torch backend runs exact mode only; use backend='numpy' for sampled")
        z = np.asarray(logits, dtype=float)
        if z.shape[-2:] != bandit.success.shape:
            raise ValueError(f"logits must end in shape {bandit.success.shape}, got {z.shape}")
        if z.ndim == 2:
            z = np.broadcast_to(z, (loops, *z.shape))
        z = z - z.max(-1, keepdims=True)
        z = z - np.log(np.exp(z).sum(-1, keepdims=True))
        self.rng = rng
        self.backend = backend
        table = advantage_table(self.config.group_size, eps=self.config.adv_eps, scale_by_std=self.config.scale_by_std)
        if backend == "numpy":
            self._z = np.array(z, dtype=dtype or np.float64)
            self._pi = np.exp(self._z)
            self._p = bandit.success
            self._moments = BernsteinMoments(table)
            self._step = exact_rollout
        else:
            import torch

            self._torch = torch
            dtype = dtype or torch.float32
            self._z = torch.tensor(z, dtype=dtype)
            self._pi = self._z.exp()
            self._p = torch.tensor(bandit.success, dtype=dtype)
            self._moments = TabulatedMoments(table, torch, dtype)
            self._step = torch.compile(exact_rollout, dynamic=False) if compile else exact_rollout
        self._h = self._entropy_of_state()

    # -------------------------------------------------------------- protocol
    @property
    def loops(self) -> int:
        return self._z.shape[0]

    def logits(self) -> np.ndarray:
        """Current log-probabilities, float64 numpy copy, shape (B, S, K)."""
        z = self._z if self.backend == "numpy" else self._z.double().numpy()
        return np.array(z, dtype=float)

    def probs(self) -> np.ndarray:
        return np.exp(self.logits())

    def _entropy_of_state(self) -> np.ndarray:
        z = self.logits()
        return -(np.exp(z) * z).sum(-1).mean(-1)

    def entropy(self) -> np.ndarray:
        """Mean over contexts of the per-context entropy, shape (B,) (nats)."""
        return self._h.copy()

    def expected_reward(self) -> np.ndarray:
        """Σ_a π_a p_a averaged over contexts, shape (B,)."""
        return (self.probs() * self.bandit.success).sum(-1).mean(-1)

    def step(self, alpha) -> None:
        """One rollout and M updates with EntroPIC coefficient α (scalar or shape (B,))."""
        a = np.array(np.broadcast_to(np.asarray(alpha, dtype=float), (self.loops,))).reshape(-1, 1, 1)
        cfg = self.config
        if cfg.mode == "sampled":
            self._z, self._pi, h = sampled_rollout(self._z, self._pi, a, self._p, cfg, self.rng)
        elif self.backend == "numpy":
            self._z, self._pi, h = self._step(self._z, self._pi, a, self._p, self._moments, cfg)
        else:
            with self._torch.inference_mode():
                at = self._torch.as_tensor(a, dtype=self._z.dtype)
                self._z, self._pi, h = self._step(self._z, self._pi, at, self._p, self._moments, cfg)
            h = h.double().numpy()
        self._h = np.asarray(h, dtype=float)

    # ------------------------------------------------------------ utilities
    def set_logits(self, z: np.ndarray) -> None:
        """Replace the state (shape (B, S, K) log-probabilities)."""
        z = np.asarray(z, dtype=float)
        self._z = z.copy() if self.backend == "numpy" else self._torch.tensor(z, dtype=self._z.dtype)
        self._pi = np.exp(self._z) if self.backend == "numpy" else self._z.exp()
        self._h = self._entropy_of_state()

    def describe(self) -> dict[str, Any]:
        return {
            "contexts": self.bandit.contexts,
            "arms": self.bandit.arms,
            "loops": self.loops,
            "backend": self.backend,
            **asdict(self.config),
        }
