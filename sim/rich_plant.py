"""Bandit plants closer to LLM training: many contexts, Adam, gradient clipping, sampling
temperature, entropy measured from the sampled batch, and off-policy updates whose PPO clip fires.

Built on the expected (exact-mode) update of `sim.plant`: per context, the ascent direction of
the GRPO + EntroPIC objective on the temperature-scaled logits u = z/T is::

    g_u = π (m − Σ_a π_a m_a),   m_a = p_a P₁ (c⁺_a + w⁺_a − 1) + (1 − p_a) N₀ (c⁻_a + w⁻_a − 1)

(`sim.plant.expected_logit_step` with η = 1), plus an optional entropy bonus β·∇_u H, and
g_z = g_u/T on the parameters z. The loss is the
token mean over the S contexts, so its gradient is −g_z/S. One `RichPlant.step(α)` is one rollout
followed by M = epochs × minibatches optimizer steps on that gradient:

- ``optimizer="sgd"``: Δz = η·S·clip(g_z/S) (η per context, as in `sim.plant`);
- ``optimizer="adam"``: Adam (β₁, β₂, ε, bias-corrected) on the loss gradient clip(−g_z/S);

where clip rescales a loop's whole gradient to global norm ``grad_clip`` when it is larger (None:
off). The entropy the controller sees is either the exact mean entropy or, with
``measure="sampled"``, the estimate Ĥ = mean over the S·n sampled arms of −log π(a) (unbiased,
variance Var_π(log π)/(S·n)): the analogue of an LLM's entropy measured on its own rollouts.

Adam keeps state, so the plant gain depends on the optimizer history: `identify` copies the whole
state (logits and moments) and runs α₀ ± δ from the same state, after `warm_up` steps at α = 0.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq

from pic.validation import need

from .bandit import Bandit
from .plant import BernsteinMoments, PlantConfig, _clip_masks, advantage_table, expected_logit_step

__all__ = ["RichConfig", "RichPlant", "identify", "spread_problem", "warm_up"]

OPTIMIZERS = ("sgd", "adam")
MEASURES = ("exact", "sampled")


@dataclass(frozen=True)
class RichConfig:
    """Optimizer, temperature and measurement of a `RichPlant` (the GRPO/PPO part is ``plant``)."""

    plant: PlantConfig = field(default_factory=PlantConfig)
    """Group size, η (``lr``), epochs × minibatches, PPO clip, τ, normalisation (exact mode)."""
    optimizer: str = "sgd"
    """'sgd' or 'adam'."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's (β₁, β₂)."""
    adam_eps: float = 1e-8
    """Adam's ε."""
    grad_clip: float | None = None
    """Global gradient-norm clip per loop (the trainer uses 1.0); None disables."""
    temperature: float = 1.0
    """Sampling temperature T: the policy is softmax(z/T)."""
    measure: str = "exact"
    """'exact' mean entropy, or 'sampled': −log π(a) averaged over the sampled arms."""
    measure_samples: int = 16
    """Arms sampled per context for the measured entropy."""
    entropy_coef: float = 0.0
    """Entropy bonus β (verl's ``entropy_coeff``): the objective gains β·H, adding
    β·∇_u H = −β·π(log π + H) per context (Lemma A). β > 0 gives an upward drift."""

    def __post_init__(self):
        need(self.optimizer in OPTIMIZERS, "RichConfig.optimizer", f"one of {OPTIMIZERS}", self.optimizer)
        need(0 <= self.betas[0] < 1 and 0 <= self.betas[1] < 1, "RichConfig.betas", "two numbers in [0, 1)", self.betas)
        need(self.adam_eps > 0, "RichConfig.adam_eps", "> 0", self.adam_eps)
        need(self.grad_clip is None or self.grad_clip > 0, "RichConfig.grad_clip", "> 0 or None", self.grad_clip)
        need(self.temperature > 0, "RichConfig.temperature", "> 0", self.temperature)
        need(self.measure in MEASURES, "RichConfig.measure", f"one of {MEASURES}", self.measure)
        need(self.measure_samples >= 1, "RichConfig.measure_samples", ">= 1", self.measure_samples)
        need(np.isfinite(self.entropy_coef), "RichConfig.entropy_coef", "a finite number", self.entropy_coef)
        need(self.plant.mode == "exact", "RichConfig.plant.mode", "'exact' (expected updates)", self.plant.mode)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def spread_problem(
    contexts: int = 32, arms: int = 20, *, seed: int = 0, doubt_range: tuple[float, float] = (1e-3, 0.7)
) -> tuple[Bandit, np.ndarray]:
    """A bandit with ``contexts`` prompts whose policies span a range of confidences.

    In context s the best arm (p = 0.6–0.8, the others 0.05–0.5) is the most likely one, with
    probability π_max = 1 − u_s and u_s log-uniform in ``doubt_range``: the share of confident
    arms then changes smoothly with τ, unlike a single context where k(τ) is a step function.
    Returns (bandit, z (S, K) log-probabilities).
    """
    rng = np.random.default_rng(seed)
    bandit = Bandit.random(contexts, arms, rng)
    top = 1.0 - np.exp(rng.uniform(*np.log(doubt_range), size=contexts))
    z = np.empty((contexts, arms))
    for s in range(contexts):
        z0 = rng.standard_normal(arms)
        best = bandit.success[s].argmax()
        z0[best] = z0.max() + 1.0

        def gap(log_beta, z0=z0, best=best, want=top[s]):
            return float(np.exp(_log_softmax(np.exp(log_beta) * z0)[best])) - want

        z[s] = _log_softmax(np.exp(brentq(gap, -20.0, 20.0, xtol=1e-12)) * z0)
    return bandit, z


