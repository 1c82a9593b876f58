"""``python -m llm``: the trainer's command line.

    python -m llm init-tiny --out runs/tiny                       # tiny Qwen2 + char tokenizer
    python -m llm make-data --out runs/data --task arithmetic       # train.jsonl / test.jsonl
    python -m llm sft --model runs/tiny --data runs/data/train.jsonl --out runs/sft
    python -m llm train --config configs/tiny_entropic.toml --set control.target=0.3 --out runs/pi
    python -m llm eval --model runs/pi/checkpoints/step_000200 --data runs/data/test.jsonl --k 8
    python -m llm plot runs/grpo runs/pi --out runs/compare.png
    python -m llm demo --out runs/demo
    python -m llm compare --config configs/compare_tiny.toml --out runs/compare   # methods × seeds, one report

Every command reads its dataclass from defaults ← ``--config FILE.toml`` ← ``--set key=value``
(repeatable, dotted keys) ← the command's own flags. Errors in the configuration or the
data are reported in one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

from .config import ConfigError, EvalConfig, InitTinyConfig, MakeDataConfig, RLConfig, SFTConfig, load_config


def _flat_flags(parser: argparse.ArgumentParser, cls) -> None:
    """One ``--field`` flag per field of a flat config dataclass (values parsed as TOML)."""
    for f in dataclasses.fields(cls):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f"flag:{f.name}",
            default=None,
            metavar="VALUE",
            help=f"(default {f.default!r})",
        )


def _overrides(args) -> list[str]:
    """``--set`` items followed by the command's own flags, as key=value strings."""
    items = list(args.set or [])
    for key, value in vars(args).items():
        if not key.startswith("flag:") or value is None:
            continue
        name = key[len("flag:") :]
        if isinstance(value, bool):
            items.append(f"{name}={'true' if value else 'false'}")
        else:
            items.append(f"{name}={value}" if _is_toml_literal(value) else f"{name}={json.dumps(value)}")
    return items


def _is_toml_literal(text: str) -> bool:
    import tomllib

    try:
        tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return False
    return True


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML file with the command's configuration")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")


def _train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", dest="flag:model.path", help="model directory (model.path)")
    p.add_argument("--data", dest="flag:data.train", help="training JSONL (data.train)")
    p.add_argument("--test", dest="flag:data.test", help="test JSONL (data.test)")
    p.add_argument("--out", dest="flag:train.out", help="run directory (train.out)")
    p.add_argument("--steps", dest="flag:train.steps", help="RL steps (train.steps)")
    p.add_argument("--seed", dest="flag:train.seed", help="seed (train.seed)")
    p.add_argument(
        "--resume",
        dest="flag:train.resume",
        action="store_const",
        const=True,
        default=None,
        help="continue from the newest checkpoint in the run directory",
    )
    p.add_argument(
        "--no-control",
        dest="flag:control.enabled",
        action="store_const",
        const=False,
        default=None,
        help="plain GRPO (control.enabled = false)",
    )
    p.add_argument("--no-progress", dest="flag:train.progress", action="store_const", const=False, default=None)


# ---------------------------------------------------------------------------- commands
def cmd_init_tiny(args) -> int:
    from .model import build_tiny, count_parameters, load_model
    from .tasks import alphabet

    cfg = load_config(InitTinyConfig, args.config, _overrides(args))
    if not cfg.out:
        raise ConfigError("out must be a directory path")
    path = build_tiny(
        cfg.out,
        arch=cfg.arch,
        alphabet=alphabet(),
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        num_kv_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        seed=cfg.seed,
    )
    model, tok = load_model(path)
    print(f"wrote {path}: {cfg.arch}, {count_parameters(model):,} parameters, vocabulary {len(tok)}")
    return 0


def cmd_make_data(args) -> int:
    from .data import write_jsonl
    from .tasks import make_dataset

    cfg = load_config(MakeDataConfig, args.config, _overrides(args))
    if not cfg.out:
        raise ConfigError("out must be a directory path")
    train, test = make_dataset(cfg.task, cfg.n_train, cfg.n_test, cfg.difficulty, cfg.seed, cfg.ops)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "test.jsonl", test)
    print(
        f"wrote {out}/train.jsonl ({len(train)}) and test.jsonl ({len(test)}): {cfg.task}, difficulty {cfg.difficulty}"
    )
    return 0


