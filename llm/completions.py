"""From sampled tokens to scored completions: stops, truncation, decoding, rewards (trainer and evaluation).

`Finisher` holds what a run decides about the end of a completion (`llm.stopping`: the stop ids of
the model and tokenizer, ``rollout.stop_strings``, ``rollout.truncated``) and about its reward
(`llm.reward.RewardTerm` list). ``finisher(batch, examples)`` cuts the batch at its stops, flags
truncated responses, decodes the texts (the final stop id and special tokens dropped, a stop string
and what follows it cut), scores them, then applies the truncation mode (mask or DAPO penalty).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .reward import RewardTerm, Scores, score_batch
from .rollout import RolloutBatch
from .stopping import cut_at_stops, generate_kwargs, mask_truncated, overlong_penalty, stop_ids, truncated

__all__ = ["Finished", "Finisher", "reward_terms"]


@dataclass
class Finished:
    """A rollout after `Finisher`: the cut batch, rewards (B,) float32, scores, texts (B,), truncated (B,) bool,
    and the example of each row."""

    batch: RolloutBatch
    rewards: torch.Tensor
    scores: Scores
    texts: list[str]
    truncated: torch.Tensor
    examples: list


def reward_terms(reward_cfg) -> list[RewardTerm]:
    """The weighted terms of a `llm.config.RewardConfig`: fn (weight) then every ``extra`` entry."""
    deadline = reward_cfg.timeout_s
    terms = [RewardTerm(reward_cfg.fn, reward_cfg.weight, deadline)] if reward_cfg.weight else []
    return terms + [RewardTerm(name, float(w), deadline) for name, w in reward_cfg.extra.items()]


class Finisher:
    """Stops, truncation, decoding and rewards of a run's completions (see the module docstring)."""

    def __init__(self, model, tokenizer, rollout_cfg, terms: list[RewardTerm] | None = None, pad_id: int = 0):
        self.tokenizer, self.cfg, self.terms, self.pad_id = tokenizer, rollout_cfg, terms, pad_id
        self.ids = stop_ids(model, tokenizer)
        self.primary = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else self.ids[0]

    def generate_kwargs(self, generate_fn) -> dict:
        """``eos_id`` (and ``eos_ids`` where ``generate_fn`` takes them) and ``pad_id`` for sampling."""
        return {**generate_kwargs(generate_fn, self.ids, self.primary), "pad_id": self.pad_id}

    def texts(self, batch: RolloutBatch) -> list[str]:
        """The decoded responses: the final stop id and special tokens dropped, cut before a stop string."""
        out = []
        for row, n in zip(batch.response_ids.tolist(), batch.lengths.tolist(), strict=True):
            row = row[: int(n)]
            if row and row[-1] in self.ids:
                row = row[:-1]
            text = self.tokenizer.decode(row, skip_special_tokens=True)
            for stop in self.cfg.stop_strings:
                text = text.split(stop, 1)[0]
            out.append(text)
        return out

    def __call__(self, batch: RolloutBatch, examples) -> Finished:
        stops = tuple(self.cfg.stop_strings)
        batch, stopped = cut_at_stops(batch, self.ids, self.pad_id, self.tokenizer, stops)
        flags = truncated(batch, stopped, self.cfg.max_new_tokens)
        texts = self.texts(batch)
        scores = score_batch(texts, list(examples), self.terms)
        rewards = torch.tensor(scores.rewards, dtype=torch.float32)
        if self.cfg.truncated == "penalty":
            buffer = self.cfg.overlong_buffer or max(self.cfg.max_new_tokens // 4, 1)
            lengths = batch.lengths.cpu()
            rewards = rewards + overlong_penalty(lengths, self.cfg.max_new_tokens, buffer, self.cfg.overlong_penalty)
        elif self.cfg.truncated == "mask":
            batch = mask_truncated(batch, flags)
        scores = dataclasses.replace(scores, truncated=int(flags.sum()))
        return Finished(batch, rewards, scores, texts, flags, list(examples))
