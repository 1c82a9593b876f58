"""Lemma A — the first-order entropy change of a softmax policy.

For π = softmax(z) and H = −Σ_b π_b log π_b (nats)::

    ∂H/∂z_b = −π_b (log π_b + H)

Since Σ_b π_b (log π_b + H) = 0, a logit change Δz moves the entropy by::

    ΔH ≈ Σ_b ∂H/∂z_b Δz_b = −Σ_b π_b (log π_b + H) Δz_b = −Cov_{a∼π}(log π_a, Δz_a)

Checks: the gradient exactly for K = 2..5 (sympy), for general K through
S = Σ e^{z_a}, T = Σ z_a e^{z_a} (H = log S − T/S), the covariance identity for K = 3, 4
with π_K = 1 − Σ_{b<K} π_b, and numeric twins (finite differences; the O(ε²) remainder).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import sympy as sp

from .runner import Evidence, Verdict, register_check
from .softmax import entropy, log_softmax
from .symbolic import prove_softmax_identity, prove_zero, softmax_symbols

__all__ = [
    "GradFormula",
    "check_covariance_sympy",
    "check_first_order_numeric",
    "check_grad_general_k",
    "check_grad_numeric",
    "check_grad_sympy",
    "covariance",
    "entropy_grad",
    "entropy_grad_formula",
]

log = logging.getLogger(__name__)

GradFormula = Callable[[sp.Expr, sp.Expr, sp.Expr], sp.Expr]
"""(π_b, log π_b, H) ↦ ∂H/∂z_b, as a sympy expression."""


def entropy_grad_formula(p: sp.Expr, logp: sp.Expr, h: sp.Expr) -> sp.Expr:
    """Lemma A's ∂H/∂z_b = −π_b (log π_b + H)."""
    return -p * (logp + h)


def entropy_grad(z: np.ndarray) -> np.ndarray:
    """Numeric ∂H/∂z over the last axis by Lemma A."""
    logp = log_softmax(z)
    p = np.exp(logp)
    h = -(p * logp).sum(axis=-1, keepdims=True)
    return -p * (logp + h)


