"""The self-tuning controller (`pic.autotune`): pole placement, its margins and the identification.

- pole placement (sympy): kp = 2(1 − r)/k, ki = (1 − r)²/k make the delay-free characteristic
  polynomial λ² − (2 − k·kp)λ + (1 − k·kp + k·ki) equal to (λ − r)², and `pic.autotune.placed_gains`
  returns exactly these.
- margins: for the designed pole of several settling times, the d = 1 loop satisfies the Jury
  conditions of `pic.robustness.delayed_jury_conditions` for every true gain k ∈ [k̂/m, m·k̂]
  (a dense grid plus the exact bound: along the ray the conditions are polynomial in c = k/k̂, whose
  real roots sympy finds and which lie outside [1/m, m]).
- identification (numeric twin): the closed loop on the linear plant ΔH = b − k·α + w, with the
  excitation the loop itself provides (the start away from the target, process noise), latches
  ``excited`` and keeps k̂ within 30 % of k (forgetting lets it wander once the loop is settled and
  the data carry little information) and α* = b̂/k̂ within 0.05 of b/k, for k from 1e-4 to 1e-1;
  an independent batch least squares on the whole logged data recovers k within 10 %.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from pic import autotune, robustness

from .runner import Evidence, Verdict, register_check
from .symbolic import prove_zero

__all__ = ["check_margins", "check_pole_placement", "check_rls_twin"]


@register_check("Self-tuning: placed gains put both poles at r (sympy) vs pic.autotune")
def check_pole_placement(placed_gains=autotune.placed_gains) -> tuple[Verdict, str]:
    ev = Evidence()
    lam, r, k = sp.symbols("lambda r k", positive=True)
    kp, ki = 2 * (1 - r) / k, (1 - r) ** 2 / k
    char = lam**2 - (2 - k * kp) * lam + (1 - k * kp + k * ki)
    ev.add("charpoly = (λ − r)²", *prove_zero(sp.expand(char - (lam - r) ** 2)))
    rng = np.random.default_rng(3)
    rs, ks = rng.uniform(0.3, 0.99, 200), np.exp(rng.uniform(np.log(1e-5), 0, 200))
    got_kp, got_ki = placed_gains(rs, ks)
    want_kp = np.array([float(kp.subs({r: a, k: b})) for a, b in zip(rs, ks, strict=True)])
    want_ki = np.array([float(ki.subs({r: a, k: b})) for a, b in zip(rs, ks, strict=True)])
    worst = float(max(np.max(np.abs(got_kp / want_kp - 1)), np.max(np.abs(got_ki / want_ki - 1))))
    ev.require("placed_gains = the sympy gains", worst < 1e-12, f"rel. err {worst:.1e}")
    return ev.result(f"(λ − r)² exactly; placed_gains agrees to {worst:.0e} on 200 (r, k̂)")


@register_check("Self-tuning: designed gains inside the delayed Jury region over [k̂/m, m·k̂]")
def check_margins(design_poles=autotune.design_poles) -> tuple[Verdict, str]:
    ev = Evidence()
    c = sp.Symbol("c", positive=True)
    lines = []
    for steps, margin in ((10, 2.0), (20, 2.0), (40, 3.0)):
        r = design_poles(steps, margin, 1)
        kp_n, ki_n = autotune.placed_gains(r, 1.0)
        grid = np.geomspace(1 / margin, margin, 401)
        conds = robustness.delayed_jury_conditions(kp_n, ki_n, grid)
        ev.require(f"n={steps}, m={margin}: Jury on the grid", all(bool(np.all(v)) for v in conds.values()))
        # exact: the boundary of each condition along k = c·k̂ is a root of a polynomial in c
        a, b = sp.nsimplify(float(kp_n), rational=True), sp.nsimplify(float(ki_n), rational=True)
        kpc, kic = a * c, b * c
        exprs = [kic, 4 + 2 * kpc - kic, 1 - (kic - kpc), 1 + (kic - kpc)]
        exprs += [1 - (kic - kpc) ** 2 - (kpc - 2 * kic - 1), 1 - (kic - kpc) ** 2 + (kpc - 2 * kic - 1)]
        roots = [float(x) for e in exprs for x in sp.Poly(sp.expand(e), c).real_roots() if x > 0]
        inside = [x for x in roots if 1 / margin <= x <= margin]
        ev.require(f"n={steps}, m={margin}: no boundary in [1/m, m]", not inside, f"roots {inside}")
        nearest = min(roots, key=lambda x: abs(np.log(x)), default=np.inf)
        lines.append(f"n={steps}: r={r:.3f}, first boundary at k/k̂={nearest:.2f}")
    return ev.result("; ".join(lines))


def _closed_loop_log(k: float, b: float, steps: int, seed: int, controller=autotune.SelfTuningPI):
    ctrl = controller(0.2)
    rng = np.random.default_rng(seed)
    h, hs, alphas = 0.22, [], []
    for _ in range(steps):
        a = ctrl.update(h)
        hs.append(h)
        alphas.append(a)
        h = h + b - k * a + rng.normal(0.0, 0.02 * k)
    return ctrl, np.array(hs), np.array(alphas)


@register_check("Self-tuning: RLS identifies k and b in the closed loop (numeric twin)")
def check_rls_twin(controller=autotune.SelfTuningPI) -> tuple[Verdict, str]:
    ev = Evidence()
    worst_k, worst_star = 0.0, 0.0
    for k in (1e-4, 1e-3, 1e-2, 1e-1):
        for seed in (0, 1):
            ctrl, hs, alphas = _closed_loop_log(k, -0.4 * k, 400, seed, controller)
            # independent batch least squares on the whole log: ΔH = b − k·α
            x = np.stack([np.ones(399), -alphas[:-1]], axis=1)
            (_, k_ls), *_ = np.linalg.lstsq(x, np.diff(hs), rcond=None)
            worst_k = max(worst_k, abs(ctrl.k_hat / k - 1))
            worst_star = max(worst_star, abs(ctrl.alpha_star + 0.4))
            ev.require(f"k={k:g}: k̂ within 30 %", abs(ctrl.k_hat / k - 1) < 0.3, f"k̂={ctrl.k_hat:.3g}")
            ev.require(f"k={k:g}: α* within 0.05 of b/k", abs(ctrl.alpha_star + 0.4) < 0.05)
            ev.require(f"k={k:g}: batch LS within 10 %", abs(k_ls / k - 1) < 0.1, f"k_LS={k_ls:.3g}")
            ev.require(f"k={k:g}: excited", bool(ctrl.excited))
    return ev.result(f"k = 1e-4…1e-1, 2 seeds: |k̂/k − 1| ≤ {worst_k:.3f}, |α* − b/k| ≤ {worst_star:.3f}")
