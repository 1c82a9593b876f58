"""Batched sampling with a KV cache: completions, behaviour log-probs and per-token entropies.

Prompts are left-padded into one (B, P) batch; position ids skip the padding
(position = cumsum(mask) − 1), so a padded prompt sees the same positions as it would
alone. One prefill, then one Python loop over new positions, each feeding the last token of
every sequence through the cached model. At every position the logits are upcast to
float32 and scaled by 1/T; from that one distribution come the sampled token, its log-prob
(the behaviour log-prob π_old) and the full-vocabulary entropy — the entropy the controller
measures, at no extra cost.

The response mask covers every generated token up to and including its stop token (any of
``eos_ids``); after it a sequence emits pad tokens with mask 0. Sampling stops when every
sequence has finished; ``truncated`` marks those that hit ``max_new_tokens`` first.

Two engines produce the same samples for the same uniforms: 'eager' (the Hugging Face forward
per token, any causal LM) and 'static' (`llm.engine.StaticDecoder`: static KV cache, lean
compiled decode step, finished rows compacted out), the default where the model allows it.
Optional top-k / top-p (nucleus) truncation changes only which token is drawn; the log-probs
and entropies stay those of the full temperature-scaled distribution (`sample_step`).
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cached_property, partial

import torch
import torch.nn.functional as F
from transformers import DynamicCache

__all__ = ["ENGINES", "RolloutBatch", "generate", "inverse_cdf", "left_pad", "sample_step", "truncated_inverse_cdf"]

log = logging.getLogger(__name__)


@dataclass
class RolloutBatch:
    prompt_ids: torch.Tensor  # (B, P) left-padded
    prompt_mask: torch.Tensor  # (B, P) 1 on prompt tokens
    response_ids: torch.Tensor  # (B, T) pad after EOS
    response_mask: torch.Tensor  # (B, T) 1 up to and including EOS
    logprobs: torch.Tensor  # (B, T) float32 log π(token) at temperature T; 0 where masked
    entropy: torch.Tensor  # (B, T) float32 full-vocabulary entropy (nats) at temperature T; 0 where masked
    truncated: torch.Tensor  # (B,) bool: hit max_new_tokens without a stop id

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

    def texts(self, tokenizer, eos_id: int | Sequence[int]) -> list[str]:
        """The decoded responses, each without its final stop token (``eos_id``: one id or several)."""
        stops = {int(eos_id)} if isinstance(eos_id, int) else {int(i) for i in eos_id}
        out = []
        for row, n in zip(self.response_ids.tolist(), self.lengths.tolist(), strict=True):
            row = row[: int(n)]
            if row and row[-1] in stops:
                row = row[:-1]
            out.append(tokenizer.decode(row, skip_special_tokens=True))
        return out

    def micro_chunks(self, rows: torch.Tensor, micro: int, max_tokens: int = 0) -> list[tuple[torch.Tensor, int, int]]:
        """``rows`` (m,) in chunks of ``micro``, each as (rows, first input column, response length t).

        Columns [first, P + t) of ``input_ids`` are all a chunk needs: its common left prompt
        padding and right response padding are trimmed. ``max_tokens`` > 0 (a token budget):
        rows sorted by prompt + response length, then packed greedily while
        rows × (longest prompt + longest response) <= max_tokens and rows <= micro (a longer
        row goes alone) — less padding, bounded activations; the loss sums Σℓ/N are unchanged.
        """
        p = self.prompt_ids.shape[1]
        chunks = []
        groups = self._token_groups(rows, micro, max_tokens) if max_tokens > 0 else rows.split(max(micro, 1))
        for mi in groups if len(rows) else ():
            pm = self.prompt_mask[mi]
            first = int((pm.sum(0) > 0).nonzero()[0]) if pm.any() else p
            chunks.append((mi, first, max(int(self.response_mask[mi].sum(-1).max()), 1)))
        return chunks

    def _token_groups(self, rows: torch.Tensor, micro: int, max_tokens: int) -> list[torch.Tensor]:
        plen = self.prompt_mask[rows].sum(-1).tolist()
        rlen = self.response_mask[rows].sum(-1).clamp(min=1).tolist()
        order = sorted(range(len(rows)), key=lambda i: (plen[i] + rlen[i], i))
        groups: list[list[int]] = []
        width = (0, 0)
        for i in order:
            grown = (max(width[0], plen[i]), max(width[1], rlen[i]))
            cur = groups[-1] if groups else []
            if cur and (len(cur) + 1) * sum(grown) <= max_tokens and (micro <= 0 or len(cur) < micro):
                cur.append(i)
                width = grown
            else:
                groups.append([i])
                width = (plen[i], rlen[i])
        return [rows[torch.tensor(g, dtype=torch.long, device=rows.device)] for g in groups]

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


# ------------------------------------------------------------------------------ sampling
_BLOCK = 256
"""Vocabulary block of the two-level inverse CDF (`inverse_cdf`)."""


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Token index (B,) of the first token whose cumulative probability exceeds u·Σp, per row.

    Two levels instead of a full-vocabulary cumsum: block sums S_j over blocks of 256 tokens,
    j* = first block with Σ_{i≤j} S_i > u·ΣS, then the cumsum inside block j* only. Same rule
    as a flat ``searchsorted(cumsum(p), u·Σp)`` (up to float rounding of the partial sums), but
    it reads the probabilities once and never writes a second (B, V) buffer. ``probs`` (B, V) ≥ 0.
    """
    b, v = probs.shape
    nb = -(-v // _BLOCK)
    blocks = F.pad(probs, (0, nb * _BLOCK - v)).view(b, nb, _BLOCK)
    csum = blocks.sum(-1).cumsum(-1)  # (B, nb)
    target = u[:, None] * csum[:, -1:]
    j = torch.searchsorted(csum, target, right=True).clamp_(max=nb - 1)  # (B, 1)
    before = torch.where(j > 0, csum.gather(-1, (j - 1).clamp(min=0)), torch.zeros_like(target))
    inner = blocks.gather(1, j[:, :, None].expand(b, 1, _BLOCK))[:, 0].cumsum(-1)  # (B, 256)
    rest = torch.minimum(target - before, torch.nextafter(inner[:, -1:], torch.zeros_like(target)))
    k = torch.searchsorted(inner, rest, right=True).clamp_(max=_BLOCK - 1)
    return (j * _BLOCK + k)[:, 0].clamp_(max=v - 1)


def truncated_inverse_cdf(z: torch.Tensor, u: torch.Tensor, top_p: float, top_k: int) -> torch.Tensor:
    """Token (B,) sampled by inverse CDF from softmax(z) truncated to its top-k, then its top-p nucleus.

    The k largest logits (all of them, sorted, when ``top_k`` is 0) are renormalised; in that
    descending order token i is kept while the mass before it is < ``top_p``; the kept
    probabilities are renormalised and token = first whose cumulative mass exceeds u·Σ.
    """
    v = z.shape[-1]
    vals, idx = z.topk(min(top_k, v)) if top_k > 0 else z.sort(dim=-1, descending=True)
    p = torch.softmax(vals, dim=-1)
    if top_p < 1.0:
        p = torch.where(p.cumsum(-1) - p < top_p, p, torch.zeros_like(p))
    cdf = p.cumsum(-1)
    last = (p > 0).sum(-1, keepdim=True) - 1
    pos = torch.minimum(torch.searchsorted(cdf, u[:, None] * cdf[:, -1:], right=True), last)
    return idx.gather(-1, pos)[:, 0]


def sample_step(
    logits: torch.Tensor, u: torch.Tensor, temperature: float, *, top_p: float = 1.0, top_k: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(token, log-prob, entropy), each (B,), from ``logits`` (B, V) and uniforms ``u`` (B,).

    z = logits/T in float32; log π = log_softmax(z); H = −Σ π log π. The token is drawn by inverse
    CDF (`inverse_cdf`), or from the top-k / top-p truncated and renormalised distribution
    (`truncated_inverse_cdf`). The log-prob and the entropy are always those of the *full*
    temperature-scaled distribution π, not of the truncated one: they are what the trainer's
    scoring pass recomputes (importance ratios stay consistent) and what the controller measures.
    """
    z = logits.float() / temperature
    logz = torch.log_softmax(z, dim=-1)
    probs = logz.exp()
    entropy = -(probs * logz).sum(-1)
    if top_k > 0 or top_p < 1.0:
        tok = truncated_inverse_cdf(z, u, top_p, top_k)
    else:
        tok = inverse_cdf(probs, u)
    return tok, logz.gather(-1, tok[:, None])[:, 0], entropy


# ---------------------------------------------------------------------------- generate
ENGINES = ("static", "eager")

_decoders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_notices: set[str] = set()


def _static_reason(model) -> str | None:
    from .engine import unsupported_reason

    return unsupported_reason(model)


def _static_decoder(model, compile_step: bool | None):
    """The model's cached `StaticDecoder`, or None (with a one-line notice, once) if it cannot run it."""
    from .engine import StaticDecoder, unsupported_reason

    reason = unsupported_reason(model)
    if reason is not None:
        if reason not in _notices:
            _notices.add(reason)
            log.warning("rollout.engine = 'static' falls back to 'eager': %s", reason)
        return None
    on_cuda = next(model.parameters()).is_cuda
    compile_step = on_cuda if compile_step is None else compile_step
    key = (compile_step, on_cuda)
    per_model = _decoders.setdefault(model, {})
    if key not in per_model:
        per_model[key] = StaticDecoder(model, compile=compile_step, cuda_graphs=on_cuda)
    return per_model[key]


@torch.no_grad()
def generate(
    model,
    prompt_ids: list[list[int]],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    eos_id: int | None = None,
    eos_ids: Sequence[int] | None = None,
    pad_id: int,
    generator: torch.Generator | None = None,
    device=None,
    uniforms: torch.Tensor | None = None,
    all_finished=None,
    top_p: float = 1.0,
    top_k: int = 0,
    engine: str = "static",
    compile: bool | None = None,
    batch_size: int = 0,
) -> RolloutBatch:
    """Sample up to ``max_new_tokens`` tokens for every prompt (temperature > 0).

    Token t of sequence i is drawn by inverse-CDF sampling with the uniform ``u[t, i]``:
    the first token whose cumulative probability exceeds u (`sample_step`). All uniforms, shape
    (max_new_tokens, B), are drawn up front from ``generator`` (or passed in as ``uniforms``),
    so a sequence's sample depends only on its own uniforms — not on the batch it shares, on
    the engine, on ``batch_size``, or on how a data-parallel job splits the prompts across
    ranks. A sequence stops at any id of ``eos_ids`` (or ``eos_id``). ``all_finished(done) ->
    bool`` replaces the local "every sequence has finished" test (a sharded model must run the
    same number of steps on every rank). ``engine``: 'static' (`llm.engine.StaticDecoder`,
    falling back to 'eager' for models it cannot run) or 'eager' (the Hugging Face forward with
    a growing cache); ``compile`` (static engine): torch.compile the decode step (None: on CUDA
    only). ``batch_size`` > 0 samples at most that many sequences per pass (bounds the KV cache).

    A sharded policy that offers ``model.gathered()`` (`llm.parallel.LMCall`: a context in which
    its full parameters sit on this rank, yielding the plain model) is sampled by the static
    engine inside it: one all-gather per call instead of one per layer per decode step, and no
    collective while decoding, so ``all_finished`` is not needed there.
    """
    gathered = getattr(model, "gathered", None)
    if engine == "static" and gathered is not None and _static_reason(model.hf_model) is None:
        kwargs = dict(locals())  # this call's arguments (nothing else is bound yet)
        for name in ("model", "prompt_ids", "gathered", "all_finished"):
            kwargs.pop(name)
        with gathered() as full:
            return generate(full, prompt_ids, **kwargs)
    stops = _stop_ids(eos_id, eos_ids)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens!r}")
    if not 0 < top_p <= 1 or top_k < 0:
        raise ValueError(f"top_p must be in (0, 1] and top_k >= 0, got {top_p!r}, {top_k!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    b = len(prompt_ids)
    if uniforms is None:
        uniforms = torch.rand((max_new_tokens, b), generator=generator, device=device)
    if tuple(uniforms.shape) != (max_new_tokens, b):
        raise ValueError(f"uniforms must have shape (max_new_tokens, batch) = {(max_new_tokens, b)}")
    uniforms = uniforms.to(device=device, dtype=torch.float32)
    decoder = _static_decoder(model, compile) if engine == "static" else None
    opts = dict(
        stops=torch.tensor(stops, device=device),
        pad_id=pad_id,
        sampling={"temperature": temperature, "top_p": top_p, "top_k": top_k},
        finished=all_finished or (lambda d: bool(d.all())),
        check_every=1 if device.type == "cpu" else 8,  # "all finished?" is a host sync on GPUs
    )
    parts = []
    for rows in torch.arange(b).split(batch_size if batch_size > 0 else max(b, 1)):
        prompt, pmask = left_pad([prompt_ids[i] for i in rows.tolist()], pad_id, device)
        u = uniforms[:, rows.to(device)]
        loop = _eager_loop if decoder is None else partial(_static_loop, decoder)
        parts.append(loop(model, prompt, pmask, u, **opts))
    return parts[0] if len(parts) == 1 else concat_batches(parts, pad_id)


def _stop_ids(eos_id: int | None, eos_ids: Sequence[int] | None) -> list[int]:
    stops = sorted({int(i) for i in (eos_ids or ())} | ({int(eos_id)} if eos_id is not None else set()))
    if not stops:
        raise ValueError("generate needs a stop token: eos_id or a non-empty eos_ids")
    return stops


def _batch(prompt, pmask, tokens, alive, logps, ents, done, steps) -> RolloutBatch:
    cut = slice(0, steps)
    return RolloutBatch(prompt, pmask, tokens[:, cut], alive[:, cut], logps[:, cut], ents[:, cut], ~done)


def _outputs(b: int, n: int, pad_id: int, device):
    """Zeroed (tokens, alive, log-probs, entropies) buffers (b, n) and ``done`` (b,)."""
    return (
        torch.full((b, n), pad_id, dtype=torch.long, device=device),
        torch.zeros((b, n), dtype=torch.long, device=device),
        torch.zeros((b, n), dtype=torch.float32, device=device),
        torch.zeros((b, n), dtype=torch.float32, device=device),
        torch.zeros(b, dtype=torch.bool, device=device),
    )


def _eager_loop(model, prompt, pmask, uniforms, *, stops, pad_id, sampling, finished, check_every) -> RolloutBatch:
    """The Hugging Face forward per token with a growing `DynamicCache` (any causal LM)."""
    n_new, b = uniforms.shape
    attn = pmask
    cache_kwargs = _cache_kwargs(model, DynamicCache())
    pos = (pmask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=prompt, attention_mask=attn, position_ids=pos, **cache_kwargs).logits[:, -1]
    next_pos = pmask.sum(-1, keepdim=True)  # (B, 1): position of the first new token
    tokens, alive, logps, ents, done = _outputs(b, n_new, pad_id, prompt.device)
    steps = n_new
    for t in range(n_new):
        tok, logp, ent = sample_step(logits, uniforms[t], **sampling)
        live = ~done
        tokens[:, t] = torch.where(live, tok, pad_id)
        alive[:, t] = live
        logps[:, t] = torch.where(live, logp, 0.0)
        ents[:, t] = torch.where(live, ent, 0.0)
        done = done | (live & torch.isin(tok, stops))
        if t == n_new - 1 or ((t + 1) % check_every == 0 and finished(done)):
            steps = t + 1
            break
        attn = torch.cat([attn, live[:, None].long()], dim=1)
        out = model(input_ids=tokens[:, t : t + 1], attention_mask=attn, position_ids=next_pos + t, **cache_kwargs)
        logits = out.logits[:, -1]
    return _batch(prompt, pmask, tokens, alive, logps, ents, done, steps)


def _static_loop(
    decoder, model, prompt, pmask, uniforms, *, stops, pad_id, sampling, finished, check_every
) -> RolloutBatch:
    """`llm.engine.StaticDecoder`: static cache, lean step, finished rows compacted out in power-of-two buckets.

    Slot s of the current bucket decodes row ``rows[s]``; row b is a sink (always done) that
    fills the slots of a bucket beyond its live rows. Outputs are written by row.
    """
    n_new, b = uniforms.shape
    device, p = prompt.device, prompt.shape[1]
    weight = next(model.parameters())
    cache = decoder.new_cache(b, decoder.columns(p, n_new), weight)
    logits = decoder.prefill(prompt, pmask, cache)
    tok, logp, ent = sample_step(logits, uniforms[0], **sampling)
    u_all = torch.cat([uniforms, torch.zeros(n_new, 1, device=device)], dim=1)  # column b: the sink's
    tokens, alive, logps, ents, done = _outputs(b + 1, n_new, pad_id, device)
    done[b] = True
    rows = torch.arange(b, device=device)
    valid = torch.zeros(b, cache[0][0].shape[2], dtype=torch.bool, device=device)
    valid[:, :p] = pmask.bool()
    pos = pmask.sum(-1)  # (B,) position of the first new token
    cols = torch.arange(p, p + n_new, device=device)
    step = decoder.stepper(cache, valid, **sampling)
    steps, idle = n_new, False
    for t in range(n_new):
        if not idle:
            live = ~done[rows]
            tokens[rows, t] = torch.where(live, tok, pad_id)
            alive[rows, t] = live.long()
            logps[rows, t] = torch.where(live, logp, 0.0)
            ents[rows, t] = torch.where(live, ent, 0.0)
            done[rows] = done[rows] | (live & torch.isin(tok, stops))
        if t == n_new - 1 or ((t + 1) % check_every == 0 and finished(done[:b])):
            steps = t + 1
            break
        if (t + 1) % check_every == 0:
            live_slots = (~done[rows]).nonzero()[:, 0]
            idle = len(live_slots) == 0
            if not idle and len(live_slots) <= len(rows) // 2:
                slots = _bucket(live_slots)
                rows = torch.where(torch.arange(len(slots), device=device) < len(live_slots), rows[slots], b)
                cache = [(kc[slots], vc[slots]) for kc, vc in cache]
                valid, pos, tok = valid[slots], pos[slots], tok[slots]
                step = decoder.stepper(cache, valid, **sampling)
        if not idle:
            span = decoder.span(p + t, valid.shape[1])
            tok, logp, ent = step(tok, pos + t, cols[t : t + 1], u_all[t + 1, rows], span)
    return _batch(prompt, pmask, tokens[:b], alive[:b], logps[:b], ents[:b], done[:b], steps)


def _bucket(live_slots: torch.Tensor) -> torch.Tensor:
    """Slots of a compacted bucket: the live ones, padded (with the first) to the next power of two."""
    n = len(live_slots)
    size = 1 << (n - 1).bit_length()
    return torch.cat([live_slots, live_slots[:1].expand(size - n)])


def concat_batches(parts: list[RolloutBatch], pad_id: int) -> RolloutBatch:
    """Concatenate batches along rows: prompts re-left-padded, responses right-padded to the widest."""
    p = max(x.prompt_ids.shape[1] for x in parts)
    t = max(x.response_ids.shape[1] for x in parts)
    left = {"prompt_ids": pad_id, "prompt_mask": 0}  # field → fill, padded on the left to p
    right = {"response_ids": pad_id, "response_mask": 0, "logprobs": 0.0, "entropy": 0.0}  # on the right to t
    out = {}
    for f in fields(RolloutBatch):
        xs = [getattr(x, f.name) for x in parts]
        if f.name in left:
            xs = [F.pad(x, (p - x.shape[1], 0), value=left[f.name]) for x in xs]
        elif f.name in right:
            xs = [F.pad(x, (0, t - x.shape[1]), value=right[f.name]) for x in xs]
        out[f.name] = torch.cat(xs)
    return RolloutBatch(**out)


def rollout_options(cfg) -> dict:
    """`generate` keywords from a `llm.config.RolloutConfig`: temperature, top-p/k, engine, compile, batch size."""
    compile_step = {"auto": None, "on": True, "off": False}[cfg.compile]
    return dict(
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        engine=cfg.engine,
        compile=compile_step,
        batch_size=cfg.batch_size,
    )
