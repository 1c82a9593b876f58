"""Data adapters: plain / gsm8k / math / verl rows from JSONL, JSON, parquet and Arrow files; errors name the row."""

from __future__ import annotations

import json

import pytest

from llm.data import DataError
from llm.datasets import boxed_answer, gsm8k_answer, load_examples, read_rows

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

GSM = [
    {"question": "Ann has 3 pens and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"},
    {"question": "A shop sells 1,000 cups twice.", "answer": "1000 * 2 = 2000\n#### 2,000"},
]
MATH = [
    {"problem": "Half of 1?", "solution": "It is $\\boxed{\\frac{1}{2}}$."},
    {"problem": "Nested?", "solution": "First \\boxed{1}, then \\boxed{\\sqrt{x^{2}}}."},
]
VERL = [
    {
        "data_source": "openai/gsm8k",
        "prompt": [{"role": "system", "content": "Think."}, {"role": "user", "content": "2+2?"}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": "4"},
        "extra_info": {"index": 0},
    }
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_gsm8k_rows_from_jsonl_json_and_parquet(tmp_path):
    for path in (
        _jsonl(tmp_path / "g.jsonl", GSM),
        _parquet(tmp_path / "g.parquet", GSM),
        tmp_path / "g.json",
    ):
        if path.suffix == ".json":
            path.write_text(json.dumps(GSM))
        exs = load_examples(path, "gsm8k")
        assert [ex.prompt for ex in exs] == [r["question"] for r in GSM]
        assert [ex.answer for ex in exs] == ["7", "2000"]  # after the last ####, commas dropped
        assert {ex.task for ex in exs} == {"math"}


def test_math_takes_the_last_boxed_answer_with_nested_braces(tmp_path):
    exs = load_examples(_jsonl(tmp_path / "m.jsonl", MATH), "math")
    assert [ex.answer for ex in exs] == ["\\frac{1}{2}", "\\sqrt{x^{2}}"]
    assert boxed_answer("no box") is None and boxed_answer("\\boxed{a{b}c}") == "a{b}c"
    assert gsm8k_answer("no marker") is None


def test_verl_parquet_keeps_the_chat_messages_and_data_source(tmp_path):
    (ex,) = load_examples(_parquet(tmp_path / "v.parquet", VERL), "verl")
    assert ex.prompt == "2+2?" and ex.answer == "4" and ex.task == "math"
    assert ex.meta["messages"] == VERL[0]["prompt"] and ex.meta["data_source"] == "openai/gsm8k"


def test_arrow_directory_as_written_by_datasets_save_to_disk(tmp_path):
    d = tmp_path / "ds"
    d.mkdir()
    (d / "dataset_info.json").write_text("{}")
    (d / "state.json").write_text("{}")
    table = pa.Table.from_pylist(GSM)
    with pa.OSFile(str(d / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    assert [ex.answer for ex in load_examples(d, "gsm8k")] == ["7", "2000"]
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "dataset_dict.json").write_text("{}")
    (tmp_path / "dd" / "train").mkdir()
    with pytest.raises(DataError, match=r"a dataset with splits \['train'\]; point at one of them"):
        load_examples(tmp_path / "dd", "gsm8k")


def test_field_mapping_and_nested_keys(tmp_path):
    rows = [{"q": "1+1?", "meta_info": {"gold": 2}}]
    (ex,) = load_examples(_jsonl(tmp_path / "x.jsonl", rows), "plain", prompt_key="q", answer_key="meta_info.gold",
                          task="math")  # fmt: skip
    assert (ex.prompt, ex.answer, ex.task) == ("1+1?", "2", "math")


@pytest.mark.parametrize(
    ("fmt", "rows", "message"),
    [
        ("plain", [{"prompt": "1+1=", "answer": "2", "task": "arithmetic"}, {"prompt": "2+2=", "answer": "4"}],
         r"x.jsonl:2: field 'task' is missing \(give it in every row, or set data.task\)"),
        ("gsm8k", [GSM[0], {"question": "q"}], r"x.jsonl:2: field 'answer' is missing"),
        ("gsm8k", [GSM[0], {"question": "q", "answer": "no marker"}], r"x.jsonl:2: field 'answer' has no final answer"),
        ("math", [{"solution": "\\boxed{1}"}], r"x.jsonl:1: field 'problem' is missing"),
        ("math", [{"problem": "p", "solution": "1"}], r"x.jsonl:1: field 'solution' has no \\boxed\{\} answer"),
        ("verl", [{"prompt": "p", "reward_model": {}}], r"x.jsonl:1: field 'reward_model.ground_truth' is missing"),
        ("plain", [{"prompt": "p", "answer": "1", "task": "poetry"}], r"x.jsonl:1: field 'task' must name a"),
    ],
)  # fmt: skip
def test_a_missing_or_bad_field_names_file_row_and_field(tmp_path, fmt, rows, message):
    with pytest.raises(DataError, match=message):
        load_examples(_jsonl(tmp_path / "x.jsonl", rows), fmt)


def test_parquet_errors_name_the_row_and_the_task_default_is_explicit(tmp_path):
    path = _parquet(tmp_path / "p.parquet", [{"question": "a", "answer": "#### 1"}, {"question": "b", "answer": "2"}])
    with pytest.raises(DataError, match=r"p.parquet: row 2: field 'answer' has no final answer"):
        load_examples(path, "gsm8k")
    path = _jsonl(tmp_path / "t.jsonl", [{"prompt": "1+1=", "answer": 2}])
    assert load_examples(path, "plain", task="arithmetic")[0].task == "arithmetic"


def test_unknown_files_and_empty_data(tmp_path):
    (tmp_path / "a.csv").write_text("x")
    with pytest.raises(DataError, match=r"a.csv: unknown data file type '.csv'"):
        list(read_rows(tmp_path / "a.csv"))
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(DataError, match=r"e.jsonl: no examples"):
        load_examples(tmp_path / "e.jsonl", "gsm8k")
    with pytest.raises(DataError, match=r"nope.parquet: file not found"):
        load_examples(tmp_path / "nope.parquet", "verl")


def test_100k_parquet_rows_load_in_seconds(tmp_path):
    import time

    rows = [{"question": f"q{i}", "answer": f"w\n#### {i}"} for i in range(100_000)]
    path = _parquet(tmp_path / "big.parquet", rows)
    t0 = time.perf_counter()
    exs = load_examples(path, "gsm8k")
    assert len(exs) == 100_000 and exs[-1].answer == "99999"
    assert time.perf_counter() - t0 < 10.0
