"""P control of the linearised entropy loop.

Plant e_{t+1} = e_t + b − k α_t (k > 0) with the P law α_t = kp e_t. With x = k·kp::

    e_{t+1} = (1 − x) e_t + b   ⇒   e_t = (1 − x)^t (e_0 − e_ss) + e_ss,   e_ss = b / (k kp)

so e_t converges (for every e_0) iff |1 − x| < 1 ⇔ 0 < k·kp < 2, and then to a
*nonzero* error b/(k kp) whenever the drift b ≠ 0: P control cannot hold the target
against a drift.
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
from .symbolic import prove_zero

__all__ = [
    "check_closed_form_sympy",
    "check_linear_plant_numeric",
    "check_on_policy_bandit",
    "check_stability_sympy",
    "closed_form",
    "dyadic_grid",
]

log = logging.getLogger(__name__)


def closed_form(e0: float, b: float, k: float, kp: float, steps: int) -> np.ndarray:
    """e_0..e_{steps−1} of the P loop from the closed form (numpy)."""
    x = k * kp
    ess = b / x
    return (1 - x) ** np.arange(steps) * (e0 - ess) + ess


def dyadic_grid(n_kp: int = 65, n_k: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """(kp, k) meshes of multiples of 1/16: products are exact floats and hit 0 and 2 exactly."""
    kp = np.arange(n_kp) / 16.0
    k = np.arange(1, n_k + 1) / 16.0
    return np.meshgrid(kp, k)


@register_check("P control: closed form and e_ss (sympy rsolve) vs pic.stability")
def check_closed_form_sympy(
    steady_state_error: Callable = stability.steady_state_error,
) -> tuple[Verdict, str]:
    """rsolve gives e_t = (1 − x)^t (e_0 − e_ss) + e_ss, the fixed point is b/x, and
    ``steady_state_error(kp, 0, k, b)`` equals b/(k kp) inside the stable region, NaN outside."""
    ev = Evidence()
    x = sp.Symbol("x", positive=True)
    b, e0 = sp.symbols("b e_0", real=True)
    t = sp.Symbol("t", integer=True, nonnegative=True)
    e = sp.Function("e")
    sol = sp.rsolve(e(t + 1) - (1 - x) * e(t) - b, e(t), {e(0): e0})
    if sol is None:
        ev.add("rsolve", Verdict.UNDECIDED, "rsolve returned None")
        return ev.result("")
    ess_sym = sp.solve(sp.Eq(e(t), (1 - x) * e(t) + b), e(t))[0]
    ev.add("e_ss = b/x (fixed point)", *prove_zero(ess_sym - b / x))
    ev.add("rsolve = closed form", *prove_zero(sol - ((1 - x) ** t * (e0 - b / x) + b / x)))
    # against the project: b/(k·kp) on a stable dyadic grid, NaN where unstable
    kk, kp, bb = sp.Symbol("k", positive=True), sp.Symbol("k_p", nonnegative=True), sp.Symbol("b", real=True)
    ess_fn = sp.lambdify((kp, kk, bb), ess_sym.subs({x: kk * kp, b: bb}), "numpy")
    kp_g, k_g = dyadic_grid()
    rng = np.random.default_rng(5)
    b_g = rng.uniform(-0.2, 0.2, size=kp_g.shape)
    stable = (k_g * kp_g > 0) & (k_g * kp_g < 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.where(stable, ess_fn(kp_g, k_g, b_g), np.nan)
    got = np.asarray(steady_state_error(kp_g, 0.0, k_g, b_g), dtype=float)
    nan_mismatch = int((np.isnan(got) != np.isnan(want)).sum())
    both = np.isfinite(got) & np.isfinite(want)
    rel_gap = float((np.abs(got - want)[both] / np.maximum(np.abs(want[both]), 1e-300)).max())
    ev.require("NaN exactly where unstable", nan_mismatch == 0, f"{nan_mismatch} cells differ")
    ev.require("pic e_ss = b/(k·kp)", rel_gap <= 1e-12, f"max rel. gap {rel_gap:.1e}")
    return ev.result(f"rsolve: e_t = (1 − x)^t (e₀ − b/x) + b/x, x = k·kp; pic e_ss = b/(k·kp) on {kp_g.size} gains")


@register_check("P control: 0 < k·kp < 2 (sympy inequality) vs pic.stability.is_stable")
def check_stability_sympy(is_stable: Callable = stability.is_stable) -> tuple[Verdict, str]:
    """Solve |1 − x| < 1 for x = k·kp and compare with ``is_stable(kp, 0, k)`` on a dyadic grid
    that contains the boundaries k·kp ∈ {0, 2} exactly."""
    ev = Evidence()
    x = sp.Symbol("x", real=True)
    region = sp.solve_univariate_inequality(sp.Abs(1 - x) < 1, x, relational=False)
    ev.require("|1 − x| < 1 ⇔ x ∈ (0, 2)", region == sp.Interval.open(0, 2), f"solver gave {region}")
    kk, kp = sp.Symbol("k", positive=True), sp.Symbol("k_p", nonnegative=True)  # kp = 0 is allowed
    cond = region.as_relational(x).subs(x, kk * kp)
    derived = sp.lambdify((kp, kk), cond, "numpy")
    kp_g, k_g = dyadic_grid()
    want = np.asarray(derived(kp_g, k_g), dtype=bool)
    got = np.asarray(is_stable(kp_g, 0.0, k_g), dtype=bool)
    bad = int((want != got).sum())
    ev.require("is_stable(kp, 0, k) matches", bad == 0, f"{bad} of {want.size} cells differ")
    return ev.result(f"derived {region} for k·kp; is_stable agrees on {want.size} cells incl. k·kp = 0, 2")


@register_check("P control: LinearPlant loop = closed form (numeric)")
def check_linear_plant_numeric(controller_cls: Callable = pic.PIController, tol: float = 1e-10) -> tuple[Verdict, str]:
    """`pic.run_loop` with a P controller on `pic.LinearPlant` follows the closed form."""
    ev = Evidence()
    steps = 80
    worst = 0.0
    cases = [(0.8, 0.01, 0.5), (0.5, -0.02, 1.2), (2.0, 0.005, 0.8), (1.0, 0.0, 1.0), (0.3, 0.01, 0.2)]
    for k, b, kp in cases:  # k·kp = 0.4, 0.6, 1.6 (oscillating), 1.0 (deadbeat), 0.06 (slow)
        target, e0 = 1.0, 0.4
        ctrl = controller_cls(kp, 0.0, target, output_limits=None)
        hist = pic.run_loop(pic.LinearPlant(k=k, b=b, h0=target + e0), ctrl, steps)
        want = closed_form(e0, b, k, kp, steps)
        gap = float(np.abs(np.asarray(hist.error, dtype=float) - want).max())
        worst = max(worst, gap)
        ev.require(f"k={k}, kp={kp}", gap <= tol, f"max gap {gap:.1e}")
    return ev.result(f"max |e_t − closed form| = {worst:.1e} over {len(cases)} loops × {steps} steps")


def _start_state_identify(bandit, logits, config):
    from sim.identify import local_linearisation

    return local_linearisation(bandit, logits, config)


def _lemma_b_gain(bandit, logits, config):
    from sim.identify import lemma_b_gain

    return lemma_b_gain(bandit, logits, config)


@register_check("P control: on-policy bandit settles at b/(k·kp), k and b from the start state (numeric)")
def check_on_policy_bandit(
    controller_cls: Callable = pic.PIController,
    steps: int = 300,
    rel_tol: float = 0.1,
    identify: Callable = _start_state_identify,
    lemma_gain: Callable = _lemma_b_gain,
) -> tuple[Verdict, str]:
    """Not circular: k and b are identified *before* the loop runs (open-loop, α = 0, at the
    start state), kp = 0.5/k_B is set from Lemma B's predicted gain k_B (no plant run), and
    the settled error of the P loop is compared with b/(k·kp) (``rel_tol``). Lemma B is linked
    to the plant: the identified k must equal k_B = η·Σ_{π_a>τ} π_a(|A⁺| + |A⁻|)·B(a) within 5 %."""
    from sim.plant import BanditPlant

    ev = Evidence()
    op = operating_point()
    cfg = plant_config(1)
    k0, b0 = (float(np.asarray(x).ravel()[0]) for x in identify(op.bandit, op.logits, cfg))
    k_b = float(np.asarray(lemma_gain(op.bandit, op.logits, cfg)).ravel()[0])
    ev.require("identified k = Lemma B's k (5 %)", abs(k0 / k_b - 1) <= 0.05, f"k/k_B = {k0 / k_b:.3f}")
    kp = 0.5 / k_b
    plant = BanditPlant(op.bandit, op.logits, loops=1, config=cfg)
    hist = pic.run_loop(plant, controller_cls(kp, 0.0, TARGET), steps)
    err = np.asarray(hist.entropy, dtype=float).reshape(steps) - TARGET
    pred = b0 / (k0 * kp)
    ratio = float(err[-1] / pred) if pred != 0 else np.inf
    settled = abs(err[-1] - err[-11]) <= 1e-2 * abs(err[-1])
    ev.require("settled", settled, f"|e_T − e_(T−10)| = {abs(err[-1] - err[-11]):.1e}")
    ev.require("e_T ≈ b/(k·kp)", abs(ratio - 1) <= rel_tol, f"ratio {ratio:.3f}")
    ev.require("e_T ≠ 0 (drift)", abs(err[-1]) > 1e-6, f"e_T = {err[-1]:.2e}")
    return ev.result(
        f"e_T = {err[-1]:.2e} nats (target {TARGET}); b/(k·kp) from the start state = {pred:.2e}, "
        f"ratio {ratio:.3f}; k/k_LemmaB = {k0 / k_b:.3f}"
    )
