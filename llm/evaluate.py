"""avg@k and pass@k on a test split.

For each prompt, k completions are sampled at the given temperature and scored by the
prompt's verifier. avg@k is the mean reward over all k·N completions; pass@k the fraction
of prompts with at least one correct completion (k samples drawn, so no estimator is
needed). Results are also broken down by task.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from .config import EvalConfig
from .data import Example, load_jsonl
from .model import load_model
from .parallel import resolve_device
from .reward import score
from .rollout import generate

__all__ = ["evaluate", "evaluate_model"]


@torch.no_grad()
def evaluate_model(
    model,
    tokenizer,
    examples: list[Example],
    *,
    k: int,
    temperature: float,
    max_new_tokens: int,
    batch_size: int = 256,
    seed: int = 0,
    device=None,
) -> dict:
    """Sample k completions per example and return avg@k, pass@k and per-task figures."""
    device = device or next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    flat = [ex for ex in examples for _ in range(k)]
    rewards: list[float] = []
    was_training = model.training
    model.eval()
    for start in range(0, len(flat), batch_size):
        chunk = flat[start : start + batch_size]
        prompts = [tokenizer(ex.prompt, add_special_tokens=False)["input_ids"] for ex in chunk]
        batch = generate(
            model,
            prompts,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            eos_id=eos,
            pad_id=pad,
            generator=gen,
            device=device,
        )
        texts = []
        for row, n in zip(batch.response_ids.tolist(), batch.response_mask.sum(-1).tolist(), strict=True):
            row = row[: int(n)]
            if row and row[-1] == eos:
                row = row[:-1]
            texts.append(tokenizer.decode(row, skip_special_tokens=True))
        rewards += score(texts, chunk)
    model.train(was_training)
    r = np.asarray(rewards, dtype=float).reshape(len(examples), k)
    by_task = defaultdict(list)
    for i, ex in enumerate(examples):
        by_task[ex.task].append(i)
    return {
        "k": k,
        "n": len(examples),
        "avg@k": float(r.mean()),
        "pass@k": float((r.max(1) > 0).mean()),
        "by_task": {
            t: {"avg@k": float(r[ix].mean()), "pass@k": float((r[ix].max(1) > 0).mean()), "n": len(ix)}
            for t, ix in sorted(by_task.items())
        },
    }


def evaluate(cfg: EvalConfig) -> dict:
    device = resolve_device(cfg.device)
    model, tok = load_model(cfg.model, device=device)
    res = evaluate_model(
        model,
        tok,
        load_jsonl(cfg.data),
        k=cfg.k,
        temperature=cfg.temperature,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        device=device,
    )
    res |= {"model": cfg.model, "data": cfg.data, "temperature": cfg.temperature}
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(json.dumps(res, indent=2) + "\n")
    return res
