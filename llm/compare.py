"""``python -m llm compare``: entropy-control methods × seeds from one config, one report.

Every run starts from the same model checkpoint and data, with the same RL settings; only
the lever (and, where a method needs it, the entries of its ``set`` list) differs, and seed s
fixes the prompt order and sampling of run s for every method. Layout under
``compare.out``::

    base/                      the warm-started tiny model and data (only when model.path is empty)
    <method>/seed_<s>/         a normal run directory (metrics.jsonl, checkpoints/, tb/)
    <method>/seed_<s>/done.json  written once the run and its evaluation are complete
    report.png, report.md, report.json

A run with ``done.json`` is never redone; a run without it resumes from its newest
checkpoint. So adding seeds or methods to the config and running again only trains what is
missing, and an interrupted comparison picks up where it stopped.

The methods (``[[compare.methods]]`` in TOML, or the default set `DEFAULT_METHODS`) each
name a lever of `pic.levers`; closed-loop levers without a ``target`` parameter get the
reference target (``compare.target``, default ``control.target``). ``entropic`` and
``entropic_p`` take their gains from ``[control]``; ``entropic_pi_{id,did,od}`` track the
rise-then-fall, fall-rise-fall and oscillating-decay setpoints (`pic.setpoint.shaped_setpoints`)
around the reference target.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from pic.io import atomic_write_json
from pic.levers import LEVERS, lever_parameters
from pic.levers.report import MethodResult
from pic.setpoint import SHAPED_ENTROPIC_METHODS, shaped_setpoints
from pic.validation import need
from sim.figures import write_report

from .config import ENTROPIC_LEVERS, ConfigError, LeverConfig, RLConfig, build_config, config_to_dict, toml_flag
from .metrics import read_metrics

__all__ = ["DEFAULT_METHODS", "CompareConfig", "MethodEntry", "run_compare"]

log = logging.getLogger(__name__)

DEFAULT_METHODS = (
    "grpo",
    "entropy_bonus",
    "adaptive_entropy_skywork",
    "adaptive_entropy_trl",
    "sac_temperature",
    "clip_higher",
    "ce_gppo",
    "flexec_id",
    "clip_cov",
    "kl_cov",
    "nsr",
    "entropy_advantage",
    "top_entropy_tokens",
    "aent",
    "bapo",
    "aepo",
    "entropic",
)
"""The default set: one method of each family (17 runs per seed; configs/compare_tiny.toml runs them at 100 steps)."""

SCHEDULED = SHAPED_ENTROPIC_METHODS


@dataclasses.dataclass
class MethodEntry:
    """One method of the comparison."""

    label: str
    """Name of the run directory and of the report row."""
    lever: str = ""
    """A `pic.levers` name ('' = the label; ``entropic_pi_{id,did,od}`` are understood)."""
    params: dict = dataclasses.field(default_factory=dict)
    """Lever parameters (not for entropic/entropic_p: those come from [control])."""
    set: list[str] = dataclasses.field(default_factory=list)
    """Extra ``key=value`` RL-config overrides for this method only (e.g. 'ppo.epochs=4')."""

    def __post_init__(self):
        if not self.lever:  # resolve the default lever name (checked in `check`)
            self.lever = self.label if self.label not in SCHEDULED else "entropic"

    def check(self) -> None:
        need(bool(self.label) and "/" not in self.label, "compare.methods.label", "a non-empty name", self.label)
        need(self.lever in LEVERS, f"compare.methods[{self.label}].lever", f"one of {sorted(LEVERS)}", self.lever)


@dataclasses.dataclass
class CompareSection:
    """The comparison ([compare] table)."""

    out: str = ""
    """Directory of the comparison (runs, report); required."""
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    """Seeds (distinct, >= 0); seed s fixes the prompt order and sampling of run s of every method."""
    methods: Annotated[list[MethodEntry], toml_flag(list[MethodEntry])] = dataclasses.field(default_factory=list)
    """Methods to run, a list of tables {label, lever, params, set} ([] = the default set of 11)."""
    target: float = 0.0
    """Reference entropy target H* in nats (0 = control.target)."""
    eval_k: int = 8
    """Completions per test prompt for avg@k / pass@k (0 = no evaluation)."""
    title: str = ""
    """Title prefix of the report; the steps, PPO setting, methods and seeds of the actual run follow it."""

    def check(self) -> None:
        need(bool(self.out), "compare.out", "a directory", self.out)
        need(bool(self.seeds) and all(s >= 0 for s in self.seeds), "compare.seeds", "a list of seeds >= 0", self.seeds)
        need(len(set(self.seeds)) == len(self.seeds), "compare.seeds", "distinct", self.seeds)
        need(self.target >= 0, "compare.target", ">= 0 nats", self.target)
        need(self.eval_k >= 0, "compare.eval_k", "an integer >= 0", self.eval_k)
        for entry in self.methods:
            entry.check()
        labels = [m.label for m in self.methods]
        need(len(set(labels)) == len(labels), "compare.methods", "distinct labels", labels)


@dataclasses.dataclass
class CompareConfig(RLConfig):
    """``python -m llm compare``: entropy-control methods × seeds on one checkpoint and data, one report.

    The RL settings shared by every run are `RLConfig`'s tables; ``[compare]`` sets the comparison.
    """

    compare: CompareSection = dataclasses.field(default_factory=CompareSection)

    def check(self) -> CompareConfig:
        super().check()
        self.compare.check()
        need(
            self.lever == LeverConfig(),
            "lever",
            "left unset in a comparison (each [[compare.methods]] entry names its lever)",
            self.lever,
        )
        return self

    @property
    def reference_target(self) -> float:
        if self.compare.target:
            return self.compare.target
        if isinstance(self.control.target, int | float):
            return float(self.control.target)
        raise ConfigError("compare.target must be set when control.target is a schedule")

    def methods(self) -> list[MethodEntry]:
        return self.compare.methods or [MethodEntry(label=name) for name in DEFAULT_METHODS]

    def run_config(self, entry: MethodEntry, seed: int, base: dict[str, str] | None = None) -> RLConfig:
        """The RL config of one (method, seed) run."""
        tree = {f.name: dataclasses.asdict(getattr(self, f.name)) for f in dataclasses.fields(RLConfig)}
        h_star = self.reference_target
        params = dict(entry.params)
        overrides = []
        if entry.lever in ENTROPIC_LEVERS:
            if entry.label in SCHEDULED:
                spec = shaped_setpoints(h_star, self.train.steps)[SCHEDULED[entry.label]]
                tree["control"]["target"] = spec
        elif "target" in lever_parameters(entry.lever) and "target" not in params:
            params["target"] = h_star
        tree["control"]["enabled"] = True
        tree["lever"] = {"name": entry.lever, "params": {} if entry.lever in ENTROPIC_LEVERS else params}
        run_dir = Path(self.compare.out) / entry.label / f"seed_{seed}"
        overrides += [*entry.set, f"train.seed={seed}", "train.resume=true", f"train.out={json.dumps(str(run_dir))}"]
        for key, value in (base or {}).items():
            overrides.append(f"{key}={json.dumps(value)}")
        try:
            return build_config(RLConfig, tree, overrides)
        except ConfigError as exc:
            raise ConfigError(f"compare.methods[{entry.label}]: {exc}") from None


def _run_one(cfg: RLConfig, entry: MethodEntry, seed: int, test: str, eval_k: int) -> dict[str, Any]:
    from .checkpoint import find_latest
    from .data import load_jsonl
    from .evaluate import evaluate_model
    from .model import load_model
    from .trainer import Trainer

    run_dir = Path(cfg.train.out)
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    trainer.train()
    result: dict[str, Any] = {
        "method": entry.label,
        "lever": entry.lever,
        "seed": seed,
        "train_s": time.perf_counter() - t0,
    }
    if eval_k and test:
        path = find_latest(run_dir / "checkpoints")
        model, tok = load_model(path, device=trainer.device)
        ev = evaluate_model(
            model,
            tok,
            load_jsonl(test),
            k=eval_k,
            temperature=cfg.rollout.temperature,
            max_new_tokens=cfg.rollout.max_new_tokens,
            seed=seed,
        )
        result |= {"avg@k": ev["avg@k"], "pass@k": ev["pass@k"], "k": eval_k}
    atomic_write_json(run_dir / "done.json", result)
    return result


def _coef(rows: list[dict]) -> tuple[np.ndarray | None, str]:
    for key, label in (("alpha", "α"), ("entropy_coef", "entropy coef"), ("kl_coef", "KL coef")):
        values = [r.get(key) for r in rows]
        if all(v is not None for v in values) and any(v != 0 for v in values):
            return np.asarray(values, dtype=float), label
    return None, ""


def collect(cfg: CompareConfig, entry: MethodEntry) -> MethodResult | None:
    """A method's trajectories over its finished seeds (None if no seed has finished)."""
    rows_by_seed, done = [], []
    for seed in cfg.compare.seeds:
        run_dir = Path(cfg.compare.out) / entry.label / f"seed_{seed}"
        if (run_dir / "done.json").is_file():
            rows_by_seed.append(read_metrics(run_dir))
            done.append(json.loads((run_dir / "done.json").read_text()))
    if not rows_by_seed:
        return None
    n = min(len(r) for r in rows_by_seed)

    def stack(key):
        return np.array([[float(rows[t].get(key, np.nan)) for rows in rows_by_seed] for t in range(n)])

    closed_loop = entry.lever in ENTROPIC_LEVERS or "target" in lever_parameters(entry.lever)
    coefs = [_coef(rows[:n]) for rows in rows_by_seed]
    coef = np.stack([c for c, _ in coefs], axis=1) if all(c is not None for c, _ in coefs) else None
    extra = {"wall_s": float(np.mean([d["train_s"] for d in done]))}
    for key in ("avg@k", "pass@k"):
        if all(key in d for d in done):
            extra[key] = float(np.mean([d[key] for d in done]))
    return MethodResult(
        name=entry.label,
        entropy=stack("entropy"),
        reward=stack("reward_mean"),
        clip_frac=stack("clip_frac"),
        coef=coef,
        coef_label=coefs[0][1],
        target=stack("entropy_target")[:, 0] if closed_loop else None,
        extra=extra,
    )


