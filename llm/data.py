"""The prompt/answer JSONL format, its validation, and a resumable prompt stream.

One JSON object per line (UTF-8)::

    {"prompt": "23+58=", "answer": "81"}
    {"prompt": "3 5 7 -> 22:", "answer": "3*5+7", "task": "countdown", "meta": {"numbers": [3, 5, 7], "target": 22}}

- ``prompt``: required, a non-empty string.
- ``answer``: required, a string; a JSON number is accepted and converted with `str`.
- ``task``: optional (default ``"arithmetic"``), the name of a registered reward (see `llm.reward`).
- ``meta``: optional object (JSON-serialisable by construction) handed to the verifier.

Any other key, a duplicated key, or a line that is not a JSON object is an error. Blank lines are
skipped; a file without examples is an error. Every problem raises `DataError` with one line naming
the file, the 1-based line number and the field, e.g.
``data/train.jsonl:17: field 'prompt' must be a non-empty string, got 3``.

`check_prompts` checks examples against a model's tokenizer before training or evaluation: a
character the tokenizer does not know (it would silently become ``<unk>``) or a prompt longer
than the model's context is a `DataError` naming the row.

`PromptStream` walks the examples epoch by epoch in a permutation drawn from (seed, epoch); its
state is three integers, so a resumed stream yields exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .reward import REWARDS

__all__ = [
    "DataError",
    "Example",
    "PromptStream",
    "check_prompts",
    "jsonl_objects",
    "load_jsonl",
    "load_jsonl_rows",
    "write_jsonl",
]

_KEYS = ("prompt", "answer", "task", "meta")
_MAX_REPR = 60


class DataError(ValueError):
    """Bad data; the one-line message names the file, the line and the field."""


@dataclass(frozen=True)
class Example:
    """One prompt with its reference answer; ``task`` picks the reward, ``meta`` feeds it.

    Hashable: the hash ignores ``meta`` (a dict), equality does not.
    """

    prompt: str
    answer: str
    task: str = "arithmetic"
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    def __post_init__(self) -> None:
        for name in ("prompt", "answer", "task"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"Example.{name} must be a str, got {_short(getattr(self, name))}")
        if not isinstance(self.meta, dict):
            raise TypeError(f"Example.meta must be a dict, got {_short(self.meta)}")

    def to_dict(self) -> dict[str, Any]:
        """The JSONL object of this example (``meta`` only when non-empty)."""
        d: dict[str, Any] = {"prompt": self.prompt, "answer": self.answer, "task": self.task}
        if self.meta:
            d["meta"] = self.meta
        return d


def _short(value: Any) -> str:
    """A one-line, length-capped repr for error messages."""
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DataError(f"duplicate field {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise DataError(f"{name} is not a valid JSON value")


def _decode(line: str, where: str) -> Any:
    try:
        return json.loads(line.rstrip("\r\n"), object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg}: column {exc.colno})") from None
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    except RecursionError:
        raise DataError(f"{where}: not valid JSON (nested too deeply)") from None


def _answer(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(value)
    raise DataError(f"{where}: field 'answer' must be a string or a number, got {_short(value)}")


def _parse_object(obj: Any, where: str) -> Example:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: a line must be a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(_KEYS))
    if unknown:
        raise DataError(f"{where}: unknown field {unknown[0]!r}; allowed: {list(_KEYS)}")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise DataError(f"{where}: field 'prompt' must be a non-empty string, got {_short(prompt)}")
    if "answer" not in obj:
        raise DataError(f"{where}: field 'answer' is missing")
    answer = _answer(obj["answer"], where)
    task = obj.get("task", "arithmetic")
    if not isinstance(task, str) or task not in REWARDS:
        raise DataError(f"{where}: field 'task' must name a registered reward {sorted(REWARDS)}, got {_short(task)}")
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'meta' must be an object, got {_short(meta)}")
    return Example(prompt=prompt, answer=answer, task=task, meta=meta)


def load_jsonl(path: str | os.PathLike[str]) -> list[Example]:
    """Read and validate a JSONL file of examples; any problem raises `DataError`."""
    return [ex for _, ex in load_jsonl_rows(path)]


def jsonl_objects(path: str | os.PathLike[str]) -> Iterator[tuple[int, str, Any]]:
    """(1-based line number, ``"<path>:<line>"``, decoded JSON value) of each non-blank line of a JSONL file.

    A line that is not UTF-8 or not JSON is a `DataError` naming the file and line; a UTF-8 BOM is allowed.
    """
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{where}: not valid UTF-8 (byte {exc.start + 1})") from None
            if line.strip():
                yield number, where, _decode(line, where)


def load_jsonl_rows(path: str | os.PathLike[str]) -> list[tuple[int, Example]]:
    """`load_jsonl` with the 1-based line number of each example (for messages such as `check_prompts`')."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    rows = [(number, _parse_object(obj, where)) for number, where, obj in jsonl_objects(path)]
    if not rows:
        raise DataError(f"{path}: no examples")
    return rows


def check_prompts(
    examples: Sequence[Example],
    tokenizer,
    *,
    context: int | None = None,
    max_new_tokens: int = 0,
    source: str | os.PathLike[str] = "data",
    lines: Sequence[int] | None = None,
) -> int:
    """Raise `DataError` for the first prompt the model cannot take as it is; returns the longest prompt in tokens.

    Prompts are tokenized as the trainer does (``add_special_tokens=False``). A token equal to
    the tokenizer's ``unk_token_id`` is an error naming the character that produced it (for a
    character tokenizer: a character outside its alphabet). With ``context`` (the model's
    positions, `llm.model.context_length`), a prompt of more than ``context - max_new_tokens``
    tokens is an error naming the limit. Messages read ``<source>:<line>: ...``, the line taken
    from ``lines`` (as given by `load_jsonl_rows`) or else ``example <1-based index>``.
    """
    if context is not None and context - max_new_tokens < 1:
        raise DataError(
            f"{source}: the model's {context} positions leave no room for a prompt and {max_new_tokens} new tokens"
        )
    unk = getattr(tokenizer, "unk_token_id", None)
    fast = bool(getattr(tokenizer, "is_fast", False))
    longest = 0
    for i, ex in enumerate(examples):
        where = f"{source}:{lines[i]}" if lines is not None else f"{source}: example {i + 1}"
        enc = tokenizer(ex.prompt, add_special_tokens=False, return_offsets_mapping=fast)
        ids = list(enc["input_ids"])
        if unk is not None and unk in ids:
            ch, col = _unknown_character(ex.prompt, ids, enc.get("offset_mapping") if fast else None, tokenizer, unk)
            raise DataError(
                f"{where}: field 'prompt' has character {ch!r} (U+{ord(ch[0]):04X}) at column {col}, "
                f"which the tokenizer does not know (it would become {tokenizer.unk_token!r})"
            )
        if context is not None and len(ids) > context - max_new_tokens:
            raise DataError(
                f"{where}: field 'prompt' is {len(ids)} tokens, over the limit of {context - max_new_tokens} "
                f"(the model's {context} positions minus {max_new_tokens} for the completion)"
            )
        longest = max(longest, len(ids))
    return longest


def _unknown_character(text: str, ids: list[int], offsets, tokenizer, unk: int) -> tuple[str, int]:
    """The first character that encodes to ``unk`` and its 1-based column."""
    if offsets is not None:
        start, end = offsets[ids.index(unk)]
        if end > start:
            return text[start:end], start + 1
    for col, ch in enumerate(text, start=1):
        if unk in tokenizer(ch, add_special_tokens=False)["input_ids"]:
            return ch, col
    return "?", 0


def write_jsonl(path: str | os.PathLike[str], examples: Iterable[Example]) -> Path:
    """Write examples atomically (a temp file in the same directory, then `os.replace`); returns the path.

    Every line is serialised before the file is touched, so a non-JSON ``meta`` raises `DataError`
    and leaves any existing file as it was.
    """
    path = Path(path)
    lines = []
    for i, ex in enumerate(examples):
        try:
            lines.append(json.dumps(ex.to_dict(), allow_nan=False) + "\n")
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: example {i} is not JSON-serialisable ({exc})") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(lines)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class PromptStream:
    """An endless, seeded walk over the examples, epoch by epoch, that can be saved and resumed.

    Epoch ``e`` visits the examples in ``default_rng([seed, e]).permutation(n)`` (in file order when
    ``shuffle`` is False), so the stream is a pure function of (seed, epoch, position): a stream
    restored with `load_state_dict` yields exactly the batches an uninterrupted one would. A batch
    may straddle an epoch boundary. Iterating yields one example at a time.
    """

    def __init__(self, examples: Iterable[Example], seed: int = 0, shuffle: bool = True) -> None:
        self.examples: tuple[Example, ...] = tuple(examples)
        if not self.examples:
            raise ValueError("PromptStream needs at least one example")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"PromptStream seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.epoch = 0
        self.position = 0
        self._order = self._permutation(0)

    def __len__(self) -> int:
        """Examples per epoch."""
        return len(self.examples)

    def _permutation(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.examples))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))

    def next_batch(self, n: int) -> list[Example]:
        """The next ``n`` examples of the walk (crossing into the next epoch as needed)."""
        if n < 0:
            raise ValueError(f"batch size must be >= 0, got {n}")
        out: list[Example] = []
        while len(out) < n:
            if self.position == len(self.examples):
                self.epoch += 1
                self.position = 0
                self._order = self._permutation(self.epoch)
            take = min(n - len(out), len(self.examples) - self.position)
            out += [self.examples[i] for i in self._order[self.position : self.position + take]]
            self.position += take
        return out

    def __iter__(self) -> Iterator[Example]:
        return self

    def __next__(self) -> Example:
        return self.next_batch(1)[0]

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "position", "seed"}``: JSON-friendly and enough to resume exactly."""
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume from `state_dict`; the seed must match and the position fit this data."""
        missing = {"epoch", "position", "seed"} - set(state)
        if missing:
            raise ValueError(f"data stream state lacks {sorted(missing)}")
        seed, epoch, position = int(state["seed"]), int(state["epoch"]), int(state["position"])
        if seed != self.seed:
            raise ValueError(f"data stream seed {seed} does not match this run's seed {self.seed}")
        if epoch < 0 or not 0 <= position <= len(self.examples):
            raise ValueError(
                f"data stream state epoch={epoch}, position={position} does not fit {len(self.examples)} examples"
            )
        self.epoch, self.position = epoch, position
        self._order = self._permutation(epoch)
