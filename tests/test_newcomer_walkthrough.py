"""Every command of README.md and docs/tutorials/*.md, run in order as a newcomer would.

The commands are read from the documents' ```bash blocks (continuation lines joined,
comments dropped, ``&&`` chains split). Each document is walked in a fresh temporary
directory holding only ``configs/`` and ``scripts/`` of this checkout (a fresh clone's
files), with tiny step counts appended to the long commands (`SHRINK`). A command fails
the test on a non-zero exit or a Python traceback on its output.

Commands that cannot run here are listed in `NOT_HERE` with the reason; the fast test
still checks that every flag they use is one their command's ``--help`` lists.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs" / "tutorials").glob("*.md"))]

NOT_HERE = {
    "pip install": "installs packages",
    "scripts/engine_tests.sh": "builds the verl/TRL environments",
    "scripts/demo.sh": "the full demo (minutes); `llm demo --quick` is walked instead",
    "python -m pytest": "the test suite itself",
    "torchrun": "several processes (tests/llm/test_distributed.py covers it)",
    "benchmarks/": "timing benchmarks (minutes)",
    "=/models/": "needs a model on disk",
    "/path/to": "needs a model on disk",
    "=/data/": "needs a data set on disk",
    "my_entropic.toml": "a file the reader writes",
}
"""Substring of a command → why the walk-through does not run it."""

SHRINK = {
    "llm sft": ["--steps", "3", "--batch-size", "8"],
    "llm train": ["--steps", "2", "--set", "data.prompts_per_step=2", "--set", "rollout.group_size=2"],
    "llm eval": ["--k", "1", "--batch-size", "64"],
    "llm make-data": ["--n-train", "200", "--n-test", "20"],
    "llm demo": ["--quick", "--steps", "2"],
    "llm compare": [
        "--set", "train.steps=2", "--set", "compare.eval_k=1", "--set", "data.prompts_per_step=2",
        "--set", "rollout.group_size=2", "--set", 'compare.methods=[{label = "grpo", lever = "grpo"}]',
    ],
    "sim stability": ["--grid", "4", "--steps", "60", "--hold", "50", "--max-hold", "300", "--backend", "numpy"],
    "sim compare": ["--steps", "60", "--band-steps", "300", "--seeds", "1", "--method-steps", "20"],
    "sim gain-map": ["--quick"],
}  # fmt: skip
"""Command prefix → arguments appended (later flags win) so that the walk takes seconds."""


def commands(doc: Path) -> list[str]:
    """The shell commands of ``doc``'s ```bash blocks, in order (one logical line each)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S):
        joined = re.sub(r"\s*\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out += [part.strip() for part in line.split("&&")]
    return out


def skip_reason(command: str) -> str | None:
    return next((why for key, why in NOT_HERE.items() if key in command), None)


def shrunk(command: str) -> list[str]:
    """``command`` as an argv list, with the tiny-run arguments appended."""
    argv = shlex.split(command)
    if argv[:2] == ["python", "-m"]:
        argv[0] = sys.executable
        name = f"{argv[2]} {argv[3]}" if len(argv) > 3 else argv[2]
        argv += SHRINK.get(name, [])
    return argv


def fresh_dir(tmp_path: Path) -> Path:
    for name in ("configs", "scripts"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def run(command: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(shrunk(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def check(command: str, proc: subprocess.CompletedProcess) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"`{command}` exited {proc.returncode}:\n{output[-3000:]}"
    assert "Traceback (most recent call last)" not in output, f"`{command}` printed a traceback:\n{output[-3000:]}"


# ------------------------------------------------------------------------------ fast
def test_every_document_has_commands_and_no_placeholder():
    for doc in DOCS:
        for command in commands(doc):
            assert "..." not in command and "…" not in command, f"{doc.name}: placeholder in `{command}`"
    assert any("llm eval" in c for c in commands(ROOT / "README.md"))


def _flags_of(help_text: str) -> set[str]:
    return set(re.findall(r"(--[a-z][a-z0-9._-]*)", help_text))


@pytest.mark.slow  # ~30 s: one `--help` process per documented command
def test_every_flag_in_the_docs_is_one_its_command_accepts():
    """Cheap: one ``--help`` per distinct command; every flag a document uses must be listed there."""
    helps: dict[str, set[str]] = {}
    for doc in DOCS:
        for command in commands(doc):
            argv = shlex.split(command)
            if argv[:2] != ["python", "-m"] or argv[2] not in ("llm", "sim") or len(argv) < 4:
                continue
            name = f"{argv[2]} {argv[3]}"
            if name not in helps:
                proc = subprocess.run(
                    [sys.executable, "-m", argv[2], argv[3], "--help"],
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                check(f"{name} --help", proc)
                helps[name] = _flags_of(proc.stdout)
            used = {a.split("=")[0] for a in argv[4:] if a.startswith("--")}
            unknown = {f for f in used if f not in helps[name] and f.replace("-", "_") not in helps[name]}
            assert not unknown, f"{doc.name}: `{command}` uses flags its --help does not list: {sorted(unknown)}"


def test_readme_data_commands_run_as_written(tmp_path):
    """The first two commands of the README's 'Use it' run exactly as written (no shrinking needed)."""
    cwd = fresh_dir(tmp_path)
    readme = [c for c in commands(ROOT / "README.md") if c.startswith("python -m llm")]
    for command in readme[:2]:
        assert command.split()[3] in ("init-tiny", "make-data")
        proc = subprocess.run(
            [sys.executable, *shlex.split(command)[1:]],
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        check(command, proc)
    assert (cwd / "runs" / "tiny" / "config.json").is_file()
    assert (cwd / "runs" / "data" / "train.jsonl").stat().st_size > 0


def test_skip_list_and_shrinking_are_explicit():
    assert skip_reason("torchrun --nproc_per_node 8 -m llm train") is not None
    assert skip_reason("python -m llm train --model runs/sft") is None
    argv = shrunk("python -m llm train --model runs/sft --steps 100")
    assert argv[0] == sys.executable and argv[-6:] == SHRINK["llm train"][-6:]
    assert commands_from_text("```bash\na \\\n  b  # c\nd && e\n```") == ["a b", "d", "e"]


def commands_from_text(text: str) -> list[str]:
    doc = Path(os.environ.get("TMPDIR", "/tmp")) / f"walk-{os.getpid()}.md"
    doc.write_text(text)
    try:
        return commands(doc)
    finally:
        doc.unlink()


# ------------------------------------------------------------------------------ slow
@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_walk_document(doc, tmp_path):
    """Every runnable command of ``doc``, in order, in a fresh directory (tiny step counts)."""
    cwd = fresh_dir(tmp_path)
    ran = 0
    for command in commands(doc):
        if skip_reason(command) or not re.match(r"(python|bash) ", command):
            continue
        check(command, run(command, cwd))
        ran += 1
    assert ran > 0 or all(skip_reason(c) for c in commands(doc)), f"{doc.name}: no command was run"
