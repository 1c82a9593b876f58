"""JSONL format, validation errors, atomic writes, the resumable prompt stream, built-in tasks.

Run: python -m pytest tests/llm/test_data.py
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from llm.data import DataError, Example, PromptStream, load_jsonl, write_jsonl
from llm.reward import score
from llm.tasks import alphabet, make_arithmetic, make_countdown, make_dataset


def test_round_trip(tmp_path):
    exs = [Example("1+2=", "3"), Example("3 5>8:", "3+5", "countdown", {"numbers": [3, 5], "target": 8})]
    write_jsonl(tmp_path / "d.jsonl", exs)
    assert load_jsonl(tmp_path / "d.jsonl") == exs
    assert not list(tmp_path.glob(".*tmp*"))  # the temp file was renamed away


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('{"prompt": "", "answer": "1"}', r"d.jsonl:2: field 'prompt' must be a non-empty string"),
        ('{"prompt": 3, "answer": "1"}', r"d.jsonl:2: field 'prompt' must be a non-empty string, got 3"),
        ('{"prompt": "1+1="}', r"d.jsonl:2: field 'answer' is missing"),
        ('{"prompt": "1+1=", "answer": [2]}', r"d.jsonl:2: field 'answer' must be a string or a number"),
        ('{"prompt": "1+1=", "answer": "2", "task": "poetry"}', r"d.jsonl:2: field 'task' must name a registered"),
        ('{"prompt": "1+1=", "answer": "2", "meta": 5}', r"d.jsonl:2: field 'meta' must be an object"),
        ('{"prompt": "1+1=", "answer": "2", "extra": 1}', r"d.jsonl:2: unknown field 'extra'"),
        ('{"prompt": "1+1=", "answer": "2"', r"d.jsonl:2: not valid JSON"),
        ("[1, 2]", r"d.jsonl:2: a line must be a JSON object"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, line, match):
    f = tmp_path / "d.jsonl"
    f.write_text('{"prompt": "1+1=", "answer": 2}\n' + line + "\n")
    with pytest.raises(DataError, match=match) as exc:
        load_jsonl(f)
    assert "\n" not in str(exc.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_jsonl(tmp_path / "none.jsonl")
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="no examples"):
        load_jsonl(tmp_path / "e.jsonl")


def test_numbers_are_accepted_as_answers(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"prompt": "2*3=", "answer": 6}) + "\n")
    assert load_jsonl(f)[0].answer == "6"


def test_prompt_stream_resumes_exactly():
    exs = [Example(f"{i}+0=", str(i)) for i in range(7)]
    full = PromptStream(exs, seed=3)
    want = [full.next_batch(3) for _ in range(6)]
    part = PromptStream(exs, seed=3)
    got = [part.next_batch(3) for _ in range(2)]
    resumed = PromptStream(exs, seed=3)
    resumed.load_state_dict(json.loads(json.dumps(part.state_dict())))
    got += [resumed.next_batch(3) for _ in range(4)]
    assert got == want
    seen = [ex for batch in want for ex in batch]
    assert sorted(seen[:7], key=lambda e: e.prompt) == sorted(exs, key=lambda e: e.prompt)  # epoch = permutation
    with pytest.raises(ValueError, match="seed"):
        PromptStream(exs, seed=4).load_state_dict(part.state_dict())


@pytest.mark.parametrize("difficulty", [1, 2, 4, 6])
def test_arithmetic_answers_are_right(difficulty):
    exs = make_arithmetic(200, np.random.default_rng(difficulty), difficulty)
    assert all(set(ex.prompt + ex.answer) <= set(alphabet()) for ex in exs)
    assert score([ex.answer for ex in exs], exs) == [1.0] * len(exs)


@pytest.mark.parametrize("difficulty", [2, 3, 5])
def test_countdown_examples_are_solvable_by_their_answer(difficulty):
    exs = make_countdown(200, np.random.default_rng(difficulty), difficulty)
    assert all(set(ex.prompt + ex.answer) <= set(alphabet()) for ex in exs)
    assert all(0 < ex.meta["target"] < 1000 and len(ex.meta["numbers"]) == difficulty for ex in exs)
    assert score([ex.answer for ex in exs], exs) == [1.0] * len(exs)


def test_splits_are_disjoint_and_deterministic():
    tr, te = make_dataset("countdown", 300, 50, 3, seed=1)
    assert len(tr) == 300 and len(te) == 50
    assert not {e.prompt for e in tr} & {e.prompt for e in te}
    assert len({e.prompt for e in tr}) == 300
    assert make_dataset("countdown", 300, 50, 3, seed=1) == (tr, te)
    with pytest.raises(ValueError, match="unknown task"):
        make_dataset("poems", 1, 1, 1, 0)
    with pytest.raises(ValueError, match="distinct"):
        make_dataset("arithmetic", 500, 0, 1, 0)  # only 300 one-digit problems exist
