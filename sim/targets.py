"""Which methods hold an arbitrary target? (`python -m sim compare --only methods`, ``OUT/methods/targets.*``)

Every registered lever whose ``holds_target`` is true (a closed loop on its ``target``
parameter: EntroPIC PI, the self-tuning EntroPIC, AEPO, the TRL and Skywork coefficients,
SAC-α, and any lever registered later with the attribute) runs on the methods bandit for
targets across the reachable band and one outside it. All targets of one method run as one
vectorised batch of loops (`PerLoopTargets`: one lever per target, each over the seeds).

The reachable band is the EntroPIC actuator's on this plant: the entropies held at α = +1
(the most it lowers H) and α = −1 (the most it raises H), last 20 % of a run from the same
start (`sim.plant.FixedAlphaActuator`). A method *settles* at a target when its seed-mean
entropy (moving average over ``window`` steps) enters ±10 % of the target and stays there to the
end, entering no later than 80 % of the run; "steps" is that entry step. Extra compute per step,
beyond GRPO's rollout of S·G samples and its M updates: extra samples drawn (AEPO's tempered
rollout), extra trained samples, and extra sample-forwards = drawn + (1 + M)·trained (their
re-scoring and updates) + M·S·G if the lever needs a reference policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pic._array import namespace
from pic.levers import LEVERS, ExtraSamples, Lever, LossModifiers, StepStats, TokenBatch, make_lever
from pic.levers.report import moving_average

from .levers import run_lever
from .plant import FixedAlphaActuator, PlantConfig

__all__ = ["PerLoopTargets", "TargetRun", "auto_targets", "holding_levers", "reachable_band", "run_targets"]

TOLERANCE = 0.10

# fill values of LossModifiers fields for a part that leaves them unset
_FILL = {"pg_weight": 1.0, "grad_mask": 1.0, "ratio_coef": 0.0, "abs_log_ratio_coef": 0.0, "entropy_coef": 0.0}
_SHARED = ("eps_low", "eps_high", "clip", "beta_low", "beta_high", "dual_clip", "kl_coef")


def holding_levers() -> tuple[str, ...]:
    """Registered names whose lever holds an arbitrary target (``Lever.holds_target``), in registry order."""
    return tuple(name for name in LEVERS if make_lever(name).holds_target)


def _rows(x, parts: list[slice]):
    """``x`` (an (L, …) array, or a scalar shared by every loop) split into the parts' loops."""
    if x is None or np.size(x) == 1:
        return [x] * len(parts)
    return [x[p] for p in parts]


