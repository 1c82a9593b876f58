"""Rollout: KV-cache sampling with left padding against a teacher-forced full forward.

Run: python -m pytest tests/llm/test_rollout.py
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from llm.model import load_model  # noqa: E402
from llm.rollout import generate  # noqa: E402

PROMPTS = ["12+34=", "7-1=", "3 5 7 -> 22:", "9="]


def _reference(model, prompt: list[int], response: list[int], temperature: float):
    """Per-position log-probs and entropies from one full forward of the unpadded sequence."""
    ids = torch.tensor([prompt + response])
    z = model(ids).logits[0, len(prompt) - 1 : -1].float() / temperature
    logz = torch.log_softmax(z, -1)
    return logz.gather(-1, torch.tensor(response)[:, None])[:, 0], -(logz.exp() * logz).sum(-1)


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_llama_dir"])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_cached_batched_sampling_matches_full_forward(fixture, temperature, request):
    model, tok = load_model(request.getfixturevalue(fixture))
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    gen = torch.Generator().manual_seed(0)
    batch = generate(
        model,
        prompts,
        max_new_tokens=10,
        temperature=temperature,
        eos_id=tok.eos_token_id,
        pad_id=tok.pad_token_id,
        generator=gen,
    )
    assert batch.prompt_ids.shape == (4, max(map(len, prompts)))
    with torch.no_grad():
        for i, p in enumerate(prompts):
            n = int(batch.response_mask[i].sum())
            resp = batch.response_ids[i, :n].tolist()
            ref_lp, ref_ent = _reference(model, p, resp, temperature)
            assert torch.allclose(batch.logprobs[i, :n], ref_lp, atol=1e-5)
            assert torch.allclose(batch.entropy[i, :n], ref_ent, atol=1e-5)
            assert (batch.logprobs[i, n:] == 0).all() and (batch.entropy[i, n:] == 0).all()


def test_eos_ends_a_sequence(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    bias_eos = torch.zeros(len(tok))  # make EOS likely so sequences finish at different times
    bias_eos[tok.eos_token_id] = 3.0
    orig = model.forward

    def forward(*a, **k):
        out = orig(*a, **k)
        out.logits = out.logits + bias_eos
        return out

    model.forward = forward
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS * 8]
    batch = generate(
        model,
        prompts,
        max_new_tokens=12,
        eos_id=tok.eos_token_id,
        pad_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(3),
    )
    eos = batch.response_ids == tok.eos_token_id
    assert eos.any(1).all()  # with this bias every sequence finished
    first = eos.float().argmax(1)
    for i in range(len(prompts)):
        n = int(first[i]) + 1
        assert batch.response_mask[i, :n].all() and not batch.response_mask[i, n:].any()
        assert (batch.response_ids[i, n:] == tok.pad_token_id).all()
    assert batch.response_ids.shape[1] == int(first.max()) + 1  # stopped as soon as all were done
    assert torch.equal(batch.lengths, first + 1)


def test_same_seed_same_batch(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    a, b = (
        generate(
            model,
            prompts,
            max_new_tokens=8,
            eos_id=tok.eos_token_id,
            pad_id=tok.pad_token_id,
            generator=torch.Generator().manual_seed(7),
        )
        for _ in range(2)
    )
    assert torch.equal(a.response_ids, b.response_ids) and torch.equal(a.logprobs, b.logprobs)


def test_bad_arguments(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        generate(model, [[3]], max_new_tokens=2, temperature=0.0, eos_id=1, pad_id=0)
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [[]], max_new_tokens=2, eos_id=1, pad_id=0)


def test_a_sequence_sample_does_not_depend_on_its_batch(tiny_model_dir):
    """Inverse-CDF sampling with per-sequence uniforms: a data-parallel split samples the same tokens."""
    model, tok = load_model(tiny_model_dir)
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS * 2]
    u = torch.rand((6, len(prompts)), generator=torch.Generator().manual_seed(5))
    kw = {"max_new_tokens": 6, "eos_id": tok.eos_token_id, "pad_id": tok.pad_token_id}
    whole = generate(model, prompts, uniforms=u, **kw)
    half = len(prompts) // 2
    for part in (slice(0, half), slice(half, None)):
        sub = generate(model, prompts[part], uniforms=u[:, part], **kw)
        n = sub.response_ids.shape[1]
        assert torch.equal(sub.response_mask, whole.response_mask[part, :n])
        assert torch.equal(sub.response_ids * sub.response_mask, (whole.response_ids * whole.response_mask)[part, :n])
        assert torch.allclose(sub.logprobs, whole.logprobs[part, :n], atol=1e-5)


def test_inverse_cdf_sampling_follows_the_policy(tiny_model_dir):
    """The first sampled token's frequencies match π (chi-square, 20 000 draws)."""
    from scipy.stats import chisquare

    model, tok = load_model(tiny_model_dir)
    prompt = tok(PROMPTS[0], add_special_tokens=False)["input_ids"]
    n = 20_000
    batch = generate(
        model, [prompt] * n, max_new_tokens=1, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    with torch.no_grad():
        logits = model(torch.tensor([prompt])).logits[0, -1].double()
    p = torch.softmax(logits, -1).numpy()
    counts = torch.bincount(batch.response_ids[:, 0], minlength=len(p)).numpy()
    keep = p * n >= 5  # chi-square needs expected counts >= 5; pool the rest
    obs, exp = list(counts[keep]), list(p[keep] * n)
    if (~keep).any():
        obs.append(counts[~keep].sum())
        exp.append(p[~keep].sum() * n)
    assert chisquare(obs, exp).pvalue > 1e-3
