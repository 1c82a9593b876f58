"""Token log-probabilities, entropies and the clipped policy loss with the EntroPIC term.

Log-probs and entropies are taken from the temperature-scaled logits z/T of the response
positions, computed from the decoder's hidden states in chunks of tokens: each chunk's
logits are formed, reduced to (log π(token), H) and dropped; under autograd the chunk is
recomputed in the backward pass (activation checkpointing), so the full (tokens × vocab)
float32 logits tensor never exists.

The policy loss is the shared per-token loss of `pic.levers.loss` with the lever's
modifiers (for EntroPIC: PPO's clipped loss plus the α-term of `pic.actuator`)::

    L = Σ ℓ_t·mask_t / N − entropy_coef · Σ H_t·mask_t / N  (− clamped_entropy_coef · Σ H^c_t·mask_t / N)

N is the number of valid response tokens of the whole mini-batch (all micro-batches and
ranks), so gradient accumulation gives exactly the token mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from pic.actuator import high_prob_mask
from pic.levers import LossModifiers, PolicyDefaults, TokenBatch, token_loss
from pic.levers.bonus import clamped_count
from pic.levers.loss import clip_mask, resolve

__all__ = [
    "PolicyLossConfig",
    "clamped_entropy_from_logits",
    "entropy_fields",
    "entropy_request",
    "policy_loss",
    "response_logprobs",
    "token_stats_from_logits",
]


def clamped_entropy_from_logits(z: torch.Tensor, fraction: float) -> torch.Tensor:
    """H^c per row of ``z`` (N, V): the entropy after dropping the ⌊fraction·V⌋ lowest logits (AEnt).

    With S the kept set, H^c = logsumexp(z_S) − Σ_S softmax(z_S)·z_S; the selection is made on the
    detached logits, so the gradient flows through the kept logits only (as in AReaL's recipe).
    """
    k = clamped_count(z.shape[-1], fraction)
    if k == 0:
        return torch.logsumexp(z, dim=-1) - (F.softmax(z, dim=-1) * z).sum(-1)
    dropped = torch.zeros_like(z, dtype=torch.bool).scatter_(
        -1, z.detach().topk(k, dim=-1, largest=False).indices, True
    )
    zc = z.masked_fill(dropped, -torch.inf)
    q = F.softmax(zc, dim=-1)  # exactly 0 on the dropped entries
    return torch.logsumexp(zc, dim=-1) - (q * z.masked_fill(dropped, 0.0)).sum(-1)


def token_stats_from_logits(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    with_entropy: bool,
    entropy_grad: bool = False,
    clamp_fraction: float = 0.0,
):
    """(log π(target), H) per row of ``logits`` (N, V) at temperature T, in float32.

    H = logsumexp(z) − Σ softmax(z)·z; it carries a gradient only if ``entropy_grad``. With
    ``clamp_fraction`` > 0 the entropy returned is the clamped H^c (`clamped_entropy_from_logits`).
    """
    z = logits.float() / temperature
    lse = torch.logsumexp(z, dim=-1)
    logp = z.gather(-1, targets[:, None])[:, 0] - lse
    if not with_entropy:
        return logp, None
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        if clamp_fraction > 0:
            return logp, clamped_entropy_from_logits(z, clamp_fraction)
        ent = lse - (F.softmax(z, dim=-1) * z).sum(-1)
    return logp, ent


def entropy_request(lever) -> dict[str, Any]:
    """The scoring options (`response_logprobs` keywords) for the entropy signal ``lever`` reads.

    ``needs_entropy``: the full-vocabulary H_t, with gradient unless ``lever.entropy_grad`` is False;
    ``clamped_entropy_fraction`` > 0: the clamped H^c_t with gradient. A lever reads one of them.
    """
    fraction = float(getattr(lever, "clamped_entropy_fraction", 0.0))
    if fraction > 0:
        return {"with_entropy": True, "entropy_grad": True, "clamp_fraction": fraction}
    wanted = bool(lever.needs_entropy)
    return {"with_entropy": wanted, "entropy_grad": wanted and getattr(lever, "entropy_grad", True)}


def entropy_fields(lever, entropy: torch.Tensor | None) -> dict[str, Any]:
    """The `TokenBatch` field that carries the scored entropies: ``entropy`` or ``clamped_entropy``."""
    if float(getattr(lever, "clamped_entropy_fraction", 0.0)) > 0:
        return {"clamped_entropy": entropy}
    return {"entropy": entropy}


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
    entropy_grad: bool = False,
    clamp_fraction: float = 0.0,
    chunk_tokens: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and entropies) of the response tokens, shape (B, T) each.

    The entropies are the full-vocabulary H, or the clamped H^c when ``clamp_fraction`` > 0
    (`token_stats_from_logits`).

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
        logits = _softcap(head(h_chunk), cap)
        return token_stats_from_logits(logits, tgt, temperature, with_entropy, entropy_grad, clamp_fraction)

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
    """The trainer's own clip settings (from PPOConfig) and τ of the high-probability metric."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    dual_clip: float = 3.0  # 0 disables
    tau: float = 0.95

    @property
    def defaults(self) -> PolicyDefaults:
        return PolicyDefaults(self.eps_low, self.eps_high, self.dual_clip or None)


def policy_loss(
    tok: TokenBatch, mods: LossModifiers, cfg: PolicyLossConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The micro-batch's share of the mini-batch loss, and metric sums.

    ``tok`` holds (1, n) tensors (the micro-batch's tokens, flattened) with ``num_tokens`` = N
    of the whole mini-batch; ``mods`` comes from the lever. The loss is
    Σ ℓ_t·mask_t / N − entropy_coef·Σ H_t·mask_t / N (`pic.levers.loss.token_loss`), so
    summing it over micro-batches (and ranks) gives the exact token mean. Pass
    ``old_logp = logp.detach()`` on-policy: r ≡ 1 with gradient. Metric values are sums over
    this micro-batch's tokens (divide by N to average), except ``entropic_term``, the
    micro-batch's share of the extra ratio term Σ c_t·r_t/N itself (EntroPIC's α-term).
    """
    mask = tok.mask.to(tok.logp.dtype)
    n = tok.num_tokens
    per_token = token_loss(tok, mods, cfg.defaults)
    loss = (per_token * mask).sum() / n
    coef = mods.entropy_coef
    if torch.is_tensor(coef) or coef:
        if tok.entropy is None:
            raise ValueError("the lever asks for an entropy bonus but TokenBatch.entropy is missing")
        loss = loss - (coef * tok.entropy * mask).sum() / n
    coef = mods.clamped_entropy_coef
    if torch.is_tensor(coef) or coef:
        if tok.clamped_entropy is None:
            raise ValueError("the lever asks for a clamped-entropy bonus but TokenBatch.clamped_entropy is missing")
        loss = loss - (coef * tok.clamped_entropy * mask).sum() / n
    with torch.no_grad():
        eff = resolve(mods, cfg.defaults)
        logp = tok.logp.detach()
        ratio = torch.exp((logp - tok.old_logp).clamp(-20.0, 20.0))
        clipped = clip_mask(ratio, tok.adv, eff["eps_low"], eff["eps_high"], eff["clip"], eff["dual_clip"])
        extra = mods.ratio_coef * ratio * mask if mods.ratio_coef is not None else torch.zeros_like(mask)
        stats = {
            "pg_loss": ((per_token.detach() * mask) - extra).sum(),
            "clip_frac": (clipped * mask).sum(),
            "high_prob_frac": (high_prob_mask(logp.exp(), cfg.tau) * mask).sum(),
            "ppo_kl": ((tok.old_logp - logp) * mask).sum(),
            "entropic_term": extra.sum() / n,
        }
    return loss, stats
