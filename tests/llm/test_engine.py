"""The static decode engine and the fused sampler against the eager Hugging Face path and flat formulas.

Run: python -m pytest tests/llm/test_engine.py   (the torch.compile check: -m slow)
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from llm.engine import StaticDecoder, unsupported_reason  # noqa: E402
from llm.model import load_model  # noqa: E402
from llm.rollout import RolloutBatch, generate, inverse_cdf, sample_step, truncated_inverse_cdf  # noqa: E402

PROMPTS = ["12+34=", "7-1=", "3 5 7 -> 22:", "9=", "100-1=", "8"]


def _prompts(tok, repeat=2):
    return [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS] * repeat


def _pair(model, prompts, seed, **kw):
    out = []
    for engine in ("eager", "static"):
        gen = torch.Generator().manual_seed(seed)
        out.append(generate(model, prompts, generator=gen, engine=engine, compile=False, **kw))
    return out


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_llama_dir"])
@pytest.mark.parametrize("seed", [0, 1])
def test_static_engine_samples_exactly_what_eager_samples(fixture, seed, request):
    """Same uniforms → the same tokens and masks; log-probs and entropies equal to float rounding.

    Several stop ids make rows finish at different steps, so rows are compacted out mid-way.
    """
    model, tok = load_model(request.getfixturevalue(fixture))
    stops = [tok.eos_token_id, *tok("0123", add_special_tokens=False)["input_ids"]]
    kw = dict(max_new_tokens=24, temperature=0.8, eos_ids=stops, pad_id=tok.pad_token_id)
    eager, static = _pair(model, _prompts(tok), seed, **kw)
    assert torch.equal(eager.response_ids, static.response_ids)
    assert torch.equal(eager.response_mask, static.response_mask)
    assert torch.equal(eager.truncated, static.truncated)
    assert torch.allclose(eager.logprobs, static.logprobs, atol=1e-5)
    assert torch.allclose(eager.entropy, static.entropy, atol=1e-5)
    lengths = eager.lengths.tolist()
    assert min(lengths) < max(lengths)  # rows did finish at different steps (compaction ran)


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_llama_dir"])
def test_prefill_logits_equal_the_hugging_face_forward(fixture, request):
    from llm.rollout import left_pad

    model, tok = load_model(request.getfixturevalue(fixture))
    ids, mask = left_pad(_prompts(tok, 1), tok.pad_token_id)
    dec = StaticDecoder(model)
    with torch.no_grad():
        ours = dec.prefill(ids, mask, dec.new_cache(len(ids), dec.columns(ids.shape[1], 4), model.lm_head.weight))
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        ref = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
    assert torch.allclose(ours, ref, atol=1e-5)


def test_stop_ids_truncation_and_batch_size(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    stops = [tok.eos_token_id, *tok("05", add_special_tokens=False)["input_ids"]]
    prompts = _prompts(tok)
    kw = dict(max_new_tokens=6, eos_ids=stops, pad_id=tok.pad_token_id, compile=False)
    whole = generate(model, prompts, generator=torch.Generator().manual_seed(3), **kw)
    for i, row in enumerate(whole.response_ids.tolist()):
        n = int(whole.lengths[i])
        ends_on_stop = row[n - 1] in stops
        assert bool(whole.truncated[i]) == (not ends_on_stop)
        assert not any(t in stops for t in row[: n - 1])  # no stop id before the last token
        if whole.truncated[i]:
            assert n == 6
    parts = generate(model, prompts, generator=torch.Generator().manual_seed(3), batch_size=5, **kw)
    assert torch.equal(parts.response_ids, whole.response_ids)
    assert torch.equal(parts.attention_mask, whole.attention_mask)
    assert torch.equal(parts.truncated, whole.truncated)
    assert torch.allclose(parts.logprobs, whole.logprobs, atol=1e-5)
    assert all(not any(ch in text for ch in "05") for text in whole.texts(tok, stops))


def test_eos_id_alone_still_works_and_a_stop_is_required(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    a = generate(model, [[5, 6]], max_new_tokens=4, eos_id=1, pad_id=0, generator=torch.Generator().manual_seed(0))
    b = generate(model, [[5, 6]], max_new_tokens=4, eos_ids=[1], pad_id=0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.response_ids, b.response_ids)
    with pytest.raises(ValueError, match="stop token"):
        generate(model, [[5]], max_new_tokens=2, pad_id=0)
    with pytest.raises(ValueError, match="top_p"):
        generate(model, [[5]], max_new_tokens=2, eos_id=1, pad_id=0, top_p=0.0)
    with pytest.raises(ValueError, match="engine"):
        generate(model, [[5]], max_new_tokens=2, eos_id=1, pad_id=0, engine="vllm")


def test_forward_patched_model_falls_back_to_eager_with_a_notice(tiny_model_dir, caplog, monkeypatch):
    import llm.rollout

    monkeypatch.setattr(llm.rollout, "_notices", set())  # the notice is printed once per reason and process
    model, _ = load_model(tiny_model_dir)
    assert unsupported_reason(model) is None
    orig = model.forward
    model.forward = lambda *a, **k: orig(*a, **k)
    assert "forward" in unsupported_reason(model)
    with caplog.at_level(logging.WARNING, logger="llm.rollout"):
        batch = generate(model, [[5, 6]], max_new_tokens=3, eos_id=1, pad_id=0)
    assert isinstance(batch, RolloutBatch)
    assert any("falls back to 'eager'" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="cannot run"):
        StaticDecoder(model)


# ----------------------------------------------------------------------------- sampling formulas
def _flat_inverse_cdf(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Reference: first index whose cumulative probability (float64) exceeds u·Σp."""
    cdf = np.cumsum(p, axis=-1)
    pick = [int(np.searchsorted(c, ui * c[-1], side="right")) for c, ui in zip(cdf, u, strict=True)]
    return np.minimum(np.array(pick), p.shape[-1] - 1)


