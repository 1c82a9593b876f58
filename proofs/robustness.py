"""Robustness of the PI entropy loop: measurement delay, varying gain, noise and ramp drift.

Each claim of `pic.robustness` is derived with sympy and mirrored by a simulation that does
not use the derived formula (a delayed controller in a loop, random switching, a noisy loop,
a drifting plant):

- delay d: p_d(z) = z^d (z − 1)² + K_p (z − 1) + K_i from the z-transform; for d = 1 the
  bilinear map and the Routh–Hurwitz test of a cubic give the Jury region; a delayed
  `pic.PIController` loop diverges exactly where ``is_stable(..., delay=d)`` says.
- varying gain: a common quadratic Lyapunov function certifies a band of gains (random
  switching decays); the cycle 3k, k/3, k/3, k/3 with K_p = 0.6, K_i = 0.3 grows by 1.155 per
  step (exact sympy eigenvalues) although every frozen gain is stable.
- noise: the stationary covariance solved symbolically vs `pic.robustness.noise_gain` vs the
  sample variance of a simulated noisy loop.
- ramp drift: PI settles at r/(k·ki) (affine ansatz, sympy) and in simulation; P's error grows.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import numpy as np
import sympy as sp

import pic
from pic import robustness, stability

from .runner import Evidence, Verdict, register_check
from .symbolic import prove_zero

__all__ = [
    "check_delay_charpoly_sympy",
    "check_delay_jury_sympy",
    "check_delay_simulation",
    "check_noise_gain",
    "check_ramp_drift",
    "check_varying_gain",
    "simulate_delayed",
]

log = logging.getLogger(__name__)

_KP_N, _KI_N = sp.symbols("K_p K_i", positive=True)
_Z = sp.Symbol("z")


def simulate_delayed(kp, ki, k, delay: int, *, steps: int, e0: float = 0.1, b=0.0, noise=None, k_seq=None):
    """Errors of `pic.PIController` (no output limits) on H_{t+1} = H_t + b_t − k_t·α_t when
    the controller at step t is given the entropy measured ``delay`` steps earlier.

    Vectorised over gain arrays; ``b`` may be a callable of t; ``noise`` an array (steps, ...)
    added to the measurement; ``k_seq`` a callable t ↦ gain multiplier. Returns (steps, ...).
    """
    kp, ki, k = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (kp, ki, k)))
    target = 1.0
    ctrl = pic.PIController(kp, ki, target, output_limits=None, on_nonfinite="hold")
    h = np.full(kp.shape, target + e0)
    seen: deque = deque([h.copy()] * delay, maxlen=delay + 1)
    out = np.empty((steps, *kp.shape))
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps):
            out[t] = h - target
            measured = h + (0.0 if noise is None else noise[t])
            seen.append(measured)
            alpha = np.asarray(ctrl.update(seen[0]), dtype=float)
            drift = b(t) if callable(b) else b
            gain = k * (1.0 if k_seq is None else k_seq(t))
            h = h + drift - gain * alpha
    return out


def _bilinear(poly: sp.Expr, degree: int) -> list[sp.Expr]:
    """Coefficients (highest first) of (1 − w)^n · poly((1 + w)/(1 − w)), n = degree."""
    w = sp.Symbol("w")
    q = sp.expand(sp.cancel(poly.subs(_Z, (1 + w) / (1 - w)) * (1 - w) ** degree))
    return sp.Poly(q, w).all_coeffs()


@register_check("Delay: p_d(z) = z^d(z−1)² + K_p(z−1) + K_i (sympy) vs pic.robustness")
def check_delay_charpoly_sympy(char_poly: Callable = robustness.delayed_char_poly) -> tuple[Verdict, str]:
    """From the z-transform of e_{t+1} = e_t − k α_t, α = z^{−d}(kp + ki/(z − 1))E, for d = 0..3;
    pic's coefficients agree (PI and P); d = 0 is `pic.stability`'s λ² − (2 − K_p)λ + 1 − K_p + K_i."""
    ev = Evidence()
    kk, kp, ki = sp.symbols("k k_p k_i", positive=True)
    worst = 0.0
    rng = np.random.default_rng(11)
    for d in range(4):
        controller = _Z ** (-d) * (kp + ki / (_Z - 1))
        # loop equation (z − 1) E = −k · controller · E  ⇒  numerator of (z − 1) + k·controller
        num = sp.numer(sp.together((_Z - 1) + kk * controller))
        poly = sp.Poly(sp.expand(num), _Z)
        lead = poly.LC()
        derived = sp.expand(poly.as_expr() / lead)
        claimed = _Z**d * (_Z - 1) ** 2 + kk * kp * (_Z - 1) + kk * ki
        ev.add(f"d={d}: derived = claimed", *prove_zero(derived - claimed))
        if d == 0:
            ev.add("d=0: = pic.stability", *prove_zero(derived - (_Z**2 - (2 - kk * kp) * _Z + 1 - kk * kp + kk * ki)))
        p_claim = _Z**d * (_Z - 1) + kk * kp  # P loop, the integral's root z = 1 removed
        p_num = sp.numer(sp.together((_Z - 1) + kk * kp * _Z ** (-d)))
        ev.add(f"d={d}: P loop", *prove_zero(sp.expand(p_num) - sp.expand(p_claim)))
        coeff_fn = sp.lambdify((kp, ki, kk), sp.Poly(claimed, _Z).all_coeffs(), "numpy")
        p_fn = sp.lambdify((kp, kk), sp.Poly(p_claim, _Z).all_coeffs(), "numpy")
        g_kp, g_ki, g_k = rng.uniform(0, 3, 50), rng.uniform(0.01, 2, 50), 10 ** rng.uniform(-2, 1, 50)
        want = np.stack([np.broadcast_to(np.asarray(c, float), g_kp.shape) for c in coeff_fn(g_kp, g_ki, g_k)], -1)
        got = np.asarray(char_poly(g_kp, g_ki, g_k, d), dtype=float)
        worst = max(worst, float(np.abs(got - want).max()) if got.shape == want.shape else np.inf)
        want_p = np.stack([np.broadcast_to(np.asarray(c, float), g_kp.shape) for c in p_fn(g_kp, g_k)], -1)
        got_p = np.asarray(char_poly(g_kp, 0.0, g_k, d), dtype=float)
        worst = max(worst, float(np.abs(got_p[..., 1:] - want_p).max()) if got_p.shape[-1] == d + 3 else np.inf)
    ev.require("pic delayed_char_poly = derived (d = 0..3, PI and P)", worst <= 1e-12, f"max gap {worst:.1e}")
    return ev.result(f"z-transform ⇒ z^d(z−1)² + K_p(z−1) + K_i for d = 0..3; pic agrees to {worst:.0e}")


@register_check("Delay d=1: Jury region (bilinear + Routh–Hurwitz, sympy) vs pic")
def check_delay_jury_sympy(
    jury: Callable = robustness.delayed_jury_conditions, is_stable: Callable = stability.is_stable
) -> tuple[Verdict, str]:
    """Map the unit disc to Re w < 0 and apply the cubic Routh–Hurwitz test (all c_i > 0 and
    c₂c₁ > c₃c₀) to p₁(z); the region equals pic's four d = 1 conditions and
    ``is_stable(..., delay=1)`` on random gains, and the P loop's bound is K_p < 1."""
    ev = Evidence()
    p1 = _Z**3 - 2 * _Z**2 + (1 + _KP_N) * _Z + (_KI_N - _KP_N)
    c3, c2, c1, c0 = _bilinear(p1, 3)
    ev.add("c₃ = −p(−1)", *prove_zero(c3 + p1.subs(_Z, -1)))
    ev.add("c₀ = p(1) = K_i", *prove_zero(c0 - _KI_N))
    # sum of coefficients = 8 (w = 1 ↔ z = ∞): all positive is the only admissible sign pattern
    ev.add("c₃ + c₂ + c₁ + c₀ = 8", *prove_zero(c3 + c2 + c1 + c0 - 8))
    hurwitz = [c3, c2, c1, c0, c2 * c1 - c3 * c0]  # Routh–Hurwitz: all > 0
    margin_fn = sp.lambdify((_KP_N, _KI_N), hurwitz, "numpy")
    rng = np.random.default_rng(12)
    kp_n, ki_n = rng.uniform(0, 2.5, 40000), rng.uniform(1e-3, 1.5, 40000)
    margins = np.stack([np.broadcast_to(np.asarray(m, float), kp_n.shape) for m in margin_fn(kp_n, ki_n)])
    keep = np.min(np.abs(margins), 0) > 1e-9
    kp_n, ki_n = kp_n[keep], ki_n[keep]
    want = np.all(margins[:, keep] > 0, axis=0)
    got_j = np.logical_and.reduce([np.asarray(v, bool) for v in jury(kp_n, ki_n, 1.0).values()])
    got_s = np.asarray(is_stable(kp_n, ki_n, 1.0, delay=1), dtype=bool)
    # independent ground truth: numpy roots of the cubic
    roots = np.array(
        [np.abs(np.roots([1, -2, 1 + a, c - a])).max() for a, c in zip(kp_n[:3000], ki_n[:3000], strict=True)]
    )
    clear = np.abs(roots - 1) > 1e-7
    ev.require(
        "Routh–Hurwitz = pic Jury conditions", np.array_equal(want, got_j), f"{int((want != got_j).sum())} differ"
    )
    ev.require("= is_stable(delay=1)", np.array_equal(want, got_s), f"{int((want != got_s).sum())} differ")
    ev.require("= max|root| < 1", np.array_equal(want[:3000][clear], roots[clear] < 1))
    frac_d1 = float(want.mean())
    frac_d0 = float(np.asarray(stability.is_stable(kp_n, ki_n, 1.0), bool).mean())
    ev.require("the delay shrinks the region", frac_d1 < 0.5 * frac_d0, f"{frac_d1:.3f} vs {frac_d0:.3f}")
    # P loop with one step of delay: z² − z + K_p ⇒ 0 < K_p < 1
    x = sp.Symbol("x", real=True)
    pc2, pc1, pc0 = _bilinear(_Z**2 - _Z + x, 2)
    region = sp.Intersection(*(sp.solve_univariate_inequality(c > 0, x, relational=False) for c in (pc2, pc1, pc0)))
    ev.require("P, d=1: 0 < K_p < 1", region == sp.Interval.open(0, 1), f"solver gave {region}")
    p_grid = np.arange(1, 48) / 16
    bad = int((np.asarray(is_stable(p_grid, 0.0, 1.0, delay=1), bool) != (p_grid < 1)).sum())
    ev.require("is_stable(kp, 0, k, delay=1) ⇔ k·kp < 1", bad == 0, f"{bad} differ")
    return ev.result(
        f"d=1 region = Routh–Hurwitz of the w-cubic on {want.size} gains; it holds {frac_d1:.1%} of the "
        f"sampled box vs {frac_d0:.1%} without delay; P: 0 < K_p < 1"
    )


