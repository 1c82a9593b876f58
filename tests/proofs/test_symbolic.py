"""The sympy zero tests: proofs, refutations by a witness point, relation comparison.

Run: python -m pytest tests/proofs/test_symbolic.py
"""

from __future__ import annotations

import sympy as sp

from proofs.runner import Verdict
from proofs.symbolic import (
    nonzero_witness,
    prove_softmax_identity,
    prove_zero,
    same_relation,
    softmax_symbols,
)

x, y = sp.symbols("x y", positive=True)


def test_prove_zero_proves_identities():
    assert prove_zero(sp.Integer(0))[0] is Verdict.PASS
    assert prove_zero((x + y) ** 2 - x**2 - 2 * x * y - y**2)[0] is Verdict.PASS
    assert prove_zero(sp.log(x * y) - sp.log(x) - sp.log(y))[0] is Verdict.PASS
    assert prove_zero(sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1)[0] is Verdict.PASS


def test_prove_zero_refutes_with_a_witness():
    verdict, note = prove_zero(sp.log(x) - x / 2)
    assert verdict is Verdict.FAIL
    assert "nonzero at" in note
    assert nonzero_witness(sp.exp(x) - 1) is not None
    assert nonzero_witness(x - x) is None


def test_witness_respects_assumptions():
    # log(1 − p1 − p2) is only defined for small positive p's; the sampler keeps their sum < 1/2
    p1, p2 = sp.symbols("p1 p2", positive=True)
    point = nonzero_witness(sp.log(1 - p1 - p2) + 5)
    assert point is not None
    assert 0 < point[p1] + point[p2] < sp.Rational(1, 2)


def test_softmax_symbols_and_identity():
    z, p, logp, h, to_y = softmax_symbols(3)
    assert len(z) == len(p) == len(logp) == len(to_y) == 3
    assert prove_softmax_identity(sum(p) - 1, to_y)[0] is Verdict.PASS
    assert prove_softmax_identity(sp.diff(h, z[0]) + p[0] * (logp[0] - h), to_y)[0] is Verdict.FAIL


def test_same_relation():
    k, a = sp.symbols("k a", positive=True)
    assert same_relation(a < 2 / k, 2 / k > a)
    assert same_relation(a < (4 + k) / (2 * k), a < 2 / k + sp.Rational(1, 2))
    assert not same_relation(a < 2 / k, a <= 2 / k)
    assert not same_relation(a < 2 / k, a + 1)
