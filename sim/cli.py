"""``python -m sim``: gain sweeps, controller comparisons and the linear-plant demo.

Subcommands (each writes PNG figures plus JSON/CSV results to ``--out``):

- ``stability``: 64×64 (K_p, K_i) sweep per plant (on- and off-policy) from a
  quasi-stationary operating point; prints the percentage of cells where the simulation
  and the linear (Jury) prediction agree.
- ``compare``: GRPO vs P vs PI on both plants, the reachable band k(H)·α_max ≥ |b(H)|,
  and a windup experiment with a target outside the band; then every entropy-control
  method (`pic.levers`) on one bandit × seeds, reported in ``OUT/methods/``.
- ``linear``: P and PI on the linear plant e' = e + b − k·α (the smallest demo).
- ``gain-map``: plant gain k, drift b and reachable band of a multi-context bandit against τ,
  learning rate, temperature, optimizer and epochs × mini-batches (seconds; ``--quick``).
- ``delay-region``: the stable (K_p, K_i) region with measurement delay and plant memory.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from pic import LinearPlant, PIController, run_loop
from pic.levers.report import strict_json
from pic.stability import steady_state_error
from pic.validation import is_finite_number, need

from .bandit import standard_problem
from .plant import PlantConfig

PLANTS = {"on": "on-policy (1 update per rollout)", "off": "off-policy ({epochs} PPO epochs per rollout)"}


DESCRIPTIONS = {
    "stability": (
        "Sweep a grid of normalised gains (K_p = k·kp, K_i = k·ki) on the on- and off-policy bandit plants "
        "from an operating point at --target, and compare which cells converge in simulation with the linear "
        "(Jury) prediction. Writes stability_{on,off}.{png,json,csv}."
    ),
    "compare": (
        "GRPO vs P vs PI on both plants from one start, the reachable band k(H)·alpha_max >= |b(H)|, a windup"
        " experiment with a target above the band, then every entropy-control method on one bandit and seeds "
        "(OUT/methods/report.{png,md,json}). A target outside the reachable band is reported, and the runs "
        "still complete."
    ),
    "linear": (
        "P and PI on the linear plant e' = e + b - k·alpha (alpha clipped to +-1): P leaves the steady-state "
        "error b/(k·kp), PI removes it. Writes linear.{png,json}."
    ),
    "gain-map": (
        "Plant gain k, drift b and the reachable band of a multi-context bandit against tau, learning rate, "
        "temperature, optimizer and PPO epochs x mini-batches. Writes gain_map.{md,json,png}."
    ),
    "delay-region": (
        "The stable (K_p, K_i) region of the PI loop with a measurement delay and plant memory. Writes "
        "delay_region.png."
    ),
}
"""Subcommand → the description its --help prints."""


def _plant_config(args, plant: str) -> PlantConfig:
    epochs = 1 if plant == "on" else args.off_epochs
    return PlantConfig(lr=args.lr, epochs=epochs, group_size=args.group_size, tau=args.tau)


def _plant_title(args, plant: str) -> str:
    return PLANTS[plant].format(epochs=args.off_epochs)


def _backend(name: str) -> str:
    if name != "auto":
        return name
    try:
        import torch  # noqa: F401
    except ImportError:
        return "numpy"
    return "torch"


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(strict_json(data), indent=2, allow_nan=False) + "\n")


def _check_target(value: float, arms: int, field: str = "--target") -> None:
    """A target entropy lies in (0, log K] nats for a K-armed policy."""
    need(arms >= 2, "--arms", "an integer >= 2", arms)
    top = math.log(arms)
    need(
        is_finite_number(value) and 0 < value <= top, field, f"in (0, log K = {top:.3f}] nats (K = {arms} arms)", value
    )


def _band_note(title: str, target: float, band, k_t: float, b_t: float, tau: float, alpha_max: float = 1.0) -> str:
    """One line saying that a valid target lies outside the reachable band, and why (α* vs the limit)."""
    where = f"{band[0]:.3f}-{band[1]:.3f} nats" if band else "empty"
    if k_t > 0:
        why = f"predicted alpha* = b/k = {b_t / k_t:+.2f} vs the limit +-{alpha_max:g}"
    else:
        why = f"the lever has no authority there (k = 0: no arm above tau = {tau:g}), so alpha* is unbounded"
    return (
        f"note: target {target:g} nats is outside the reachable band ({where}) of the {title} plant: {why}; "
        "the loops run anyway and will not hold it"
    )


def cmd_stability(args) -> int:
    from ._perf import keep_freed_memory
    from .figures import plot_sweep
    from .sweep import find_operating_point, sweep_gains

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    backend = _backend(args.backend)
    if backend == "torch":
        keep_freed_memory()
    bandit, z0 = standard_problem(args.seed, contexts=args.contexts, arms=args.arms)
    kp_norm = np.linspace(0.0, args.kp_max, args.grid)
    ki_norm = np.linspace(0.0, args.ki_max, args.grid)
    summary = {}
    for plant in progress(args.plant, desc="stability: plants", unit="plant"):
        cfg = _plant_config(args, plant)
        t0 = time.perf_counter()
        op = find_operating_point(
            bandit, cfg, z0, args.target, min_hold=args.hold, max_hold=max(args.hold, args.max_hold)
        )
        t_op = time.perf_counter() - t0
        res = sweep_gains(
            bandit, cfg, op, kp_norm, ki_norm, steps=args.steps, backend=backend, compile=not args.no_compile
        )
        plot_sweep(res, out / f"stability_{plant}.png", title=_plant_title(args, plant))
        info = res.summary() | {"operating_point_seconds": t_op, "backend": backend, "plant": plant}
        summary[plant] = info
        _write_json(out / f"stability_{plant}.json", info)
        with open(out / f"stability_{plant}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(
                [
                    "kp_norm",
                    "ki_norm",
                    "kp",
                    "ki",
                    "jury_stable",
                    "converged_sim",
                    "converged_pred",
                    "final_error_sim",
                    "final_error_pred",
                    "settling_sim",
                    "settling_pred",
                    "overshoot_sim",
                ]
            )
            for i, kin in enumerate(ki_norm):
                for j, kpn in enumerate(kp_norm):
                    w.writerow(
                        [
                            kpn,
                            kin,
                            kpn / op.k,
                            kin / op.k,
                            bool(res.jury_stable[i, j]),
                            bool(res.sim["converged"][i, j]),
                            bool(res.pred["converged"][i, j]),
                            res.sim["final"][i, j],
                            res.pred["final"][i, j],
                            res.sim["settling"][i, j],
                            res.pred["settling"][i, j],
                            res.sim["overshoot"][i, j],
                        ]
                    )
        print(
            f"{plant:>3}-policy: {100 * res.agreement:.2f} % of {res.sim['converged'].size} cells agree "
            f"(simulation vs linear prediction); k = {op.k:.4g}, b = {op.b:.3g}, alpha* = {op.alpha:+.3f}; "
            f"sweep {res.seconds:.1f} s ({backend}), operating point {t_op:.1f} s"
        )
    print(f"wrote {out}")
    return 0


def cmd_methods(args, out: Path) -> None:
    """Every entropy-control method on one bandit and seeds: ``out/methods/report.{png,md,json}``."""
    from .figures import write_report
    from .methods import DEFAULT_METHODS, default_methods, methods_problem, run_methods

    _check_target(args.method_target, args.method_arms, "--method-target")
    names = DEFAULT_METHODS if args.methods == "default" else tuple(m.strip() for m in args.methods.split(",") if m)
    bandit, z0 = methods_problem(args.seed, contexts=args.method_contexts, arms=args.method_arms)
    cfg = PlantConfig(
        group_size=args.group_size, lr=args.method_lr, mode="sampled", epochs=args.method_epochs, tau=args.tau
    )
    specs = default_methods(args.method_target, args.method_steps, kp=args.method_kp, ki=args.method_ki, names=names)
    t0 = time.perf_counter()
    results = run_methods(bandit, z0, specs, cfg, steps=args.method_steps, seeds=list(range(args.seeds)))
    title = (
        f"{len(specs)} entropy-control methods, {args.method_steps} steps ({args.method_epochs} PPO epochs per "
        f"rollout, group of {args.group_size}) on a softmax bandit of {args.method_contexts} contexts × "
        f"{args.method_arms} arms, {args.seeds} seed{'s' if args.seeds != 1 else ''}"
    )
    rows = write_report(
        results, out / "methods", reference_target=args.method_target, title=title, extra_columns=["wall_s"]
    )
    for r in rows:
        print(
            f"  {r['method']:<26} {r['verdict']:<13} |H - H*| {r['tracking_error']:.3f}"
            f" ({100 * r['relative_error']:.0f} %)"
            f"  H {r['initial_entropy']:.2f} -> {r['final_entropy']:.3f}  reward {r['final_reward']:.3f}"
        )
    print(f"methods: {len(rows)} x {args.seeds} seeds in {time.perf_counter() - t0:.1f} s; wrote {out / 'methods'}")
    if args.targets != "none":
        cmd_targets(args, out / "methods", bandit, z0, cfg)


def cmd_targets(args, out: Path, bandit, z0, cfg: PlantConfig) -> None:
    """The "holds an arbitrary target" table: ``out/targets.{md,json,png}`` (`sim.targets`)."""
    from .figures import plot_targets
    from .methods import _lever_params
    from .targets import auto_targets, holding_levers, markdown, reachable_band, run_targets

    need(args.target_seeds >= 1, "--target-seeds", "an integer >= 1", args.target_seeds)
    t0, seeds = time.perf_counter(), list(range(args.target_seeds))
    steps, arms = args.method_steps, args.method_arms
    band = reachable_band(bandit, z0, cfg, steps=steps, seeds=seeds)
    if args.targets == "auto":
        targets = auto_targets(band, math.log(arms))
    else:
        targets = [float(t) for t in args.targets.split(",") if t.strip()]
    for t in targets:
        _check_target(t, arms, "--targets")
        need(t > 0, "--targets", "entropies > 0 nats (a ±10 % band around 0 is empty)", t)
    gains = {"kp": args.method_kp, "ki": args.method_ki, "anti_windup": "clamp"}
    names = holding_levers()
    params_of = lambda n, t: _lever_params(n, t, gains)  # noqa: E731 - the shared target and EntroPIC gains
    window = max(steps // 20, 1)  # the methods report's smoothing (5 % of the steps)
    runs = run_targets(
        bandit, z0, cfg, names, targets, band, steps=steps, seeds=seeds, params_of=params_of, window=window
    )
    main = bandit.success.shape[0] * cfg.group_size
    title = (
        f"Holds an arbitrary target? {len(names)} methods × {len(targets)} targets, {steps} steps, "
        f"{len(seeds)} seeds; reachable band [{band[0]:.3f}, {band[1]:.3f}] nats"
    )
    table = markdown(runs, band, main, cfg.updates_per_rollout)
    note = (
        f"Cells: steps until the seed-mean entropy ({window}-step moving average) enters ±10 % of the target and "
        f"stays (seeds whose last-10 % mean is within ±10 %); ✗: not settled by 80 % of the run, with the relative "
        f"error of the last 10 %. Extra compute beyond GRPO's {main} samples and {cfg.updates_per_rollout} updates "
        f"per step.\n"
    )
    (out / "targets.md").write_text(f"# {title}\n\n{note}\n{table}")
    data = {"title": title, "band": list(band), "targets": targets, "rows": [r.row() for r in runs]}
    (out / "targets.json").write_text(json.dumps(strict_json(data), indent=2, allow_nan=False) + "\n")
    plot_targets(runs, band, out / "targets.png", window=window, title=title)
    print(table, end="")
    print(f"targets: {len(names)} methods x {len(targets)} targets in {time.perf_counter() - t0:.1f} s; wrote {out}")


def cmd_compare(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.only in ("all", "controllers"):
        cmd_controllers(args, out)
    if args.only in ("all", "methods"):
        cmd_methods(args, out)
    return 0


def _recovery(steps: int | None, horizon: int) -> str:
    return f"{steps} steps" if steps is not None else f"not within {horizon} steps"


def progress(items, **kwargs):
    """``items`` with a tqdm progress bar on stderr (hidden when stderr is not a terminal).

    tqdm comes with the ``llm`` extra; without it the items are returned as they are.
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the core install (numpy, scipy, sympy, matplotlib) has no tqdm
        return items
    return tqdm(items, disable=None, dynamic_ncols=True, **kwargs)


