"""Lemma B — the entropy effect of one sampled token has a definite sign for the argmax.

A sampled token a with advantage A moves the logits of a tabular softmax policy by
Δz_b = η A (1[b = a] − π_b). With c_b = log π_b + H and Lemma A, to first order::

    ΔH ≈ −η A B(a),   B(a) = π_a c_a − Σ_b π_b² c_b = Σ_b π_b (π_a c_a − π_b c_b)

If a is the argmax token then π_a ≥ π_b and c_a ≥ max(0, c_b) (c_a ≥ 0 because
H ≥ −log π_max), so every term of the last sum is ≥ 0 and B(a) ≥ 0: a positive sample of
the most likely token lowers entropy, a negative one raises it. For low-probability tokens
B(a) can be negative — a positive, unlikely sample raises the entropy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import sympy as sp

from .runner import Evidence, Verdict, register_check
from .softmax import entropy, random_distributions, softmax
from .symbolic import prove_softmax_identity, prove_zero, softmax_symbols

__all__ = [
    "BFormula",
    "b_formula",
    "check_b_sign_numeric",
    "check_b_sign_sympy",
    "check_identity_sympy",
    "check_update_numeric",
    "sample_sign_coefficient",
]

log = logging.getLogger(__name__)

BFormula = Callable[[Sequence[sp.Expr], Sequence[sp.Expr], int], sp.Expr]
"""(π, c, a) ↦ B(a) as a sympy expression, c_b = log π_b + H."""


def b_formula(p: Sequence[sp.Expr], c: Sequence[sp.Expr], a: int) -> sp.Expr:
    """Lemma B's B(a) = π_a c_a − Σ_b π_b² c_b."""
    return p[a] * c[a] - sum(q**2 * cb for q, cb in zip(p, c, strict=True))


def sample_sign_coefficient(p: np.ndarray) -> np.ndarray:
    """Numeric B(a) for every token a over the last axis of the distribution ``p``."""
    p = np.asarray(p, dtype=float)
    logp = np.log(p)
    c = logp - (p * logp).sum(axis=-1, keepdims=True)  # log π + H
    return p * c - (p * p * c).sum(axis=-1, keepdims=True)


@register_check("Lemma B: ΔH = −ηA·B(a) (sympy, K=2..4 and general K)")
def check_identity_sympy(formula: BFormula = b_formula, ks: Sequence[int] = (2, 3, 4)) -> tuple[Verdict, str]:
    """Exact first-order ΔH of the one-sample update equals −ηA·B(a) (K ≤ 3: every a; K = 4: a = 1);
    Σ_b π_b c_b (δ_ab − π_b) = π_a c_a − Σ π_b² c_b for symbolic K; the Σ_b π_b(…) form."""
    ev = Evidence()
    eta, adv = sp.Symbol("eta", positive=True), sp.Symbol("A", real=True)
    for k in ks:
        z, p, logp, h, to_y = softmax_symbols(k)
        grad = [sp.diff(h, v) for v in z]  # the true gradient, not Lemma A's formula
        c = [l + h for l in logp]
        results = []
        for a in range(k if k < 4 else 1):  # K = 4: a = 1 stands for every a by symmetry
            dz = [eta * adv * ((1 if b == a else 0) - p[b]) for b in range(k)]
            expr = sum(g * d for g, d in zip(grad, dz, strict=True)) + eta * adv * formula(p, c, a)
            results.append(prove_softmax_identity(expr, to_y))
        ev.add_many(f"K={k}", results)
    # general K: Σ_b π_b c_b (δ_ab − π_b) for an index a ≤ K
    kk = sp.Symbol("K", integer=True, positive=True)
    a_, b_ = sp.symbols("a b", integer=True, positive=True)
    m = sp.Symbol("m", integer=True, nonnegative=True)
    pi, cc = sp.IndexedBase("pi", positive=True), sp.IndexedBase("c", real=True)
    general = sp.Sum(pi[b_] * cc[b_] * (sp.KroneckerDelta(a_, b_) - pi[b_]), (b_, 1, kk))
    general = sp.piecewise_fold(sp.expand(general).doit().subs(kk, a_ + m))
    target = pi[a_] * cc[a_] - sp.Sum(pi[b_] ** 2 * cc[b_], (b_, 1, a_ + m))
    ev.add("general K", *prove_zero(general - target))
    # B(a) = Σ_b π_b (π_a c_a − π_b c_b) needs only Σ π = 1: K = 3, 4 with π_K = 1 − Σ others
    for k in (3, 4):
        free = sp.symbols(f"p1:{k}", positive=True)
        p = [*free, 1 - sum(free)]
        logp = [sp.log(q) for q in p]
        h = -sum(q * l for q, l in zip(p, logp, strict=True))
        c = [l + h for l in logp]
        sum_form = sum(p[b] * (p[0] * c[0] - p[b] * c[b]) for b in range(k))
        ev.add(f"Σ-form K={k}", *prove_zero(formula(p, c, 0) - sum_form))
    return ev.result(
        "∇H·Δz = −ηA·B(a) exactly (K=2..4), general-K Kronecker sum, B = Σ_b π_b(π_a c_a − π_b c_b)"
    )


