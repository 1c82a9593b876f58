"""avg@k and pass@k on a test split.

For each prompt, k completions are sampled at the given temperature and scored by the
prompt's verifier. avg@k is the mean reward over all k·N completions; pass@k the fraction
of prompts with at least one correct completion — a reward > 0, so a −1/+1 scheme counts its +1
(k samples drawn, so no estimator is needed). Results are also broken down by task.

Prompts are templated as in training (`llm.prompts`) and completions end on every stop id of
the model (`llm.completions.Finisher`); the trainer runs the same function every
``train.eval_every`` steps on ``data.test``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from .completions import Finisher
from .config import EvalConfig, RolloutConfig
from .data import Example, load_jsonl
from .datasets import load_examples
from .model import load_model
from .parallel import resolve_device
from .prompts import PromptEncoder, PromptFormat
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
    prompts: PromptEncoder | None = None,
    finisher: Finisher | None = None,
    all_finished=None,
) -> dict:
    """Sample k completions per example and return avg@k, pass@k and per-task figures.

    ``prompts`` (default: the tokenizer's chat template, if any) renders the prompts; ``finisher``
    (default: the model's stop ids, the examples' task rewards) ends and scores the completions.
    """
    device = device or next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    prompts = prompts or PromptEncoder(tokenizer, PromptFormat())
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    finisher = finisher or Finisher(model, tokenizer, RolloutConfig(max_new_tokens=max_new_tokens), pad_id=pad)
    flat = [ex for ex in examples for _ in range(k)]
    rewards: list[float] = []
    was_training = model.training
    model.eval()
    for start in range(0, len(flat), batch_size):
        chunk = flat[start : start + batch_size]
        kwargs = {"all_finished": all_finished} if all_finished is not None else {}
        batch = generate(
            model,
            [prompts.ids(ex) for ex in chunk],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            generator=gen,
            device=device,
            **finisher.generate_kwargs(generate),
            **kwargs,
        )
        rewards += finisher(batch, chunk).rewards.tolist()
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
    examples = load_jsonl(cfg.data) if cfg.format == "plain" else load_examples(cfg.data, cfg.format)
    res = evaluate_model(
        model,
        tok,
        examples,
        prompts=PromptEncoder(tok, PromptFormat.of(cfg)),
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
