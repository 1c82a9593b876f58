"""EntroPIC theory checks: each theorem proved with sympy and mirrored by a numeric twin.

Modules (importing this package registers all their checks):

- `proofs.lemma_a`: ∂H/∂z_b = −π_b(log π_b + H), hence ΔH ≈ −Cov_π(log π, Δz).
- `proofs.lemma_b`: one sample a with advantage A gives ΔH ≈ −ηA·B(a), B(argmax) ≥ 0.
- `proofs.p_control`: P loop e_t = (1 − k kp)^t (e_0 − e_ss) + e_ss, stable iff 0 < k kp < 2.
- `proofs.pi_control`: PI loop fixed point e* = 0, charpoly, stability region (bilinear map).
- `proofs.high_prob`: τ ≥ 1/2 makes the actuator sign-definite (effect has the sign of −α).
- `proofs.robustness`: measurement delay, a step-to-step varying gain, noise, ramp drift.
- `proofs.llm_plants`: the LLM-like bandit plants (PPO clip firing, Adam, sampled entropy).
- `proofs.autotune`: the self-tuning controller (pole placement, margins, RLS in the loop).

`python -m proofs` runs them all and prints a table (see `proofs.cli`).
"""

# isort: off
# import order is report order: one theorem after another
from . import lemma_a, lemma_b, p_control, pi_control, high_prob, robustness, llm_plants, autotune

# isort: on
from .runner import (
    DEFAULT_TIMEOUT,
    Check,
    CheckResult,
    CheckTimeout,
    Evidence,
    Undecided,
    Verdict,
    combine,
    register_check,
    registered_checks,
    run_check,
    run_checks,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Check",
    "CheckResult",
    "CheckTimeout",
    "Evidence",
    "Undecided",
    "Verdict",
    "autotune",
    "combine",
    "high_prob",
    "lemma_a",
    "lemma_b",
    "llm_plants",
    "p_control",
    "pi_control",
    "register_check",
    "registered_checks",
    "robustness",
    "run_check",
    "run_checks",
]
