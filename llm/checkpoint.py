"""Atomic, resumable checkpoints.

Layout under ``RUN_DIR/checkpoints/``::

    step_000100/            a complete checkpoint (100 RL steps done)
        config.json, model.safetensors, tokenizer files   (a loadable Hugging Face model dir)
        trainer_state.pt    optimizer, scheduler, controller, RNG states, data position, step
        controller.json     the EntroPIC controller state, readable (EntroPIC runs)
        lever.json          the entropy-control lever's name and state, readable
    latest                  name of the newest complete checkpoint

A checkpoint is written into ``step_000100.tmp-<pid>`` and renamed into place only when
complete (``os.replace`` of a directory is atomic on POSIX); ``latest`` is replaced the
same way. A crash mid-write leaves at most a ``*.tmp-*`` directory, which is ignored and
cleaned up by the next save.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng", "find_latest", "load_checkpoint", "load_trainer_state", "restore_rng", "save_checkpoint"]

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"


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


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


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
    """Write checkpoint ``step`` atomically and prune to the newest ``keep_last``.

    ``state_dict``: the model weights when ``model``'s own parameters are sharded (FSDP).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f"{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
    tokenizer.save_pretrained(tmp)
    torch.save(trainer_state, tmp / STATE_FILE)
    if trainer_state.get("controller") is not None:
        (tmp / "controller.json").write_text(json.dumps(trainer_state["controller"], indent=2) + "\n")
    if trainer_state.get("lever") is not None:
        (tmp / "lever.json").write_text(json.dumps(trainer_state["lever"], indent=2) + "\n")
    if final.exists():  # re-saving the same step (e.g. after a resume): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_text_atomic(root / "latest", final.name + "\n")
    _prune(root, keep_last)
    log.info("saved checkpoint %s", final)
    return final


def _complete(root: Path) -> list[Path]:
    dirs = [d for d in root.glob("step_*") if d.is_dir() and ".tmp-" not in d.name and (d / STATE_FILE).is_file()]
    return sorted(dirs, key=lambda d: int(d.name.split("_")[1]))


def _prune(root: Path, keep_last: int) -> None:
    for d in _complete(root)[:-keep_last]:
        shutil.rmtree(d, ignore_errors=True)
    for d in root.glob("step_*.tmp-*"):
        shutil.rmtree(d, ignore_errors=True)


def find_latest(root: str | Path) -> Path | None:
    """The newest complete checkpoint under ``root`` (None if there is none)."""
    root = Path(root)
    if not root.is_dir():
        return None
    pointer = root / "latest"
    if pointer.is_file():
        cand = root / pointer.read_text().strip()
        if (cand / STATE_FILE).is_file():
            return cand
    done = _complete(root)
    return done[-1] if done else None


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
