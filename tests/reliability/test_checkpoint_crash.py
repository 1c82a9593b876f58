"""Crash-safe checkpoints: a crash at any point of a save or re-save never loses the last complete one.

A crash is simulated by raising at the i-th call of any file-system step a save makes (rename,
replace, delete, fsync, mkdir, open for writing, torch.save); an interrupted ``rmtree`` first
deletes half of its files. i runs over every such call, so every kill point is tried. A
subprocess test (slow) SIGKILLs real saves at random times.

Run: python -m pytest tests/reliability/test_checkpoint_crash.py
"""

from __future__ import annotations

import builtins
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from llm.checkpoint import (  # noqa: E402
    MANIFEST,
    find_latest,
    is_complete,
    load_checkpoint,
    repair_jsonl,
    save_checkpoint,
)
from llm.model import load_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STALE_MARKERS = (".tmp-", ".old-", ".del-")


class Crash(BaseException):
    """The simulated kill (a BaseException, like the real interruption, so no `except Exception` eats it)."""


def _half_rmtree(path, *args, **kwargs):
    """Delete half the files under ``path``, then stop: an interrupted deletion."""
    files = sorted(p for p in Path(path).rglob("*") if p.is_file())
    for p in files[: len(files) // 2]:
        p.unlink()


class KillSwitch:
    """Counts file-system steps and raises `Crash` at step ``at`` (0: never)."""

    def __init__(self, mp: pytest.MonkeyPatch, at: int) -> None:
        self.at, self.calls = at, 0
        for mod, name in [
            (os, "replace"),
            (os, "rename"),
            (os, "unlink"),
            (os, "fsync"),
            (os, "mkdir"),
            (shutil, "rmtree"),
            (torch, "save"),
        ]:
            mp.setattr(mod, name, self._wrap(name, getattr(mod, name)))
        real_open = builtins.open

        def counted_open(file, mode="r", *args, **kwargs):
            if any(c in mode for c in "wax+"):
                self._tick("open", file)
            return real_open(file, mode, *args, **kwargs)

        mp.setattr(builtins, "open", counted_open)

    def _tick(self, name: str, target) -> None:
        self.calls += 1
        if self.calls == self.at:
            if name == "rmtree":
                _half_rmtree(target)
            raise Crash(f"killed at {name} #{self.calls}")

    def _wrap(self, name, fn):
        def wrapped(*args, **kwargs):
            self._tick(name, args[0] if args else None)
            return fn(*args, **kwargs)

        return wrapped


def _perturbed(model, seed: int):
    """A copy of the weights shifted by a seeded amount (distinguishes checkpoint versions)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    return {k: v.clone() for k, v in model.state_dict().items()}


def _save(root, step, model, tok, keep_last):
    return save_checkpoint(root, step, model=model, tokenizer=tok, trainer_state={"step": step}, keep_last=keep_last)


def _loaded(path, template):
    state = load_checkpoint(path, template)
    return state["step"], {k: v.clone() for k, v in template.state_dict().items()}


def _same(a, b) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def _run_kill_points(small_model_dir, tmp_path, *, resave: bool, keep_last: int) -> tuple[int, int]:
    """Crash at every step of one save; returns (kill points tried, kill points after which all was well)."""
    model, tok = load_model(small_model_dir)
    template, _ = load_model(small_model_dir)
    base = tmp_path / "base"
    versions = {1: _perturbed(model, 1)}
    _save(base, 1, model, tok, keep_last)
    versions[2] = _perturbed(model, 2)
    _save(base, 2, model, tok, keep_last)
    new = _perturbed(model, 3)
    step = 2 if resave else 3
    allowed = {(2, "old"), (step, "new")}
    tried = ok = 0
    at = 1
    while True:
        root = tmp_path / f"kill_{at}"
        shutil.copytree(base, root)
        finished = False
        with pytest.MonkeyPatch.context() as mp:
            switch = KillSwitch(mp, at)
            try:
                _save(root, step, model, tok, keep_last)
                finished = True
            except Crash:
                pass
        latest = find_latest(root)
        assert latest is not None, f"kill point {at}: no checkpoint left"
        got_step, got = _loaded(latest, template)
        which = "new" if _same(got, new) else "old" if _same(got, versions[2]) else "other"
        assert (got_step, which) in allowed, f"kill point {at}: loaded step {got_step} ({which})"
        if finished:
            assert switch.calls >= at - 1
            break
        tried += 1
        # the next save (the resumed run) recovers and leaves nothing stale behind
        _save(root, 4, model, tok, keep_last)
        assert find_latest(root).name == "step_000004"
        assert not [p.name for p in root.iterdir() if any(m in p.name for m in STALE_MARKERS)]
        assert not [p.name for p in root.iterdir() if p.name.startswith(".latest.")]
        ok += 1
        shutil.rmtree(root)
        at += 1
    return tried, ok


@pytest.mark.parametrize("resave", [True, False], ids=["re-save", "first-save"])
def test_every_kill_point_keeps_the_last_complete_checkpoint(small_model_dir, tmp_path, resave):
    tried, ok = _run_kill_points(small_model_dir, tmp_path, resave=resave, keep_last=1)
    assert tried >= 20  # every file-system step of a save was a kill point
    assert ok == tried


@pytest.mark.slow
@pytest.mark.parametrize("resave", [True, False], ids=["re-save", "first-save"])
def test_every_kill_point_keep_last_two(small_model_dir, tmp_path, resave):
    tried, ok = _run_kill_points(small_model_dir, tmp_path, resave=resave, keep_last=2)
    assert tried >= 20
    assert ok == tried


def test_resave_replaces_the_weights(small_model_dir, tmp_path):
    model, tok = load_model(small_model_dir)
    template, _ = load_model(small_model_dir)
    _save(tmp_path, 5, model, tok, 1)
    new = _perturbed(model, 9)
    _save(tmp_path, 5, model, tok, 1)
    assert _same(_loaded(find_latest(tmp_path), template)[1], new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_000005"]


def test_damaged_newest_checkpoint_is_skipped_with_a_warning(small_model_dir, tmp_path, caplog):
    model, tok = load_model(small_model_dir)
    _save(tmp_path, 1, model, tok, 3)
    _save(tmp_path, 2, model, tok, 3)
    weights = tmp_path / "step_000002" / "model.safetensors"
    with open(weights, "r+b") as fh:  # a torn weight file
        fh.truncate(weights.stat().st_size // 2)
    with caplog.at_level(logging.WARNING, logger="llm.checkpoint"):
        assert find_latest(tmp_path).name == "step_000001"
    assert "skipping damaged checkpoint" in caplog.text and "step_000002" in caplog.text
    assert "model.safetensors has" in caplog.text
    (tmp_path / "step_000001" / MANIFEST).unlink()  # a manifest-less (older) checkpoint still counts when whole
    assert is_complete(tmp_path / "step_000001") == (True, "")


def test_stale_temp_files_are_cleaned(small_model_dir, tmp_path):
    model, tok = load_model(small_model_dir)
    _save(tmp_path, 1, model, tok, 2)
    for name in ("step_000007.tmp-99999", "step_000003.del-4", "step_000001.old-5"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "junk").write_text("x")
    (tmp_path / ".latest.tmp-12345").write_text("step_000007\n")
    (tmp_path / ".latest.abc.tmp").write_text("step_000007\n")
    _save(tmp_path, 2, model, tok, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_000001", "step_000002"]


def test_interrupted_swap_restores_the_old_copy(small_model_dir, tmp_path):
    model, tok = load_model(small_model_dir)
    _save(tmp_path, 3, model, tok, 1)
    os.replace(tmp_path / "step_000003", tmp_path / "step_000003.old-777")  # crash right after the first rename
    assert find_latest(tmp_path).name == "step_000003.old-777"
    _save(tmp_path, 4, model, tok, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_000003", "step_000004"]


def test_no_controller_json_only_lever_json(small_model_dir, tmp_path):
    model, tok = load_model(small_model_dir)
    state = {"step": 1, "controller": {"integral": 1.0}, "lever": {"name": "entropic", "state": {"x": 1}}}
    path = save_checkpoint(tmp_path, 1, model=model, tokenizer=tok, trainer_state=state)
    assert not (path / "controller.json").exists()
    assert (path / "lever.json").is_file()


# ---------------------------------------------------------------- metrics.jsonl
@pytest.mark.parametrize(
    ("content", "rows", "kept"),
    [
        (b'{"step": 1}\n{"step": 2}\n', 2, b'{"step": 1}\n{"step": 2}\n'),
        (b'{"step": 1}\n{"step": 2, "x": 3', 1, b'{"step": 1}\n'),
        (b'{"step": 1}\n{"step": 2}', 2, b'{"step": 1}\n{"step": 2}\n'),
        (b'{"step": 1}\n\x00\x00\x00\x00\n', 1, b'{"step": 1}\n'),
        (b'{"step": 1}\n{"step": 2}\n{"st', 2, b'{"step": 1}\n{"step": 2}\n'),
        (b'{"st', 0, b""),
        (b"", 0, b""),
    ],
    ids=["intact", "torn-row", "no-final-newline", "nul-tail", "torn-third", "only-torn", "empty"],
)
def test_repair_jsonl(tmp_path, caplog, content, rows, kept):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="llm.checkpoint"):
        assert repair_jsonl(path) == rows
    assert path.read_bytes() == kept
    if len(kept) < len(content):
        assert f"{path}: line {rows + 1} is torn" in caplog.text
    else:
        assert caplog.text == ""
    assert repair_jsonl(tmp_path / "missing.jsonl") == 0


# ---------------------------------------------------------------- real kills
SAVER = textwrap.dedent(
    """
    import sys
    import torch
    from llm.checkpoint import save_checkpoint
    from llm.model import load_model
    model, tok = load_model(sys.argv[1])
    print("ready", flush=True)
    step = int(sys.argv[3])
    while True:  # re-save the same step, then the next, over and over, keeping one
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.001)
        save_checkpoint(sys.argv[2], step, model=model, tokenizer=tok, trainer_state={"step": step}, keep_last=1)
        step += 1 if step % 2 else 0
    """
)


@pytest.mark.slow
def test_sigkill_during_saves_never_loses_the_checkpoint(small_model_dir, tmp_path):
    import random

    rng = random.Random(0)
    root = tmp_path / "ckpt"
    template, _ = load_model(small_model_dir)
    kills = 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for round_ in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(small_model_dir), str(root), str(2 * round_ + 1)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3 + rng.random())
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills += 1
        latest = find_latest(root)
        assert latest is not None, f"kill {kills}: no checkpoint"
        load_checkpoint(latest, template)
    assert kills == 12
