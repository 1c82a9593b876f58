"""Log-probs, entropies and the policy loss: against naive computations and finite differences.

Run: python -m pytest tests/llm/test_losses.py
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from llm.losses import PolicyLossConfig, policy_loss, response_logprobs, token_stats_from_logits  # noqa: E402
from pic.actuator import entropic_weights  # noqa: E402
from pic.levers import EntroPIC, StepStats, TokenBatch  # noqa: E402


def entropic_loss(logp, old_logp, adv, mask, alpha, cfg, *, num_tokens, num_high=None, normalization="all_tokens"):
    """The trainer's loss with an EntroPIC lever whose α is exactly ``alpha`` (kp 1, ki 0, e = ±α)."""
    lever = EntroPIC(kp=1.0, ki=0.0, target=max(-alpha, 0.0), tau=cfg.tau, normalization=normalization)
    lever.update(StepStats(step=0, total_steps=1, entropy=max(alpha, 0.0)))
    assert float(lever.alpha[0]) == pytest.approx(alpha)
    adv_tok = adv if adv.dim() == logp.dim() else adv[:, None].expand_as(logp)
    tok = TokenBatch(
        logp=logp.reshape(1, -1),
        old_logp=old_logp.reshape(1, -1),
        adv=adv_tok.reshape(1, -1),
        mask=mask.reshape(1, -1).to(logp.dtype),
        num_tokens=num_tokens,
        counts={} if num_high is None else {"high": torch.tensor([[num_high]], dtype=logp.dtype)},
    )
    return policy_loss(tok, lever.modify(tok), cfg)


class TinyLM(torch.nn.Module):
    """A causal toy LM exposing the HF interface `response_logprobs` uses (base_model, output embeddings)."""

    class _Out:
        def __init__(self, h):
            self.last_hidden_state = h

    class _Base(torch.nn.Module):
        def __init__(self, vocab, dim):
            super().__init__()
            self.emb = torch.nn.Embedding(vocab, dim)
            self.pos = torch.nn.Embedding(64, dim)
            self.mix = torch.nn.Linear(dim, dim)

        def forward(self, input_ids, attention_mask, position_ids, use_cache=False):
            x = self.emb(input_ids) + self.pos(position_ids)
            x = x * attention_mask[..., None]
            h = torch.tanh(self.mix(torch.cumsum(x, dim=1)))  # causal: prefix sums
            return TinyLM._Out(h)

    def __init__(self, vocab=11, dim=8):
        super().__init__()
        self.base_model = self._Base(vocab, dim)
        self.head = torch.nn.Linear(dim, vocab, bias=False)
        self.config = type("C", (), {})()

    def get_output_embeddings(self):
        return self.head

    def full_logits(self, input_ids, attention_mask):
        pos = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return self.head(self.base_model(input_ids, attention_mask, pos).last_hidden_state)


def _batch(gen, b=5, p=4, t=6, vocab=11):
    prompt = torch.randint(0, vocab, (b, p), generator=gen)
    pmask = torch.ones(b, p, dtype=torch.long)
    pmask[0, :2] = 0  # left padding
    pmask[3, :1] = 0
    resp = torch.randint(0, vocab, (b, t), generator=gen)
    rmask = torch.ones(b, t, dtype=torch.long)
    rmask[1, 4:] = 0
    return torch.cat([prompt, resp], 1), torch.cat([pmask, torch.ones_like(resp)], 1), resp, rmask


@pytest.mark.parametrize("chunk", [1, 7, 4096])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_chunked_logprobs_and_entropy_equal_the_naive_computation(chunk, temperature):
    gen = torch.Generator().manual_seed(0)
    model = TinyLM().double()
    ids, attn, resp, _ = _batch(gen)
    logp, ent = response_logprobs(
        model, ids, attn, resp, temperature=temperature, with_entropy=True, chunk_tokens=chunk
    )
    p = ids.shape[1] - resp.shape[1]
    z = model.full_logits(ids, attn)[:, p - 1 : -1] / temperature
    ref_logp = torch.log_softmax(z, -1).gather(-1, resp[..., None])[..., 0]
    probs = z.softmax(-1)
    ref_ent = -(probs * torch.log_softmax(z, -1)).sum(-1)
    assert torch.allclose(logp.double(), ref_logp, atol=1e-6)
    assert torch.allclose(ent.double(), ref_ent, atol=1e-6)


def test_chunked_gradients_equal_unchunked():
    gen = torch.Generator().manual_seed(1)
    ids, attn, resp, _ = _batch(gen)
    grads = []
    for chunk in (3, 4096):
        torch.manual_seed(0)
        model = TinyLM()
        logp, _ = response_logprobs(model, ids, attn, resp, temperature=0.7, chunk_tokens=chunk)
        logp.sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_token_stats_match_definitions():
    z = torch.randn(4, 9, dtype=torch.float64)
    tgt = torch.tensor([0, 3, 8, 1])
    logp, ent = token_stats_from_logits(z, tgt, 2.0, True)
    ref = torch.log_softmax(z / 2, -1)
    assert torch.allclose(logp, ref.gather(-1, tgt[:, None])[:, 0].float())
    assert torch.allclose(ent, -(ref.exp() * ref).sum(-1).float())


