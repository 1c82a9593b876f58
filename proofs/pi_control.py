"""PI control of the linearised entropy loop: fixed point, characteristic polynomial, stability.

Plant e_{t+1} = e_t + b − k α_t (k > 0), PI law α_t = kp e_t + ki S_t, S_{t+1} = S_t + e_t.
The state x = (e, S) obeys x_{t+1} = A x_t + (b, 0) with::

    A = [[1 − k kp, −k ki],
         [1,         1   ]],     p(λ) = det(λI − A) = λ² − (2 − k kp) λ + (1 − k kp + k ki)

Fixed point (ki > 0): e* = 0, S* = b/(k ki) — the integral absorbs the drift, no offset.

Stability, derived with the bilinear map λ = (1 + w)/(1 − w) (|λ| < 1 ⇔ Re w < 0):
(1 − w)² p(λ(w)) = p(−1) w² + 2(1 − a₀) w + p(1), and a real quadratic is Hurwitz iff its
coefficients share a sign; they sum to 4, so all must be positive::

    p(1)  = k ki > 0,    1 − a₀ = k (kp − ki) > 0,    p(−1) = 4 − 2k kp + k ki > 0

i.e. ki > 0, kp > ki, k(2kp − ki) < 4. The fourth condition of the textbook Jury test,
a₀ > −1 ⇔ k(kp − ki) < 2, is implied: p(1) + p(−1) = 2(1 + a₀), or concretely
2 − k(kp − ki) = (4 − k(2kp − ki))/2 + k ki/2.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import sympy as sp

import pic
from pic import stability

from .bandit_twin import TARGET, operating_point, plant_config
from .runner import Evidence, Verdict, register_check
from .symbolic import prove_zero, same_relation

__all__ = [
    "check_bandit_off_policy",
    "check_bilinear_sympy",
    "check_charpoly_sympy",
    "check_linear_plant_numeric",
    "check_redundant_condition_sympy",
    "check_region_numeric",
    "derived_conditions",
]

log = logging.getLogger(__name__)

_K = sp.Symbol("k", positive=True)
_KP = sp.Symbol("k_p", nonnegative=True)
_KI = sp.Symbol("k_i", nonnegative=True)
_LAM = sp.Symbol("lambda")


def _matrix() -> sp.Matrix:
    return sp.Matrix([[1 - _K * _KP, -_K * _KI], [1, 1]])


def _bilinear_coeffs(poly: sp.Expr, lam: sp.Symbol) -> tuple[sp.Symbol, list[sp.Expr]]:
    """(w, [c₂, c₁, c₀]) of (1 − w)² · poly((1 + w)/(1 − w)) for a quadratic ``poly`` in ``lam``."""
    w = sp.Symbol("w")
    q = sp.expand(sp.cancel(poly.subs(lam, (1 + w) / (1 - w)) * (1 - w) ** 2))
    return w, sp.Poly(q, w).all_coeffs()


def derived_conditions() -> list[sp.Expr]:
    """The Hurwitz conditions c_i > 0 on the bilinear-mapped characteristic polynomial."""
    _, coeffs = _bilinear_coeffs(_matrix().charpoly(_LAM).as_expr(), _LAM)
    return [c > 0 for c in coeffs]


def _sample_gains(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """kp, ki > 0, k > 0 with normalised gains k·kp ∈ [0, 4.5], k·ki ∈ (0, 3], k log-uniform."""
    k = 10 ** rng.uniform(-3, 1, n)
    return rng.uniform(0, 4.5, n) / k, rng.uniform(1e-3, 3, n) / k, k


@register_check("PI control: fixed point and charpoly (sympy) vs pic.stability")
def check_charpoly_sympy(
    char_poly_coeffs: Callable = stability.char_poly_coeffs,
    closed_loop_matrix: Callable = stability.closed_loop_matrix,
    steady_state_error: Callable = stability.steady_state_error,
) -> tuple[Verdict, str]:
    """e* = 0, S* = b/(k ki); det(λI − A) as stated; pic's matrix, (a₁, a₀) and e_ss agree
    (e_ss = e* = 0 for a stable PI loop, NaN for an unstable one)."""
    ev = Evidence()
    ki = sp.Symbol("k_i", positive=True)
    a = _matrix().subs(_KI, ki)
    e, s, b = sp.symbols("e S b", real=True)
    sol = sp.solve(list(a * sp.Matrix([e, s]) + sp.Matrix([b, 0]) - sp.Matrix([e, s])), [e, s], dict=True)
    ok = len(sol) == 1 and prove_zero(sol[0][e])[0] is Verdict.PASS
    ev.require("unique fixed point, e* = 0", ok, f"solve gave {sol}")
    if ok:
        ev.add("S* = b/(k ki)", *prove_zero(sol[0][s] - b / (_K * ki)))
    cp = _matrix().charpoly(_LAM)
    expected = _LAM**2 - (2 - _K * _KP) * _LAM + (1 - _K * _KP + _K * _KI)
    ev.add("det(λI − A)", *prove_zero(cp.as_expr() - expected))
    _, a1, a0 = cp.all_coeffs()
    coeff_fn = sp.lambdify((_KP, _KI, _K), (a1, a0), "numpy")
    mat_fn = sp.lambdify((_KP, _KI, _K), _matrix(), "numpy")
    rng = np.random.default_rng(6)
    kp, ki_n, k = _sample_gains(rng, 500)
    got1, got0 = (np.asarray(v, dtype=float) for v in char_poly_coeffs(kp, ki_n, k))
    want1, want0 = (np.broadcast_to(np.asarray(v, dtype=float), kp.shape) for v in coeff_fn(kp, ki_n, k))
    ev.require(
        "pic char_poly_coeffs",
        np.allclose(got1, want1, rtol=1e-12, atol=1e-12) and np.allclose(got0, want0, rtol=1e-12, atol=1e-12),
    )
    got_a = np.asarray(closed_loop_matrix(kp, ki_n, k), dtype=float)
    want_a = np.stack([np.asarray(mat_fn(*g), dtype=float) for g in zip(kp[:50], ki_n[:50], k[:50], strict=True)])
    ev.require("pic closed_loop_matrix", np.allclose(got_a[:50], want_a, rtol=1e-12, atol=1e-12))
    # pic's steady-state error: the fixed point e* = 0 wherever the loop converges (ρ(A) < 1)
    b_n = rng.uniform(-0.2, 0.2, kp.size)
    rho = np.abs(
        np.linalg.eigvals(np.stack([np.asarray(mat_fn(*g), dtype=float) for g in zip(kp, ki_n, k, strict=True)]))
    )
    stable, clear = rho.max(axis=1) < 1, np.abs(rho.max(axis=1) - 1) > 1e-7
    ess = np.asarray(steady_state_error(kp, ki_n, k, b_n), dtype=float)
    ok_ss = np.all(ess[stable & clear] == 0.0) and np.all(np.isnan(ess[~stable & clear]))
    ev.require("pic steady_state_error = e* (0 if stable, NaN if not)", bool(ok_ss))
    return ev.result("e* = 0, S* = b/(k·ki); p(λ) = λ² − (2 − k·kp)λ + 1 − k·kp + k·ki; pic's A, (a₁, a₀), e_ss agree")


@register_check("PI control: stability conditions via bilinear map (sympy)")
def check_bilinear_sympy() -> tuple[Verdict, str]:
    """Derive the stability region: w-plane map, Hurwitz sign rule, then solve each c_i > 0."""
    ev = Evidence()
    # the map: λ = (1 + w)/(1 − w) sends Re w < 0 onto |λ| < 1 since |1+w|² − |1−w|² = 4 Re w
    u, v = sp.symbols("u v", real=True)
    ev.add(
        "|1+w|² − |1−w|² = 4 Re w",
        *prove_zero(sp.expand(sp.Abs(1 + u + sp.I * v) ** 2 - sp.Abs(1 - u - sp.I * v) ** 2) - 4 * u),
    )
    # a generic monic quadratic: the mapped coefficients are p(−1), 2(1 − a₀), p(1)
    a1, a0, lam = sp.symbols("a_1 a_0 lambda", real=True)
    p = lam**2 + a1 * lam + a0
    w, (c2, c1, c0) = _bilinear_coeffs(p, lam)
    ev.add("c₂ = p(−1)", *prove_zero(c2 - p.subs(lam, -1)))
    ev.add("c₁ = 2(1 − a₀)", *prove_zero(c1 - 2 * (1 - a0)))
    ev.add("c₀ = p(1)", *prove_zero(c0 - p.subs(lam, 1)))
    ev.add("c₀ + c₁ + c₂ = 4 (so 'same sign' = 'all positive')", *prove_zero(c0 + c1 + c2 - 4))
    ev.add(
        "Jury's a₀ > −1 is implied: p(1) + p(−1) = 2(1 + a₀)",
        *prove_zero(p.subs(lam, 1) + p.subs(lam, -1) - 2 * (1 + a0)),
    )
    # Hurwitz for a quadratic via Vieta: w₁ + w₂ = −c₁/c₂, w₁ w₂ = c₀/c₂
    cc2, cc1, cc0 = sp.symbols("c_2 c_1 c_0", real=True)
    roots = sp.solve(cc2 * w**2 + cc1 * w + cc0, w)
    ok = len(roots) == 2
    ev.require("two roots", ok)
    if ok:
        ev.add("Vieta sum", *prove_zero(roots[0] + roots[1] + cc1 / cc2))
        ev.add("Vieta product", *prove_zero(roots[0] * roots[1] - cc0 / cc2))
    # the plant: solve c_i > 0 and compare with the implemented (non-redundant) conditions
    conds = derived_conditions()
    solved = [
        sp.reduce_inequalities([conds[2]], _KI),
        sp.reduce_inequalities([conds[1]], _KP),
        sp.reduce_inequalities([conds[0]], _KP),
    ]
    implemented = [
        sp.reduce_inequalities([_KI > 0], _KI),
        sp.reduce_inequalities([_KP > _KI], _KP),
        sp.reduce_inequalities([_K * (2 * _KP - _KI) < 4], _KP),
    ]
    names = ["p(1) > 0 ⇔ ki > 0", "1 − a₀ > 0 ⇔ kp > ki", "p(−1) > 0 ⇔ k(2kp − ki) < 4"]
    for name, got, want in zip(names, solved, implemented, strict=True):
        ev.require(name, same_relation(got, want), f"derived {got}, implemented {want}")
    return ev.result(
        "(1−w)²p(λ(w)) = p(−1)w² + 2(1−a₀)w + p(1) ⇒ k·ki > 0, k(kp − ki) > 0, 4 − k(2kp − ki) > 0 "
        "⇔ ki > 0, kp > ki, k(2kp − ki) < 4"
    )


@register_check("PI control: k(kp − ki) < 2 is implied by the others (sympy)")
def check_redundant_condition_sympy() -> tuple[Verdict, str]:
    """2 − k(kp − ki) = (4 − k(2kp − ki))/2 + k ki/2, a sum of positives under the other conditions."""
    ev = Evidence()
    ki = sp.Symbol("k_i", real=True)
    kp = sp.Symbol("k_p", real=True)
    ident = 2 - _K * (kp - ki) - ((4 - _K * (2 * kp - ki)) / 2 + _K * ki / 2)
    ev.add("identity", *prove_zero(ident))
    m4, m1 = sp.symbols("m4 m1", positive=True)  # margins 4 − k(2kp − ki) > 0 and k ki > 0
    sum_pos = (m4 / 2 + m1 / 2).is_positive
    ev.require("sum of positive margins > 0", sum_pos is True, f"is_positive = {sum_pos}")
    # the same in kp-form: the p(−1) bound kp < ki/2 + 2/k is tighter than kp < ki + 2/k when ki ≥ 0
    bound_3 = sp.solve(sp.Eq(_K * (2 * kp - ki), 4), kp)[0]
    bound_4 = sp.solve(sp.Eq(_K * (kp - ki), 2), kp)[0]
    gap = sp.simplify(bound_4 - bound_3)
    ev.add("bound gap = ki/2", *prove_zero(gap - ki / 2))
    return ev.result("2 − k(kp − ki) = (4 − k(2kp − ki))/2 + k·ki/2 > 0: the 4th pic condition is redundant")


@register_check("PI control: derived region vs pic.stability.is_stable (numeric grid)")
def check_region_numeric(
    is_stable: Callable = stability.is_stable, jury_conditions: Callable = stability.jury_conditions
) -> tuple[Verdict, str]:
    """Lambdified derived conditions = ``is_stable`` (ki > 0) on a dyadic grid with exact
    boundary cells and on random gains away from the boundary; = ρ(A) < 1 (numpy eigenvalues);
    pic's Jury conditions map one-to-one onto the derived ones, the fourth is implied."""
    ev = Evidence()
    conds = derived_conditions()
    derived_fn = sp.lambdify((_KP, _KI, _K), sp.And(*conds), "numpy")
    margin_fn = sp.lambdify((_KP, _KI, _K), [c.lhs - c.rhs for c in conds], "numpy")
    # dyadic grid: every product below is exact, so boundary cells are decided exactly
    kp_v, ki_v, k_v = np.arange(0, 65) / 16, np.arange(1, 49) / 16, np.array([0.25, 0.5, 1.0, 1.5, 2.0])
    kp_d, ki_d, k_d = (g.ravel() for g in np.meshgrid(kp_v, ki_v, k_v))
    want_d = np.asarray(derived_fn(kp_d, ki_d, k_d), dtype=bool)
    on_edge = np.min(np.abs(np.stack(margin_fn(kp_d, ki_d, k_d))), axis=0) == 0
    bad_d = int((want_d != np.asarray(is_stable(kp_d, ki_d, k_d), dtype=bool)).sum())
    ev.require("dyadic grid", bad_d == 0, f"{bad_d} of {want_d.size} cells differ")
    # random gains, cells within 1e-9 of a boundary excluded
    rng = np.random.default_rng(7)
    kp_r, ki_r, k_r = _sample_gains(rng, 20000)
    margins = np.stack([np.asarray(m, dtype=float) for m in margin_fn(kp_r, ki_r, k_r)])
    keep = np.min(np.abs(margins), axis=0) > 1e-9
    kp_r, ki_r, k_r = kp_r[keep], ki_r[keep], k_r[keep]
    want_r = np.asarray(derived_fn(kp_r, ki_r, k_r), dtype=bool)
    bad_r = int((want_r != np.asarray(is_stable(kp_r, ki_r, k_r), dtype=bool)).sum())
    ev.require("random grid", bad_r == 0, f"{bad_r} of {want_r.size} cells differ")
    # independent ground truth: spectral radius of A
    a = np.zeros((kp_r.size, 2, 2))
    a[:, 0, 0], a[:, 0, 1], a[:, 1, 0], a[:, 1, 1] = 1 - k_r * kp_r, -k_r * ki_r, 1.0, 1.0
    rho = np.abs(np.linalg.eigvals(a)).max(axis=1)
    clear = np.abs(rho - 1) > 1e-7
    bad_rho = int((want_r[clear] != (rho[clear] < 1)).sum())
    ev.require("derived ⇔ ρ(A) < 1", bad_rho == 0, f"{bad_rho} of {int(clear.sum())} cells differ")
    # pic's four conditions against the three derived ones (both grids)
    kp_a, ki_a, k_a = np.concatenate([kp_d, kp_r]), np.concatenate([ki_d, ki_r]), np.concatenate([k_d, k_r])
    jury = {name: np.asarray(v, dtype=bool) for name, v in jury_conditions(kp_a, ki_a, k_a).items()}
    margin_a = [np.asarray(m, dtype=float) > 0 for m in margin_fn(kp_a, ki_a, k_a)]
    matched: set[str] = set()
    for label, derived in zip(("p(−1) > 0", "1 − a₀ > 0", "p(1) > 0"), margin_a, strict=True):
        same = [name for name, v in jury.items() if np.array_equal(v, derived)]
        ev.require(f"{label} is a pic condition", bool(same), f"pic has {sorted(jury)}")
        matched.update(same)
    extra = [name for name in jury if name not in matched]
    derived_all = np.logical_and.reduce(margin_a)
    for name in extra:
        ev.require(f"pic's {name!r} implied by the derived ones", bool(np.all(jury[name][derived_all])))
    return ev.result(
        f"is_stable = derived on {want_d.size} dyadic ({int(on_edge.sum())} on a boundary) + "
        f"{want_r.size} random cells; = ρ(A) < 1; redundant in pic: {', '.join(extra) or 'none'}"
    )


