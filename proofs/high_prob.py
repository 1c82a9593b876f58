"""High-probability corollary — why the actuator acts only on tokens with π > τ ≥ 1/2.

If τ ≥ 1/2 and π_a > τ, the other tokens share 1 − π_a < 1 − τ ≤ 1/2 < π_a, so a is the
unique argmax. By Lemma B, B(a) ≥ 0 for it. The EntroPIC actuator re-weights such a sample
by w = 1 + α·sign(A)·1[π_a > τ]; the weighted one-sample update changes the entropy, to
first order, by −η A w B(a), i.e. relative to α = 0 by::

    −η A (w − 1) B(a) = −η α |A| B(a)     (sign of −α: α > 0 lowers H, α < 0 raises it)

For τ < 1/2 a token above τ need not be the argmax, and its B can be negative — the
actuator would then push the entropy the wrong way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import sympy as sp

from pic import actuator

from .lemma_b import sample_sign_coefficient
from .runner import Evidence, Verdict, register_check
from .softmax import entropy, random_distributions
from .symbolic import prove_zero

__all__ = [
    "check_actuator_numeric",
    "check_actuator_sign_sympy",
    "check_argmax_numeric",
    "check_argmax_sympy",
]

log = logging.getLogger(__name__)


@register_check("High-prob: τ ≥ 1/2 ⇒ a token above τ is the unique argmax (sympy)")
def check_argmax_sympy() -> tuple[Verdict, str]:
    """Solve 1 − τ ≤ τ; then π_a − π_b > 0 for every other token; an exact τ < 1/2 counterexample."""
    ev = Evidence()
    tau = sp.Symbol("tau", real=True)
    region = sp.solve_univariate_inequality(1 - tau <= tau, tau, relational=False)
    ev.require(
        "1 − τ ≤ τ ⇔ τ ≥ 1/2", region == sp.Interval(sp.Rational(1, 2), sp.oo), f"solver gave {region}"
    )
    # τ = 1/2 + s, π_a = τ + d, another token π_b = (1 − π_a) − r  (s, r ≥ 0, d > 0)
    s, r = sp.symbols("s r", nonnegative=True)
    d = sp.Symbol("d", positive=True)
    tau_ = sp.Rational(1, 2) + s
    pa = tau_ + d
    pb = (1 - pa) - r
    gap = sp.expand(pa - pb)
    ev.add("π_a − π_b = 2s + 2d + r", *prove_zero(gap - (2 * s + 2 * d + r)))
    ev.require("π_a − π_b > 0", gap.is_positive is True, f"is_positive = {gap.is_positive}")
    # τ = 2/5: π = (11/20, 9/20) has a non-argmax token above τ with B < 0
    p = [sp.Rational(11, 20), sp.Rational(9, 20)]
    h = -sum(q * sp.log(q) for q in p)
    c = [sp.log(q) + h for q in p]
    b_low = p[1] * c[1] - sum(q**2 * cb for q, cb in zip(p, c, strict=True))
    ev.require(
        "τ = 2/5: π = (11/20, 9/20) gives B(low) < 0", b_low.is_negative is True, f"B = {sp.N(b_low, 6)}"
    )
    return ev.result(
        f"needs τ ∈ {region}; π_a − π_b = 2s + 2d + r > 0; τ = 2/5 counterexample B = {float(b_low):.4f}"
    )


@register_check("High-prob: actuator effect has the sign of −α (sympy)")
def check_actuator_sign_sympy() -> tuple[Verdict, str]:
    """−ηA(w − 1)B = −ηα|A|B for w = 1 + α sign(A); its sign is −sign(α) when B ≥ 0."""
    ev = Evidence()
    eta = sp.Symbol("eta", positive=True)
    adv = sp.Symbol("A", real=True)
    alpha = sp.Symbol("alpha", real=True)
    b = sp.Symbol("B", nonnegative=True)
    w = 1 + alpha * sp.sign(adv)
    effect = -eta * adv * w * b - (-eta * adv * b)
    ev.add("= −ηα|A|B", *prove_zero(sp.simplify(effect + eta * alpha * sp.Abs(adv) * b)))
    a_pos, a_neg = sp.Symbol("alpha", positive=True), sp.Symbol("alpha", negative=True)
    reduced = -eta * alpha * sp.Abs(adv) * b
    ev.require("α > 0 ⇒ effect ≤ 0", reduced.subs(alpha, a_pos).is_nonpositive is True)
    ev.require("α < 0 ⇒ effect ≥ 0", reduced.subs(alpha, a_neg).is_nonnegative is True)
    return ev.result("ΔH(α) − ΔH(0) = −η·α·|A|·B(a), B(a) ≥ 0 ⇒ sign −α for confident tokens")


@register_check("High-prob: tokens above τ ≥ 1/2 have B ≥ 0, τ < 1/2 does not (numeric)")
def check_argmax_numeric(
    b_fn: Callable[[np.ndarray], np.ndarray] = sample_sign_coefficient, n: int = 2000
) -> tuple[Verdict, str]:
    """Enumeration: for τ ∈ [1/2, 1) every token above τ is the argmax with B ≥ 0; for some
    τ < 1/2 a token above τ has B < 0."""
    ev = Evidence()
    rng = np.random.default_rng(8)
    taus = np.linspace(0.5, 0.99, 50)
    n_conf, min_b = 0, np.inf
    counter: dict[float, tuple[int, float]] = {}
    for k in (2, 3, 5, 20):
        p = random_distributions(rng, n, k)
        bvals = np.asarray(b_fn(p), dtype=float)
        is_top = p == p.max(axis=1, keepdims=True)
        for tau in taus:
            above = p > tau
            n_conf += int(above.sum())
            ev.require(f"K={k}, τ={tau:.2f}: above τ ⇒ argmax", bool(np.all(is_top[above])))
            if above.any():
                min_b = min(min_b, float(bvals[above].min()))
        for tau in (0.3, 0.4, 0.45):
            bad = (p > tau) & (bvals < -1e-9)
            if bad.any():
                cnt, worst = counter.get(tau, (0, 0.0))
                counter[tau] = (cnt + int(bad.sum()), min(worst, float(bvals[bad].min())))
    ev.require("B ≥ 0 above τ ≥ 1/2", min_b >= -1e-12, f"min B = {min_b:.2e}")
    ev.require("counterexamples for τ < 1/2", len(counter) == 3, f"found for τ ∈ {sorted(counter)}")
    shown = ", ".join(f"τ={t}: {c}" for t, (c, _) in sorted(counter.items()))
    return ev.result(
        f"{n_conf} (token, τ ≥ 1/2) cases: argmax, min B = {min_b:.1e}; tokens above τ with B < 0: {shown}"
    )


@register_check("High-prob: entropic_weights update moves H with sign −α (numeric)")
def check_actuator_numeric(
    entropic_weights: Callable = actuator.entropic_weights, tau: float = 0.95
) -> tuple[Verdict, str]:
    """``entropic_weights`` = 1 + α sign(A) 1[π > τ]; the weighted one-sample softmax update of a
    confident token changes H by −η·A·w·B(a) to first order, i.e. by −η·α·|A|·B relative to α = 0."""
    ev = Evidence()
    rng = np.random.default_rng(9)
    # the rule itself on random arrays
    prob, adv, al = rng.uniform(0.5, 1, 4000), rng.standard_normal(4000), rng.uniform(-1, 1, 4000)
    adv[:50] = 0.0
    got = np.asarray(entropic_weights(prob, adv, al, tau), dtype=float)
    ev.require(
        "w = 1 + α·sign(A)·1[π > τ]", np.allclose(got, 1 + al * np.sign(adv) * (prob > tau), atol=1e-15)
    )
    eta = 1e-4
    checked, wrong_sign, worst_rel = 0, 0, 0.0
    for k in (2, 5, 20, 100):
        for _ in range(40):
            top = rng.uniform(tau + 1e-3, 1 - 1e-4)  # one confident arm, the rest Dirichlet
            p = np.concatenate([[top], (1 - top) * rng.dirichlet(np.full(k - 1, 0.5))])
            p = np.maximum(p, 1e-200)
            z = np.log(p)
            a = 0
            bval = float(sample_sign_coefficient(p)[a])
            step = (np.arange(k) == a) - p
            for sgn_a in (1.0, -1.0):
                a_val = sgn_a * rng.uniform(0.2, 2.0)
                for alpha in (0.5, -0.5):
                    w = float(
                        np.asarray(entropic_weights(np.array([p[a]]), np.array([a_val]), alpha, tau))[0]
                    )
                    dh_w = entropy(z + eta * a_val * w * step) - entropy(z)
                    dh_0 = entropy(z + eta * a_val * step) - entropy(z)
                    effect = float(dh_w - dh_0)
                    pred = -eta * alpha * abs(a_val) * bval
                    if abs(pred) > 1e-13:
                        checked += 1
                        wrong_sign += int(np.sign(effect) != -np.sign(alpha))
                        worst_rel = max(worst_rel, abs(effect - pred) / abs(pred))
    ev.require("cases", checked > 100, f"{checked} checked")
    ev.require("sign −α", wrong_sign == 0, f"{wrong_sign} of {checked} with the wrong sign")
    ev.require("= −η·α·|A|·B to first order", worst_rel <= 1e-2, f"rel. error {worst_rel:.1e}")
    return ev.result(
        f"{checked} confident (π > {tau}) updates: ΔH(α) − ΔH(0) has sign −α, "
        f"matches −η·α·|A|·B within {worst_rel:.0e}"
    )
