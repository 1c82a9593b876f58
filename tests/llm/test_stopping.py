"""Prompt templating, stopping on every eos id and stop strings, truncation keep / mask / DAPO penalty.

A scripted model (its logits pick a fixed next token per position) drives `llm.rollout.generate`, so
where a completion must stop is known exactly.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from llm.completions import Finisher  # noqa: E402
from llm.config import RolloutConfig  # noqa: E402
from llm.data import Example  # noqa: E402
from llm.model import bpe_tokenizer  # noqa: E402
from llm.prompts import PromptEncoder, PromptFormat, render_prompt  # noqa: E402
from llm.rollout import RolloutBatch, generate  # noqa: E402
from llm.stopping import cut_at_stops, overlong_penalty, stop_ids, truncated  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return bpe_tokenizer(["Mia has 12 apples. How many apples? 19 20 21", "user assistant system"], 320)


class Scripted(torch.nn.Module):
    """A causal LM whose next token after generated position t is ``script[row][t]`` (a one-hot logit)."""

    def __init__(self, scripts: list[list[int]], vocab: int, eos: list[int]):
        super().__init__()
        self.scripts, self.vocab = scripts, vocab
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.generation_config = SimpleNamespace(eos_token_id=eos)
        self.t = 0

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=None):
        if input_ids.shape[1] > 1:  # the prefill
            self.t = 0
        logits = torch.full((input_ids.shape[0], 1, self.vocab), -30.0)
        for i, script in enumerate(self.scripts):
            logits[i, 0, script[min(self.t, len(script) - 1)]] = 30.0
        self.t += 1
        return SimpleNamespace(logits=logits)


def _ids(tok, *names):
    return [tok.convert_tokens_to_ids(n) for n in names]


def test_chat_template_system_prompt_and_question_template(tok):
    ex = Example("What is 2+2?", "4", "math")
    fmt = PromptFormat(system_prompt="Be brief.", prompt_template="Q: {question}\nA in \\boxed{{}}.")
    text = render_prompt(tok, ex, fmt)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ: What is 2+2?\nA in \\boxed{}.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    plain = render_prompt(tok, ex, PromptFormat(chat_template="none", system_prompt="S"))
    assert plain == "S\n\nWhat is 2+2?"
    assert render_prompt(tok, ex, PromptFormat(chat_template="none")) == ex.prompt  # the earlier behaviour
    msgs = Example("2+2?", "4", "math", {"messages": [{"role": "user", "content": "2+2?"}]})
    assert render_prompt(tok, msgs, PromptFormat()).startswith("<|im_start|>user\n2+2?<|im_end|>")
    text, ids = PromptEncoder(tok, fmt)(ex)
    assert text.count("<|im_start|>") == 3 and ids.count(_ids(tok, "<|im_start|>")[0]) == 3  # one token each


def test_stop_ids_union_of_generation_config_and_tokenizer(tok):
    im_end, eot = _ids(tok, "<|im_end|>", "<|endoftext|>")
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[im_end, eot]))
    assert stop_ids(model, tok) == sorted([im_end, eot])
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=eot))
    assert stop_ids(model, tok) == sorted({eot, tok.eos_token_id})


def _run(tok, scripts, cfg, examples=None, terms=None):
    im_end, eot = _ids(tok, "<|im_end|>", "<|endoftext|>")
    model = Scripted(scripts, len(tok), [im_end, eot])
    finisher = Finisher(model, tok, cfg, terms, pad_id=eot)
    prompts = [tok("Mia has", add_special_tokens=False)["input_ids"]] * len(scripts)
    batch = generate(model, prompts, max_new_tokens=cfg.max_new_tokens, **finisher.generate_kwargs(generate))
    examples = examples or [Example("p", "19", "math")] * len(scripts)
    return finisher(batch, examples)


def test_generation_stops_on_the_second_eos_id_and_flags_truncation(tok):
    im_end, eot = _ids(tok, "<|im_end|>", "<|endoftext|>")
    n19, n20 = tok("19", add_special_tokens=False)["input_ids"], tok(" 20", add_special_tokens=False)["input_ids"]
    scripts = [
        n19 + [eot] + n20 * 10,  # stops on <|endoftext|>, the second stop id (not the tokenizer's eos)
        n19 + [im_end] + n20 * 10,  # stops on the tokenizer's eos
        n20 * 12,  # never stops: truncated
    ]
    done = _run(tok, scripts, RolloutConfig(max_new_tokens=6))
    lengths = done.batch.response_mask.sum(-1).tolist()
    assert lengths == [len(n19) + 1, len(n19) + 1, 6]
    assert done.batch.response_ids[0, len(n19)].item() == eot  # the stop token is kept (mask 1) ...
    assert (done.batch.logprobs[0, len(n19) + 1 :] == 0).all()  # ... and nothing after it counts
    assert done.texts[:2] == ["19", "19"]
    assert done.truncated.tolist() == [False, False, True]
    assert done.scores.truncated == 1
    assert done.rewards.tolist() == [1.0, 1.0, 0.0]  # math-verify on the cut text


def test_stop_strings_cut_the_text_and_the_tokens(tok):
    n19 = tok("19", add_special_tokens=False)["input_ids"]
    stop = tok(" apples", add_special_tokens=False)["input_ids"]
    scripts = [n19 + stop + n19 * 10]
    done = _run(tok, scripts, RolloutConfig(max_new_tokens=8, stop_strings=[" apples"]))
    assert done.batch.response_mask.sum().item() == len(n19) + len(stop)
    assert done.texts == ["19"] and done.truncated.tolist() == [False]


def test_truncated_mask_drops_only_truncated_rows_from_the_loss(tok):
    im_end = _ids(tok, "<|im_end|>")[0]
    n20 = tok(" 20", add_special_tokens=False)["input_ids"]
    scripts = [[*n20, im_end], n20 * 12]
    keep = _run(tok, scripts, RolloutConfig(max_new_tokens=5))
    masked = _run(tok, scripts, RolloutConfig(max_new_tokens=5, truncated="mask"))
    assert keep.batch.response_mask[1].sum() == 5 and masked.batch.response_mask[1].sum() == 0
    assert torch.equal(keep.batch.response_mask[0], masked.batch.response_mask[0])
    assert (masked.batch.entropy[1] == 0).all() and keep.rewards.tolist() == masked.rewards.tolist()
    every = _run(tok, [n20 * 12] * 2, RolloutConfig(max_new_tokens=5, truncated="mask"))
    assert every.batch.response_mask.sum() == 10  # all truncated: none masked


def test_truncated_penalty_is_dapo_soft_overlong_punishment(tok):
    im_end = _ids(tok, "<|im_end|>")[0]
    n20 = tok(" 20", add_special_tokens=False)["input_ids"]
    scripts = [n20 * k + [im_end] for k in range(1, 9)]
    cfg = RolloutConfig(max_new_tokens=8, truncated="penalty", overlong_buffer=4, overlong_penalty=0.5)
    done = _run(tok, scripts, cfg)
    lengths = done.batch.response_mask.sum(-1).tolist()
    expected = []
    for n in lengths:  # DAPO eq. 13, L_max = 8, L_c = 4, scaled by 0.5
        expected.append(0.0 if n <= 4 else 0.5 * ((8 - 4) - n) / 4 if n <= 8 else -0.5)
    assert done.rewards.tolist() == pytest.approx(expected)
    assert overlong_penalty(torch.tensor([9]), 8, 4).item() == -1.0


def test_cut_and_truncation_on_a_hand_built_batch():
    ids = torch.tensor([[5, 7, 9, 5], [5, 5, 5, 5]])
    z = torch.zeros(2, 4)
    batch = RolloutBatch(torch.ones(2, 1, dtype=torch.long), torch.ones(2, 1, dtype=torch.long), ids,
                         torch.ones(2, 4, dtype=torch.long), z - 1.0, z + 2.0, torch.tensor([True, True]))  # fmt: skip
    cut, stopped = cut_at_stops(batch, [7, 9], pad_id=0)
    assert cut.response_ids.tolist() == [[5, 7, 0, 0], [5, 5, 5, 5]] and stopped == [True, False]
    assert cut.logprobs.tolist()[0] == [-1.0, -1.0, 0.0, 0.0] and cut.entropy.tolist()[0] == [2.0, 2.0, 0.0, 0.0]
    assert truncated(cut, stopped, 4).tolist() == [False, True] == cut.truncated.tolist()
    assert truncated(cut, stopped, 5).tolist() == [False, False]
