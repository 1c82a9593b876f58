"""A lever's extra rollout at another temperature, in the trainer (`pic.levers.Lever.extra_samples`).

After the step's lever update, a lever may ask for `pic.levers.ExtraSamples` (T, fraction):
the first ⌈fraction·P⌉ of the step's P prompts are sampled again, G completions each, with
the logits divided by T₀·T (T₀ = ``rollout.temperature``, the training temperature: T is
relative to the trained distribution, π_T ∝ π^{1/T}, as on the bandit). They are scored with
the run's rewards, get GRPO advantages among their own groups, and the lever picks which are
trained and with what advantage (`Lever.extra_advantages`). Their behaviour log-probs are
recomputed at T₀ by the policy before any update (the AEPO code recomputes them at its
training temperature), and the kept rows are appended to the step's batch: in the loss they are
ordinary tokens with the lever's advantages, inside the same token mean. The step's entropy,
NLL and reward statistics stay the main rollout's; ``extra_samples`` (sampled) and
``extra_trained`` (appended) are logged as the extra compute of the step.

Single process only: with ranks each would keep a different number of rows, and the update's
global mini-batches assume equal shares (refused with a one-line error).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from pic.grpo import group_advantages
from pic.levers import StepStats

from .config import ConfigError
from .rollout import RolloutBatch, concat_batches

__all__ = ["add_extra_samples"]


def _select(batch: RolloutBatch, rows: torch.Tensor) -> RolloutBatch:
    return RolloutBatch(**{f.name: getattr(batch, f.name)[rows] for f in dataclasses.fields(RolloutBatch)})


def _sample(trainer, examples, temperature: float):
    """(batch, rewards (n, G)) of ``examples`` sampled at ``temperature``; the main rollout's report state kept."""
    cfg, finished = trainer.cfg, getattr(trainer, "finished", None)
    main = cfg.rollout
    cfg.rollout = dataclasses.replace(main, temperature=main.temperature * temperature)
    try:
        batch, rewards, _ = trainer.rollout(examples)
    finally:
        cfg.rollout, trainer.finished = main, finished
    return batch, rewards


def add_extra_samples(trainer, examples, batch: RolloutBatch, adv: torch.Tensor, stats: StepStats | None):
    """(batch, adv, {"extra_samples": sampled, "extra_trained": kept}) with the lever's kept extra rows appended.

    ``stats`` None (a non-finite measurement: the step is skipped) asks for nothing.
    """
    spec = None if stats is None else trainer.lever.extra_samples(stats)
    if spec is None:
        return batch, adv, {"extra_samples": 0.0, "extra_trained": 0.0}
    if trainer.backend.distributed:
        name = trainer.lever.name
        raise ConfigError(f"lever {name!r} asks for extra samples, which the trainer draws in one process only")
    temperature = float(torch.as_tensor(spec.temperature, dtype=torch.float64).reshape(-1)[0])
    n_prompts = min(len(examples), max(1, math.ceil(spec.fraction * len(examples))))
    extra, rewards = _sample(trainer, examples[:n_prompts], temperature)
    cfg = trainer.cfg
    adv_x = group_advantages(rewards, eps=cfg.ppo.adv_eps, scale_by_std=cfg.ppo.advantage == "grpo").reshape(1, -1)
    adv_x, keep = trainer.lever.extra_advantages(adv_x.to(trainer.device), main_samples=batch.response_ids.shape[0])
    rows = torch.nonzero(keep.reshape(-1) > 0).reshape(-1)
    counts = {"extra_samples": float(extra.response_ids.shape[0]), "extra_trained": float(rows.numel())}
    if rows.numel() == 0:
        return batch, adv, counts
    kept = _select(extra, rows)
    t = kept.response_ids.shape[1]
    with torch.no_grad():  # log π_old at the training temperature, before any update
        logp, _ = trainer._score(kept, (torch.arange(rows.numel(), device=trainer.device), 0, t), False)
    kept = dataclasses.replace(kept, logprobs=(logp * kept.response_mask).float())
    merged = concat_batches([batch, kept], trainer.pad_id)
    return merged, torch.cat([adv, adv_x.reshape(-1)[rows].to(adv.dtype)]), counts
