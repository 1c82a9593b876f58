"""Token log-probabilities, entropies and the clipped policy loss with the EntroPIC term.

Log-probs and entropies are taken from the temperature-scaled logits z/T of the response
positions, computed from the decoder's hidden states in chunks of tokens: each chunk's
logits are formed, reduced to (log π(token), H) and dropped; under autograd the chunk is
recomputed in the backward pass (activation checkpointing), so the full (tokens × vocab)
float32 logits tensor never exists.

Policy loss per token (minimised), with r = π_θ/π_old, A the advantage, c = dual clip::

    ℓ = max(−A·r, −A·clip(r, 1 − ε_low, 1 + ε_high)),   and for A < 0: min(ℓ, −A·c)
    L = Σ ℓ·mask / N  +  α·Σ_{mask ∧ π>τ} (−r·|A|) / D          (`pic.actuator.entropic_adjustment`)

N is the number of valid response tokens of the whole mini-batch (all micro-batches and
ranks), so gradient accumulation gives exactly the token mean. D = N for the paper's
normalisation (weights 1 ± α) or N_h, the confident tokens of the mini-batch, for the
official one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from pic.actuator import entropic_adjustment, high_prob_mask

__all__ = ["PolicyLossConfig", "policy_loss", "response_logprobs", "token_stats_from_logits"]


def token_stats_from_logits(logits: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool):
    """(log π(target), H) per row of ``logits`` (N, V) at temperature T, in float32."""
    z = logits.float() / temperature
    lse = torch.logsumexp(z, dim=-1)
    logp = z.gather(-1, targets[:, None])[:, 0] - lse
    if not with_entropy:
        return logp, None
    with torch.no_grad():
        ent = lse - (F.softmax(z, dim=-1) * z).sum(-1)
    return logp, ent


def _softcap(logits: torch.Tensor, cap: float | None) -> torch.Tensor:
    return logits if not cap else cap * torch.tanh(logits / cap)


def response_logprobs(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response_ids: torch.Tensor,
    *,
    temperature: float,
    with_entropy: bool = False,
    chunk_tokens: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and entropies) of the response tokens, shape (B, T) each.

    ``input_ids`` = prompt (left-padded, length P) ⧺ response (length T); position ids skip
    the left padding, as in the rollout. The logits predicting response token t sit at
    position P − 1 + t.
    """
    b, t = response_ids.shape
    p = input_ids.shape[1] - t
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    hidden = model.base_model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state
    h = hidden[:, p - 1 : p - 1 + t].reshape(b * t, -1)
    targets = response_ids.reshape(b * t)
    head = model.get_output_embeddings()
    cap = getattr(model.config, "final_logit_softcapping", None)

    def chunk_stats(h_chunk, tgt):
        return token_stats_from_logits(_softcap(head(h_chunk), cap), tgt, temperature, with_entropy)

    logps, ents = [], []
    for start in range(0, b * t, chunk_tokens):
        sl = slice(start, start + chunk_tokens)
        if torch.is_grad_enabled() and b * t > chunk_tokens:
            lp, en = checkpoint(chunk_stats, h[sl], targets[sl], use_reentrant=False)
        else:
            lp, en = chunk_stats(h[sl], targets[sl])
        logps.append(lp)
        ents.append(en)
    logp = torch.cat(logps).view(b, t)
    ent = torch.cat(ents).view(b, t) if with_entropy else None
    return logp, ent


@dataclass(frozen=True)
class PolicyLossConfig:
    """The knobs of `policy_loss` (from PPOConfig and ControlConfig)."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    dual_clip: float = 3.0  # 0 disables
    tau: float = 0.95
    normalization: str = "all_tokens"


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    alpha: float,
    cfg: PolicyLossConfig,
    *,
    num_tokens: float,
    num_high: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped PG loss + EntroPIC term for one micro-batch; returns (loss, sums for metrics).

    Shapes (B, T); ``advantages`` may be (B,) (one per sequence). ``num_tokens`` = N and
    ``num_high`` = N_h of the whole mini-batch (only used by the 'high_prob_tokens'
    normalisation). Pass ``old_logp = logp.detach()`` on-policy: r ≡ 1 with gradient.
    The returned metric values are sums over this micro-batch's tokens (divide by N to
    average), except ``entropic_term``, the micro-batch's share of the α-term itself.
    """
    adv = advantages if advantages.dim() == logp.dim() else advantages[:, None].expand_as(logp)
    mask = mask.to(logp.dtype)
    ratio = torch.exp((logp - old_logp).clamp(-20.0, 20.0))
    pg1 = -adv * ratio
    pg2 = -adv * ratio.clamp(1.0 - cfg.eps_low, 1.0 + cfg.eps_high)
    pg = torch.maximum(pg1, pg2)
    if cfg.dual_clip:
        pg = torch.where(adv < 0, torch.minimum(pg, -adv * cfg.dual_clip), pg)
    base = (pg * mask).sum() / num_tokens
    prob = logp.detach().exp()
    if alpha != 0.0:
        denom = num_tokens if cfg.normalization == "all_tokens" else (num_high or 0.0)
        adjust = entropic_adjustment(
            ratio, adv, prob, alpha, mask=mask, tau=cfg.tau, normalization=cfg.normalization, num_tokens=denom
        )
    else:
        adjust = base.new_zeros(())
    with torch.no_grad():
        clipped = pg2 > pg1
        if cfg.dual_clip:
            clipped = clipped | ((adv < 0) & (pg1 > -adv * cfg.dual_clip))
        stats = {
            "pg_loss": (pg * mask).sum(),
            "clip_frac": (clipped * mask).sum(),
            "high_prob_frac": (high_prob_mask(prob, cfg.tau) * mask).sum(),
            "ppo_kl": ((old_logp - logp) * mask).sum(),
            "entropic_term": adjust.detach(),
        }
    return base + adjust, stats
