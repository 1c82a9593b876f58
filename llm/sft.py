"""Supervised warm start: teach a (tiny) model the answer format before RL.

Each example becomes ``prompt ⧺ answer ⧺ <eos>``; the loss is the token-mean negative
log-likelihood of the answer and EOS tokens only. AdamW with linear warmup and cosine
decay; the result is saved as a Hugging Face model directory.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import SFTConfig
from .data import load_jsonl
from .datasets import load_examples
from .model import load_model, save_model
from .parallel import resolve_device
from .prompts import PromptEncoder, PromptFormat
from .schedule import lr_lambda

__all__ = ["encode_sft", "sft"]

log = logging.getLogger(__name__)


def encode_sft(tokenizer, prompt: str, answer: str) -> tuple[list[int], int]:
    """Token ids of prompt ⧺ answer ⧺ eos and the number of prompt tokens."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return p + a + [tokenizer.eos_token_id], len(p)


def _batch(encoded: list[tuple[list[int], int]], pad_id: int, device) -> tuple[torch.Tensor, ...]:
    """Right-padded ids, attention mask and a loss mask over answer + EOS targets."""
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    target_mask = torch.zeros_like(ids, dtype=torch.float32)
    for i, (seq, n_prompt) in enumerate(encoded):
        ids[i, : len(seq)] = torch.tensor(seq)
        attn[i, : len(seq)] = 1
        target_mask[i, n_prompt : len(seq)] = 1.0  # tokens to predict
    return ids.to(device), attn.to(device), target_mask.to(device)


def sft(cfg: SFTConfig) -> dict:
    """Fine-tune ``cfg.model`` on ``cfg.data`` and save to ``cfg.out``; returns a summary."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    model, tok = load_model(cfg.model, device=device, dtype=torch.float32)
    model.train()
    examples = load_jsonl(cfg.data) if cfg.format == "plain" else load_examples(cfg.data, cfg.format)
    prompts = PromptEncoder(tok, PromptFormat.of(cfg))  # the prompt text RL will give the model
    encoded = [encode_sft(tok, prompts.text(ex), ex.answer) for ex in examples]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda("cosine", cfg.warmup_steps, cfg.steps, 0.1))
    rng = np.random.default_rng(cfg.seed)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    losses, t0 = [], time.perf_counter()
    for step in range(cfg.steps):
        pick = rng.choice(len(encoded), size=min(cfg.batch_size, len(encoded)), replace=False)
        ids, attn, tmask = _batch([encoded[i] for i in pick], pad, device)
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
        nll = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        mask = tmask[:, 1:]
        loss = (nll * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % max(cfg.steps // 10, 1) == 0:
            log.info("sft step %d/%d loss %.4f", step + 1, cfg.steps, float(np.mean(losses[-20:])))
    out = Path(cfg.out)
    save_model(model, tok, out)
    summary = {
        "steps": cfg.steps,
        "final_loss": float(np.mean(losses[-20:])),
        "first_loss": losses[0],
        "seconds": time.perf_counter() - t0,
        "examples": len(examples),
    }
    (out / "sft_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not math.isfinite(summary["final_loss"]):
        raise RuntimeError("SFT diverged (non-finite loss); lower lr")
    return summary