@pytest.mark.parametrize("vocab", [7, 256, 1000])
def test_two_level_inverse_cdf_equals_the_flat_one(vocab):
    gen = torch.Generator().manual_seed(vocab)
    p = torch.softmax(3 * torch.randn(64, vocab, generator=gen, dtype=torch.float64), -1)
    p[:, ::5] = 0.0  # zero-probability tokens are never drawn
    u = torch.rand(64, generator=gen, dtype=torch.float64)
    ours = inverse_cdf(p, u).numpy()
    assert np.array_equal(ours, _flat_inverse_cdf(p.numpy(), u.numpy()))
    assert (p.gather(-1, torch.as_tensor(ours)[:, None]) > 0).all()


def _truncated_reference(z: np.ndarray, u: float, top_p: float, top_k: int) -> int:
    order = np.argsort(-z, kind="stable")
    keep = order[:top_k] if top_k else order
    p = np.exp(z[keep] - z[keep].max())
    p /= p.sum()
    mass_before = np.cumsum(p) - p
    p = np.where(mass_before < top_p, p, 0.0)
    cdf = np.cumsum(p)
    i = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
    return int(keep[min(i, int((p > 0).sum()) - 1)])


@pytest.mark.parametrize(("top_p", "top_k"), [(1.0, 1), (1.0, 5), (0.5, 0), (0.9, 20), (0.3, 3)])
def test_top_p_top_k_follow_the_truncated_renormalised_distribution(top_p, top_k):
    gen = torch.Generator().manual_seed(7)
    z = 2 * torch.randn(32, 50, generator=gen, dtype=torch.float64)
    u = torch.rand(32, generator=gen, dtype=torch.float64)
    ours = truncated_inverse_cdf(z, u, top_p, top_k).tolist()
    ref = [_truncated_reference(z[i].numpy(), float(u[i]), top_p, top_k) for i in range(32)]
    assert ours == ref
    if top_k == 1:
        assert ours == z.argmax(-1).tolist()


