"""Prompt files on disk in the common formats, read into `llm.data.Example` rows (local files only, no hub).

Files (by suffix, or every such file of a directory, sorted by name):

- ``.jsonl`` / ``.ndjson``: one JSON object per line (blank lines skipped);
- ``.json``: one JSON array of objects;
- ``.parquet``: read with pyarrow (a verl/DAPO file, a Hugging Face parquet export);
- ``.arrow`` or a directory written by ``datasets.Dataset.save_to_disk`` (its Arrow stream files).
  A ``DatasetDict`` directory (``dataset_dict.json``) is refused: point at one split's sub-directory.

Adapters (``data.format``), each with its default fields, overridable with ``data.prompt_key`` and
``data.answer_key`` (a dotted key reads a nested field, e.g. ``reward_model.ground_truth``):

=========  ====================  =================================  =====================================
format     prompt                answer (the gold)                  task
=========  ====================  =================================  =====================================
plain      ``prompt``            ``answer``                         the row's ``task``, else ``data.task``
gsm8k      ``question``          ``answer`` after its last ``####``  ``data.task`` or ``math``
           (commas dropped: ``1,234`` → ``1234``)
math       ``problem``           last ``\\boxed{…}`` of ``solution``  ``data.task`` or ``math``
verl       ``prompt`` (a chat    ``reward_model.ground_truth``      ``data.task`` or ``math``
           message list)         (``data_source`` kept in meta)
=========  ====================  =================================  =====================================

A prompt may be a string or a list of chat messages (``{"role", "content"}``); a list is kept in
``meta["messages"]`` and templated by `llm.prompts`. A missing prompt, answer or task is a `DataError`
naming the file, the row and the field — there is no silent default. The plain format reads
``meta`` (an object) when present; every other field of a row is ignored.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .data import DataError, Example, _short, jsonl_objects
from .reward import REWARDS

__all__ = ["FORMATS", "boxed_answer", "gsm8k_answer", "load_examples", "read_rows"]

FORMATS = ("plain", "gsm8k", "math", "verl")
_DEFAULT_KEYS = {
    "plain": ("prompt", "answer"),
    "gsm8k": ("question", "answer"),
    "math": ("problem", "solution"),
    "verl": ("prompt", "reward_model.ground_truth"),
}
_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet", ".arrow")
_SKIP = {"dataset_info.json", "state.json"}


# ------------------------------------------------------------------ reading rows
def read_rows(path: str | os.PathLike[str]) -> Iterator[tuple[str, Any]]:
    """(where, row) for every row of a file or a directory of files; ``where`` is ``file:line`` or ``file: row N``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        if (path / "dataset_dict.json").is_file():
            splits = sorted(p.name for p in path.iterdir() if p.is_dir())
            raise DataError(f"{path}: a dataset with splits {splits}; point at one of them, e.g. {path / 'train'}")
        files = sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES and p.name not in _SKIP)
        if not files:
            raise DataError(f"{path}: no data files (expected {', '.join(_SUFFIXES)})")
        for file in files:
            yield from read_rows(file)
        return
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _jsonl_rows(path)
    elif suffix == ".json":
        yield from _json_rows(path)
    elif suffix in (".parquet", ".arrow"):
        for i, row in enumerate(_arrow_table(path).to_pylist(), start=1):
            yield f"{path}: row {i}", row
    else:
        raise DataError(f"{path}: unknown data file type {suffix!r} (expected {', '.join(_SUFFIXES)})")


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    for _, where, obj in jsonl_objects(path):
        yield where, obj