@register_check("Delay: delayed PIController loop diverges where is_stable(delay=d) says (numeric)")
def check_delay_simulation(is_stable: Callable = stability.is_stable, steps: int = 3000) -> tuple[Verdict, str]:
    """`pic.PIController` fed the entropy of d steps earlier, on the linear plant: for d = 1, 2 and
    random normalised gains away from the boundary (|ρ − 1| > 0.01), |e_T| < 1e-6 where
    ``is_stable(..., delay=d)`` holds and |e_T| > 1 where it does not."""
    ev = Evidence()
    rng = np.random.default_rng(13)
    total, wrong = 0, 0
    for d in (1, 2):
        kp_n, ki_n = rng.uniform(0.02, 1.6, 600), rng.uniform(0.0, 0.8, 600)
        ki_n[:60] = 0.0  # P loops too
        rho = np.nanmax(np.abs(robustness.delayed_poles(kp_n, ki_n, 1.0, d)), axis=-1)
        keep = (np.abs(rho - 1) > 0.01) & (rho < 0.995)
        keep |= rho > 1.01
        kp_n, ki_n = kp_n[keep], ki_n[keep]
        claim = np.asarray(is_stable(kp_n, ki_n, 1.0, delay=d), dtype=bool)
        e = simulate_delayed(kp_n, ki_n, 1.0, d, steps=steps, e0=0.1)
        last = np.abs(e[-1])
        sim_stable = last < 1e-6
        sim_unstable = ~(last < 1.0)  # nan/inf count as diverged
        wrong += int((claim & ~sim_stable).sum() + (~claim & ~sim_unstable).sum())
        total += claim.size
        ev.require(f"d={d}: both outcomes occur", claim.any() and (~claim).any())
    ev.require("simulation = is_stable(delay=d)", wrong == 0, f"{wrong} of {total} gain pairs disagree")
    return ev.result(f"{total} delayed loops (d = 1, 2, PI and P): converge exactly where is_stable(delay=d)")


