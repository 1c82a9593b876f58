"""Where a completion ends: stop token ids, stop strings, truncation and the overlong penalty.

**Stop ids** (`stop_ids`): every id of the model's ``generation_config.eos_token_id`` (an int or a
list: Qwen chat models list ``<|im_end|>`` and ``<|endoftext|>``) plus the tokenizer's eos id.

**The cut** (`cut_at_stops`): ``llm.rollout.generate`` stops a sequence on its ``eos_id``; when it does
not take the whole ``eos_ids`` set, the batch is cut afterwards: a response ends at its first stop id
(kept, mask 1), or at the token that completes the first stop string (kept); the tokens after it
get mask 0, log-prob 0 and entropy 0 and become padding. The tokens past the cut were sampled
but are never trained on, measured or scored (the engine's native stop, where available, simply
never samples them).

**Truncation** (`truncated`): a response that reached ``max_new_tokens`` without a stop id or stop
string. ``rollout.truncated`` picks what happens to it:

- ``keep``: nothing (the default; earlier versions did this);
- ``mask``: its tokens are excluded from the loss and from the measured entropy (TRL's
  ``mask_truncated_completions``); its reward still counts in its group's advantage. If every
  response of a step is truncated none is masked (there would be nothing left to train on);
- ``penalty``: DAPO's soft overlong punishment (Yu et al. 2025, eq. 13) is added to every reward,
  with L_max = ``max_new_tokens``, L_c = ``rollout.overlong_buffer``, |y| = response tokens::

      R_len(y) = 0                                     if |y| ≤ L_max − L_c
               = ((L_max − L_c) − |y|) / L_c           if L_max − L_c < |y| ≤ L_max
               = −1                                    if |y| > L_max

  scaled by ``rollout.overlong_penalty``.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging

import torch

from .rollout import RolloutBatch

__all__ = ["cut_at_stops", "generate_kwargs", "overlong_penalty", "stop_ids", "truncated"]

log = logging.getLogger(__name__)


def stop_ids(model, tokenizer) -> list[int]:
    """The sorted stop token ids: ``generation_config.eos_token_id`` (int or list) and the tokenizer's eos."""
    ids = set()
    config = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in config if isinstance(config, list | tuple) else [config]:
        if isinstance(value, int):
            ids.add(value)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    if not ids:
        raise ValueError("the model has no stop token: set eos_token_id in its generation_config.json")
    return sorted(ids)


def generate_kwargs(generate_fn, ids: list[int], primary: int) -> dict:
    """The stop keywords for ``generate_fn``: ``eos_ids`` (every stop id) where it takes them, else ``eos_id``."""
    params = inspect.signature(generate_fn).parameters
    if "eos_ids" in params:
        return {"eos_id": primary, "eos_ids": list(ids)}
    return {"eos_id": primary}


def _string_end(tokenizer, row: list[int], stops: tuple[str, ...]) -> int | None:
    """Tokens up to and including the one completing the first stop string of ``row``, or None.

    "The decoded prefix of n tokens contains a stop string" is monotone in n, so the shortest such
    prefix is found by bisection (O(log T) decodes).
    """

    def hit(n: int) -> bool:
        text = tokenizer.decode(row[:n], skip_special_tokens=True)
        return any(s in text for s in stops)

    if not stops or not hit(len(row)):
        return None
    lo, hi = 1, len(row)  # hit(hi) holds
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if hit(mid) else (mid + 1, hi)
    return lo


def cut_at_stops(
    batch: RolloutBatch, ids: list[int], pad_id: int, tokenizer=None, stop_strings=()
) -> tuple[RolloutBatch, list[bool]]:
    """``batch`` with each response ending at its first stop id or stop string; (new batch, stopped (B,) bools)."""
    mask = batch.response_mask.clone()
    stopped = []
    for i, (row, n) in enumerate(zip(batch.response_ids.tolist(), mask.sum(-1).tolist(), strict=True)):
        row = row[: int(n)]
        hits = [t for t, tok in enumerate(row) if tok in ids]
        end = hits[0] + 1 if hits else None
        text_end = _string_end(tokenizer, row[: end or len(row)], tuple(stop_strings)) if stop_strings else None
        end = min(e for e in (end, text_end) if e is not None) if (end or text_end) else None
        stopped.append(end is not None)
        if end is not None:
            mask[i, end:] = 0
    keep = max(int(mask.sum(-1).max()), 1) if mask.numel() else 0
    out = {
        "response_mask": mask[:, :keep],
        "response_ids": torch.where(mask.bool(), batch.response_ids, pad_id)[:, :keep],
        "logprobs": (batch.logprobs * mask)[:, :keep],
        "entropy": (batch.entropy * mask)[:, :keep],
    }
    stop = torch.tensor(stopped, dtype=torch.bool, device=mask.device)
    out["truncated"] = batch.truncated & ~stop  # a stop string found in the text ends a "truncated" row too
    fields = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)} | out
    return type(batch)(**fields), stopped


def truncated(batch: RolloutBatch, stopped: list[bool], max_new_tokens: int) -> torch.Tensor:
    """(B,) bool: the response has ``max_new_tokens`` tokens and ended on no stop id or stop string."""
    full = batch.response_mask.sum(-1).cpu() >= max_new_tokens
    return full & ~torch.tensor(stopped, dtype=torch.bool)


def mask_truncated(batch: RolloutBatch, flags: torch.Tensor) -> RolloutBatch:
    """``batch`` with the truncated responses' masks zeroed (none if every response is truncated)."""
    if not flags.any() or flags.all():
        if flags.numel() and flags.all():
            log.warning("every response of this step hit max_new_tokens; none is masked")
        return batch
    keep = (~flags).to(batch.response_mask.device)[:, None]
    mask = batch.response_mask * keep
    return dataclasses.replace(batch, response_mask=mask, logprobs=batch.logprobs * keep, entropy=batch.entropy * keep)


def overlong_penalty(lengths: torch.Tensor, max_new_tokens: int, buffer: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment (float32, same shape as ``lengths``), ≤ 0: see the module docstring."""
    lengths = lengths.float()
    free = max_new_tokens - buffer
    ramp = (free - lengths) / max(buffer, 1)
    penalty = torch.where(lengths <= free, torch.zeros_like(lengths), ramp)
    penalty = torch.where(lengths > max_new_tokens, torch.full_like(lengths, -1.0), penalty)
    return factor * penalty
