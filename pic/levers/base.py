"""The lever interface: how an entropy-control method talks to a plant.

A *lever* is one entropy-control method (EntroPIC, an entropy bonus, clip-higher, …). It
keeps its own state and has two main hooks (and an optional pair for extra samples), called by
the plant (the bandit simulator or the LLM trainer) in this order each RL step::

    lever.update(StepStats)            once per step, from global step statistics
    lever.extra_samples(StepStats)     an extra rollout at another temperature, or None (AEPO);
        lever.extra_advantages(adv, n)     which extra samples are trained, with what advantage
    for each policy update (PPO epoch × mini-batch × micro-batch):
        lever.modify(TokenBatch) -> LossModifiers     per-token tensors
        loss = pic.levers.loss.token_loss(tok, mods, ...)   (+ entropy / KL terms)

Token arrays are shaped (L, N): L independent loops (the bandit runs many seeds or gains at
once; the trainer has L = 1) and N tokens of the batch, flattened; masked tokens have
``mask = 0``. Per-loop scalars are shaped (L, 1). Everything is written with array
operators or `pic._array` helpers, so the same lever runs on numpy arrays (simulator) and
torch tensors (trainer, with autograd through ``logp``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._array import namespace

__all__ = ["ExtraSamples", "Lever", "LossModifiers", "StepStats", "TokenBatch", "check_plant"]


@dataclass
class StepStats:
    """Global statistics of one RL step, measured on the rollout (the behaviour policy).

    Arrays have shape (L,) (one value per loop) or are floats when L = 1. In a distributed
    trainer they are token-weighted and all-reduced, so every rank sees the same numbers.
    """

    step: int
    """RL step index, 0-based (the step about to be trained)."""
    total_steps: int
    """T, the planned number of RL steps (schedules use k/T)."""
    entropy: Any
    """H: token mean of the full-vocabulary entropy at the sampling temperature (nats)."""
    nll: Any = math.nan
    """−mean log π_old(token): the sampled-token estimate of the entropy (nats)."""
    reward_mean: Any = math.nan
    clip_frac: Any = math.nan
    """Fraction of clipped tokens in the previous step's updates (NaN on the first step)."""


@dataclass
class TokenBatch:
    """The tokens of one policy update, shape (L, N) each.

    ``logp`` carries the gradient in the trainer; every other field is detached.
    """

    logp: Any
    """log π_θ(token) under the current parameters, at the sampling temperature."""
    old_logp: Any
    """log π_old(token), the behaviour policy (= logp detached on-policy)."""
    adv: Any
    """Advantage of each token (GRPO: its sequence's advantage)."""
    mask: Any
    """1.0 on valid response tokens, 0.0 on padding."""
    num_tokens: Any
    """N: valid tokens of the whole mini-batch (all micro-batches and ranks), shape (L, 1) or float."""
    counts: dict[str, Any] = field(default_factory=dict)
    """Mini-batch-wide counts a lever asked for with `Lever.counts` (e.g. EntroPIC's N_h)."""
    entropy: Any = None
    """Per-token full-vocabulary entropy H_t (nats; with gradient in the trainer unless the lever's
    ``entropy_grad`` is False), if the lever needs it. The bandit gives each sample its context's H."""
    ref_logp: Any = None
    """log π_ref(token) of a frozen reference policy, if the lever needs it."""
    clamped_entropy: Any = None
    """Per-token clamped entropy H^c_t (nats, with gradient in the trainer), if the lever sets
    ``clamped_entropy_fraction``: the entropy of the next-token distribution after dropping that
    fraction of the vocabulary with the lowest logits and renormalising (AEnt, arXiv 2509.03493)."""
    extra: Any = None
    """1.0 on tokens of the lever's extra samples (`Lever.extra_samples`), 0.0 on the main rollout's; None if none."""

    @property
    def xp(self):
        return namespace(self.logp)