class RichPlant:
    """B loops of the multi-context bandit with optimizer, temperature and measurement options.

    Implements the `pic.plant.Plant` protocol (``entropy()`` is the *measured* entropy, shape
    (B,)); ``true_entropy()`` is the exact one. ``step_fn`` replaces `expected_logit_step` (for
    mutation tests). ``clip_fraction`` after a step: per loop, the share of the confident arms'
    expected advantage mass whose PPO objective was flat (clipped) in the last update.
    """

    def __init__(
        self,
        bandit: Bandit,
        logits: np.ndarray,
        *,
        loops: int = 1,
        config: RichConfig | None = None,
        rng: np.random.Generator | None = None,
        step_fn=expected_logit_step,
    ) -> None:
        self.bandit = bandit
        self.config = config or RichConfig()
        need(self.config.measure == "exact" or rng is not None, "rng", "a numpy Generator when measure='sampled'", rng)
        self.rng = rng
        self.step_fn = step_fn
        z = np.asarray(logits, dtype=float)
        if z.ndim == 2:
            z = np.broadcast_to(z, (loops, *z.shape))
        # logits are given as the policy's log-probabilities: parameters z = T·u
        self._u = _log_softmax(z / 1.0)
        self._z = self.config.temperature * self._u
        self._m = np.zeros_like(self._z)
        self._v = np.zeros_like(self._z)
        self._t = 0
        pc = self.config.plant
        self._moments = BernsteinMoments(advantage_table(pc.group_size, eps=pc.adv_eps, scale_by_std=pc.scale_by_std))
        self._unit = dataclasses.replace(pc, lr=1.0)
        self.clip_fraction = np.zeros(self.loops)
        self._measured = self._measure()

    @property
    def loops(self) -> int:
        return self._z.shape[0]

    def logits(self) -> np.ndarray:
        """log π at the sampling temperature, shape (B, S, K)."""
        return self._u.copy()

    def true_entropy(self) -> np.ndarray:
        pi = np.exp(self._u)
        return -(pi * self._u).sum(-1).mean(-1)

    def entropy(self) -> np.ndarray:
        return self._measured.copy()

    def _measure(self) -> np.ndarray:
        if self.config.measure == "exact":
            return self.true_entropy()
        pi = np.exp(self._u)
        cdf = np.cumsum(pi, axis=-1)
        n = self.config.measure_samples
        r = self.rng.random((*pi.shape[:-1], n)) * cdf[..., -1:]
        arms = np.minimum((r[..., None] > cdf[..., None, :]).sum(-1), pi.shape[-1] - 1)
        return -np.take_along_axis(self._u, arms, axis=-1).mean(axis=(-2, -1))

    # ------------------------------------------------------------ state
    def state(self) -> tuple:
        return (self._z.copy(), self._m.copy(), self._v.copy(), self._t)

    def set_state(self, state: tuple) -> None:
        z, m, v, t = state
        self._z, self._m, self._v, self._t = z.copy(), m.copy(), v.copy(), t
        self._u = _log_softmax(self._z / self.config.temperature)
        self._measured = self._measure()

    def tiled(self, copies: int) -> RichPlant:
        """A plant with ``copies`` × B loops, each block a copy of this plant's full state."""
        twin = RichPlant(self.bandit, self._u, config=self.config, rng=self.rng, step_fn=self.step_fn)
        z, m, v, t = self.state()
        twin.set_state((np.concatenate([z] * copies), np.concatenate([m] * copies), np.concatenate([v] * copies), t))
        return twin

    # ------------------------------------------------------------ dynamics
    def _clip(self, grad: np.ndarray) -> np.ndarray:
        c = self.config.grad_clip
        if c is None:
            return grad
        norm = np.sqrt((grad * grad).sum(axis=(-2, -1), keepdims=True))
        return grad * np.minimum(1.0, c / np.maximum(norm, 1e-300))

    def step(self, alpha) -> None:
        """One rollout and M optimizer steps with EntroPIC coefficient α (scalar or shape (B,))."""
        cfg, pc = self.config, self.config.plant
        a = np.array(np.broadcast_to(np.asarray(alpha, dtype=float), (self.loops,))).reshape(-1, 1, 1)
        p = self.bandit.success
        s = p.shape[0]
        u_old = self._u
        pi_old = np.exp(u_old)
        p1, n0 = self._moments((pi_old * p).sum(-1, keepdims=True))
        pos, neg = p * p1, (1.0 - p) * n0
        b1, b2 = cfg.betas
        for _ in range(pc.updates_per_rollout):
            pi = np.exp(self._u)
            g_u = self.step_fn(pi, self._u - u_old, pi_old, pos, neg, a, self._unit)
            if cfg.entropy_coef:
                h = -(pi * self._u).sum(-1, keepdims=True)
                g_u = g_u - cfg.entropy_coef * pi * (self._u + h)
            g_z = g_u / cfg.temperature
            if cfg.optimizer == "sgd":
                dz = pc.lr * s * self._clip(g_z / s)
            else:
                grad = self._clip(-g_z / s)
                self._t += 1
                self._m = b1 * self._m + (1 - b1) * grad
                self._v = b2 * self._v + (1 - b2) * grad * grad
                m_hat = self._m / (1 - b1**self._t)
                v_hat = self._v / (1 - b2**self._t)
                dz = -pc.lr * m_hat / (np.sqrt(v_hat) + cfg.adam_eps)
            self._z = self._z + dz
            self._u = _log_softmax(self._z / cfg.temperature)
        self.clip_fraction = self._clipped_share(pi, self._u - u_old, pi_old, pos, neg)
        self._measured = self._measure()

    def _clipped_share(self, pi, log_ratio, pi_old, pos, neg) -> np.ndarray:
        pc = self.config.plant
        if pc.on_policy:
            return np.zeros(self.loops)
        c_pos, c_neg = _clip_masks(np.exp(log_ratio), pc)
        conf = (pi > pc.tau) * pi_old
        mass = conf * (pos + np.abs(neg))
        flat = conf * (pos * (1 - c_pos) + np.abs(neg) * (1 - c_neg))
        return flat.sum(axis=(-2, -1)) / np.maximum(mass.sum(axis=(-2, -1)), 1e-300)


def warm_up(plant: RichPlant, steps: int, alpha: float = 0.0) -> RichPlant:
    """Run ``steps`` rollouts at constant α (fills Adam's moments); returns the plant."""
    for _ in range(steps):
        plant.step(alpha)
    return plant


def identify(plant: RichPlant, *, delta: float = 0.02, alpha0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(k, b) per loop of ``plant`` from its full current state (logits and optimizer moments).

    Three copies run one rollout with α₀, α₀ + δ, α₀ − δ; with the exact entropy H::

        k = −(ΔH(α₀ + δ) − ΔH(α₀ − δ)) / (2δ),   b = ΔH(α₀) + k·α₀.
    """
    n = plant.loops
    twin = plant.tiled(3)
    h0 = twin.true_entropy()[:n]
    twin.step(np.concatenate([np.full(n, alpha0), np.full(n, alpha0 + delta), np.full(n, alpha0 - delta)]))
    h = twin.true_entropy()
    k = -(h[n : 2 * n] - h[2 * n :]) / (2 * delta)
    return k, h[:n] - h0 + k * alpha0