def covariance(p: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cov_{a∼p}(x_a, y_a) over the last axis (computed as E[(x − E x)(y − E y)])."""
    xc = x - (p * x).sum(axis=-1, keepdims=True)
    yc = y - (p * y).sum(axis=-1, keepdims=True)
    return (p * xc * yc).sum(axis=-1)


@register_check("Lemma A: dH/dz (sympy, K=2..5)")
def check_grad_sympy(
    formula: GradFormula = entropy_grad_formula, ks: Sequence[int] = (2, 3, 4, 5)
) -> tuple[Verdict, str]:
    """∂H/∂z_b − formula(π_b, log π_b, H) ≡ 0 for every b and each K in ``ks``."""
    ev = Evidence()
    for k in ks:
        z, p, logp, h, to_y = softmax_symbols(k)
        results = [
            prove_softmax_identity(sp.diff(h, z[b]) - formula(p[b], logp[b], h), to_y) for b in range(k)
        ]
        ev.add_many(f"K={k}", results)
    return ev.result(f"∂H/∂z_b = −π_b(log π_b + H) exactly for K ∈ {list(ks)}, all b")


@register_check("Lemma A: dH/dz (sympy, general K via S, T)")
def check_grad_general_k(formula: GradFormula = entropy_grad_formula) -> tuple[Verdict, str]:
    """General K: derive ∂S/∂z_b, ∂T/∂z_b and H = log S − T/S from Σ's, then the gradient."""
    ev = Evidence()
    kk = sp.Symbol("K", integer=True, positive=True)
    i, b = sp.symbols("i b", integer=True, positive=True)
    m = sp.Symbol("m", integer=True, nonnegative=True)
    z = sp.IndexedBase("z", real=True)
    s_sum = sp.Sum(sp.exp(z[i]), (i, 1, kk))
    t_sum = sp.Sum(z[i] * sp.exp(z[i]), (i, 1, kk))
    # ∂S/∂z_b and ∂T/∂z_b for an index b ≤ K (K = b + m)
    ds = sp.piecewise_fold(sp.diff(s_sum, z[b]).doit().subs(kk, b + m))
    dt = sp.piecewise_fold(sp.diff(t_sum, z[b]).doit().subs(kk, b + m))
    ev.add("∂S/∂z_b = e^{z_b}", *prove_zero(ds - sp.exp(z[b])))
    ev.add("∂T/∂z_b = e^{z_b}(1 + z_b)", *prove_zero(dt - sp.exp(z[b]) * (1 + z[b])))
    # H = −Σ π_i log π_i with π_i = e^{z_i}/S  ⇒  H = log S − T/S
    s_, t_ = sp.symbols("S T", positive=True)
    logp_i = sp.expand_log(sp.log(sp.exp(z[i]) / s_))
    ev.add("log π_i = z_i − log S", *prove_zero(logp_i - (z[i] - sp.log(s_))))
    h_sum = -sp.factor_terms(sp.expand(sp.Sum(sp.expand(sp.exp(z[i]) * logp_i), (i, 1, kk)))) / s_
    h_sum = h_sum.subs({s_sum: s_, t_sum: t_})
    ev.add("H = log S − T/S", *prove_zero(h_sum - (sp.log(s_) - t_ / s_)))
    # the gradient, treating S and T as functions of x = z_b (chain rule through the sums)
    x = sp.Symbol("x", real=True)
    s_f = sp.Function("S", positive=True)(x)
    t_f = sp.Function("T", real=True)(x)
    h = sp.log(s_f) - t_f / s_f
    dh = sp.diff(h, x).subs({sp.Derivative(s_f, x): sp.exp(x), sp.Derivative(t_f, x): sp.exp(x) * (1 + x)})
    p_b, logp_b = sp.exp(x) / s_f, x - sp.log(s_f)
    ev.add("dH/dz_b = formula", *prove_zero(dh - formula(p_b, logp_b, h)))
    return ev.result("∂S/∂z_b, ∂T/∂z_b, H = log S − T/S derived; dH/dz_b + π_b(log π_b + H) = 0")


def _mean(p: Sequence[sp.Expr], xs: Sequence[sp.Expr]) -> sp.Expr:
    return sum(q * x for q, x in zip(p, xs, strict=True))


@register_check("Lemma A: ΔH = −Cov(log π, Δz) (sympy, K=3,4)")
def check_covariance_sympy(
    formula: GradFormula = entropy_grad_formula, ks: Sequence[int] = (3, 4)
) -> tuple[Verdict, str]:
    """Σ_b π_b(log π_b + H) = 0 and Σ_b ∂H/∂z_b Δz_b = −Cov_π(log π, Δz), π_K = 1 − Σ others."""
    ev = Evidence()
    for k in ks:
        free = sp.symbols(f"p1:{k}", positive=True)
        p = [*free, 1 - sum(free)]
        d = sp.symbols(f"d1:{k + 1}", real=True)
        logp = [sp.log(q) for q in p]
        h = -sum(q * l for q, l in zip(p, logp, strict=True))
        ev.add(
            f"K={k}: Σ π(log π + H) = 0", *prove_zero(sum(q * (l + h) for q, l in zip(p, logp, strict=True)))
        )
        cov = _mean(p, [l * dv for l, dv in zip(logp, d, strict=True)]) - _mean(p, logp) * _mean(p, d)
        first_order = sum(formula(q, l, h) * dv for q, l, dv in zip(p, logp, d, strict=True))
        ev.add(f"K={k}: ΣdH/dz·Δz = −Cov", *prove_zero(first_order + cov))
    return ev.result(f"Σ_b ∂H/∂z_b Δz_b = −Cov_π(log π, Δz) exactly for K ∈ {list(ks)}")


def _logit_draws(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        scale * rng.standard_normal(k)
        for k in (2, 3, 5, 10, 20, 50)
        for scale in (0.3, 1.0, 3.0, 8.0)
        for _ in range(3)
    ]


@register_check("Lemma A: dH/dz (numeric, finite differences)")
def check_grad_numeric(
    grad: Callable[[np.ndarray], np.ndarray] = entropy_grad, h: float = 1e-5, rtol: float = 1e-6
) -> tuple[Verdict, str]:
    """Central differences of H against ``grad`` on 72 random logit vectors (K ≤ 50)."""
    worst = 0.0
    for z in _logit_draws(0):
        eye = np.eye(z.size) * h
        fd = (entropy(z + eye) - entropy(z - eye)) / (2 * h)
        g = np.asarray(grad(z), dtype=float)
        scale = max(float(np.abs(fd).max()), 1e-3)
        worst = max(worst, float(np.abs(fd - g).max()) / scale)
    verdict = Verdict.PASS if worst <= rtol else Verdict.FAIL
    return verdict, f"max |FD − formula| / max|∂H| = {worst:.1e} (tol {rtol:g}), 72 logit vectors K ≤ 50"


@register_check("Lemma A: ΔH ≈ −ε·Cov (numeric, O(ε²) remainder)")
def check_first_order_numeric(grad: Callable[[np.ndarray], np.ndarray] = entropy_grad) -> tuple[Verdict, str]:
    """H(z + εΔz) − H(z) + ε·Cov_π(log π, Δz) = O(ε²), and ∇H·Δz = −Cov exactly."""
    ev = Evidence()
    rng = np.random.default_rng(1)
    eps = np.array([1e-2, 1e-3, 1e-4])
    worst_identity, worst_growth, c_max = 0.0, 0.0, 0.0
    for z in _logit_draws(2):
        dz = rng.standard_normal(z.size)
        logp = log_softmax(z)
        cov = float(covariance(np.exp(logp), logp, dz))
        lin = float(np.dot(np.asarray(grad(z), dtype=float), dz))
        worst_identity = max(worst_identity, abs(lin + cov) / max(abs(cov), 1e-3))
        err = np.abs(entropy(z[None] + eps[:, None] * dz[None]) - entropy(z) + eps * cov)
        c = err / eps**2  # ≈ the constant second-order coefficient when the remainder is O(ε²)
        c_max = max(c_max, float(c.max()))
        worst_growth = max(worst_growth, float(c[1:].max() / (1.5 * c[0] + 1e-3)))
    ev.require("∇H·Δz = −Cov", worst_identity <= 1e-9, f"rel. gap {worst_identity:.1e}")
    ev.require("remainder O(ε²)", worst_growth <= 1.0, f"growth {worst_growth:.2f}")
    return ev.result(
        f"|ΔH + ε·Cov|/ε² ≤ {c_max:.2g} for ε ∈ 1e-2..1e-4; ∇H·Δz = −Cov to {worst_identity:.0e}"
    )
