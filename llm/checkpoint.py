"""Crash-safe, resumable checkpoints, and the repair of a torn ``metrics.jsonl``.

Layout under ``RUN_DIR/checkpoints/``::

    step_000100/            a complete checkpoint (100 RL steps done)
        config.json, model.safetensors, tokenizer files   (a loadable Hugging Face model dir)
        trainer_state.pt    optimizer, scheduler, lever, RNG states, data position, step
        lever.json          the entropy-control lever's name and state, readable
        manifest.json       every other file of the checkpoint with its size in bytes (written last)
    latest                  name of the newest complete checkpoint (informational)

A save writes ``step_000100.tmp-<pid>/``, fsyncs every file and the directory, then moves it
into place with ``os.replace`` (atomic on POSIX) and fsyncs the parent. Re-saving a step that
exists never deletes the old copy first: the old one is renamed aside (``step_000100.old-<pid>``),
the new one renamed in, and only then is the old one deleted. Pruning renames a directory to
``step_N.del-<pid>`` before deleting it, so a half-deleted directory never carries a checkpoint
name. The next save cleans every stale ``*.tmp-*``, ``*.old-*``, ``*.del-*`` and ``.latest`` temp
file, and puts an ``.old`` copy back if a crash came between its two renames.

A checkpoint is *complete* when ``manifest.json`` lists files that all exist with those sizes
(checkpoints saved before manifests: ``trainer_state.pt``, ``config.json`` and one
``*.safetensors`` file). `find_latest` returns the newest complete one, including an ``.old``
copy whose new version never landed, and logs a warning for each newer damaged one it skipped.
The one writer per run directory is ensured by `llm.rundir.RunDirLock`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pic.io import atomic_write_text, fsync_dir

__all__ = [
    "MANIFEST",
    "capture_rng",
    "find_latest",
    "is_complete",
    "load_checkpoint",
    "load_trainer_state",
    "repair_jsonl",
    "restore_rng",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
MANIFEST = "manifest.json"
_NAME = re.compile(r"step_(\d+)(?:\.(tmp|old|del)-(\d+))?")


def capture_rng(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """RNG states of python, numpy, torch (CPU and CUDA) and the named generators."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in generators.items():
        g.set_state(state["generators"][name])


def save_checkpoint(
    root: str | Path,
    step: int,
    *,
    model,
    tokenizer,
    trainer_state: dict[str, Any],
    keep_last: int = 2,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write checkpoint ``step`` crash-safely (see the module notes) and prune to the newest ``keep_last``.

    ``trainer_state["lever"]``, when present, is also written readable as ``lever.json``.
    ``state_dict``: the model weights when ``model``'s own parameters are sharded (FSDP).
    Only one process may save into ``root`` at a time (`llm.rundir.RunDirLock`).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    clean_stale(root)
    final = root / f"step_{step:06d}"
    tmp = root / f"{final.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
    tokenizer.save_pretrained(tmp)
    torch.save(trainer_state, tmp / STATE_FILE)
    if trainer_state.get("lever") is not None:
        (tmp / "lever.json").write_text(json.dumps(trainer_state["lever"], indent=2) + "\n")
    _write_manifest(tmp, step)
    _fsync_tree(tmp)
    if final.exists():  # re-save: old copy aside, new one in, then delete the old one
        aside = root / f"{final.name}.old-{os.getpid()}"
        os.replace(final, aside)
        os.replace(tmp, final)
        fsync_dir(root)
        shutil.rmtree(aside, ignore_errors=True)  # a leftover is cleaned by the next save
    else:
        os.replace(tmp, final)
        fsync_dir(root)
    atomic_write_text(root / "latest", final.name + "\n")
    _prune(root, keep_last)
    log.info("saved checkpoint %s", final)
    return final


def _write_manifest(folder: Path, step: int) -> None:
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps({"step": step, "files": files}, indent=2) + "\n")


def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(folder)