def report_title(cfg: CompareConfig, methods: int, model: str) -> str:
    """The report's title from what was run: methods, model, steps, PPO setting, seeds (after compare.title)."""
    ppo = cfg.ppo
    policy = (
        "on-policy"
        if ppo.epochs == ppo.minibatches == 1
        else f"off-policy, {ppo.epochs} PPO epochs × {ppo.minibatches} mini-batches"
    )
    seeds = len(cfg.compare.seeds)
    run = (
        f"{methods} entropy-control methods on {Path(model).name or model}, {cfg.train.steps} RL steps ({policy}), "
        f"{seeds} seed{'s' if seeds != 1 else ''}"
    )
    return f"{cfg.compare.title}: {run}" if cfg.compare.title else run


def run_compare(cfg: CompareConfig) -> list[dict[str, Any]]:
    """Train what is missing, then write the report; returns the table rows."""
    out = Path(cfg.compare.out)
    out.mkdir(parents=True, exist_ok=True)
    base: dict[str, str] = {}
    test = cfg.data.test
    if not cfg.model.path:
        from .demo import DEMO
        from .prepare import prepare_base

        prep = prepare_base(out / "base", DEMO, seed=0)
        base = {"model.path": prep["model"], "data.train": prep["train"]}
        test = test or prep["test"]
    entries = cfg.methods()
    configs = {
        (e.label, s): cfg.run_config(e, s, base) for e in entries for s in cfg.compare.seeds
    }  # validate all first
    atomic_write_json(out / "compare_config.json", config_to_dict(cfg))
    from tqdm.auto import tqdm

    pairs = [(entry, seed) for entry in entries for seed in cfg.compare.seeds]
    bar = tqdm(pairs, desc="compare", unit="run", disable=None, dynamic_ncols=True)
    for entry, seed in bar:
        bar.set_postfix_str(f"{entry.label} seed {seed}")
        run_dir = out / entry.label / f"seed_{seed}"
        if (run_dir / "done.json").is_file():
            log.info("%s seed %d: done, skipped", entry.label, seed)
            continue
        log.info("%s seed %d: training", entry.label, seed)
        res = _run_one(configs[(entry.label, seed)], entry, seed, test, cfg.compare.eval_k)
        log.info("%s seed %d: %.0f s", entry.label, seed, res["train_s"])
    results = [r for e in entries if (r := collect(cfg, e)) is not None]
    title = report_title(cfg, len(results), cfg.model.path or "tiny Qwen2 (demo base)")
    cols = ["avg@k", "pass@k", "wall_s"] if cfg.compare.eval_k and test else ["wall_s"]
    return write_report(results, out, reference_target=cfg.reference_target, title=title, extra_columns=cols)