@register_check("Varying gain: common Lyapunov certificate and a diverging switching cycle")
def check_varying_gain(
    common_lyapunov: Callable = robustness.common_lyapunov, is_stable: Callable = stability.is_stable
) -> tuple[Verdict, str]:
    """K_p = 0.6, K_i = 0.3: every frozen k ∈ [1/3, 3] is stable, yet the cycle 3, 1/3, 1/3, 1/3
    grows (exact ρ of the product, sympy); a random switching sequence of the same band is
    simulated. For k ∈ [0.8, 1.25] a common P ≻ 0 is found and random switching decays."""
    ev = Evidence()
    kp, ki = 0.6, 0.3
    ks = np.linspace(1 / 3, 3, 200)
    ev.require("frozen gains in [k/3, 3k] all stable", bool(np.all(is_stable(kp, ki, ks))))
    third, three = sp.Rational(1, 3), sp.Integer(3)

    def a_exact(kk):
        return sp.Matrix([[1 - kk * sp.Rational(3, 5), -kk * sp.Rational(3, 10)], [1, 1]])

    prod = a_exact(third) ** 3 * a_exact(three)
    lam = sp.Symbol("lambda")
    roots = sp.Poly(prod.charpoly(lam).as_expr(), lam).nroots(n=30)
    rho = max(abs(complex(r)) for r in roots)
    growth = rho**0.25
    ev.require("cycle (3, 1/3, 1/3, 1/3) grows", growth > 1.1, f"ρ^(1/4) = {growth:.4f}")
    worst, seq = robustness.worst_periodic_growth(kp, ki, 1 / 3, 3.0, max_period=4)
    ev.require("worst_periodic_growth finds it", abs(worst - growth) < 1e-9, f"{worst:.4f} for {seq}")
    cert = common_lyapunov(kp, ki, 1 / 3, 3.0)
    ev.require("no Lyapunov certificate for the diverging band", cert is None)
    # the same cycle in a PIController loop: |e| grows at the predicted rate
    cycle = [3.0, 1 / 3, 1 / 3, 1 / 3]
    e = simulate_delayed(kp, ki, 1.0, 0, steps=201, e0=1e-6, k_seq=lambda t: cycle[t % 4])
    rate = float((np.abs(e[200]) / np.abs(e[100])) ** (1 / 100))
    ev.require("simulated growth = ρ^(1/4)", abs(rate - growth) < 0.01, f"{rate:.4f} vs {growth:.4f}")
    # a narrower band is certified, and random switching inside it decays
    cert = common_lyapunov(kp, ki, 0.8, 1.25)
    ok = cert is not None
    ev.require("certificate for k ∈ [0.8, 1.25]", ok)
    if ok:
        mats = [stability.closed_loop_matrix(kp, ki, kk) for kk in np.linspace(0.8, 1.25, 11)]
        worst_margin = min(float(np.linalg.eigvalsh(cert - a.T @ cert @ a).min()) for a in mats)
        ev.require("certificate holds between the vertices", worst_margin > 0, f"min eig {worst_margin:.1e}")
        rng = np.random.default_rng(14)
        mult = rng.choice([0.8, 1.25], size=(600, 64))
        e = simulate_delayed(np.full(64, kp), ki, 1.0, 0, steps=600, e0=0.1, k_seq=lambda t: mult[t])
        ev.require(
            "64 random switching sequences decay", float(np.abs(e[-1]).max()) < 1e-6, f"{np.abs(e[-1]).max():.1e}"
        )
    return ev.result(
        f"K_p = 0.6, K_i = 0.3: frozen k ∈ [1/3, 3] stable, cycle 3,⅓,⅓,⅓ grows ×{growth:.3f}/step "
        f"(simulated ×{rate:.3f}); common P ≻ 0 certifies k ∈ [0.8, 1.25]"
    )


