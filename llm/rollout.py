"""Batched sampling with a KV cache: completions, behaviour log-probs and per-token entropies.

Prompts are left-padded into one (B, P) batch; position ids skip the padding
(position = cumsum(mask) − 1), so a padded prompt sees the same positions as it would
alone. One prefill, then one Python loop over new positions, each feeding the last token of
every sequence through the cached model. At every position the logits are upcast to
float32 and scaled by 1/T; from that one distribution come the sampled token, its log-prob
(the behaviour log-prob π_old) and the full-vocabulary entropy — the entropy the controller
measures, at no extra cost.

The response mask covers every generated token up to and including EOS; after EOS a
sequence emits pad tokens with mask 0. Sampling stops when every sequence has finished.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from functools import cached_property

import torch
from transformers import DynamicCache

__all__ = ["RolloutBatch", "generate", "left_pad"]


@dataclass
class RolloutBatch:
    prompt_ids: torch.Tensor  # (B, P) left-padded
    prompt_mask: torch.Tensor  # (B, P) 1 on prompt tokens
    response_ids: torch.Tensor  # (B, T) pad after EOS
    response_mask: torch.Tensor  # (B, T) 1 up to and including EOS
    logprobs: torch.Tensor  # (B, T) float32 log π(token) at temperature T; 0 where masked
    entropy: torch.Tensor  # (B, T) float32 full-vocabulary entropy (nats) at temperature T; 0 where masked

    @cached_property
    def input_ids(self) -> torch.Tensor:
        """(B, P + T) prompt ⧺ response (computed once: the ids never change)."""
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @cached_property
    def attention_mask(self) -> torch.Tensor:
        # response positions after EOS are masked too; the model never attends to them
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    @property
    def lengths(self) -> torch.Tensor:
        return self.response_mask.sum(-1)

    @property
    def num_tokens(self) -> int:
        return int(self.response_mask.sum())

    def texts(self, tokenizer, eos_id: int) -> list[str]:
        """The decoded responses, each without its final EOS."""
        out = []
        for row, n in zip(self.response_ids.tolist(), self.lengths.tolist(), strict=True):
            row = row[: int(n)]
            if row and row[-1] == eos_id:
                row = row[:-1]
            out.append(tokenizer.decode(row, skip_special_tokens=True))
        return out

    def micro_chunks(self, rows: torch.Tensor, micro: int) -> list[tuple[torch.Tensor, int, int]]:
        """``rows`` (m,) in chunks of ``micro``, each as (rows, first input column, response length t).

        Columns [first, P + t) of ``input_ids`` are all a chunk needs: its common left prompt
        padding and right response padding are trimmed.
        """
        p = self.prompt_ids.shape[1]
        chunks = []
        for mi in rows.split(max(micro, 1)) if len(rows) else ():
            pm = self.prompt_mask[mi]
            first = int((pm.sum(0) > 0).nonzero()[0]) if pm.any() else p
            chunks.append((mi, first, max(int(self.response_mask[mi].sum(-1).max()), 1)))
        return chunks

    def to(self, device) -> RolloutBatch:
        return RolloutBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def left_pad(prompt_ids: list[list[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) of shape (B, P): each prompt right-aligned, padding on the left."""
    if not prompt_ids or any(len(p) == 0 for p in prompt_ids):
        raise ValueError("every prompt must have at least one token")
    width = max(len(p) for p in prompt_ids)
    ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for i, p in enumerate(prompt_ids):
        ids[i, width - len(p) :] = torch.as_tensor(p, dtype=torch.long)
        mask[i, width - len(p) :] = 1
    return ids.to(device), mask.to(device)


def _cache_kwargs(model, cache) -> dict:
    """The keyword that passes a KV cache to ``model.forward``, by what the model accepts.

    transformers renamed ``past_key_values`` to ``cache`` (5.2x); both spellings are supported
    so a user's pinned version works. ``logits_to_keep=1`` (where accepted) keeps the prefill
    from projecting every prompt position onto the vocabulary.
    """
    params = inspect.signature(type(getattr(model, "hf_model", model)).forward).parameters
    kwargs = {"cache" if "cache" in params else "past_key_values": cache, "use_cache": True}
    if "logits_to_keep" in params:
        kwargs["logits_to_keep"] = 1
    return kwargs