class PerLoopTargets(Lever):
    """Several levers side by side on consecutive loops (one per target): each sees only its own loops.

    For the bandit (numpy): statistics, tokens and counts are split by loop, each lever's modifiers
    broadcast to its loops and stacked; modifiers the plant takes as one scalar must agree.
    """

    def __init__(self, levers: list[Lever]) -> None:
        super().__init__(sum(lv.loops for lv in levers))
        self.levers = levers
        self.name = levers[0].name
        self.needs_entropy = any(lv.needs_entropy for lv in levers)
        self.needs_reference = any(lv.needs_reference for lv in levers)
        self.acts_through_ratio = all(lv.acts_through_ratio for lv in levers)
        edges = np.cumsum([0] + [lv.loops for lv in levers])
        self.parts = [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def update(self, stats: StepStats) -> None:
        keys = ("entropy", "nll", "reward_mean", "clip_frac")
        split = {k: _rows(np.asarray(getattr(stats, k), dtype=float).reshape(-1), self.parts) for k in keys}
        self._stats = [
            StepStats(stats.step, stats.total_steps, **{k: split[k][i] for k in keys}) for i in range(len(self.levers))
        ]
        for lever, own in zip(self.levers, self._stats, strict=True):
            lever.update(own)

    def _tokens(self, tok: TokenBatch) -> list[TokenBatch]:
        fields = ("logp", "old_logp", "adv", "mask", "num_tokens", "entropy", "ref_logp", "extra")
        split = {f: _rows(getattr(tok, f), self.parts) for f in fields}
        counts = [{k: v[p] for k, v in tok.counts.items()} for p in self.parts]
        return [TokenBatch(**{f: split[f][i] for f in fields}, counts=counts[i]) for i in range(len(self.parts))]

    def counts(self, old_logp, mask) -> dict[str, Any]:
        per = [lv.counts(old_logp[p], mask[p]) for lv, p in zip(self.levers, self.parts, strict=True)]
        return {k: np.concatenate([c[k] for c in per]) for k in per[0]}

    def modify(self, tok: TokenBatch) -> LossModifiers:
        mods = [lv.modify(t) for lv, t in zip(self.levers, self._tokens(tok), strict=True)]
        out = LossModifiers(**{f: getattr(mods[0], f) for f in _SHARED})
        for f in _SHARED:
            values = [getattr(m, f) for m in mods]
            if any(np.any(np.asarray(v) != np.asarray(values[0])) for v in values):
                raise ValueError(f"PerLoopTargets: the levers disagree on LossModifiers.{f}")
        n = tok.logp.shape[-1]
        for f, fill in _FILL.items():
            values = [getattr(m, f) for m in mods]
            if all(v is None or (f == "entropy_coef" and not np.any(v)) for v in values):
                continue
            width = 1 if f == "entropy_coef" else n
            parts = []
            for v, p in zip(values, self.parts, strict=True):
                v = fill if v is None else v
                parts.append(
                    np.broadcast_to(
                        np.asarray(v, dtype=float).reshape(-1, 1) if np.ndim(v) < 2 else v, (p.stop - p.start, width)
                    )
                )
            setattr(out, f, np.concatenate(parts))
        return out

    def extra_samples(self, stats: StepStats) -> ExtraSamples | None:
        specs = [lv.extra_samples(own) for lv, own in zip(self.levers, self._stats, strict=True)]
        if all(s is None for s in specs):
            return None
        if any(s is None for s in specs) or len({s.fraction for s in specs}) > 1:
            raise ValueError("PerLoopTargets: the levers must all ask for extra samples of one fraction")
        temps = [
            np.broadcast_to(np.asarray(s.temperature, dtype=float).reshape(-1), (lv.loops,))
            for s, lv in zip(specs, self.levers, strict=True)
        ]
        return ExtraSamples(temperature=np.concatenate(temps), fraction=specs[0].fraction)

    def extra_advantages(self, adv, main_samples: int):
        pairs = [lv.extra_advantages(adv[p], main_samples) for lv, p in zip(self.levers, self.parts, strict=True)]
        xp = namespace(adv)
        return xp.concatenate([a for a, _ in pairs]), xp.concatenate([k for _, k in pairs])

    def metrics(self) -> dict[str, float]:
        """The loop-mean of each metric, and each part's own as ``key@i``."""
        per = [lv.metrics() for lv in self.levers]
        out = {k: float(np.mean([m[k] for m in per])) for k in per[0]}
        return out | {f"{k}@{i}": v for i, m in enumerate(per) for k, v in m.items()}


def reachable_band(bandit, z0, cfg: PlantConfig, *, steps: int, seeds: list[int]) -> tuple[float, float]:
    """(H at α = +1, H at α = −1): seed means over the last 20 % of ``steps`` of the fixed-α actuator."""
    alpha = np.repeat([1.0, -1.0], len(seeds))
    run = run_lever(bandit, z0, FixedAlphaActuator(alpha, cfg), cfg, steps=steps, seeds=list(seeds) * 2)
    tail = run.entropy[-max(steps // 5, 1) :]
    return float(tail[:, : len(seeds)].mean()), float(tail[:, len(seeds) :].mean())


def auto_targets(band: tuple[float, float], h_max: float, inside: int = 4) -> list[float]:
    """``inside`` targets evenly inside the band (20 %…80 % for 4), then one at twice its top (≤ 0.9·h_max)."""
    lo, hi = band
    fractions = np.arange(1, inside + 1) / (inside + 1)
    return [round(float(lo + f * (hi - lo)), 3) for f in fractions] + [round(min(2.0 * hi, 0.9 * h_max), 3)]


@dataclass
class TargetRun:
    """One method at one target: seed-mean entropy (steps,), settling and compute."""

    method: str
    target: float
    inside: bool
    entropy: np.ndarray
    settle_step: int | None
    seeds_within: int
    seeds: int
    final_error: float
    extra_samples: float
    extra_trained: float
    extra_forwards: float
    wall_s: float

    def row(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "target": self.target,
            "inside_band": self.inside,
            "settles": self.settle_step is not None,
            "settle_step": self.settle_step,
            "seeds_within": f"{self.seeds_within}/{self.seeds}",
            "final_relative_error": self.final_error,
            "extra_samples_per_step": self.extra_samples,
            "extra_trained_per_step": self.extra_trained,
            "extra_sample_forwards_per_step": self.extra_forwards,
        }


def settle_step(h: np.ndarray, target: float, window: int, tolerance: float = TOLERANCE) -> int | None:
    """First step after which the moving average of ``h`` stays within ±tolerance·target; None after 80 %."""
    smooth = moving_average(h, window)
    outside = np.nonzero(np.abs(smooth - target) > tolerance * target)[0]
    step = 0 if outside.size == 0 else int(outside[-1] + 1)
    return step if step <= 0.8 * len(h) else None


def run_targets(
    bandit, z0, cfg: PlantConfig, names, targets, band, *, steps: int, seeds: list[int], params_of, window: int = 10
) -> list[TargetRun]:
    """Each method of ``names`` at every target, all targets in one batch of loops; ``params_of(name, target)``."""
    s, g, m = bandit.success.shape[0], cfg.group_size, cfg.updates_per_rollout
    out = []
    for name in names:
        levers = [make_lever(name, loops=len(seeds), **params_of(name, t)) for t in targets]
        lever = PerLoopTargets(levers)
        run = run_lever(bandit, z0, lever, cfg, steps=steps, seeds=list(seeds) * len(targets))
        for i, (t, part) in enumerate(zip(targets, lever.parts, strict=True)):
            h = run.entropy[:, part]
            tail = h[-max(steps // 10, 1) :].mean(0)
            drawn = float(run.extra_samples[:, part].mean())
            kept = float(np.mean(run.metrics.get(f"extra_kept@{i}", [0.0]))) if drawn else 0.0
            forwards = drawn + (1 + m) * kept + (m * s * g if levers[i].needs_reference else 0.0)
            out.append(
                TargetRun(
                    method=name,
                    target=float(t),
                    inside=band[0] <= t <= band[1],
                    entropy=h.mean(1),
                    settle_step=settle_step(h.mean(1), t, window),
                    seeds_within=int(np.sum(np.abs(tail - t) <= TOLERANCE * t)),
                    seeds=len(seeds),
                    final_error=float(abs(tail.mean() - t) / t),
                    extra_samples=drawn,
                    extra_trained=kept,
                    extra_forwards=forwards,
                    wall_s=run.seconds / len(targets),
                )
            )
    return out


def markdown(runs: list[TargetRun], band: tuple[float, float], main_samples: int, updates: int) -> str:
    """The table: one row per method, one column per target: steps to settle (or ✗ and the final error)."""
    targets = sorted({r.target for r in runs})
    methods = list(dict.fromkeys(r.method for r in runs))
    head = [f"{t:g}" + ("" if band[0] <= t <= band[1] else " (outside)") for t in targets]
    lines = [
        "| method | " + " | ".join(head) + " | extra samples / step | extra sample-forwards / step |",
        "|---" * (len(targets) + 3) + "|",
    ]
    base = main_samples * (1 + updates)
    for name in methods:
        cells, mine = [], {r.target: r for r in runs if r.method == name}
        for t in targets:
            r = mine[t]
            cells.append(
                f"{r.settle_step} ({r.seeds_within}/{r.seeds})"
                if r.settle_step is not None
                else f"✗, off {100 * r.final_error:.0f} % ({r.seeds_within}/{r.seeds})"
            )
        drawn = max(r.extra_samples for r in mine.values())
        fw = max(r.extra_forwards for r in mine.values())
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {drawn:.0f} ({100 * drawn / main_samples:.0f} %) | "
            f"{fw:.0f} ({100 * fw / base:.1f} %) |"
        )
    return "\n".join(lines) + "\n"
