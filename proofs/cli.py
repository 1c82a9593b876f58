"""Command line: run the proof checks and print a table.

    python -m proofs [--only NAME] [--timeout SECONDS] [--json PATH] [--strict] [--list]

Exit status: 0 when no check FAILs (UNDECIDED is tolerated unless ``--strict``), 1 when
some check FAILs (or is UNDECIDED under ``--strict``), 2 when ``--only`` matches nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path

from .runner import DEFAULT_TIMEOUT, CheckResult, Verdict, registered_checks

__all__ = ["format_table", "main"]

_DETAIL_WIDTH = 110


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m proofs", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--only", metavar="NAME", help="run only checks whose name contains NAME (case-insensitive)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"per-check time limit; a check past it is UNDECIDED (default {DEFAULT_TIMEOUT:g})",
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--strict", action="store_true", help="treat UNDECIDED as failure in the exit status")
    p.add_argument("--wide", action="store_true", help="do not shorten the detail column")
    p.add_argument("--list", action="store_true", help="list the check names and exit")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log sub-claims (-v) and debug (-vv)")
    return p


def _clip(text: str, width: int | None) -> str:
    text = " ".join(text.split())
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def format_table(results: list[CheckResult], detail_width: int | None = _DETAIL_WIDTH) -> str:
    """The report: one row per check (check, verdict, seconds, detail) and a summary line."""
    header = ("check", "verdict", "seconds", "detail")
    rows = [(r.name, r.verdict.value, f"{r.seconds:.2f}", _clip(r.detail, detail_width)) for r in results]
    w_name = max([len(header[0])] + [len(r[0]) for r in rows])
    w_verdict = max(len(v.value) for v in Verdict)
    lines = [
        f"{header[0]:<{w_name}}  {header[1]:<{w_verdict}}  {header[2]:>7}  {header[3]}",
        f"{'-' * w_name}  {'-' * w_verdict}  {'-' * 7}  {'-' * 6}",
    ]
    lines += [f"{n:<{w_name}}  {v:<{w_verdict}}  {s:>7}  {d}" for n, v, s, d in rows]
    counts = Counter(r.verdict for r in results)
    total = sum(r.seconds for r in results)
    lines.append(
        f"{len(results)} checks: "
        + ", ".join(f"{counts.get(v, 0)} {v.value}" for v in Verdict)
        + f" ({total:.2f} s in checks)"
    )
    return "\n".join(lines)


def _emit(text: str) -> None:
    """Print, degrading characters the output encoding cannot show instead of crashing."""
    try:
        print(text, flush=True)
    except UnicodeEncodeError:
        enc = getattr(sys.stdout, "encoding", None) or "ascii"
        print(text.encode(enc, errors="replace").decode(enc), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the checks selected by ``argv``; print the table; return the exit status."""
    args = _parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(
            level=logging.DEBUG if args.verbose > 1 else logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
        )
    if args.timeout is not None and not args.timeout > 0:
        _emit(f"--timeout must be > 0 seconds, got {args.timeout}")
        return 2
    checks = registered_checks(args.only)
    if args.list:
        for check in checks:
            _emit(check.name)
        return 0
    if not checks:
        _emit(f"no check name contains {args.only!r}; use --list to see them")
        return 2
    start = time.perf_counter()
    results = [check.run(args.timeout) for check in checks]
    wall = time.perf_counter() - start
    _emit(format_table(results, None if args.wide else _DETAIL_WIDTH))
    counts = Counter(r.verdict for r in results)
    if args.json is not None:
        payload = {
            "results": [r.to_dict() for r in results],
            "summary": {v.value: counts.get(v, 0) for v in Verdict},
            "wall_seconds": wall,
            "timeout": args.timeout,
            "only": args.only,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    failed = counts.get(Verdict.FAIL, 0) + (counts.get(Verdict.UNDECIDED, 0) if args.strict else 0)
    return 1 if failed else 0
