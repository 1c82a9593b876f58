"""Small sympy helpers shared by the checks: zero tests and relation comparison.

`prove_zero` decides ``expr = 0`` in increasing order of cost:

1. the numerator of ``together(expr)`` expands to the zero polynomial (a proof, treating
   logs and exponentials as independent atoms);
2. a *witness*: ``expr`` evaluated with 30 significant digits at a few exact rational
   points that respect the symbols' assumptions; a value clearly away from 0 refutes the
   identity (sympy's ``equals`` often answers None where a point evaluation is conclusive);
3. ``simplify(expr) == 0`` (a proof);
4. ``expr.equals(0)``: True is a proof, False a refutation, None leaves it UNDECIDED.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable

import sympy as sp
from sympy.core.function import AppliedUndef

from .runner import Verdict, combine

__all__ = [
    "nonzero_witness",
    "prove_all_zero",
    "prove_softmax_identity",
    "prove_zero",
    "same_relation",
    "softmax_symbols",
]

log = logging.getLogger(__name__)


def _sample_value(sym: sp.Symbol, n: int, rng: random.Random) -> sp.Rational:
    """An exact rational consistent with ``sym``'s assumptions, small enough that n positive
    symbols sum to < 1/2 (so expressions like log(1 − Σ p) stay defined)."""
    if sym.is_integer:
        lo = 0 if sym.is_nonnegative else 1
        return sp.Integer(rng.randint(lo, lo + 3) * (-1 if sym.is_negative else 1))
    mag = sp.Rational(rng.randint(1, 97), 97 * 2 * max(n, 1))
    if sym.is_positive or sym.is_nonnegative:
        return mag + sp.Rational(1, 1000 * max(n, 1))
    if sym.is_negative or sym.is_nonpositive:
        return -mag - sp.Rational(1, 1000 * max(n, 1))
    return mag * (1 if rng.random() < 0.5 else -1)


def nonzero_witness(expr: sp.Expr, tries: int = 3, seed: int = 0) -> dict | None:
    """A point where ``expr`` is provably nonzero (|value| > 1e-12 at 30 digits), or None.

    Undefined-function applications (S(x)) and indexed objects (z[b]) are first replaced by
    fresh symbols with the same assumptions.
    """
    rng = random.Random(seed)
    opaque = sorted(expr.atoms(AppliedUndef) | expr.atoms(sp.Indexed), key=sp.default_sort_key)
    repl = {}
    for atom in opaque:
        assumptions = {"positive": True} if atom.is_positive else {"real": True} if atom.is_real else {}
        repl[atom] = sp.Dummy(str(atom.func if isinstance(atom, AppliedUndef) else atom), **assumptions)
    e = expr.subs(repl) if repl else expr
    syms = sorted(e.free_symbols, key=sp.default_sort_key)
    n_pos = sum(1 for s in syms if s.is_positive or s.is_nonnegative)
    for _ in range(tries):
        point = {s: _sample_value(s, n_pos, rng) for s in syms}
        try:
            val = sp.N(e.subs(point), 30)
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if val.is_number and val.is_finite and abs(complex(val)) > 1e-12:
            return point
    return None


def prove_zero(expr: sp.Expr) -> tuple[Verdict, str]:
    """Decide ``expr == 0``; returns the verdict and how it was reached."""
    expr = sp.sympify(expr)
    if expr == 0:
        return Verdict.PASS, "literally 0"
    if sp.expand(sp.numer(sp.together(expr))) == 0:
        return Verdict.PASS, "numerator expands to 0"
    point = nonzero_witness(expr)
    if point is not None:
        where = ", ".join(f"{s}={v}" for s, v in list(point.items())[:4])
        return Verdict.FAIL, f"nonzero at {where}"
    if sp.simplify(expr) == 0:
        return Verdict.PASS, "simplify → 0"
    eq = expr.equals(0)
    if eq is True:
        return Verdict.PASS, "equals(0) is True"
    if eq is False:
        return Verdict.FAIL, "equals(0) is False"
    return Verdict.UNDECIDED, "equals(0) returned None"


def prove_all_zero(exprs: Iterable[sp.Expr]) -> tuple[Verdict, str]:
    """`prove_zero` on each expression; the combined verdict and the first non-PASS note."""
    results = [prove_zero(e) for e in exprs]
    verdict = combine(v for v, _ in results)
    notes = [note for v, note in results if v is not Verdict.PASS]
    return verdict, (notes[0] if notes else f"{len(results)} identities")


def same_relation(a: sp.Basic, b: sp.Basic) -> bool:
    """True when two relations have the same operator and provably equal sides."""
    rel = sp.core.relational.Relational
    if not (isinstance(a, rel) and isinstance(b, rel)):
        return False
    if a.rel_op != b.rel_op:
        a = a.reversed
    return (
        a.rel_op == b.rel_op
        and prove_zero(a.lhs - b.lhs)[0] is Verdict.PASS
        and prove_zero(a.rhs - b.rhs)[0] is Verdict.PASS
    )


def softmax_symbols(k: int) -> tuple[tuple[sp.Symbol, ...], list[sp.Expr], list[sp.Expr], sp.Expr, dict]:
    """Logits z_1..z_K (real) and the exact π, log π = z − log S, H of softmax(z).

    Also returns ``to_y``, the substitution e^{z_b} → y_b (positive symbols) used by
    `prove_softmax_identity`.
    """
    z = sp.symbols(f"z1:{k + 1}", real=True)
    s = sum(sp.exp(v) for v in z)
    p = [sp.exp(v) / s for v in z]
    logp = [sp.expand_log(sp.log(q)) for q in p]  # z_b − log S since e^{z_b} > 0 and S > 0
    h = -sum(q * l for q, l in zip(p, logp, strict=True))
    y = sp.symbols(f"y1:{k + 1}", positive=True)
    return z, p, logp, h, dict(zip((sp.exp(v) for v in z), y, strict=True))


def prove_softmax_identity(expr: sp.Expr, to_y: dict) -> tuple[Verdict, str]:
    """Zero test for an expression in the logits z: a fast proof with y_b = e^{z_b} as
    independent positive atoms (a zero polynomial in (y, z, log S) vanishes on y = e^z too),
    else `prove_zero` on the expression in z itself (so a witness respects y = e^z)."""
    if sp.expand(sp.numer(sp.together(expr.subs(to_y)))) == 0:
        return Verdict.PASS, "numerator in y = e^z expands to 0"
    return prove_zero(expr)