@register_check("PI control: LinearPlant loop → e = 0, S → b/(k·ki) (numeric)")
def check_linear_plant_numeric(controller_cls: Callable = pic.PIController, steps: int = 400) -> tuple[Verdict, str]:
    """`pic.run_loop` with a PI controller on `pic.LinearPlant` follows x_{t+1} = A x_t + (b, 0)
    exactly and converges to e = 0 with the integral at b/(k ki)."""
    ev = Evidence()
    worst_traj, worst_e, worst_s = 0.0, 0.0, 0.0
    # normalised gains (k·kp, k·ki): real poles, complex poles, a negative pole, a slow loop
    for k, b, kkp, kki in [
        (0.8, 0.01, 0.5, 0.05),
        (0.5, -0.02, 1.0, 0.3),
        (2.0, 0.005, 1.5, 0.4),
        (1.2, 0.015, 0.3, 0.02),
    ]:
        kp, ki, target, e0 = kkp / k, kki / k, 1.0, 0.3
        hist = pic.run_loop(
            pic.LinearPlant(k=k, b=b, h0=target + e0),
            controller_cls(kp, ki, target, output_limits=None),
            steps,
        )
        a = np.array([[1 - kkp, -kki], [1.0, 1.0]])
        x, traj = np.array([e0, 0.0]), []
        for _ in range(steps):
            traj.append(x[0])
            x = a @ x + np.array([b, 0.0])
        err = np.asarray(hist.error, dtype=float)
        worst_traj = max(worst_traj, float(np.abs(err - np.array(traj)).max()))
        worst_e = max(worst_e, abs(float(err[-1])))
        s_star = b / (k * ki)
        worst_s = max(worst_s, abs(float(np.asarray(hist.integral)[-1]) - s_star) / abs(s_star))
    ev.require("run_loop = A-recurrence", worst_traj <= 1e-10, f"{worst_traj:.1e}")
    ev.require("e_T → 0", worst_e <= 1e-9, f"{worst_e:.1e}")
    ev.require("S_T → b/(k·ki)", worst_s <= 1e-8, f"rel. {worst_s:.1e}")
    return ev.result(
        f"|e − A-recurrence| ≤ {worst_traj:.0e}; |e_T| ≤ {worst_e:.0e}; "
        f"|S_T − b/(k·ki)|/|S*| ≤ {worst_s:.0e} (4 loops × {steps} steps)"
    )