def cmd_sft(args) -> int:
    from .sft import sft

    cfg = load_config(SFTConfig, args.config, _overrides(args))
    for name in ("model", "data", "out"):
        if not getattr(cfg, name):
            raise ConfigError(f"{name} must be given")
    res = sft(cfg)
    print(f"sft: loss {res['first_loss']:.3f} -> {res['final_loss']:.3f} in {res['seconds']:.1f} s; wrote {cfg.out}")
    return 0


def cmd_train(args) -> int:
    from .trainer import train

    cfg = load_config(RLConfig, args.config, _overrides(args))
    rows = train(cfg)
    if rows and os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 reports
        last = rows[-1]
        print(
            f"trained to step {last['step']}: entropy {last['entropy']:.4f} (target {last['entropy_target']:.4g}), "
            f"alpha {last.get('alpha', 0.0):+.3f}, reward {last['reward_mean']:.3f}; run dir {cfg.train.out}"
        )
    return 0


def cmd_eval(args) -> int:
    from .evaluate import evaluate

    cfg = load_config(EvalConfig, args.config, _overrides(args))
    for name in ("model", "data"):
        if not getattr(cfg, name):
            raise ConfigError(f"{name} must be given")
    res = evaluate(cfg)
    print(f"avg@{res['k']} = {res['avg@k']:.4f}, pass@{res['k']} = {res['pass@k']:.4f} on {res['n']} prompts")
    for task, r in res["by_task"].items():
        print(f"  {task}: avg@k {r['avg@k']:.4f}, pass@k {r['pass@k']:.4f} (n={r['n']})")
    return 0


def cmd_plot(args) -> int:
    from .plot import plot_runs

    for run in args.runs:
        if not (Path(run) / "metrics.jsonl").is_file():
            raise ConfigError(f"{run} has no metrics.jsonl")
    out = plot_runs(args.runs, args.out, smooth=args.smooth, title=args.title or "")
    print(f"wrote {out}")
    return 0


def cmd_compare(args) -> int:
    from .compare import CompareConfig, run_compare

    cfg = load_config(CompareConfig, args.config, _overrides(args))
    rows = run_compare(cfg)
    for r in rows:
        print(
            f"  {r['method']:<26} {r['verdict']:<13} |H - H*| {r['tracking_error']:.3f}"
            f" ({100 * r['relative_error']:.0f} %)"
            f"  final H {r['final_entropy']:.3f}  reward {r['final_reward']:.3f}"
        )
    print(f"wrote {cfg.compare.out}/report.md, report.png")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    summary = run_demo(args.out, quick=args.quick, steps=args.steps)
    print(json.dumps(summary["verdict"], indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m llm",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init-tiny", help="build a tiny model and tokenizer (no download)")
    _common(p)
    _flat_flags(p, InitTinyConfig)
    p.set_defaults(func=cmd_init_tiny)

    p = sub.add_parser("make-data", help="synthetic verifiable tasks as JSONL")
    _common(p)
    _flat_flags(p, MakeDataConfig)
    p.set_defaults(func=cmd_make_data)

    p = sub.add_parser("sft", help="supervised warm start")
    _common(p)
    _flat_flags(p, SFTConfig)
    p.set_defaults(func=cmd_sft)

    p = sub.add_parser("train", help="GRPO/PPO with the EntroPIC controller")
    _common(p)
    _train_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="avg@k and pass@k on a test split")
    _common(p)
    _flat_flags(p, EvalConfig)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("plot", help="entropy, alpha, integral and reward of runs")
    p.add_argument("runs", nargs="+", help="run directories (with metrics.jsonl)")
    p.add_argument("--out", required=True, help="PNG file")
    p.add_argument("--smooth", type=int, default=10, help="moving-average window (steps)")
    p.add_argument("--title", default="")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("compare", help="entropy-control methods × seeds on the same checkpoint and data")
    _common(p)
    p.add_argument("--out", dest="flag:compare.out", help="comparison directory (compare.out)")
    p.add_argument("--steps", dest="flag:train.steps", help="RL steps per run (train.steps)")
    p.add_argument("--model", dest="flag:model.path", help="model directory ('' = build the demo's tiny model)")
    p.add_argument("--data", dest="flag:data.train", help="training JSONL (data.train)")
    p.add_argument("--test", dest="flag:data.test", help="test JSONL for avg@k / pass@k (data.test)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("demo", help="init-tiny → make-data → SFT → GRPO vs EntroPIC, with a figure")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--quick", action="store_true", help="a few-minute version (CI)")
    p.add_argument("--steps", type=int, default=None, help="RL steps per run (default: the demo's)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.func(args)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