def test_sample_step_logprob_and_entropy_are_of_the_full_distribution():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(16, 40, generator=gen)
    u = torch.rand(16, generator=gen)
    tok, logp, ent = sample_step(logits, u, 0.7, top_p=0.5, top_k=10)
    full = torch.log_softmax(logits.double() / 0.7, -1)
    assert torch.allclose(logp.double(), full.gather(-1, tok[:, None])[:, 0], atol=1e-5)
    assert torch.allclose(ent.double(), -(full.exp() * full).sum(-1), atol=1e-5)


# -------------------------------------------------------------------------- token-budget micro-batches
def test_token_budget_micro_batches_partition_rows_within_budget(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    batch = generate(model, _prompts(tok, 3), max_new_tokens=12, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    rows = torch.arange(len(batch.prompt_ids))
    budget = 60
    chunks = batch.micro_chunks(rows, micro=8, max_tokens=budget)
    seen = torch.cat([mi for mi, _, _ in chunks]).sort().values
    assert torch.equal(seen, rows)  # every row exactly once
    p = batch.prompt_ids.shape[1]
    for mi, first, t in chunks:
        width = p - first + t
        assert len(mi) <= 8
        assert len(mi) == 1 or len(mi) * width <= budget
        assert t == int(batch.response_mask[mi].sum(-1).max())
        assert batch.prompt_mask[mi][:, :first].sum() == 0  # only common left padding was cut


# ---------------------------------------------------------------------------------------- compile
@pytest.mark.slow
def test_compiled_static_engine_samples_what_eager_samples(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    kw = dict(max_new_tokens=10, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    eager = generate(model, _prompts(tok), generator=torch.Generator().manual_seed(0), engine="eager", **kw)
    fast = generate(model, _prompts(tok), generator=torch.Generator().manual_seed(0), compile=True, **kw)
    assert torch.equal(eager.response_ids, fast.response_ids)
    assert torch.allclose(eager.logprobs, fast.logprobs, atol=1e-5)


def test_bucketed_attention_spans_sample_what_eager_samples(tiny_model_dir):
    """Compiled and graphed steps attend over 64·2^k columns (masked beyond the live ones): same samples."""
    from llm.rollout import _static_decoder

    model, tok = load_model(tiny_model_dir)
    dec = _static_decoder(model, False)
    assert [dec.span(c, 1000) for c in (0, 5)] == [1, 6]
    dec.exact_span = False
    try:
        assert [dec.span(c, 1000) for c in (0, 63, 64, 127, 128, 300)] == [64, 64, 128, 128, 256, 512]
        assert dec.span(900, 960) == 960
        kw = dict(max_new_tokens=70, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)  # crosses 64 columns
        eager, static = _pair(model, _prompts(tok, 1), 5, **kw)
    finally:
        dec.exact_span = True
    assert torch.equal(eager.response_ids, static.response_ids)
    assert torch.allclose(eager.logprobs, static.logprobs, atol=1e-5)


def test_init_tiny_shape_presets_and_embedding_size(tmp_path):
    from llm.config import InitTinyConfig
    from llm.model import SHAPES, build_tiny
    from pic.validation import ParameterError

    assert SHAPES["qwen2.5-1.5b"]["num_layers"] == 28 and SHAPES["qwen2.5-0.5b"]["hidden_size"] == 896
    with pytest.raises(ParameterError, match="shape must be one of"):
        InitTinyConfig(out="x", shape="gpt-5").check()
    with pytest.raises(ParameterError, match="embedding_size must be"):
        InitTinyConfig(out="x", embedding_size=-1).check()
    with pytest.raises(ValueError, match="shape must be one of"):
        build_tiny(tmp_path / "bad", alphabet="ab", shape="gpt-5")
    model, tok = load_model(
        build_tiny(tmp_path / "m", alphabet="0123", hidden_size=16, num_layers=1, embedding_size=300)
    )
    assert model.get_input_embeddings().weight.shape == (300, 16) and len(tok) < 300
