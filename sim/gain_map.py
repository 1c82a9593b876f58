"""The gain map: plant gain k, drift b and reachable band of the multi-context bandit as
functions of τ, learning rate, temperature, optimizer and epochs × mini-batches.

The linear loop e_{t+1} = e_t + b − k·α_t with α = kp·e + ki·S depends on the gains only through
K_p = k·kp and K_i = k·ki (`pic.stability`). So the training knobs τ, η, T and the optimizer act on
the loop *only through k* (and b, which sets α* = b/k and the band): doubling k is the same as
doubling both controller gains. The map measures k and b one factor at a time around a base
setting, and checks the claim by running the same normalised PI loop (K_p, K_i) on every setting:
the error curves e_t/e_0 coincide where the plant is first order (SGD), and Adam's momentum adds
dynamics that k alone does not describe (see `pic.robustness`, plant memory).

Per setting (`measure_point`), all at the same policy (the start state of
`sim.rich_plant.spread_problem`; Adam's moments are first filled by `warm_up` rollouts whose
step size is 1e-12, so the policy does not move): `sim.rich_plant.identify` (k, b); the
band from (k, b) identified along a further α = 0 trajectory (`sim.identify.PlantMap`); and the
PI step response to a setpoint step of −0.005 nats started bumplessly at α* = b/k.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

import pic

from .identify import PlantMap
from .plant import PlantConfig
from .rich_plant import RichConfig, RichPlant, identify, spread_problem, warm_up

__all__ = [
    "BASE",
    "GainPoint",
    "factor_settings",
    "gain_map",
    "linear_response",
    "markdown_table",
    "measure_point",
    "response_deviation",
]

BASE = {"tau": 0.7, "lr": 0.2, "temperature": 1.0, "optimizer": "sgd", "epochs": 1, "minibatches": 1}
"""The base setting each factor is varied around (SGD η per context)."""
ADAM_LR = 0.01
"""Adam's learning rate where the optimizer is switched to Adam."""
K_P, K_I = 0.5, 0.1
"""Normalised gains of the step-response test."""


@dataclass(frozen=True)
class GainPoint:
    """One measured setting. k: nats per unit α per rollout; b: nats per rollout; band: nats."""

    factor: str
    label: str
    setting: dict
    entropy: float
    k: float
    b: float
    band: tuple[float, float] | None
    response: tuple[float, ...]
    """e_t/e_0 of the normalised PI loop (K_p, K_i) after a setpoint step."""

    @property
    def alpha_star(self) -> float:
        return self.b / self.k if self.k > 0 else float("nan")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["alpha_star"] = self.alpha_star
        return d


def _config(setting: dict) -> RichConfig:
    adam = setting["optimizer"] == "adam"
    lr = setting.get("adam_lr", ADAM_LR) if adam else setting["lr"]
    pc = PlantConfig(lr=lr, tau=setting["tau"], epochs=setting["epochs"], minibatches=setting["minibatches"])
    return RichConfig(plant=pc, optimizer=setting["optimizer"], temperature=setting["temperature"])


def factor_settings(quick: bool = False) -> list[tuple[str, str, dict]]:
    """(factor, label, setting) for every measured point; one factor varies at a time."""
    if quick:
        values = {
            "tau": [0.5, 0.7, 0.9, 0.95],
            "lr": [0.05, 0.2, 0.8],
            "temperature": [0.7, 1.0, 1.3],
            "optimizer": ["sgd", "adam"],
            "updates": [(1, 1), (4, 1), (2, 2)],
        }
    else:
        values = {
            "tau": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99],
            "lr": [0.05, 0.1, 0.2, 0.4, 0.8],
            "temperature": [0.6, 0.8, 1.0, 1.25, 1.5],
            "optimizer": ["sgd", "adam"],
            "updates": [(1, 1), (2, 1), (4, 1), (2, 2), (4, 2)],
        }
    out = []
    for factor, vals in values.items():
        for v in vals:
            s = dict(BASE)
            if factor == "updates":
                s["epochs"], s["minibatches"] = v
                label = f"{v[0]}×{v[1]}"
            else:
                s[factor] = v
                label = str(v) if factor != "optimizer" else (f"adam η={ADAM_LR:g}" if v == "adam" else "sgd")
            out.append((factor, label, s))
    return out


