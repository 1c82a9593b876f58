"""Tiny model and tokenizer: build, load with plain transformers, save/load round trip.

Run: python -m pytest tests/llm/test_model.py
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from transformers import AutoModelForCausalLM  # noqa: E402

from llm.model import count_parameters, load_model, save_model  # noqa: E402
from llm.tasks import alphabet  # noqa: E402


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_llama_dir"])
def test_builds_and_loads_with_plain_transformers(fixture, request):
    path = request.getfixturevalue(fixture)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    meta = json.loads((path / "tiny_meta.json").read_text())
    assert meta["arch"] in model.config.model_type
    assert count_parameters(model) == meta["parameters"]


def test_tokenizer_round_trips_every_task_character(tiny_model_dir):
    _, tok = load_model(tiny_model_dir)
    text = "3 5 -> 8:" + alphabet()
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # one token per character, spaces included
    assert tok.decode(ids) == text
    assert tok.unk_token_id not in ids
    assert tok.padding_side == "left"


def test_special_tokens_are_consistent(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    assert model.config.eos_token_id == tok.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id
    assert model.config.vocab_size == len(tok)
    assert tok.eos_token_id != tok.pad_token_id


def test_save_load_round_trip_is_exact(tiny_model_dir, tmp_path):
    model, tok = load_model(tiny_model_dir)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_model(model, tok, tmp_path / "copy")
    again, _ = load_model(tmp_path / "copy")
    x = torch.tensor([tok("12+34=", add_special_tokens=False)["input_ids"]])
    assert torch.equal(model(x).logits, again(x).logits)


def test_missing_directory_is_one_line_error(tmp_path):
    with pytest.raises(ValueError, match="is not a model directory"):
        load_model(tmp_path / "nothing")
