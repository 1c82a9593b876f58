"""The RL trainer: GRPO/PPO on a causal LM with the EntroPIC PI controller.

One step (``Trainer.step``)::

    prompts ─► rollout (KV cache, temperature T) ─► rewards ─► group advantages
          └─► H = token mean of the rollout's full-vocabulary entropies at T
              lever.update(StepStats(H, …))                  (one update per RL step)
    for epoch × mini-batch:  Σ_micro ∇[policy loss with lever.modify(tokens)]  ─► clip ─► AdamW
    log metrics ─► checkpoint

The entropy is measured on the policy that generated the batch (the behaviour policy,
before this step's updates), over every response token, from the very logits it sampled
from — no extra forward pass. On-policy (1 epoch × 1 mini-batch) the ratio is exactly 1
(π_old = sg(π_θ)); otherwise π_old is the rollout's log-prob (or a recomputed one).

The entropy-control method is a `pic.levers.Lever` (EntroPIC by default: `pic.PIController`
and the α-term of `pic.actuator`), the same object the bandit simulator drives; the per-token
loss is `pic.levers.loss.token_loss`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pic import PIController
from pic.grpo import group_advantages
from pic.levers import StepStats, TokenBatch

from .checkpoint import (
    capture_rng,
    find_latest,
    load_checkpoint,
    load_trainer_state,
    restore_rng,
    save_checkpoint,
)
from .config import ConfigError, RLConfig, config_to_dict
from .data import PromptStream, load_jsonl
from .distributed import (
    LMCall,
    full_model_state,
    full_optimizer_state,
    init_distributed,
    load_full_optimizer_state,
    shard,
)
from .losses import PolicyLossConfig, policy_loss, response_logprobs
from .metrics import MetricsLogger
from .model import load_model
from .reward import score
from .rollout import RolloutBatch, generate

__all__ = ["Trainer", "lr_lambda", "resolve_device", "train"]

log = logging.getLogger(__name__)

_APPLIED = ("alpha", "p_term", "i_term", "entropy_coef", "kl_coef")
"""Metrics that describe what a lever applied this step (0 on a skipped step)."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"model.device is {name!r} but CUDA is not available")
    return dev