def _start_state_identify(bandit, logits, config):
    from sim.identify import local_linearisation

    return local_linearisation(bandit, logits, config)


def _lemma_b_gain(bandit, logits, config):
    from sim.identify import lemma_b_gain

    return lemma_b_gain(bandit, logits, config)


@register_check("PI control: off-policy bandit, PI → 0 and P → b/(k·kp) from the start state (numeric)")
def check_bandit_off_policy(
    controller_cls: Callable = pic.PIController,
    steps: int = 300,
    rel_tol: float = 0.25,
    identify: Callable = _start_state_identify,
    lemma_gain: Callable = _lemma_b_gain,
) -> tuple[Verdict, str]:
    """Off-policy exact bandit (4 epochs): PI reaches |e| < 1e-4; P keeps the offset b/(k·kp)
    with k and b identified open-loop at the start state, before the loop runs (``rel_tol``:
    the state moves while P settles, ≈ 14 % here); gains from Lemma B's k_B (first order in
    the M = 4 updates: the identified k must be within 10 % of it)."""
    from sim.plant import BanditPlant

    ev = Evidence()
    op = operating_point()
    cfg = plant_config(4)
    k0, b0 = (float(np.asarray(x).ravel()[0]) for x in identify(op.bandit, op.logits, cfg))
    k_b = float(np.asarray(lemma_gain(op.bandit, op.logits, cfg)).ravel()[0])
    ev.require("identified k = Lemma B's k (10 %)", abs(k0 / k_b - 1) <= 0.10, f"k/k_B = {k0 / k_b:.3f}")
    kp, ki = 0.5 / k_b, 0.05 / k_b
    plant = BanditPlant(op.bandit, np.stack([op.logits, op.logits]), config=cfg)
    ctrl = controller_cls(np.array([kp, kp]), np.array([ki, 0.0]), TARGET)  # loop 0: PI, loop 1: P
    hist = pic.run_loop(plant, ctrl, steps)
    err = np.asarray(hist.entropy, dtype=float)[-1] - TARGET  # LoopHistory.error needs a per-loop target
    ev.require("PI: |e_T| < 1e-4", abs(err[0]) < 1e-4, f"e_T = {err[0]:.1e}")
    pred = b0 / (k0 * kp)
    ratio = float(err[1] / pred) if pred != 0 else np.inf
    ev.require("P: e_T ≈ b/(k·kp)", abs(ratio - 1) <= rel_tol, f"ratio {ratio:.3f}")
    ev.require("P keeps an offset ≫ PI's", abs(err[1]) > 10 * abs(err[0]), f"{err[1]:.1e} vs {err[0]:.1e}")
    return ev.result(
        f"PI e_T = {err[0]:.1e}; P e_T = {err[1]:.2e} vs b/(k·kp) from the start state = {pred:.2e} "
        f"(ratio {ratio:.3f}); k/k_LemmaB = {k0 / k_b:.3f}; {op.grpo_steps} GRPO warm-up steps"
    )