def _json_rows(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(rows, list):
        raise DataError(f"{path}: a .json data file must hold an array of objects, got {type(rows).__name__}")
    for i, row in enumerate(rows, start=1):
        yield f"{path}: row {i}", row


def _arrow_table(path: Path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading parquet/arrow needs pyarrow (pip install pyarrow)") from None
    try:
        if path.suffix.lower() == ".parquet":
            return pq.read_table(path)
        with pa.memory_map(str(path)) as source:
            try:
                return pa.ipc.open_stream(source).read_all()
            except pa.ArrowInvalid:
                return pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable {path.suffix} file ({exc})") from None


# ------------------------------------------------------------------ answers
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def boxed_answer(text: str) -> str | None:
    """The content of the last ``\\boxed{…}`` (or ``\\fbox{…}``) of ``text``, braces matched; None if none."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return text[start:i].strip()
    return None


def gsm8k_answer(text: str) -> str | None:
    """The final answer of a GSM8K solution: after its last ``####``, commas dropped; None if none."""
    if "####" not in text:
        return None
    gold = text.rsplit("####", 1)[1].strip().replace(",", "")
    return gold or None


# ------------------------------------------------------------------ adapters
def _field(row: dict[str, Any], key: str, where: str) -> Any:
    """``row[key]`` with dotted keys reading nested objects; a missing field is a `DataError`."""
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value or value[part] is None:
            raise DataError(f"{where}: field {key!r} is missing")
        value = value[part]
    return value


def _prompt(value: Any, key: str, where: str) -> tuple[str, list[dict[str, str]] | None]:
    """(question text, chat messages or None) of a prompt field."""
    if isinstance(value, str) and value:
        return value, None
    if isinstance(value, list) and value and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in value):
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
        users = [m["content"] for m in messages if m["role"] == "user"]
        return (users[-1] if users else messages[-1]["content"]) or "(empty)", messages
    raise DataError(
        f"{where}: field {key!r} must be a non-empty string or a list of chat messages, got {_short(value)}"
    )


def _gold(fmt: str, value: Any, key: str, where: str, explicit: bool) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DataError(f"{where}: field {key!r} must be a string or a number, got {_short(value)}")
    text = str(value).strip()
    if fmt == "gsm8k" and not explicit:
        gold = gsm8k_answer(text)
        if gold is None:
            raise DataError(f"{where}: field {key!r} has no final answer after '####', got {_short(text)}")
        return gold
    if fmt == "math" and not explicit:
        gold = boxed_answer(text)
        if gold is None:
            raise DataError(f"{where}: field {key!r} has no \\boxed{{}} answer, got {_short(text[-60:])}")
        return gold
    if not text:
        raise DataError(f"{where}: field {key!r} is empty")
    return text


def _task(fmt: str, row: dict[str, Any], task: str, where: str) -> str:
    name = row.get("task") if fmt == "plain" and "task" in row else task or ("" if fmt == "plain" else "math")
    if not name:
        raise DataError(f"{where}: field 'task' is missing (give it in every row, or set data.task)")
    if not isinstance(name, str) or name not in REWARDS:
        raise DataError(f"{where}: field 'task' must name a registered reward {sorted(REWARDS)}, got {_short(name)}")
    return name


def to_example(row: Any, where: str, fmt: str = "plain", prompt_key: str = "", answer_key: str = "", task: str = ""):
    """One row as an `Example` under adapter ``fmt`` (see the module docstring)."""
    if fmt not in FORMATS:
        raise DataError(f"data.format must be one of {FORMATS}, got {fmt!r}")
    if not isinstance(row, dict):
        raise DataError(f"{where}: a row must be an object, got {type(row).__name__}")
    p_key, a_key = prompt_key or _DEFAULT_KEYS[fmt][0], answer_key or _DEFAULT_KEYS[fmt][1]
    question, messages = _prompt(_field(row, p_key, where), p_key, where)
    gold = _gold(fmt, _field(row, a_key, where), a_key, where, explicit=bool(answer_key))
    meta = row.get("meta", {}) if fmt == "plain" else {}
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'meta' must be an object, got {_short(meta)}")
    meta = dict(meta)
    if messages is not None:
        meta["messages"] = messages
    if fmt == "verl" and isinstance(row.get("data_source"), str):
        meta["data_source"] = row["data_source"]
    return Example(prompt=question, answer=gold, task=_task(fmt, row, task, where), meta=meta)


def load_examples(path: str | os.PathLike[str], fmt: str = "plain", *, prompt_key="", answer_key="", task="") -> list:
    """Every row of ``path`` as an `Example` (see the module docstring); any problem is a one-line `DataError`."""
    examples = [to_example(row, where, fmt, prompt_key, answer_key, task) for where, row in read_rows(path)]
    if not examples:
        raise DataError(f"{path}: no examples")
    return examples


def load_data(path: str | os.PathLike[str], data_cfg) -> list:
    """`load_examples` with the format and fields of a `llm.config.DataConfig`."""
    keys = {"prompt_key": data_cfg.prompt_key, "answer_key": data_cfg.answer_key, "task": data_cfg.task}
    return load_examples(path, data_cfg.format, **keys)