@dataclass(frozen=True)
class ExtraSamples:
    """A lever's request for an extra rollout in this step (`Lever.extra_samples`).

    The plant re-samples the first ``ceil(fraction · P)`` of the step's P prompts (G completions
    each, as the main rollout) at ``temperature``, scores them and computes their group
    advantages among themselves; `Lever.extra_advantages` then says which of them are trained
    and with what advantage. Their tokens join the step's updates (``TokenBatch.extra`` = 1);
    the step's entropy measurement stays on the main rollout.
    """

    temperature: Any
    """Sampling temperature T > 0 (π_T ∝ π^{1/T}): a float, or shape (L,) (one per loop)."""
    fraction: float
    """Share of the step's prompts re-sampled, in (0, 1]."""


@dataclass
class LossModifiers:
    """What a lever changes in the per-token policy loss; ``None`` keeps the plant's default.

    The loss (`pic.levers.loss.token_loss`), per token, before the token mean over N::

        ℓ_t = grad_mask · pg_weight · PG_t(r; A, ε_low, ε_high, clip, β, dual_clip)
              + ratio_coef · r + abs_log_ratio_coef · |log r| + kl_coef · k3(log π_ref − log π)

    and, at the batch level, − entropy_coef · Σ H_t·mask / N − clamped_entropy_coef · Σ H^c_t·mask / N.
    """

    pg_weight: Any = None
    """Per-token multiplier of the PG term (L, N)."""
    eps_low: Any = None
    """Lower clip width: r is clipped below at 1 − eps_low. Scalar, (L, 1) or (L, N)."""
    eps_high: Any = None
    """Upper clip width: r is clipped above at 1 + eps_high. Scalar, (L, 1) or (L, N)."""
    clip: str | None = None
    """'ppo' (hard clip), 'gradient_preserving' (CE-GPPO: bounded gradient outside the clip) or 'none'."""
    beta_low: float = 1.0
    """CE-GPPO β₁: gradient scale of negative tokens below 1 − ε_low."""
    beta_high: float = 1.0
    """CE-GPPO β₂: gradient scale of positive tokens above 1 + ε_high."""
    dual_clip: float | None = None
    """Dual-clip c for A < 0; 0 disables it, None keeps the plant's."""
    grad_mask: Any = None
    """0/1 per token: 0 removes the token's PG term (value and gradient)."""
    ratio_coef: Any = None
    """c_t of an extra term c_t·r_t per token (the EntroPIC term), (L, N)."""
    abs_log_ratio_coef: Any = None
    """β_t of an extra term β_t·|log r_t| per token (KL-Cov), (L, N)."""
    kl_coef: float = 0.0
    """Coefficient of the k3 estimate of KL(π_θ ‖ π_ref) per token (needs ``ref_logp``)."""
    entropy_coef: Any = 0.0
    """Entropy-bonus coefficient: the loss gets −entropy_coef · mean_t H_t. Scalar or (L, 1)."""
    clamped_entropy_coef: Any = 0.0
    """Clamped-entropy bonus: the loss gets −clamped_entropy_coef · mean_t H^c_t (needs ``clamped_entropy``)."""


