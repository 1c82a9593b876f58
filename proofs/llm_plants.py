"""Checks on the LLM-like bandit plants of `sim.rich_plant` (many contexts, Adam, clipping, noise).

- PPO clip: in an off-policy regime where the clip *fires on confident arms*, the α-term of the
  update must not be switched off by the clip (the official code multiplies it by the unclipped
  ratio, outside the clip). ∂(update)/∂α is compared with the clip-free formula
  η·π(δm − Σπδm), δm_a = 1[π_a > τ](p_a P₁ − (1 − p_a) N₀).
- Jury on Adam: the multi-context plant trained by Adam with gradient clipping, identified from
  its full state (logits + moments); PI loops at normalised gains inside and outside the delay-free
  region converge or not as predicted, away from the boundary.
- Noise: with the entropy measured from the sampled batch, the loop's Var α matches
  `pic.robustness.noise_gain` with the estimator's σ² measured separately.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import numpy as np

import pic
from pic import robustness, stability

from .runner import Evidence, Verdict, register_check

__all__ = ["CLIP_REGIME", "check_clip_keeps_alpha_term", "check_jury_on_adam_plant", "check_noise_on_sampled_entropy"]

log = logging.getLogger(__name__)


def _clip_regime():
    from sim.plant import PlantConfig

    return PlantConfig(lr=2.0, tau=0.7, epochs=4)


CLIP_REGIME = "SGD η = 2, τ = 0.7, 4 epochs, 32 contexts × 20 arms"
"""An off-policy regime in which the PPO clip fires on confident arms (≈ 10 % of their mass at α = 1)."""


def _default_step():
    from sim.plant import expected_logit_step

    return expected_logit_step


@register_check("PPO clip: the α-term survives where the clip fires on confident arms (numeric)")
def check_clip_keeps_alpha_term(step_fn: Callable | None = None, delta: float = 1e-4) -> tuple[Verdict, str]:
    """Run the clip regime, then differentiate ``step_fn`` in α at the states of the last update;
    it must equal the clip-free formula, and the clip must actually be active on confident arms."""
    from sim.plant import _clip_masks
    from sim.rich_plant import RichConfig, RichPlant, spread_problem

    step_fn = step_fn or _default_step()
    ev = Evidence()
    bandit, z = spread_problem(32, 20, seed=0)
    pc = _clip_regime()
    plant = RichPlant(bandit, z, config=RichConfig(plant=pc), step_fn=step_fn)
    p = bandit.success
    worst, fired = 0.0, 0.0
    for _ in range(3):
        u_old = plant.logits()
        pi_old = np.exp(u_old)
        plant.step(1.0)
        u = plant.logits()
        pi = np.exp(u)
        p1, n0 = plant._moments((pi_old * p).sum(-1, keepdims=True))
        pos, neg = p * p1, (1.0 - p) * n0
        unit = dataclasses.replace(pc, lr=1.0)
        hi = step_fn(pi, u - u_old, pi_old, pos, neg, np.full((1, 1, 1), 0.5 + delta), unit)
        lo = step_fn(pi, u - u_old, pi_old, pos, neg, np.full((1, 1, 1), 0.5 - delta), unit)
        d_step = (hi - lo) / (2 * delta)
        dm = (pi > pc.tau) * (pos - neg)
        want = pi * (dm - (pi * dm).sum(-1, keepdims=True))
        worst = max(worst, float(np.abs(d_step - want).max() / np.abs(want).max()))
        c_pos, c_neg = _clip_masks(np.exp(u - u_old), pc)
        conf = (pi > pc.tau) * pi_old
        flat = (conf * (pos * (1 - c_pos) + np.abs(neg) * (1 - c_neg))).sum()
        fired = max(fired, float(flat / (conf * (pos + np.abs(neg))).sum()))
    ev.require("clip fires on confident arms", fired > 0.02, f"clipped share {fired:.3f}")
    ev.require("∂update/∂α = clip-free formula", worst <= 1e-6, f"max rel. gap {worst:.1e}")
    return ev.result(
        f"{CLIP_REGIME}: clip flat on {fired:.1%} of the confident mass; ∂update/∂α = "
        f"η·π(δm − Σπδm) to {worst:.0e} (the α-term is not clipped)"
    )


@register_check("Adam plant: momentum makes a 3rd-order loop; its region predicts convergence (numeric)")
def check_jury_on_adam_plant(is_stable: Callable = stability.is_stable, steps: int = 400) -> tuple[Verdict, str]:
    """Adam (lr 0.02, β₁ 0.9, clip 1) on-policy, 32 contexts; after 30 warm-up rollouts k is the
    one-rollout response identified from the full state. Adam's first moment spreads the effect of
    one α over later steps (ΔH_t ≈ b − k·Σ_j β₁^j α_{t−j}), so the loop is third order:
    ``is_stable(..., memory=β₁)`` must predict convergence (|e| < 1e-3 over the last 50 steps) on
    ≥ 90 % of a 12 × 8 grid of normalised gains; the memoryless Jury region is reported."""
    from sim.plant import PlantConfig
    from sim.rich_plant import RichConfig, RichPlant, identify, spread_problem, warm_up

    ev = Evidence()
    bandit, z = spread_problem(32, 20, seed=1)
    cfg = RichConfig(plant=PlantConfig(lr=0.02, tau=0.9), optimizer="adam", grad_clip=1.0)
    plant = warm_up(RichPlant(bandit, z, config=cfg), 30)
    k, b = (float(x[0]) for x in identify(plant))
    ev.require("k > 0", k > 0, f"k = {k:.2e}")
    target = float(plant.true_entropy()[0])
    kp_n, ki_n = np.meshgrid(np.linspace(0.1, 3.0, 12), np.linspace(0.02, 1.2, 8))
    kp_n, ki_n = kp_n.ravel(), ki_n.ravel()
    loops = plant.tiled(kp_n.size)
    s0 = np.where(ki_n > 0, (b / k) / np.maximum(ki_n / k, 1e-300), 0.0)  # bumpless: α starts at b/k
    ctrl = pic.PIController(kp_n / k, ki_n / k, target, output_limits=None, on_nonfinite="hold")
    ctrl.load_state_dict({**ctrl.state_dict(), "integral": s0.tolist()})
    err = np.empty((steps, kp_n.size))
    h = loops.entropy() + 0.01
    for t in range(steps):
        err[t] = h - target
        loops.step(np.clip(ctrl.update(h), -50, 50))
        h = loops.entropy()
    converged = np.all(np.abs(err[-50:]) < 1e-3, axis=0)
    claim = np.asarray(is_stable(kp_n, ki_n, 1.0, memory=cfg.betas[0]), dtype=bool)
    agree = float((converged == claim).mean())
    jury = float((converged == np.asarray(stability.is_stable(kp_n, ki_n, 1.0), dtype=bool)).mean())
    ev.require("both outcomes present", claim.any() and (~claim).any())
    ev.require("momentum-aware region holds on ≥ 90 % of cells", agree >= 0.9, f"{agree:.1%} agree")
    return ev.result(
        f"Adam plant k = {k:.2e}/α per rollout, b = {b:.1e} nats: converged ⇔ region with memory β₁ on "
        f"{agree:.0%} of {kp_n.size} cells; the memoryless Jury region only on {jury:.0%}"
    )


@register_check("Noise: sampled-entropy loop, Var α = noise_gain·σ² (numeric)")
def check_noise_on_sampled_entropy(noise_gain: Callable = robustness.noise_gain) -> tuple[Verdict, str]:
    """The entropy estimated from 2 samples per context (32 contexts) has variance σ² (measured
    open-loop at the operating point); in closed loop (P, K_p = 0.5) the variance of α matches
    noise_gain(kp, 0, k)·σ² within 25 % (the plant is nonlinear and σ² changes with the state)."""
    from sim.plant import PlantConfig
    from sim.rich_plant import RichConfig, RichPlant, identify, spread_problem

    ev = Evidence()
    bandit, z = spread_problem(32, 20, seed=2)
    pc = PlantConfig(lr=0.5, tau=0.9)
    rng = np.random.default_rng(21)
    cfg = RichConfig(plant=pc, measure="sampled", measure_samples=2)
    plant = RichPlant(bandit, z, loops=1, config=cfg, rng=rng)
    k = float(identify(plant)[0][0])
    # σ² of the estimator at this state (many independent measurements of one state)
    probe = plant.tiled(2000)
    sigma2 = float(probe.entropy().var())
    kp = 0.5 / k
    loops = plant.tiled(128)
    target = float(plant.true_entropy()[0])
    ctrl = pic.PIController(np.full(128, kp), 0.0, target, output_limits=None)
    alphas = []
    for t in range(100):
        a = ctrl.update(loops.entropy())
        loops.step(a)
        if t >= 20:
            alphas.append(np.asarray(a) - np.mean(a))
    var_alpha = float(np.var(np.stack(alphas)))
    want = float(noise_gain(kp, 0.0, k)[1]) * sigma2
    rel = var_alpha / want - 1
    ev.require("Var α ≈ noise_gain·σ² (25 %)", abs(rel) <= 0.25, f"sim {var_alpha:.3e} vs {want:.3e}")
    return ev.result(
        f"σ = {np.sqrt(sigma2):.3f} nats (2 samples × 32 contexts); std α {np.sqrt(var_alpha):.2f} vs "
        f"predicted {np.sqrt(want):.2f} (kp = {kp:.0f}, k = {k:.1e})"
    )