@register_check("Noise: Var e, Var α of the loop (sympy Lyapunov) vs pic vs simulation")
def check_noise_gain(noise_gain: Callable = robustness.noise_gain, steps: int = 20000) -> tuple[Verdict, str]:
    """Solve Σ = AΣAᵀ + g gᵀ symbolically; P: Var e/σ² = K_p/(2 − K_p); pic.noise_gain agrees;
    the sample variances of a noisy `PIController` loop match within 6 %."""
    ev = Evidence()
    s11, s12, s22 = sp.symbols("s11 s12 s22")
    kk = sp.Symbol("k", positive=True)
    kp, ki = sp.symbols("k_p k_i", nonnegative=True)
    a = sp.Matrix([[1 - kk * kp, -kk * ki], [1, 1]])
    g = sp.Matrix([-kk * kp, 1])
    sig = sp.Matrix([[s11, s12], [s12, s22]])
    eqs = list(sig - a * sig * a.T - g * g.T)
    sol = sp.solve([eqs[0], eqs[1], eqs[3]], [s11, s12, s22], dict=True)[0]
    c = sp.Matrix([kp, ki])
    var_alpha = sp.simplify((c.T * sig * c)[0].subs(sol) + kp**2)
    var_e = sp.simplify(sol[s11])
    x = sp.Symbol("x", positive=True)
    p_case = sp.simplify(sp.limit(var_e, ki, 0).subs(kp, x / kk))
    ev.add("P: Var e/σ² = K_p/(2 − K_p)", *prove_zero(p_case - x / (2 - x)))
    fn = sp.lambdify((kp, ki, kk), (var_e, var_alpha), "numpy")
    rng = np.random.default_rng(15)
    kp_n, ki_n, k = rng.uniform(0.1, 1.5, 300), rng.uniform(0.01, 0.6, 300), 10 ** rng.uniform(-2, 1, 300)
    inside = np.asarray(stability.is_stable(kp_n, ki_n, 1.0), bool)
    kp_g, ki_g, k = kp_n[inside] / k[inside], ki_n[inside] / k[inside], k[inside]
    want_e, want_a = (np.asarray(v, float) for v in fn(kp_g, ki_g, k))
    got_e, got_a = (np.asarray(v, float) for v in noise_gain(kp_g, ki_g, k))
    gap = float(max(np.abs(got_e / want_e - 1).max(), np.abs(got_a / want_a - 1).max()))
    ev.require("pic.noise_gain = derived", gap <= 1e-8, f"max rel. gap {gap:.1e}")
    # simulation: white noise σ = 0.003 nats on the measurement
    sigma = 0.003
    cases = [(0.5, 0.0, 0.02), (0.5, 0.1, 0.02), (1.2, 0.4, 0.5), (0.3, 0.05, 2.0)]  # (K_p, K_i, k)
    kp_s = np.array([c[0] / c[2] for c in cases])
    ki_s = np.array([c[1] / c[2] for c in cases])
    k_s = np.array([c[2] for c in cases])
    noise = rng.normal(0, sigma, size=(steps, 4))
    e = simulate_delayed(kp_s, ki_s, k_s, 0, steps=steps, e0=0.0, noise=noise)
    ctrl_alpha = kp_s * (e + noise)  # P part; the I part is reconstructed below
    s = np.cumsum(np.vstack([np.zeros((1, 4)), (e + noise)[:-1]]), axis=0)
    alpha = ctrl_alpha + ki_s * s
    burn = 2000
    var_e_sim = e[burn:].var(axis=0) / sigma**2
    var_a_sim = alpha[burn:].var(axis=0) / sigma**2
    want_e, want_a = (np.asarray(v, float) for v in noise_gain(kp_s, ki_s, k_s))
    rel = float(max(np.abs(var_e_sim / want_e - 1).max(), np.abs(var_a_sim / want_a - 1).max()))
    ev.require("simulated variances match (6 %)", rel <= 0.06, f"worst rel. gap {rel:.3f}")
    # the example: kp ≈ 366 turns 0.003 nats of noise into an α spread of about kp·σ
    std_alpha = float(np.sqrt(noise_gain(366.0, 0.0, 1e-3)[1])) * sigma
    return ev.result(
        f"Σ = AΣAᵀ + ggᵀ solved; pic = derived to {gap:.0e}; simulated Var e, Var α within {rel:.1%} "
        f"({steps} steps, σ = {sigma}); kp = 366, k = 1e-3: std α = {std_alpha:.2f} per 0.003 nats"
    )