class Lever:
    """Base class of the entropy-control methods; subclasses override what they use.

    Class attributes say what a lever needs from its plant:

    - ``acts_through_ratio``: the lever changes only terms that depend on r = π_θ/π_old, so
      it does nothing on-policy (r ≡ 1, one update per rollout); plants refuse that setup.
    - ``needs_entropy`` / ``needs_reference``: the plant must fill ``TokenBatch.entropy``
      (with gradient unless ``entropy_grad`` is False) / ``TokenBatch.ref_logp``.
    - ``clamped_entropy_fraction`` > 0: the plant must fill ``TokenBatch.clamped_entropy`` (with
      gradient), dropping that fraction of the vocabulary (the lowest logits) before the entropy.
      A lever reads either H_t or H^c_t, not both.
    - ``holds_target``: the lever steers the entropy to any target given as its ``target``
      parameter (a closed loop meant to remove the error); the comparison's "holds an arbitrary
      target" table runs exactly these.
    """

    name = "lever"
    applied_metrics: tuple[str, ...] = ()
    """Keys of `metrics` that say what the lever applied in the step (a plant logs them as 0 on a skipped step)."""
    acts_through_ratio = False
    needs_entropy = False
    entropy_grad = True
    needs_reference = False
    clamped_entropy_fraction = 0.0
    holds_target = False

    def __init__(self, loops: int = 1) -> None:
        if not (isinstance(loops, int | np.integer) and loops >= 1):
            raise ValueError(f"loops must be an integer >= 1, got {loops!r}")
        self.loops = int(loops)

    # ------------------------------------------------------------------ hooks
    def update(self, stats: StepStats) -> None:
        """Advance the lever's state by one RL step (before that step's updates)."""

    def counts(self, old_logp, mask) -> dict[str, Any]:
        """Mini-batch-wide token counts this lever needs, from (L, N) behaviour log-probs and mask.

        The plant sums them over micro-batches (and ranks) and passes them in
        ``TokenBatch.counts``; the default needs none.
        """
        return {}

    def modify(self, tok: TokenBatch) -> LossModifiers:
        """Loss modifiers for one micro-batch of tokens."""
        return LossModifiers()

    def metrics(self) -> dict[str, float]:
        """Scalars to log for the step (loop-mean when L > 1)."""
        return {}

    def sync(self, all_reduce: Callable[[dict[str, float]], dict[str, float]]) -> None:
        """Make what `modify` measured on this rank's tokens global; a data-parallel plant calls it on
        every rank after a step's updates with its sum-all-reduce (dict of floats in, sums out).

        Levers whose state depends only on `StepStats` (global already) need nothing: the default.
        """
    def extra_samples(self, stats: StepStats) -> ExtraSamples | None:
        """An extra rollout for this step, asked for after `update` with the same statistics; None: none (default)."""
        return None

    def extra_advantages(self, adv, main_samples: int):
        """(advantages, keep) of the extra samples, each shaped like ``adv`` (L, n): which are trained, with what A.

        ``adv``: the extra samples' group advantages (GRPO among the extra groups), one per
        sequence; ``main_samples``: sequences per loop in the main rollout. ``keep`` is 0/1;
        a dropped sample adds no token to the loss. The default keeps every sample as it is.
        """
        return adv, adv * 0.0 + 1.0

    def target_at(self, step: int) -> float | None:
        """The entropy target (nats) the lever steers to at RL step ``step``; None when it holds no target."""
        return None

    # ------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; `load_state_dict` restores it exactly."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    # --------------------------------------------------------------- helpers
    def _per_loop(self, value) -> np.ndarray:
        """``value`` (scalar or (L,)) as a float64 array of shape (L,)."""
        arr = np.asarray(value, dtype=float).reshape(-1)
        if arr.size == 1:
            return np.full(self.loops, float(arr[0]))
        if arr.size != self.loops:
            raise ValueError(f"{self.name}: expected {self.loops} per-loop values, got shape {np.shape(value)}")
        return arr

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({params})"

    def config(self) -> dict[str, Any]:
        """The constructor parameters (for reports and repr)."""
        return {}


def check_plant(lever: Lever, *, updates_per_rollout: int, field_hint: str = "more PPO epochs or mini-batches") -> None:
    """Refuse a lever that cannot act on this plant (one line naming the fix).

    A lever that only acts through the importance ratio is inert when there is one policy
    update per rollout: r = exp(log π − sg(log π)) ≡ 1, so no token is ever clipped and
    |log r| ≡ 0 (its gradient at 0 is 0 too).
    """
    if lever.acts_through_ratio and updates_per_rollout < 2:
        raise ValueError(
            f"lever {lever.name!r} acts through the importance ratio, which is identically 1 with one policy "
            f"update per rollout (on-policy): use {field_hint} (>= 2 updates per rollout)"
        )