def is_complete(folder: str | Path) -> tuple[bool, str]:
    """``(True, "")`` for a complete checkpoint directory, else ``(False, why)``."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            files = json.loads(manifest.read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return False, f"unreadable {MANIFEST} ({exc})"
        for name, size in files.items():
            path = folder / name
            if not path.is_file():
                return False, f"{name} is missing"
            if path.stat().st_size != size:
                return False, f"{name} has {path.stat().st_size} bytes, the manifest says {size}"
        return True, ""
    if not (folder / STATE_FILE).is_file():
        return False, f"no {STATE_FILE}"
    if not (folder / "config.json").is_file():
        return False, "no config.json"
    weights = list(folder.glob("*.safetensors"))
    if len(weights) != 1:
        return False, f"expected one safetensors weight file, found {len(weights)}"
    return True, ""


def _parse(path: Path) -> tuple[int, str | None, int | None] | None:
    m = _NAME.fullmatch(path.name)
    if m is None:
        return None
    return int(m.group(1)), m.group(2), int(m.group(3)) if m.group(3) else None


def _delete(path: Path) -> None:
    """Rename to ``*.del-<pid>`` (atomic: the checkpoint name goes at once), then delete."""
    parsed = _parse(path)
    doomed = path.with_name(f"step_{parsed[0]:06d}.del-{os.getpid()}") if parsed and parsed[1] is None else path
    if doomed != path:
        os.replace(path, doomed)
        fsync_dir(path.parent)
    shutil.rmtree(doomed, ignore_errors=True)


def clean_stale(root: str | Path) -> None:
    """Remove what a crashed save left behind, and restore an ``.old`` copy whose replacement never landed.

    Call only while holding the run directory (no other process may be saving into ``root``).
    """
    root = Path(root)
    for path in sorted(root.iterdir()):
        if path.name.startswith(".latest."):  # pic.io's temp file, or the older .latest.tmp-PID
            path.unlink(missing_ok=True)
            continue
        parsed = _parse(path)
        if parsed is None or parsed[1] is None or not path.is_dir():
            continue
        step, kind, _ = parsed
        final = root / f"step_{step:06d}"
        if kind == "old" and is_complete(path)[0] and not is_complete(final)[0]:
            if final.exists():
                _delete(final)
            os.replace(path, final)
            fsync_dir(root)
            log.warning("restored checkpoint %s from %s (a re-save was interrupted)", final, path.name)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _prune(root: Path, keep_last: int) -> None:
    done = [d for _, d in _candidates(root) if _parse(d)[1] is None]
    for d in done[:-keep_last] if keep_last > 0 else []:
        _delete(d)


def _candidates(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (``step_N`` and ``step_N.old-PID``) sorted by step, plain names last per step."""
    out = []
    for d in root.iterdir():
        parsed = _parse(d)
        if parsed is None or parsed[1] in ("tmp", "del") or not d.is_dir():
            continue
        if is_complete(d)[0]:
            out.append((parsed[0], parsed[1] is None, d))
    out.sort(key=lambda t: (t[0], t[1]))
    return [(step, d) for step, _, d in out]


def find_latest(root: str | Path) -> Path | None:
    """The newest complete checkpoint under ``root`` (None if there is none).

    A plain ``step_N`` directory newer than the answer that is damaged (incomplete) is skipped
    with a warning naming it and why. An ``.old`` copy counts when its ``step_N`` is not complete.
    Reads only; `clean_stale` (run by the next save) tidies up.
    """
    root = Path(root)
    if not root.is_dir():
        return None
    found = _candidates(root)
    best = found[-1][1] if found else None
    best_step = found[-1][0] if found else -1
    for d in sorted(root.glob("step_*")):
        parsed = _parse(d)
        if parsed and parsed[1] is None and parsed[0] > best_step and d.is_dir():
            ok, why = is_complete(d)
            if not ok:
                log.warning(
                    "skipping damaged checkpoint %s (%s); using %s", d, why, best if best is not None else "none"
                )
    return best


def load_trainer_state(path: str | Path) -> dict[str, Any]:
    """The trainer state of a checkpoint, without touching any model."""
    return torch.load(Path(path) / STATE_FILE, weights_only=False)


def load_checkpoint(path: str | Path, model) -> dict[str, Any]:
    """Load the weights into ``model`` (in place) and return the trainer state."""
    from safetensors.torch import load_model

    path = Path(path)
    weights = sorted(path.glob("*.safetensors"))
    if len(weights) != 1:
        raise ValueError(f"{path}: expected one safetensors weight file, found {len(weights)}")
    missing, unexpected = load_model(model, weights[0], strict=False, device=str(next(model.parameters()).device))
    tied = {name for name in missing if name.endswith("lm_head.weight")}
    if set(missing) - tied or unexpected:
        raise ValueError(f"{path}: weights do not match the model (missing {missing}, unexpected {unexpected})")
    return load_trainer_state(path)


def repair_jsonl(path: str | Path) -> int:
    """Cut a torn tail off a JSON-lines file of objects (``metrics.jsonl`` after a crash); returns the rows kept.

    Trailing lines that are not a JSON object (a half-written last row, or NUL bytes left by a
    power loss) are removed, with a warning naming the file and the first removed line; a last
    row that is complete but lacks its newline gets one. The file is then fsynced. Rows before
    the tail are not touched. A missing file has 0 rows.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the file ended with a newline (or is empty)
    keep = len(lines)
    while keep > 0 and not _json_row(lines[keep - 1]):
        keep -= 1
    good = b"".join(line + b"\n" for line in lines[:keep])
    if good == data:
        return keep
    if len(good) > len(data):  # only the final newline was missing
        with open(path, "ab") as fh:
            fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        return keep
    log.warning(
        "%s: line %d is torn or not a JSON object (%d bytes cut); kept the %d complete rows before it",
        path,
        keep + 1,
        len(data) - len(good),
        keep,
    )
    with open(path, "r+b") as fh:
        fh.truncate(len(good))
        fh.flush()
        os.fsync(fh.fileno())
    return keep


def _json_row(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
