"""JSONL format: validation errors (one line naming file, line and field), atomic writes, and the
resumable prompt stream.

Run: python -m pytest tests/llm/test_data.py
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm.data import DataError, Example, PromptStream, load_jsonl, write_jsonl
from llm.reward import REWARDS, register_reward

COUNT = Example("3 5 -> 8:", "3+5", "countdown", {"numbers": [3, 5], "target": 8})


# ------------------------------------------------------------------- Example
def test_example_is_frozen_hashable_and_typed():
    ex = Example("1+2=", "3")
    assert ex.task == "arithmetic" and ex.meta == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        ex.prompt = "x"  # type: ignore[misc]
    assert len({COUNT, Example(COUNT.prompt, COUNT.answer, COUNT.task, dict(COUNT.meta)), ex}) == 2
    other = Example(COUNT.prompt, COUNT.answer, COUNT.task, {"numbers": [3, 5], "target": 9})
    assert other != COUNT and hash(other) == hash(COUNT)
    with pytest.raises(TypeError, match="answer must be a str"):
        Example("1+2=", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="meta must be a dict"):
        Example("1+2=", "3", meta=[1])  # type: ignore[arg-type]


# -------------------------------------------------------------- reading files
def test_round_trip_is_atomic(tmp_path):
    exs = [Example("1+2=", "3"), COUNT, Example("x=", "\\frac{1}{2}", "math")]
    path = write_jsonl(tmp_path / "sub" / "d.jsonl", exs)
    assert path == tmp_path / "sub" / "d.jsonl"
    assert load_jsonl(path) == exs
    write_jsonl(path, exs[:1])  # replaces
    assert load_jsonl(path) == exs[:1]
    assert [p.name for p in path.parent.iterdir()] == ["d.jsonl"]  # no temp file left behind


def test_unserialisable_meta_leaves_the_old_file(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [COUNT])
    before = path.read_bytes()
    with pytest.raises(DataError, match=r"d.jsonl: example 1 is not JSON-serialisable"):
        write_jsonl(path, [COUNT, Example("p", "a", meta={"x": {1, 2}})])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d.jsonl"]


def test_error_message_formats_are_exact(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    f = data / "train.jsonl"
    f.write_text('{"prompt": "1+1=", "answer": "2"}\n\n{"prompt": 3, "answer": "1"}\n')
    with pytest.raises(DataError) as exc:
        load_jsonl(f)
    assert str(exc.value) == f"{f}:3: field 'prompt' must be a non-empty string, got 3"
    f.write_text('{"a": 1 "b": 2}\n')
    with pytest.raises(DataError) as exc:
        load_jsonl(f)
    assert str(exc.value) == f"{f}:1: not valid JSON (Expecting ',' delimiter: column 9)"
    with pytest.raises(DataError) as exc:
        load_jsonl(data / "x.jsonl")
    assert str(exc.value) == f"{data / 'x.jsonl'}: file not found"


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('{"prompt": "", "answer": "1"}', r"d.jsonl:2: field 'prompt' must be a non-empty string, got ''"),
        ('{"prompt": null, "answer": "1"}', r"d.jsonl:2: field 'prompt' must be a non-empty string, got None"),
        ('{"answer": "1"}', r"d.jsonl:2: field 'prompt' must be a non-empty string"),
        ('{"prompt": "1+1="}', r"d.jsonl:2: field 'answer' is missing"),
        ('{"prompt": "1+1=", "answer": [2]}', r"d.jsonl:2: field 'answer' must be a string or a number, got \[2\]"),
        ('{"prompt": "1+1=", "answer": true}', r"d.jsonl:2: field 'answer' must be a string or a number, got True"),
        ('{"prompt": "1+1=", "answer": NaN}', r"d.jsonl:2: NaN is not a valid JSON value"),
        ('{"prompt": "1+1=", "answer": "2", "task": "poetry"}', r"d.jsonl:2: field 'task' must name a registered"),
        ('{"prompt": "1+1=", "answer": "2", "task": 1}', r"d.jsonl:2: field 'task' must name a registered"),
        ('{"prompt": "1+1=", "answer": "2", "meta": 5}', r"d.jsonl:2: field 'meta' must be an object, got 5"),
        ('{"prompt": "1+1=", "answer": "2", "extra": 1}', r"d.jsonl:2: unknown field 'extra'"),
        ('{"prompt": "1+1=", "prompt": "2+2=", "answer": "4"}', r"d.jsonl:2: duplicate field 'prompt'"),
        ('{"prompt": "1+1=", "answer": "2"', r"d.jsonl:2: not valid JSON \(Expecting ',' delimiter: column 33\)"),
        ("[1, 2]", r"d.jsonl:2: a line must be a JSON object, got list"),
        ("[" * 100_000, r"d.jsonl:2: not valid JSON"),
        ('{"prompt": "' + "x" * 500 + '", "answer": {}}', r"d.jsonl:2: field 'answer' must be .*, got \{\}$"),
        ('{"prompt": ' + json.dumps(["y" * 200]) + ', "answer": "1"}', r"got \['yyy.{40,60}\.\.\.$"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, line, match):
    f = tmp_path / "d.jsonl"
    f.write_text('{"prompt": "1+1=", "answer": 2}\n' + line + "\n")
    with pytest.raises(DataError, match=match) as exc:
        load_jsonl(f)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 300


def test_invalid_utf8_names_the_line(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_bytes(b'{"prompt": "1=", "answer": "1"}\n{"prompt": "\xff", "answer": "1"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: not valid UTF-8"):
        load_jsonl(f)


def test_missing_empty_and_directory(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_jsonl(tmp_path / "none.jsonl")
    with pytest.raises(DataError, match="not a file"):
        load_jsonl(tmp_path)
    (tmp_path / "e.jsonl").write_text("\n  \n\n")
    with pytest.raises(DataError, match=r"e.jsonl: no examples"):
        load_jsonl(tmp_path / "e.jsonl")


def test_defaults_numbers_blank_lines_and_bom(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('\ufeff{"prompt": "2*3=", "answer": 6}\n\n   \n{"prompt": "x=", "answer": 0.5, "task": "math"}\n')
    assert load_jsonl(f) == [Example("2*3=", "6"), Example("x=", "0.5", "math")]


def test_task_names_follow_the_registry(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"prompt": "p", "answer": "a", "task": "test_data_custom"}\n')
    with pytest.raises(DataError, match="test_data_custom"):
        load_jsonl(f)
    register_reward("test_data_custom")(lambda completion, example: 0.0)
    try:
        assert load_jsonl(f)[0].task == "test_data_custom"
    finally:
        REWARDS.pop("test_data_custom")


# -------------------------------------------------------------- PromptStream
EXAMPLES = [Example(f"{i}+0=", str(i)) for i in range(12)]


@given(
    n=st.integers(1, 12),
    seed=st.integers(0, 2**32),
    shuffle=st.booleans(),
    sizes=st.lists(st.integers(0, 9), min_size=1, max_size=12),
    cut=st.integers(0, 12),
)
def test_prompt_stream_resumes_exactly(n, seed, shuffle, sizes, cut):
    exs = EXAMPLES[:n]
    full = PromptStream(exs, seed=seed, shuffle=shuffle)
    want = [full.next_batch(k) for k in sizes]
    cut = min(cut, len(sizes))
    first = PromptStream(exs, seed=seed, shuffle=shuffle)
    got = [first.next_batch(k) for k in sizes[:cut]]
    resumed = PromptStream(exs, seed=seed, shuffle=shuffle)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    got += [resumed.next_batch(k) for k in sizes[cut:]]
    assert got == want
    assert resumed.state_dict() == full.state_dict()


@given(n=st.integers(1, 12), seed=st.integers(0, 1000), epochs=st.integers(1, 4))
def test_each_epoch_is_a_permutation(n, seed, epochs):
    stream = PromptStream(EXAMPLES[:n], seed=seed)
    walk = stream.next_batch(n * epochs)
    for e in range(epochs):
        assert sorted(walk[e * n : (e + 1) * n], key=lambda x: x.prompt) == sorted(EXAMPLES[:n], key=lambda x: x.prompt)
    assert stream.state_dict() == {"epoch": epochs - 1, "position": n, "seed": seed}


def test_prompt_stream_order_and_reshuffling():
    assert PromptStream(EXAMPLES, seed=5, shuffle=False).next_batch(24) == EXAMPLES + EXAMPLES
    stream = PromptStream(EXAMPLES, seed=5)
    epochs = [stream.next_batch(12) for _ in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled each epoch
    assert PromptStream(EXAMPLES, seed=6).next_batch(12) != epochs[0]  # the seed matters
    assert PromptStream(EXAMPLES, seed=5).next_batch(12) == epochs[0]  # and fixes the walk
    it = PromptStream(EXAMPLES, seed=5)
    assert [next(it) for _ in range(13)] == epochs[0] + epochs[1][:1]
    assert PromptStream(EXAMPLES).next_batch(0) == [] and len(it) == 12


def test_prompt_stream_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one example"):
        PromptStream([], seed=0)
    with pytest.raises(ValueError, match="non-negative integer"):
        PromptStream(EXAMPLES, seed=-1)
    stream = PromptStream(EXAMPLES, seed=3)
    with pytest.raises(ValueError, match=">= 0"):
        stream.next_batch(-1)
    with pytest.raises(ValueError, match="seed 4 does not match"):
        stream.load_state_dict({"epoch": 0, "position": 0, "seed": 4})
    with pytest.raises(ValueError, match="does not fit 12 examples"):
        stream.load_state_dict({"epoch": 0, "position": 13, "seed": 3})
    with pytest.raises(ValueError, match="lacks"):
        stream.load_state_dict({"seed": 3})