def _logits_problem(seed=0, b=4, t=5, v=6):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g, dtype=torch.float64) * 3
    tokens = torch.randint(0, v, (b, t), generator=g)
    adv = torch.randn(b, generator=g, dtype=torch.float64)
    mask = (torch.rand(b, t, generator=g) > 0.2).double()
    return logits, tokens, adv, mask


def _loss_of_logits(logits, tokens, adv, mask, alpha, cfg, old=None, num_high=None, normalization="all_tokens"):
    logp = torch.log_softmax(logits, -1).gather(-1, tokens[..., None])[..., 0]
    old_logp = logp.detach() if old is None else old
    kw = {"num_tokens": float(mask.sum()), "num_high": num_high, "normalization": normalization}
    loss, _ = entropic_loss(logp, old_logp, adv, mask, alpha, cfg, **kw)
    return loss


@pytest.mark.parametrize("normalization", ["all_tokens", "high_prob_tokens"])
def test_off_policy_loss_gradient_matches_finite_differences(normalization):
    logits, tokens, adv, mask = _logits_problem()
    old = torch.log_softmax(logits + 0.5 * torch.randn_like(logits), -1).gather(-1, tokens[..., None])[..., 0]
    cfg = PolicyLossConfig(eps_low=0.2, eps_high=0.28, dual_clip=3.0, tau=0.3)
    x = logits.clone().requires_grad_(True)
    kw = {"old": old, "num_high": 3.0, "normalization": normalization}
    _loss_of_logits(x, tokens, adv, mask, 0.7, cfg, **kw).backward()
    h = 1e-6
    fd = torch.zeros_like(logits)
    for idx in range(logits.numel()):
        d = torch.zeros(logits.numel(), dtype=torch.float64)
        d[idx] = h
        d = d.view_as(logits)
        fd.view(-1)[idx] = (
            _loss_of_logits(logits + d, tokens, adv, mask, 0.7, cfg, **kw)
            - _loss_of_logits(logits - d, tokens, adv, mask, 0.7, cfg, **kw)
        ) / (2 * h)
    # the high-probability mask is piecewise constant: compare away from its jumps (FD step is tiny)
    assert torch.allclose(x.grad, fd, atol=1e-6)


def test_on_policy_gradient_is_the_weighted_pg_gradient():
    logits, tokens, adv, mask = _logits_problem(1)
    cfg = PolicyLossConfig(tau=0.4)
    alpha = -0.6
    x = logits.clone().requires_grad_(True)
    _loss_of_logits(x, tokens, adv, mask, alpha, cfg).backward()
    y = logits.clone().requires_grad_(True)
    logp = torch.log_softmax(y, -1).gather(-1, tokens[..., None])[..., 0]
    w = entropic_weights(logp.detach().exp(), adv[:, None].expand_as(logp), alpha, 0.4)
    (-(w * adv[:, None] * logp) * mask).sum().div(mask.sum()).backward()
    assert torch.allclose(x.grad, y.grad, atol=1e-12)
    assert (w != 1).any()


def test_clipped_tokens_keep_only_the_entropic_gradient():
    logp = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    old = torch.log(torch.tensor([[0.5, 2.0]], dtype=torch.float64))  # ratios 2 and 0.5
    adv = torch.tensor([1.0], dtype=torch.float64)  # positive advantage: ratio 2 > 1.2 is clipped, 0.5 is not
    mask = torch.ones(1, 2, dtype=torch.float64)
    cfg = PolicyLossConfig(tau=0.5)  # prob = exp(0) = 1 > τ: both tokens are confident
    loss, stats = entropic_loss(logp, old, adv, mask, 0.5, cfg, num_tokens=2.0)
    loss.backward()
    # token 0 (clipped): only α·(−r·|A|)/N → −0.5·2/2 ; token 1: −(1 + 0.5)·r·A/N = −1.5·0.5/2
    assert torch.allclose(logp.grad, torch.tensor([[-0.5, -0.375]], dtype=torch.float64))
    assert stats["clip_frac"] == 1


def test_dual_clip_bounds_negative_advantages():
    logp = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    old = torch.log(torch.tensor([[0.2]], dtype=torch.float64))  # ratio 5 > c = 3
    adv = torch.tensor([-1.0], dtype=torch.float64)
    loss, stats = entropic_loss(logp, old, adv, torch.ones(1, 1), 0.0, PolicyLossConfig(dual_clip=3.0), num_tokens=1.0)
    loss.backward()
    assert loss.item() == pytest.approx(3.0)
    assert logp.grad.item() == 0.0
    assert stats["clip_frac"] == 1


def test_micro_batches_sum_to_the_full_batch_gradient():
    logits, tokens, adv, mask = _logits_problem(2, b=6)
    cfg = PolicyLossConfig(tau=0.3)
    n = float(mask.sum())
    full = logits.clone().requires_grad_(True)
    _loss_of_logits(full, tokens, adv, mask, 0.4, cfg).backward()
    parts = logits.clone().requires_grad_(True)
    for sl in (slice(0, 2), slice(2, 5), slice(5, 6)):
        logp = torch.log_softmax(parts[sl], -1).gather(-1, tokens[sl][..., None])[..., 0]
        loss, _ = entropic_loss(logp, logp.detach(), adv[sl], mask[sl], 0.4, cfg, num_tokens=n)
        loss.backward()
    assert torch.allclose(full.grad, parts.grad, atol=1e-12)
