"""The prompt/answer JSONL format, its validation, and a resumable prompt stream.

One JSON object per line::

    {"prompt": "23+58=", "answer": "81"}
    {"prompt": "3 5 7>22:", "answer": "3*5+7", "task": "countdown", "meta": {"numbers": [3, 5, 7], "target": 22}}

``prompt`` (non-empty string) and ``answer`` (string; numbers are accepted) are required;
``task`` names a registered reward (default "arithmetic") and ``meta`` is an object passed to
the verifier. Blank lines are skipped; any other problem raises `DataError` with one line
naming the file, the line and the field.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DataError", "Example", "PromptStream", "load_jsonl", "write_jsonl"]

_KEYS = {"prompt", "answer", "task", "meta"}


class DataError(ValueError):
    """Bad data; the message names the file, the line and the field."""


@dataclass(frozen=True)
class Example:
    prompt: str
    answer: str
    task: str = "arithmetic"
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"prompt": self.prompt, "answer": self.answer, "task": self.task}
        if self.meta:
            d["meta"] = self.meta
        return d


def _parse_line(obj: Any, where: str) -> Example:
    from .reward import REWARDS

    if not isinstance(obj, dict):
        raise DataError(f"{where}: a line must be a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - _KEYS
    if unknown:
        raise DataError(f"{where}: unknown field {sorted(unknown)[0]!r}; allowed: {sorted(_KEYS)}")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise DataError(f"{where}: field 'prompt' must be a non-empty string, got {prompt!r}")
    if "answer" not in obj:
        raise DataError(f"{where}: field 'answer' is missing")
    answer = obj["answer"]
    if isinstance(answer, bool) or not isinstance(answer, str | int | float):
        raise DataError(f"{where}: field 'answer' must be a string or a number, got {answer!r}")
    task = obj.get("task", "arithmetic")
    if not isinstance(task, str) or task not in REWARDS:
        raise DataError(f"{where}: field 'task' must name a registered reward {sorted(REWARDS)}, got {task!r}")
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'meta' must be an object, got {meta!r}")
    return Example(prompt=prompt, answer=str(answer), task=task, meta=meta)


def load_jsonl(path: str | Path) -> list[Example]:
    """Read and validate a JSONL file of examples."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    examples = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg}: column {exc.colno})") from None
            examples.append(_parse_line(obj, where))
    if not examples:
        raise DataError(f"{path}: no examples")
    return examples


def write_jsonl(path: str | Path, examples: list[Example]) -> Path:
    """Write examples atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex.to_dict()) + "\n")
    os.replace(tmp, path)
    return path


class PromptStream:
    """An endless, seeded walk over the examples, epoch by epoch, that can be saved and resumed.

    Each epoch is a permutation drawn from a generator seeded by (seed, epoch), so the stream is
    a pure function of (seed, epoch, position): a resumed stream yields exactly the batches an
    uninterrupted one would.
    """

    def __init__(self, examples: list[Example], seed: int = 0, shuffle: bool = True) -> None:
        if not examples:
            raise ValueError("PromptStream needs at least one example")
        self.examples = examples
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.examples))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))

    def next_batch(self, n: int) -> list[Example]:
        out = []
        while len(out) < n:
            if self.position == len(self.examples):
                self.epoch += 1
                self.position = 0
                self._order = self._permutation(self.epoch)
            take = min(n - len(out), len(self.examples) - self.position)
            out += [self.examples[i] for i in self._order[self.position : self.position + take]]
            self.position += take
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if int(state["seed"]) != self.seed:
            raise ValueError(f"data stream seed {state['seed']} does not match this run's seed {self.seed}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation(self.epoch)
