"""Bad inputs get one line naming the file or field: model directories, data against a tokenizer, proofs flags.

Run: python -m pytest tests/reliability/test_input_errors.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from llm.data import DataError, Example, check_prompts, load_jsonl_rows, write_jsonl
from llm.model import ModelError, char_tokenizer, check_model_dir, context_length, load_model

ROOT = Path(__file__).resolve().parents[2]


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text
    return text


@pytest.fixture
def model_copy(small_model_dir, tmp_path):
    return Path(shutil.copytree(small_model_dir, tmp_path / "model"))


def test_model_dir_without_tokenizer_files(model_copy):
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (model_copy / name).unlink(missing_ok=True)
    with pytest.raises(ModelError) as info:
        load_model(model_copy)
    assert _one_line(info.value).startswith(f"{model_copy}: no tokenizer files (expected one of tokenizer.json")


def test_empty_tokenizer_file(model_copy):
    (model_copy / "tokenizer.json").write_text("")
    with pytest.raises(ModelError, match=rf"^{model_copy}: the tokenizer does not load"):
        load_model(model_copy)


@pytest.mark.parametrize("keep", [0.0, 0.001, 0.5, 0.999])
def test_truncated_safetensors(model_copy, keep):
    weights = model_copy / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as fh:
        fh.truncate(int(size * keep))
    with pytest.raises(ModelError) as info:
        load_model(model_copy)
    assert _one_line(info.value).startswith(f"{weights}: truncated weight file ({int(size * keep)} bytes")


def test_damaged_safetensors_header(model_copy):
    weights = model_copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:12] = b"\xff\xfe{["
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"damaged weight file \(its header is not valid safetensors JSON\)"):
        check_model_dir(model_copy)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"model_type": "qwen2",', "not valid JSON (Expecting property name enclosed in double quotes at line 1"),
        ("", "not valid JSON (Expecting value at line 1 column 1)"),
        ("[1, 2]", "must be a JSON object, got list"),
    ],
)
def test_config_json_that_is_not_json(model_copy, text, fragment):
    (model_copy / "config.json").write_text(text)
    with pytest.raises(ModelError) as info:
        load_model(model_copy)
    assert _one_line(info.value).startswith(f"{model_copy / 'config.json'}: ")
    assert fragment in str(info.value)


def test_the_intact_model_passes_and_reports_its_context(small_model_dir):
    check_model_dir(small_model_dir)
    model, tok = load_model(small_model_dir)
    assert context_length(model) == model.config.max_position_embeddings == 256
    assert context_length(object()) is None


def test_character_outside_the_alphabet_names_character_and_row(tmp_path):
    tok = char_tokenizer("0123456789+=")
    path = tmp_path / "train.jsonl"
    write_jsonl(path, [Example("1+2=", "3"), Example("12+3=", "15")])
    path.write_text(path.read_text() + "\n" + '{"prompt": "4×5=", "answer": "20"}\n')
    rows = load_jsonl_rows(path)
    assert [line for line, _ in rows] == [1, 2, 4]
    examples = [ex for _, ex in rows]
    with pytest.raises(DataError) as info:
        check_prompts(examples, tok, source=path, lines=[line for line, _ in rows])
    assert _one_line(info.value) == (
        f"{path}:4: field 'prompt' has character '×' (U+00D7) at column 2, "
        "which the tokenizer does not know (it would become '<unk>')"
    )
    with pytest.raises(DataError, match=r"^data: example 3: field 'prompt' has character '×'"):
        check_prompts(examples, tok)


def test_prompt_longer_than_the_context_names_row_and_limit():
    tok = char_tokenizer("0123456789+=")
    examples = [Example("1+1=", "2"), Example("1" * 241 + "=", "1")]
    assert check_prompts(examples[:1], tok, context=256, max_new_tokens=16) == 4
    assert check_prompts(examples[1:], tok, context=256, max_new_tokens=14) == 242
    with pytest.raises(DataError) as info:
        check_prompts(examples, tok, context=256, max_new_tokens=16, source="train.jsonl", lines=[1, 2])
    assert _one_line(info.value) == (
        "train.jsonl:2: field 'prompt' is 242 tokens, over the limit of 240 "
        "(the model's 256 positions minus 16 for the completion)"
    )
    with pytest.raises(DataError, match="leave no room"):
        check_prompts(examples, tok, context=16, max_new_tokens=16)


# ------------------------------------------------------------------ proofs CLI
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "-1", "abc", ""])
def test_proofs_timeout_is_rejected_in_one_line_on_stderr(value):
    proc = subprocess.run(
        [sys.executable, "-m", "proofs", f"--timeout={value}", "--only", "Lemma A"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--timeout" in lines[0] and "positive finite number of seconds" in lines[0]