def cmd_controllers(args, out: Path) -> None:
    from .compare import compare_controllers, reachable_band, start_at, windup_experiment
    from .figures import plot_band, plot_compare, plot_windup
    from .identify import local_linearisation

    _check_target(args.target, args.arms)
    bandit, z0 = standard_problem(args.seed, contexts=args.contexts, arms=args.arms)
    runs_by_plant, bands, maps, results = {}, {}, {}, {}
    for plant in progress(args.plant, desc="compare: plants", unit="plant"):
        cfg = _plant_config(args, plant)
        title = _plant_title(args, plant)
        pm = reachable_band(bandit, cfg, z0, steps=args.band_steps // cfg.updates_per_rollout, every=5)
        band = pm.band()
        maps[title], bands[title] = pm, band
        inside = band is not None and band[0] <= args.target <= band[1]
        k_t, b_t = (float(v) for v in pm.at(args.target))
        note = None if inside else _band_note(title, args.target, band, k_t, b_t, args.tau, pm.alpha_max)
        if note:
            print(note)
        k_ref, k_ref_source = (
            float(local_linearisation(bandit, start_at(bandit, cfg, z0, args.target), cfg)[0][0]),
            "target",
        )
        if not (np.isfinite(k_ref) and k_ref > 0):
            # no plant gain at the target: normalise the gains by k at the nearest edge of the band instead
            edge = float(np.clip(args.target, *band)) if band else float(pm.entropy[np.argmax(pm.k)])
            k_ref, k_ref_source = float(pm.at(edge)[0]), f"band edge {edge:.3f} nats"
        runs = compare_controllers(
            bandit, cfg, z0, args.target, k_ref, steps=args.steps, kp_norm=args.kp_norm, ki_norm=args.ki_norm
        )
        runs_by_plant[title] = runs
        high = (band[1] if band else args.target) + args.outside_margin
        windup = windup_experiment(
            bandit,
            cfg,
            z0,
            high_target=high,
            low_target=args.target,
            switch_step=args.steps // 2,
            steps=args.steps + args.steps // 2,
            k_ref=k_ref,
            kp_norm=args.kp_norm,
            ki_norm=args.ki_norm,
        )
        plot_windup(
            windup,
            args.steps // 2,
            out / f"windup_{plant}.png",
            title=f"{title}: target {high:.2f} (outside the band) then {args.target:g}",
        )
        results[plant] = {
            "title": title,
            "band": band,
            "target_inside_band": inside,
            "band_note": note,
            "alpha_star_at_target": b_t / k_t if k_t > 0 else None,
            "k_ref": k_ref,
            "k_ref_at": k_ref_source,
            "runs": [r.to_dict() for r in runs],
            "windup": {"high_target": high, "switch_step": args.steps // 2, "runs": [r.to_dict() for r in windup]},
        }
        p_run = runs[1]
        print(
            f"{title}: band {band[0]:.3f}-{band[1]:.3f} nats; GRPO ends at {runs[0].entropy[-1]:.4f}; "
            f"P error {p_run.tail_error():+.2e} (predicted b/(k kp) {p_run.info['predicted_error']:+.2e}); "
            f"PI error {runs[2].tail_error():+.2e}; windup recovery "
            + ", ".join(f"{r.name}: {_recovery(r.info['recovery_steps'], args.steps)}" for r in windup)
            if band
            else f"{title}: no reachable band found"
        )
        with open(out / f"trajectories_{plant}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", *[f"{r.name}_{q}" for r in runs for q in ("entropy", "alpha", "integral")]])
            for t in range(args.steps):
                w.writerow([t, *[getattr(r, q)[t] for r in runs for q in ("entropy", "alpha", "integral")]])
    plot_compare(runs_by_plant, bands, out / "compare.png")
    plot_band(maps, out / "band.png")
    _write_json(out / "compare.json", results)
    print(f"wrote {out}")


def cmd_linear(args) -> int:
    from .figures import plot_linear

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_target(args.target, args.arms)
    need(
        is_finite_number(args.h0) and 0 <= args.h0 <= math.log(args.arms),
        "--h0",
        f"in [0, log K = {math.log(args.arms):.3f}] nats (K = {args.arms} arms)",
        args.h0,
    )
    need(args.steps >= 1, "--steps", "an integer >= 1", args.steps)
    need(is_finite_number(args.k) and args.k > 0, "--k", "a number > 0", args.k)
    # with alpha saturated at +-1 the entropy moves by at most k - |b| per step towards the target
    authority = args.k - abs(args.b)
    if authority <= 0:
        print(
            f"note: |b| = {abs(args.b):g} >= k = {args.k:g}: no target is reachable (predicted alpha* = b/k "
            f"= {args.b / args.k:+.2f} vs the limit +-1); the loops run anyway"
        )
    elif (need_steps := abs(args.target - args.h0) / authority) > args.steps:
        print(
            f"note: reaching {args.target:g} from {args.h0:g} takes at least {need_steps:.0f} "
            f"steps at full alpha (k - |b| = {authority:g} nats/step), more than --steps {args.steps}"
        )
    hist = {}
    for name, ki in (("P", 0.0), ("PI", args.ki)):
        plant = LinearPlant(k=args.k, b=args.b, h0=args.h0)
        hist[name] = run_loop(
            plant, PIController(args.kp, ki, args.target, max_entropy=math.log(args.arms)), args.steps
        )
    e_p = float(steady_state_error(args.kp, 0.0, args.k, args.b))
    plot_linear(hist, out / "linear.png", title=f"linear plant k={args.k:g}, drift b={args.b:g}: P leaves b/(k·kp)")
    res = {name: {"final_error": float(h.error[-1]), "final_alpha": float(h.alpha[-1])} for name, h in hist.items()}
    res["P"]["predicted_error"] = e_p
    _write_json(out / "linear.json", res)
    print(f"P: final error {res['P']['final_error']:+.4f} (predicted {e_p:+.4f}); PI: {res['PI']['final_error']:+.2e}")
    print(f"wrote {out}")
    return 0


def cmd_gain_map(args) -> int:
    from .gain_map import gain_map, markdown_table
    from .theory_figures import plot_gain_map

    need(args.contexts >= 1, "--contexts", "an integer >= 1", args.contexts)
    need(args.arms >= 2, "--arms", "an integer >= 2", args.arms)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    points = gain_map(quick=args.quick, contexts=args.contexts, arms=args.arms, seed=args.seed)
    table = markdown_table(points)
    (out / "gain_map.md").write_text(table + "\n")
    _write_json(out / "gain_map.json", [p.to_dict() for p in points])
    plot_gain_map(points, out / "gain_map.png", contexts=args.contexts)
    print(table)
    print(f"{len(points)} settings in {time.perf_counter() - t0:.1f} s; wrote {out}")
    return 0


def cmd_delay_region(args) -> int:
    from .theory_figures import plot_delay_region

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_delay_region(out / "delay_region.png")
    print(f"wrote {out / 'delay_region.png'}")
    return 0


def _add_problem_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("bandit problem")
    g.add_argument("--seed", type=int, default=1, help="problem seed (default 1)")
    g.add_argument("--contexts", type=int, default=1, help="contexts S (default 1)")
    g.add_argument("--arms", type=int, default=100, help="arms K (default 100)")
    g.add_argument("--lr", type=float, default=1.0, help="logit step size per update (default 1.0)")
    g.add_argument("--group-size", type=int, default=16, help="GRPO group size G (default 16)")
    g.add_argument("--tau", type=float, default=0.95, help="EntroPIC threshold (default 0.95)")
    g.add_argument("--off-epochs", type=int, default=4, help="PPO epochs of the off-policy plant (default 4)")
    g.add_argument("--plant", nargs="+", choices=["on", "off"], default=["on", "off"], help="plants to run")
    g.add_argument("--target", type=float, default=0.1, help="entropy target in nats (default 0.1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "stability",
        help="(K_p, K_i) grid sweep vs the Jury prediction",
        description=DESCRIPTIONS["stability"],
    )
    _add_problem_args(p)
    p.add_argument("--out", required=True, help="output directory (created)")
    p.add_argument("--grid", type=int, default=64, help="grid size per axis (default 64)")
    p.add_argument("--steps", type=int, default=2000, help="rollout steps per cell (default 2000)")
    p.add_argument("--kp-max", type=float, default=3.5, help="largest K_p = k·kp (default 3.5)")
    p.add_argument("--ki-max", type=float, default=2.0, help="largest K_i = k·ki (default 2.0)")
    p.add_argument("--hold", type=int, default=4000, help="minimum burn-in steps at the target (default 4000)")
    p.add_argument("--max-hold", type=int, default=40_000, help="maximum burn-in steps (default 40000)")
    p.add_argument(
        "--backend",
        choices=["auto", "numpy", "torch"],
        default="auto",
        help="simulation backend: torch (compiled, float32) if installed, else numpy (default auto)",
    )
    p.add_argument("--no-compile", action="store_true", help="do not torch.compile the plant step")
    p.set_defaults(func=cmd_stability)

    p = sub.add_parser(
        "compare",
        help="GRPO vs P vs PI, reachable band, windup",
        description=DESCRIPTIONS["compare"],
    )
    _add_problem_args(p)
    p.add_argument("--out", required=True, help="output directory (created)")
    p.add_argument("--steps", type=int, default=4000, help="rollout steps of each closed loop (default 4000)")
    p.add_argument("--band-steps", type=int, default=4000, help="updates along GRPO for the band (default 4000)")
    p.add_argument("--kp-norm", type=float, default=0.2, help="K_p = k·kp (default 0.2)")
    p.add_argument("--ki-norm", type=float, default=0.02, help="K_i = k·ki (default 0.02)")
    p.add_argument(
        "--outside-margin",
        type=float,
        default=0.3,
        help="the windup run's outside target = band top + this, in nats (default 0.3)",
    )
    p.add_argument(
        "--only", choices=["all", "controllers", "methods"], default="all", help="GRPO/P/PI study, methods, or both"
    )
    g = p.add_argument_group("entropy-control methods (report in OUT/methods/)")
    g.add_argument("--methods", default="default", help="comma-separated lever names, or 'default' (all of them)")
    g.add_argument("--seeds", type=int, default=8, help="seeds per method (default 8)")
    g.add_argument("--method-steps", type=int, default=600, help="RL steps per method (default 600)")
    g.add_argument("--method-target", type=float, default=0.3, help="shared entropy target H* (default 0.3)")
    g.add_argument("--method-contexts", type=int, default=32, help="contexts of the methods bandit (default 32)")
    g.add_argument("--method-arms", type=int, default=10, help="arms of the methods bandit (default 10)")
    g.add_argument("--method-lr", type=float, default=1.0, help="logit step size (default 1.0)")
    g.add_argument(
        "--method-epochs", type=int, default=4, help="PPO epochs per rollout (default 4; >= 2 for ratio levers)"
    )
    g.add_argument("--method-kp", type=float, default=3.0, help="EntroPIC kp on this plant (default 3)")
    g.add_argument(
        "--targets",
        default="auto",
        help="targets of the 'holds an arbitrary target' table: comma-separated nats, 'auto' (4 inside the "
        "reachable band, 1 above it) or 'none' (no table) (default auto)",
    )
    g.add_argument("--target-seeds", type=int, default=4, help="seeds per method and target (default 4)")
    g.add_argument("--method-ki", type=float, default=0.05, help="EntroPIC ki on this plant (default 0.05)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "linear",
        help="P and PI on the linear plant",
        description=DESCRIPTIONS["linear"],
    )
    p.add_argument("--out", required=True, help="output directory (created)")
    p.add_argument("--k", type=float, default=0.2, help="actuator gain k (default 0.2)")
    p.add_argument("--b", type=float, default=-0.02, help="drift b per step (default -0.02)")
    p.add_argument("--kp", type=float, default=1.0, help="kp (default 1, official)")
    p.add_argument("--ki", type=float, default=0.1, help="ki of the PI run (default 0.1)")
    p.add_argument("--target", type=float, default=0.4, help="target (default 0.4)")
    p.add_argument("--h0", type=float, default=1.0, help="initial entropy (default 1.0)")
    p.add_argument("--steps", type=int, default=200, help="steps (default 200)")
    p.add_argument("--arms", type=int, default=100, help="vocabulary size K: entropies lie in [0, log K] (default 100)")
    p.set_defaults(func=cmd_linear)

    p = sub.add_parser(
        "gain-map",
        help="k, b and the reachable band against τ, lr, T, optimizer, epochs",
        description=DESCRIPTIONS["gain-map"],
    )
    p.add_argument("--out", required=True, help="output directory (created)")
    p.add_argument("--quick", action="store_true", help="fewer settings and shorter trajectories")
    p.add_argument("--contexts", type=int, default=32, help="contexts S (default 32)")
    p.add_argument("--arms", type=int, default=20, help="arms K (default 20)")
    p.add_argument("--seed", type=int, default=0, help="problem seed (default 0)")
    p.set_defaults(func=cmd_gain_map)

    p = sub.add_parser(
        "delay-region",
        help="stable (K_p, K_i) with measurement delay and plant memory",
        description=DESCRIPTIONS["delay-region"],
    )
    p.add_argument("--out", required=True, help="output directory (created)")
    p.set_defaults(func=cmd_delay_region)
    __import__("sim.autotune").autotune.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:  # bad input, unwritable --out: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