@register_check("Ramp drift: PI settles at r/(k·ki), P's error grows (sympy + numeric)")
def check_ramp_drift(ramp_error: Callable = robustness.ramp_error) -> tuple[Verdict, str]:
    """The affine steady state e_t = e*, S_t = S₀ + e*·t of x_{t+1} = A x_t + (b₀ + r t, 0) has
    e* = r/(k·ki) (sympy); pic.ramp_error and a `PIController` loop agree; P drifts away linearly."""
    ev = Evidence()
    kk, ki, kp = sp.symbols("k k_i k_p", positive=True)
    r, b0, t = sp.symbols("r b_0 t", real=True)
    e_star, s0 = sp.symbols("e_star S_0", real=True)
    e_t, s_t = e_star, s0 + e_star * t
    alpha_t = kp * e_t + ki * s_t
    residual = sp.expand(e_t + b0 + r * t - kk * alpha_t - e_star)  # e_{t+1} − e* must vanish for all t
    sol = sp.solve(sp.Poly(residual, t).all_coeffs(), [e_star, s0], dict=True)
    ok = len(sol) == 1
    ev.require("unique affine steady state", ok, f"{sol}")
    if ok:
        ev.add("e* = r/(k·ki)", *prove_zero(sol[0][e_star] - r / (kk * ki)))
    cases = [(0.5, 0.1, 0.2, 2e-4), (1.0, 0.3, 0.05, -1e-4), (0.3, 0.02, 1.0, 5e-5)]  # (K_p, K_i, k, r)
    worst, delayed = 0.0, 0
    for kpn, kin, k, rate in cases:
        e = simulate_delayed(kpn / k, kin / k, k, 0, steps=3000, e0=0.05, b=lambda t, rate=rate: -0.01 + rate * t)
        want = float(ramp_error(kpn / k, kin / k, k, rate))
        worst = max(worst, abs(e[-1] / want - 1))
        if stability.is_stable(kpn, kin, 1.0, delay=1):  # one step of delay leaves the same e*
            e1 = simulate_delayed(kpn / k, kin / k, k, 1, steps=3000, e0=0.05, b=lambda t, rate=rate: -0.01 + rate * t)
            worst = max(worst, abs(e1[-1] / want - 1))
            delayed += 1
    ev.require("a delayed loop is among the cases", delayed > 0)
    ev.require("simulated e_T = ramp_error (d = 0 and 1)", worst <= 1e-6, f"worst rel. gap {worst:.1e}")
    e_p = simulate_delayed(0.5 / 0.2, 0.0, 0.2, 0, steps=3000, e0=0.0, b=lambda t: 2e-4 * t)
    ev.require("P: error grows linearly", e_p[-1] > 1.9 * e_p[1500] > 0, f"{e_p[1500]:.2e} → {e_p[-1]:.2e}")
    ev.require("pic: P ramp error infinite", bool(np.isinf(ramp_error(2.5, 0.0, 0.2, 2e-4))))
    return ev.result(f"e* = r/(k·ki) (sympy); simulation matches to {worst:.0e}; P's error grows ∝ t")