@torch.no_grad()
def generate(
    model,
    prompt_ids: list[list[int]],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    eos_id: int,
    pad_id: int,
    generator: torch.Generator | None = None,
    device=None,
    uniforms: torch.Tensor | None = None,
    all_finished=None,
) -> RolloutBatch:
    """Sample up to ``max_new_tokens`` tokens for every prompt (temperature > 0).

    Token t of sequence i is drawn by inverse-CDF sampling with the uniform ``u[t, i]``:
    the first token whose cumulative probability exceeds u. All uniforms, shape
    (max_new_tokens, B), are drawn up front from ``generator`` (or passed in as
    ``uniforms``), so a sequence's sample depends only on its own uniforms — not on the
    batch it shares, on how many steps the batch runs, or on how a data-parallel job splits
    the prompts across ranks. ``all_finished(done) -> bool`` replaces the local "every sequence
    has finished" test (a sharded model must run the same number of steps on every rank).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    prompt, pmask = left_pad(prompt_ids, pad_id, device)
    b = prompt.shape[0]
    if uniforms is None:
        uniforms = torch.rand((max_new_tokens, b), generator=generator, device=device)
    if tuple(uniforms.shape) != (max_new_tokens, b):
        raise ValueError(f"uniforms must have shape (max_new_tokens, batch) = {(max_new_tokens, b)}")
    uniforms = uniforms.to(device=device, dtype=torch.float32)
    attn = pmask
    cache_kwargs = _cache_kwargs(model, DynamicCache())
    out = model(
        input_ids=prompt,
        attention_mask=attn,
        position_ids=(pmask.cumsum(-1) - 1).clamp(min=0),
        **cache_kwargs,
    )
    logits = out.logits[:, -1]
    next_pos = pmask.sum(-1, keepdim=True)  # (B, 1): position of the first new token
    tokens = torch.full((b, max_new_tokens), pad_id, dtype=torch.long, device=device)
    alive = torch.zeros((b, max_new_tokens), dtype=torch.long, device=device)
    logps = torch.zeros((b, max_new_tokens), dtype=torch.float32, device=device)
    ents = torch.zeros((b, max_new_tokens), dtype=torch.float32, device=device)
    done = torch.zeros(b, dtype=torch.bool, device=device)
    check_every = 1 if device.type == "cpu" else 8  # "all finished?" is a host sync on GPUs
    steps = max_new_tokens
    for t in range(max_new_tokens):
        logz = torch.log_softmax(logits.float() / temperature, dim=-1)  # (B, V)
        probs = logz.exp()
        cdf = probs.cumsum(-1)
        tok = torch.searchsorted(cdf, uniforms[t, :, None] * cdf[:, -1:], right=True)[:, 0].clamp_(
            max=probs.shape[-1] - 1
        )
        live = ~done
        tokens[:, t] = torch.where(live, tok, pad_id)
        alive[:, t] = live
        logps[:, t] = torch.where(live, logz.gather(-1, tok[:, None])[:, 0], 0.0)
        ents[:, t] = torch.where(live, -(probs * logz).sum(-1), 0.0)
        done = done | (tok == eos_id)
        finished = all_finished or (lambda d: bool(d.all()))
        if t == max_new_tokens - 1 or ((t + 1) % check_every == 0 and finished(done)):
            steps = t + 1
            break
        attn = torch.cat([attn, live[:, None].long()], dim=1)
        out = model(
            input_ids=tokens[:, t : t + 1],
            attention_mask=attn,
            position_ids=next_pos + t,
            **cache_kwargs,
        )
        logits = out.logits[:, -1]
    return RolloutBatch(prompt, pmask, tokens[:, :steps], alive[:, :steps], logps[:, :steps], ents[:, :steps])