def lr_lambda(schedule: str, warmup: int, total: int, min_ratio: float):
    """Multiplier of the base lr at RL step t (warmup, then constant / linear / cosine)."""

    def f(t: int) -> float:
        if warmup and t < warmup:
            return (t + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(max(t - warmup, 0) / max(total - warmup, 1), 1.0)
        if schedule == "linear":
            return min_ratio + (1 - min_ratio) * (1 - progress)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


class Trainer:
    """Holds the model, optimizer, controller and data stream of one run."""

    def __init__(self, cfg: RLConfig) -> None:
        cfg.check_paths()
        self.cfg = cfg
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        torch.manual_seed(cfg.train.seed)
        self.device = resolve_device(cfg.model.device)
        self.dist = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        if cfg.data.prompts_per_step % self.dist.world:
            raise ConfigError(
                f"data.prompts_per_step must be a multiple of the {self.dist.world} ranks, "
                f"got {cfg.data.prompts_per_step}"
            )
        self.dtype = torch.float32
        self.model, self.tokenizer = load_model(cfg.model.path, device=self.device, dtype=torch.float32)
        self.model.train()
        vocab = len(self.tokenizer)
        h_max = math.log(vocab)
        if cfg.control.enabled and not 0 <= cfg.control.max_target(cfg.train.steps) <= h_max:
            raise ConfigError(f"control.target must lie in [0, log V = {h_max:.3f}] nats, got {cfg.control.target!r}")
        self.run_dir = Path(cfg.train.out)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.lever = cfg.build_lever()
        self.fsdp = None  # the sharded root module under train.parallel = "fsdp"
        if cfg.train.parallel == "fsdp" and self.dist.enabled:
            if self.lever.needs_reference:
                raise ConfigError("train.parallel = 'fsdp' does not support a reference model (lever kl_penalty)")
            latest = find_latest(self.ckpt_dir) if cfg.train.resume else None
            if latest is not None:  # weights go in before sharding; the rest of the state in _maybe_resume
                load_checkpoint(latest, self.model)
            self.fsdp = shard(self.model)
            self.rollout_model = LMCall(self.fsdp)
        # bf16 copy for sampling on CUDA (weights synced after each step); the CPU samples from the master
        elif self.device.type == "cuda" and cfg.model.dtype != "float32":
            import copy

            self.rollout_model = copy.deepcopy(self.model).to(torch.bfloat16).eval()
        else:
            self.rollout_model = self.model
        self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_id
        self.stream = PromptStream(load_jsonl(cfg.data.train), seed=cfg.train.seed, shuffle=cfg.data.shuffle)
        self._prompt_cache: dict[str, list[int]] = {}
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=o.lr,
            betas=(o.beta1, o.beta2),
            eps=o.eps,
            weight_decay=o.weight_decay,
            fused=self.device.type == "cuda",
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(o.schedule, o.warmup_steps, cfg.train.steps, o.min_lr_ratio)
        )
        self.ref_model = None
        if self.lever.needs_reference:  # a frozen copy of the starting policy
            import copy

            self.ref_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.loss_cfg = PolicyLossConfig(
            eps_low=cfg.ppo.eps_low,
            eps_high=cfg.ppo.eps_high,
            dual_clip=cfg.ppo.dual_clip,
            tau=cfg.control.tau,
        )
        self.generators = {
            "rollout": torch.Generator(device=self.device).manual_seed(cfg.train.seed),
            "shuffle": torch.Generator().manual_seed(cfg.train.seed + 1),
        }
        self.step_count = 0
        self.last_clip_frac = math.nan  # of the previous step's updates, for levers that read it
        resume_step = self._maybe_resume() if cfg.train.resume else None
        self.logger = None  # rank 0 logs; every rank traces its lever state when distributed
        self._trace = None
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(config_to_dict(cfg), indent=2, default=str) + "\n")
            self.logger = MetricsLogger(
                self.run_dir,
                tensorboard=cfg.train.tensorboard,
                resume_step=resume_step,
                total_steps=cfg.train.steps,
                progress=cfg.train.progress,
            )
            if resume_step is None:
                self.logger.text("config", "```\n" + json.dumps(config_to_dict(cfg), indent=2, default=str) + "\n```")
        self.dist.barrier()
        if self.dist.enabled:
            trace = self.run_dir / f"lever_rank{self.dist.rank}.jsonl"
            kept = [] if resume_step is None or not trace.exists() else trace.read_text().splitlines()
            kept = [line for line in kept if json.loads(line)["step"] <= (resume_step or 0)]  # drop re-run steps
            trace.write_text("".join(line + "\n" for line in kept))
            self._trace = open(trace, "a")  # noqa: SIM115 - kept open for the run

    @property
    def controller(self) -> PIController | None:
        """The EntroPIC controller, when the lever is EntroPIC."""
        return getattr(self.lever, "controller", None)

    # ------------------------------------------------------------- checkpoints
    def _trainer_state(self, optimizer_state: dict | None = None) -> dict[str, Any]:
        return {
            "step": self.step_count,
            "optimizer": optimizer_state if optimizer_state is not None else self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "controller": self.controller.state_dict() if self.controller else None,
            "lever": {"name": self.lever.name, "state": self.lever.state_dict()},
            "stream": self.stream.state_dict(),
            "last_clip_frac": self.last_clip_frac,
            "rng": capture_rng(self.generators),
            "config": config_to_dict(self.cfg),
        }

    def save(self) -> Path:
        """Rank 0 writes the checkpoint (the state is replicated); every rank waits for it."""
        path = self.ckpt_dir / f"step_{self.step_count:06d}"
        weights = optim = None
        if self.fsdp is not None:  # gathering the full state is a collective: every rank takes part
            weights = full_model_state(self.fsdp)
            optim = full_optimizer_state(self.fsdp, self.optimizer)
        if self.dist.is_main:
            path = save_checkpoint(
                self.ckpt_dir,
                self.step_count,
                model=self.model,
                tokenizer=self.tokenizer,
                trainer_state=self._trainer_state(optim),
                keep_last=self.cfg.train.keep_last,
                state_dict=weights,
            )
        self.dist.barrier()
        return path

    def _maybe_resume(self) -> int | None:
        path = find_latest(self.ckpt_dir)
        if path is None:
            log.info("no checkpoint in %s: starting from scratch", self.ckpt_dir)
            return None
        if self.fsdp is not None:  # the weights were loaded before sharding
            state = load_trainer_state(path)
            load_full_optimizer_state(self.fsdp, self.optimizer, state["optimizer"])
        else:
            state = load_checkpoint(path, self.model)
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        lever = state.get("lever")
        if lever is not None:
            if lever["name"] != self.lever.name:
                raise ConfigError(
                    f"cannot resume: the checkpoint was trained with lever {lever['name']!r}, not {self.lever.name!r}"
                )
            self.lever.load_state_dict(lever["state"])
        self.stream.load_state_dict(state["stream"])
        self.last_clip_frac = state.get("last_clip_frac", math.nan)
        restore_rng(state["rng"], self.generators)
        self.step_count = int(state["step"])
        self._sync_rollout_model()
        log.info("resumed from %s (step %d)", path, self.step_count)
        return self.step_count

    # ------------------------------------------------------------------ phases
    def _prompt_ids(self, prompt: str) -> list[int]:
        ids = self._prompt_cache.get(prompt)
        if ids is None:
            ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            self._prompt_cache[prompt] = ids
        return ids

    def _sync_rollout_model(self) -> None:
        if self.fsdp is None and self.rollout_model is not self.model:
            with torch.no_grad():
                for dst, src in zip(self.rollout_model.parameters(), self.model.parameters(), strict=True):
                    dst.copy_(src)

    def rollout(self, examples) -> tuple[RolloutBatch, torch.Tensor, list[str]]:
        """Sample group_size completions of this rank's share of ``examples`` (the step's prompts).

        Returns the local batch, rewards (P_local, G) and texts. The sampling uniforms are
        drawn for the whole global batch on every rank, and each rank uses its columns, so a
        completion does not depend on how the prompts are split across ranks.
        """
        g, n_new = self.cfg.rollout.group_size, self.cfg.rollout.max_new_tokens
        share = len(examples) // self.dist.world
        uniforms = torch.rand((n_new, len(examples) * g), generator=self.generators["rollout"], device=self.device)
        rank = self.dist.rank
        examples = examples[rank * share : (rank + 1) * share]
        prompts = [self._prompt_ids(ex.prompt) for ex in examples for _ in range(g)]
        self.rollout_model.eval()
        batch = generate(
            self.rollout_model,
            prompts,
            max_new_tokens=n_new,
            temperature=self.cfg.rollout.temperature,
            eos_id=self.eos_id,
            pad_id=self.pad_id,
            device=self.device,
            uniforms=uniforms[:, rank * share * g : (rank + 1) * share * g],
            all_finished=None if self.fsdp is None else self._all_finished,
        )
        self.model.train()
        ids = batch.response_ids.tolist()
        lengths = batch.response_mask.sum(-1).tolist()
        texts = []
        for row, n in zip(ids, lengths, strict=True):
            row = row[: int(n)]
            if row and row[-1] == self.eos_id:
                row = row[:-1]
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True))
        rewards = torch.tensor(score(texts, [ex for ex in examples for _ in range(g)]), dtype=torch.float32)
        return batch, rewards.view(len(examples), g), texts

    def _micro_slices(self, idx: torch.Tensor, batch: RolloutBatch, micro: int):
        """Index chunks of ``idx`` with the columns they need (left prompt pad and right response pad trimmed)."""
        p = batch.prompt_ids.shape[1]
        micro = max(micro, 1)
        for start in range(0, len(idx), micro):
            mi = idx[start : start + micro]
            pm = batch.prompt_mask[mi]
            first = int((pm.sum(0) > 0).nonzero()[0]) if pm.any() else p
            t = int(batch.response_mask[mi].sum(-1).max())
            yield mi, first, max(t, 1)

    def update(self, batch: RolloutBatch, adv: torch.Tensor) -> dict[str, float] | None:
        """PPO epochs × mini-batches with the lever's loss modifiers; aggregated stats, or None if non-finite.

        Mini-batches are drawn from the global batch of sequences (rank r holds sequences
        [r·n, (r+1)·n)); each rank trains on its members of the mini-batch, with the global
        token counts, and the gradients are summed over ranks before the optimizer step.
        """
        ppo = self.cfg.ppo
        d = self.dist
        n_local = batch.response_ids.shape[0]
        n_seq = n_local * d.world
        offset = d.rank * n_local
        mini = n_seq // ppo.minibatches
        micro = ppo.micro_batch_size or mini
        on_policy = ppo.on_policy
        input_ids, attn = batch.input_ids, batch.attention_mask
        p = batch.prompt_ids.shape[1]
        old_all = batch.logprobs
        if not on_policy and ppo.old_logprobs == "recompute":
            with torch.no_grad():
                old_all = torch.cat(
                    [
                        self._logprobs(input_ids[mi], attn[mi], batch.response_ids[mi], p)[0]
                        for mi in torch.arange(n_local).split(micro)
                    ]
                )
        lever = self.lever
        sums: dict[str, float] = {}
        norms, tokens_seen = [], 0.0
        for _ in range(ppo.epochs):
            perm = (
                torch.randperm(n_seq, generator=self.generators["shuffle"])
                if ppo.minibatches > 1
                else torch.arange(n_seq)
            )
            for j in range(ppo.minibatches):
                members = perm[j * mini : (j + 1) * mini]
                idx = (members[(members >= offset) & (members < offset + n_local)] - offset).to(self.device)
                mask_mb = batch.response_mask[idx].float()
                counts = lever.counts(batch.logprobs[idx].reshape(1, -1), mask_mb.reshape(1, -1))
                keys = sorted(counts)
                n_tok, *totals = d.sum_floats(float(mask_mb.sum()), *(float(counts[k].sum()) for k in keys))
                counts = {k: torch.full((1, 1), v, device=self.device) for k, v in zip(keys, totals, strict=True)}
                n_micro = -(-len(idx) // max(micro, 1))
                n_pad = self.dist.max_int(n_micro, self.device) - n_micro if self.fsdp is not None else 0
                self.optimizer.zero_grad(set_to_none=True)
                for mi, first, t in self._micro_slices(idx, batch, micro):
                    cols = slice(first, p + t)
                    resp = batch.response_ids[mi, :t]
                    logp, ent = self._logprobs(
                        input_ids[mi, cols], attn[mi, cols], resp, p - first, entropy=lever.needs_entropy
                    )
                    mask = batch.response_mask[mi, :t].float()
                    ref = None
                    if self.ref_model is not None:
                        with torch.no_grad():
                            ref, _ = self._logprobs(
                                input_ids[mi, cols], attn[mi, cols], resp, p - first, model=self.ref_model
                            )
                    old = logp.detach() if on_policy else old_all[mi, :t]
                    tok = TokenBatch(
                        logp=logp.reshape(1, -1),
                        old_logp=old.reshape(1, -1),
                        adv=adv[mi, None].expand_as(logp).reshape(1, -1),
                        mask=mask.reshape(1, -1),
                        num_tokens=max(n_tok, 1.0),
                        counts=counts,
                        entropy=None if ent is None else ent.reshape(1, -1),
                        ref_logp=None if ref is None else ref.reshape(1, -1),
                    )
                    loss, stats = policy_loss(tok, lever.modify(tok), self.loss_cfg)
                    if not torch.isfinite(loss) and not d.enabled:
                        self.optimizer.zero_grad(set_to_none=True)
                        return None
                    loss.backward()  # under torchrun a non-finite loss reaches every rank through the gradients
                    for key, value in stats.items():
                        sums[key] = sums.get(key, 0.0) + float(value)
                if self.fsdp is not None:
                    self._pad_micro_batches(batch, n_pad)
                else:
                    d.all_reduce_grads(self.model.parameters())
                clip = self.cfg.optim.grad_clip or float("inf")
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
                if not torch.isfinite(norm):
                    self.optimizer.zero_grad(set_to_none=True)
                    return None
                norms.append(float(norm))
                self.optimizer.step()
                tokens_seen += n_tok
        n_updates = ppo.epochs * ppo.minibatches
        keys = sorted(sums)
        sums = dict(zip(keys, d.sum_floats(*(sums[k] for k in keys)), strict=True))
        return {
            "pg_loss": sums.get("pg_loss", 0.0) / max(tokens_seen, 1.0),
            "clip_frac": sums.get("clip_frac", 0.0) / max(tokens_seen, 1.0),
            "high_prob_frac": sums.get("high_prob_frac", 0.0) / max(tokens_seen, 1.0),
            "ppo_kl": sums.get("ppo_kl", 0.0) / max(tokens_seen, 1.0),
            "entropic_term": sums.get("entropic_term", 0.0) / n_updates,
            "grad_norm": float(np.mean(norms)) if norms else 0.0,
            "train_tokens": tokens_seen,
        }

    def _all_finished(self, done: torch.Tensor) -> bool:
        """Sampling stops when every sequence of every rank has finished (a sharded model steps in lockstep)."""
        return self.dist.all_true(bool(done.all()), self.device)

    def _pad_micro_batches(self, batch: RolloutBatch, n_pad: int) -> None:
        """FSDP: ``n_pad`` zero-weight forward/backward passes, so every rank makes as many as the busiest.

        Sharded parameters are gathered and gradients reduced inside every forward and
        backward, so all ranks must make the same number of them; a rank with fewer sequences
        in this mini-batch adds passes over one token whose loss is multiplied by 0.
        """
        p = batch.prompt_ids.shape[1]
        for _ in range(n_pad):
            logp, ent = self._logprobs(
                batch.input_ids[:1, : p + 1],
                batch.attention_mask[:1, : p + 1],
                batch.response_ids[:1, :1],
                p,
                entropy=self.lever.needs_entropy,
            )
            (logp.sum() * 0.0 + (ent.sum() * 0.0 if ent is not None else 0.0)).backward()

    def _logprobs(self, input_ids, attn, response_ids, prompt_len, *, entropy: bool = False, model=None):
        """(log-probs, entropies or None) of the response tokens; entropies carry a gradient.

        ``model`` defaults to the policy; a sharded policy is called through its root module.
        """
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else nullcontext()
        kwargs = {"temperature": self.cfg.rollout.temperature, "with_entropy": entropy, "entropy_grad": entropy}
        with autocast:
            if model is None and self.fsdp is not None:
                return self.fsdp("score", input_ids, attn, response_ids, **kwargs)
            return response_logprobs(model or self.model, input_ids, attn, response_ids, **kwargs)

    # ------------------------------------------------------------------- step
    def step(self) -> dict[str, Any]:
        """One RL step; returns its metrics row."""
        cfg = self.cfg
        t0 = time.perf_counter()
        examples = self.stream.next_batch(cfg.data.prompts_per_step)
        batch, rewards, _ = self.rollout(examples)
        t_roll = time.perf_counter() - t0

        adv = group_advantages(rewards, eps=cfg.ppo.adv_eps, scale_by_std=cfg.ppo.advantage == "grpo")
        adv = adv.reshape(-1).to(self.device)
        mask = batch.response_mask
        # global token-weighted sums (identical on every rank under torchrun)
        n_tokens, h_sum, lp_sum, r_sum, r_sq, n_r, flat, n_seq = self.dist.sum_floats(
            float(mask.sum()),
            float((batch.entropy * mask).sum()),
            float((batch.logprobs * mask).sum()),
            float(rewards.sum()),
            float((rewards * rewards).sum()),
            float(rewards.numel()),
            float((rewards.max(-1).values == rewards.min(-1).values).sum()),
            float(mask.shape[0]),
        )
        entropy = h_sum / max(n_tokens, 1.0)
        nll = -lp_sum / max(n_tokens, 1.0)
        reward_mean = r_sum / n_r
        reward_std = math.sqrt(max(r_sq - n_r * reward_mean**2, 0.0) / max(n_r - 1, 1))
        lever = self.lever
        target = (
            lever.target_at(self.step_count)
            if hasattr(lever, "target_at")
            else float(cfg.control.schedule()(self.step_count))
        )
        saved = lever.state_dict()
        skipped = not (math.isfinite(entropy) and math.isfinite(nll))
        if not skipped:
            lever.update(
                StepStats(
                    step=self.step_count,
                    total_steps=cfg.train.steps,
                    entropy=entropy,
                    nll=nll,
                    reward_mean=reward_mean,
                    clip_frac=self.last_clip_frac,
                )
            )
        lever_row = lever.metrics()
        self.dist.assert_same("the lever state", [float(v) for v in lever_row.values()], device=self.device)

        t1 = time.perf_counter()
        stats = None if skipped else self.update(batch, adv)
        if stats is None:  # non-finite entropy or loss: drop the step, keep the lever as it was
            skipped = True
            lever.load_state_dict(saved)
            lever_row = {**lever.metrics(), **{k: 0.0 for k in _APPLIED if k in lever_row}}  # nothing was applied
            stats = {}
        else:
            self.last_clip_frac = stats["clip_frac"]
        t_train = time.perf_counter() - t1
        self.scheduler.step()
        self._sync_rollout_model()
        self.step_count += 1

        step_s = time.perf_counter() - t0
        row = {
            "step": self.step_count,
            "entropy": entropy,
            "entropy_target": target,
            "alpha": 0.0,
            "integral": self.controller.integral if self.controller else 0.0,
            "p_term": 0.0,
            "i_term": 0.0,
            **lever_row,
            "entropy_nll": nll,
            "reward_mean": reward_mean,
            "reward_std": reward_std,
            "frac_zero_std_groups": flat / (n_r / cfg.rollout.group_size),
            "response_len_mean": n_tokens / n_seq,
            "lr": self.scheduler.get_last_lr()[0],
            "rollout_s": t_roll,
            "train_s": t_train,
            "step_s": step_s,
            "tokens_per_s": n_tokens / step_s,
            "rollout_tokens_per_s": n_tokens / max(t_roll, 1e-9),
            "train_tokens_per_s": stats.get("train_tokens", 0.0) / max(t_train, 1e-9),
            "skipped": skipped,
            **{k: v for k, v in stats.items() if k != "train_tokens"},
        }
        for key in ("clip_frac", "high_prob_frac", "grad_norm", "pg_loss", "entropic_term", "ppo_kl"):
            row.setdefault(key, float("nan"))
        if skipped:
            log.warning("step %d skipped: non-finite entropy or loss", self.step_count)
        if self._trace is not None:
            self._trace.write(json.dumps({"step": self.step_count, **lever_row, "lever": lever.state_dict()}) + "\n")
            self._trace.flush()
        return row

    def train(self) -> list[dict[str, Any]]:
        cfg = self.cfg.train
        rows = []
        try:
            while self.step_count < cfg.steps:
                row = self.step()
                if self.logger is not None:
                    self.logger.log(row)
                rows.append(row)
                if cfg.save_every and self.step_count % cfg.save_every == 0 and self.step_count < cfg.steps:
                    self.save()
            self.save()
        finally:
            if self.logger is not None:
                self.logger.close()
            if self._trace is not None:
                self._trace.close()
        return rows


def train(cfg: RLConfig) -> list[dict[str, Any]]:
    """Run (or resume) an RL training run; returns the metrics rows of this invocation."""
    return Trainer(cfg).train()