@register_check("Lemma B: B(argmax) ≥ 0 (sympy, two cases + H ≥ −log π_max)")
def check_b_sign_sympy() -> tuple[Verdict, str]:
    """Each term π_a c_a − π_b c_b of B(argmax) is ≥ 0; c_a ≥ c_b; c_a ≥ 0 via H ≥ −log π_max."""
    ev = Evidence()
    # case c_b ≥ 0: π_a = π_b + d, c_a = c_b + g with d, g ≥ 0
    pb = sp.Symbol("pi_b", positive=True)
    cb, d, g = sp.symbols("c_b d g", nonnegative=True)
    term = sp.expand((pb + d) * (cb + g) - pb * cb)
    ev.add("c_b ≥ 0: term = π_b g + d c_b + d g", *prove_zero(term - (pb * g + d * cb + d * g)))
    ev.require("c_b ≥ 0: term ≥ 0", term.is_nonnegative is True, f"is_nonnegative = {term.is_nonnegative}")
    # case c_b < 0: π_a c_a ≥ 0 > π_b c_b
    pa, pb2 = sp.symbols("pi_a pi_b", positive=True)
    ca, cbn = sp.Symbol("c_a", nonnegative=True), sp.Symbol("c_b", negative=True)
    term2 = pa * ca - pb2 * cbn
    ev.require("c_b < 0: term > 0", term2.is_positive is True, f"is_positive = {term2.is_positive}")
    # π_b = π_max/(1 + s_b), s_b ≥ 0 describes every π_b ≤ π_max
    pmax, s = sp.Symbol("pi_max", positive=True), sp.Symbol("s", nonnegative=True)
    gap = sp.expand_log(sp.log(pmax) - sp.log(pmax / (1 + s)))  # = c_a − c_b = log π_max − log π_b
    ev.add("c_a − c_b = log(1 + s_b)", *prove_zero(gap - sp.log(1 + s)))
    ev.require("c_a ≥ c_b", gap.is_nonnegative is True, f"is_nonnegative = {gap.is_nonnegative}")
    # H + log π_max = Σ_b π_b (log π_max − log π_b) (uses Σ π = 1), each term π_b log(1 + s_b) ≥ 0
    p2, p3 = sp.symbols("p2 p3", positive=True)
    p = [1 - p2 - p3, p2, p3]  # π_1 plays π_max
    h = -sum(q * sp.log(q) for q in p)
    expansion = sum(q * (sp.log(p[0]) - sp.log(q)) for q in p)
    ev.add("H + log π_max = Σ π_b(log π_max − log π_b) (K=3)", *prove_zero(h + sp.log(p[0]) - expansion))
    summand = sp.expand_log(pmax / (1 + s) * (sp.log(pmax) - sp.log(pmax / (1 + s))))
    ev.require(
        "each summand ≥ 0 ⇒ H ≥ −log π_max ⇒ c_a ≥ 0",
        summand.is_nonnegative is True,
        f"is_nonnegative = {summand.is_nonnegative}",
    )
    return ev.result("every term π_b(π_a c_a − π_b c_b) ≥ 0 for a = argmax (both cases); H ≥ −log π_max")