def measure_point(
    bandit, logits, setting: dict, *, warm: int = 20, band_steps: int = 60, every: int = 6, response_steps: int = 20
) -> tuple[float, float, float, tuple[float, float] | None, np.ndarray]:
    """(H, k, b, band, e_t/e_0) of one setting; see the module docstring."""
    config = _config(setting)
    plant = RichPlant(bandit, logits, config=config)
    if config.optimizer == "adam":  # Adam's moments of the start state: warm up with a frozen policy
        frozen = dataclasses.replace(config, plant=dataclasses.replace(config.plant, lr=1e-12))
        plant.set_state(warm_up(RichPlant(bandit, logits, config=frozen), warm).state())
    k, b = (float(x[0]) for x in identify(plant))
    h = float(plant.true_entropy()[0])
    start = plant.state()
    # the step response of the normalised PI loop, started at α* = b/k (bumpless)
    step = 0.005
    loop = plant.tiled(1)
    if k > 0:
        ctrl = pic.PIController(K_P / k, K_I / k, h - step, output_limits=None)
        ctrl.load_state_dict({**ctrl.state_dict(), "integral": (b / k) / (K_I / k)})
        resp = np.empty(response_steps)
        for t in range(response_steps):
            hm = float(loop.true_entropy()[0])
            resp[t] = (hm - (h - step)) / step
            loop.step(ctrl.update(hm))
    else:
        resp = np.full(response_steps, np.nan)
    # the band along the open-loop trajectory
    hs, ks, bs = [h], [k], [b]
    traj = plant.tiled(1)
    traj.set_state(start)
    for t in range(1, band_steps + 1):
        traj.step(0.0)
        if t % every == 0:
            kk, bb = (float(x[0]) for x in identify(traj))
            hs.append(float(traj.true_entropy()[0]))
            ks.append(kk)
            bs.append(bb)
    order = np.argsort(hs)
    band = PlantMap(np.asarray(hs)[order], np.asarray(ks)[order], np.asarray(bs)[order], 1.0).band()
    return h, k, b, band, resp


def gain_map(*, quick: bool = False, contexts: int = 32, arms: int = 20, seed: int = 0) -> list[GainPoint]:
    """Measure every setting of `factor_settings` on `spread_problem(contexts, arms, seed)`."""
    bandit, z = spread_problem(contexts, arms, seed=seed)
    kw = {"band_steps": 30, "every": 6} if quick else {}
    points = []
    for factor, label, setting in factor_settings(quick):
        h, k, b, band, resp = measure_point(bandit, z, setting, **kw)
        points.append(GainPoint(factor, label, setting, h, k, b, band, tuple(float(x) for x in resp)))
    return points


def linear_response(steps: int) -> np.ndarray:
    """e_t/e_0 of the linear loop at (K_P, K_I), the same for every plant (b cancels at a bumpless start)."""
    return pic.stability.simulate_linear(K_P, K_I, 1.0, e0=1.0, steps=steps - 1)


def response_deviation(point: GainPoint) -> float:
    """RMS of e_t/e_0 − linear prediction over the recorded steps (0 ⇔ the loop sees only K_p, K_i)."""
    resp = np.asarray(point.response)
    return float(np.sqrt(np.mean((resp - linear_response(resp.size)) ** 2)))


def markdown_table(points: list[GainPoint]) -> str:
    """One row per setting: factor, value, H, k, b, α* = b/k, band, deviation from the linear response."""
    rows = [
        "| factor | value | k (nats/α/rollout) | b (nats/rollout) | α* = b/k | band (nats, α_max 1) "
        f"| RMS(e/e₀ − linear), {len(points[0].response)} steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in points:
        band = "none" if p.band is None else f"{p.band[0]:.3f}–{p.band[1]:.3f}"
        rows.append(
            f"| {p.factor} | {p.label} | {p.k:.2e} | {p.b:+.2e} | {p.alpha_star:+.2f} | {band} "
            f"| {response_deviation(p):.3f} |"
        )
    return "\n".join(rows)