@register_check("Lemma B: sign of B(a) (numeric, enumeration)")
def check_b_sign_numeric(
    b_fn: Callable[[np.ndarray], np.ndarray] = sample_sign_coefficient, n: int = 2000
) -> tuple[Verdict, str]:
    """B(argmax) ≥ 0 on random distributions; B < 0 occurs, only for non-argmax tokens."""
    ev = Evidence()
    rng = np.random.default_rng(3)
    min_top, flips, dists = np.inf, 0, 0
    for k in (2, 3, 5, 10, 50):
        p = random_distributions(rng, n, k)
        bvals = np.asarray(b_fn(p), dtype=float)
        top = np.argmax(p, axis=1)
        b_top = bvals[np.arange(n), top]
        logp = np.log(p)
        c = logp - (p * logp).sum(1, keepdims=True)
        sum_form = (p * (p * c)[:, :1] - p * p * c).sum(1)  # Σ_b π_b(π_0 c_0 − π_b c_b)
        ev.require(f"K={k}: B = Σ-form", np.allclose(bvals[:, 0], sum_form, rtol=1e-9, atol=1e-12))
        min_top = min(min_top, float(b_top.min()))
        neg = bvals < -1e-12
        ev.require(f"K={k}: only non-argmax tokens have B < 0", not neg[np.arange(n), top].any())
        flips += int(neg.any(axis=1).sum())
        dists += n
    uniform = np.asarray(b_fn(np.full((1, 7), 1 / 7)), dtype=float)
    ev.require("uniform ⇒ B = 0", np.abs(uniform).max() < 1e-14)
    ev.require("B(argmax) ≥ 0", min_top >= -1e-12, f"min {min_top:.2e}")
    ev.require("sign flips exist", flips > 0, f"{flips} distributions with B(a) < 0")
    return ev.result(
        f"min B(argmax) = {min_top:.1e} over {dists} distributions; "
        f"{flips} have a low-probability token with B < 0"
    )


@register_check("Lemma B: −ηA·B(a) vs exact softmax update (numeric)")
def check_update_numeric(
    b_fn: Callable[[np.ndarray], np.ndarray] = sample_sign_coefficient,
) -> tuple[Verdict, str]:
    """H(z + ηA(e_a − π)) − H(z) = −ηA·B(a) + O(η²); a positive unlikely sample can raise H."""
    ev = Evidence()
    rng = np.random.default_rng(4)
    etas = np.array([1e-2, 1e-3, 1e-4])
    worst_growth, worst_rel, raised, lowered = 0.0, 0.0, 0, 0
    for k in (2, 3, 5, 10, 20):
        for scale in (0.5, 2.0, 5.0):
            z = scale * rng.standard_normal(k)
            p = softmax(z)
            bvals = np.asarray(b_fn(p), dtype=float)
            for a in range(k):
                for adv in (1.0, -0.7):
                    step = adv * ((np.arange(k) == a) - p)
                    dh = entropy(z[None] + etas[:, None] * step[None]) - entropy(z)
                    lin = -etas * adv * bvals[a]
                    err = np.abs(dh - lin)
                    c = err / etas**2
                    worst_growth = max(worst_growth, float(c[1:].max() / (1.5 * c[0] + 1e-3)))
                    if abs(bvals[a]) > 1e-2:
                        worst_rel = max(worst_rel, float(err[-1] / abs(lin[-1])))
                    if adv > 0 and bvals[a] < -1e-6 and p[a] < p.max():
                        raised += int(dh[1] > 0)  # positive sample of an unlikely token, H rises
                    if adv > 0 and a == int(np.argmax(p)) and bvals[a] > 1e-6:
                        lowered += int(dh[1] < 0)
    ev.require("remainder O(η²)", worst_growth <= 1.0, f"growth {worst_growth:.2f}")
    ev.require("first order at η=1e-4", worst_rel <= 1e-2, f"rel. error {worst_rel:.1e}")
    ev.require("a positive low-probability sample raises H", raised > 0)
    ev.require("a positive argmax sample lowers H", lowered > 0)
    return ev.result(
        f"|ΔH + ηA·B|/|ηA·B| ≤ {worst_rel:.0e} at η=1e-4; H rose for {raised} positive "
        f"low-probability samples, fell for {lowered} argmax ones"
    )
