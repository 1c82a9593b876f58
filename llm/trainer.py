"""The RL trainer: GRPO/PPO on a causal LM, with an entropy-control lever (EntroPIC by default).

One step (``Trainer.step``)::

    prompts ─► rollout (KV cache, temperature T) ─► rewards ─► group advantages
          └─► H = token mean of the rollout's full-vocabulary entropies at T
              lever.update(StepStats(H, …)) ─► lever's extra samples, if any (llm.extra_samples)
    for epoch × mini-batch:  Σ_micro ∇[policy loss with lever.modify(tokens)]  ─► clip ─► AdamW
    log metrics ─► checkpoint

H is the behaviour policy's (before this step's updates), over every main response token, from the
logits it sampled from. On-policy (1 epoch × 1 mini-batch) r ≡ 1 (π_old = sg(π_θ)); otherwise π_old is
the rollout's log-prob (or a recomputed one). The lever: any `pic.levers.Lever`; ranks: `llm.parallel`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from pic.grpo import group_advantages
from pic.io import atomic_write_text
from pic.levers import StepStats, TokenBatch

from .checkpoint import capture_rng, find_latest, restore_rng, save_checkpoint
from .completions import Finisher, reward_terms
from .config import ConfigError, RLConfig, config_to_dict
from .data import PromptStream
from .datasets import load_data
from .extra_samples import add_extra_samples
from .kl import add_kl, frozen_copy
from .losses import PolicyLossConfig, entropy_fields, entropy_request, policy_loss, response_logprobs
from .metrics import LeverTrace, MetricsLogger, check_skip_streak, perf_metrics, reduce_sums, rollout_sums
from .model import load_model
from .parallel import make_backend, training_mode
from .prompts import PromptEncoder
from .rollout import RolloutBatch, generate, rollout_options
from .rundir import lock_run_dir
from .samples import Reports
from .schedule import lr_lambda, schedule_horizon

__all__ = ["Trainer", "train"]

log = logging.getLogger(__name__)

Chunk = tuple[torch.Tensor, int, int]
"""A micro-batch: (row indices (m,), first input column kept, response length t)."""


class Trainer:
    """Holds the model, optimizer, lever and data stream of one run, on a `llm.parallel` backend."""

    def __init__(self, cfg: RLConfig) -> None:
        cfg.check_paths()
        self.cfg = cfg
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        torch.manual_seed(cfg.train.seed)
        self.backend = make_backend(cfg.train.parallel, cfg.model.device)
        self.device = self.backend.device
        self.lever = cfg.build_lever()
        self.backend.check(cfg.data.prompts_per_step, self.lever.needs_reference)
        self.model, self.tokenizer = load_model(cfg.model.path, device=self.device, dtype=torch.float32)
        training_mode(self.model, gradient_checkpointing=cfg.model.gradient_checkpointing)
        self._check_target(math.log(len(self.tokenizer)))
        self.run_dir = Path(cfg.train.out)
        self.ckpt_dir = self.run_dir / "checkpoints"
        checkpoint = find_latest(self.ckpt_dir) if cfg.train.resume else None
        if cfg.train.resume and checkpoint is None:
            log.warning("resume: no checkpoint in %s, starting from scratch", self.ckpt_dir)
        # the reference policy (lever kl_penalty, kl.coef > 0): a frozen copy of the starting weights
        self.ref_model = frozen_copy(self.model) if self.lever.needs_reference or cfg.kl.coef > 0 else None
        resumed = self.backend.wrap(self.model, checkpoint=checkpoint, sampling_dtype=cfg.model.dtype)
        self.eos_id, self.pad_id = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        self.pad_id = self.pad_id if self.pad_id is not None else self.eos_id
        self.prompts = PromptEncoder.for_model(self.tokenizer, self.model, cfg)  # templating (llm.prompts)
        self.finisher = Finisher(self.model, self.tokenizer, cfg.rollout, reward_terms(cfg.reward), self.pad_id)
        self.stream = PromptStream(load_data(cfg.data.train, cfg.data), seed=cfg.train.seed, shuffle=cfg.data.shuffle)
        o = cfg.optim
        adamw = {"lr": o.lr, "betas": (o.beta1, o.beta2), "eps": o.eps, "weight_decay": o.weight_decay}
        self.optimizer = torch.optim.AdamW(self.model.parameters(), **adamw, fused=self.device.type == "cuda")
        self.horizon = schedule_horizon(cfg.train.steps, resumed)  # a resumed run keeps its first plan's
        schedule = lr_lambda(o.schedule, o.warmup_steps, self.horizon, o.min_lr_ratio)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        p = cfg.ppo
        self.loss_cfg = PolicyLossConfig(p.eps_low, p.eps_high, p.dual_clip, cfg.control.tau)
        self.generators = {
            "rollout": torch.Generator(device=self.device).manual_seed(cfg.train.seed),
            "shuffle": torch.Generator().manual_seed(cfg.train.seed + 1),
        }
        self.step_count = 0
        self.last_clip_frac = math.nan  # of the previous step's updates, for levers that read it
        if resumed is not None:
            self._restore(resumed, checkpoint)
        self._open_logs(None if resumed is None else self.step_count)

    def _check_target(self, h_max: float) -> None:
        """The lever's entropy targets must lie in [0, log V] nats."""
        targets = [self.lever.target_at(k) for k in range(max(self.cfg.train.steps, 1))]
        bad = [t for t in targets if t is not None and not 0 <= t <= h_max]
        if bad:
            raise ConfigError(f"control.target must lie in [0, log V = {h_max:.3f}] nats, got {bad[0]!r}")

    def _open_logs(self, resume_step: int | None) -> None:
        """Rank 0 writes config.json and the metrics; under torchrun every rank traces its lever state."""
        self.logger, self.trace = None, None
        cfg = self.cfg
        if self.backend.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config = json.dumps(config_to_dict(cfg), indent=2, default=str)
            atomic_write_text(self.run_dir / "config.json", config + "\n")
            t = cfg.train
            opts = {"tensorboard": t.tensorboard, "total_steps": t.steps, "progress": t.progress}
            self.logger = MetricsLogger(self.run_dir, resume_step=resume_step, **opts)
            if resume_step is None:
                self.logger.text("config", f"```\n{config}\n```")
        self.backend.barrier()
        if self.backend.distributed:
            self.trace = LeverTrace(self.run_dir / f"lever_rank{self.backend.rank}.jsonl", resume_step)
        self.reports = Reports(self, resume_step)  # samples.jsonl and eval.jsonl (llm.samples)

    # ------------------------------------------------------------- checkpoints
    def save(self) -> Path:
        """Rank 0 writes the checkpoint (the state is replicated); every rank takes part in gathering it."""
        path = self.ckpt_dir / f"step_{self.step_count:06d}"
        weights, optimizer = self.backend.full_state(self.optimizer)
        if self.backend.is_main:
            lever = {"name": self.lever.name, "state": self.lever.state_dict()}
            state = {"step": self.step_count, "optimizer": optimizer, "scheduler": self.scheduler.state_dict()}
            state |= {"lever": lever, "stream": self.stream.state_dict(), "last_clip_frac": self.last_clip_frac}
            state |= {"rng": capture_rng(self.generators), "config": config_to_dict(self.cfg), "horizon": self.horizon}
            files = {"model": self.model, "tokenizer": self.tokenizer, "keep_last": self.cfg.train.keep_last}
            path = save_checkpoint(self.ckpt_dir, self.step_count, trainer_state=state, state_dict=weights, **files)
        self.backend.barrier()
        return path

    def _restore(self, state: dict[str, Any], path: Path) -> None:
        """Everything but the weights (the backend loaded those) from a checkpoint's trainer state."""
        lever = state.get("lever")
        if lever is None:
            raise ConfigError(f"cannot resume from {path}: it has no 'lever' entry (an older format); start a new run")
        if lever["name"] != self.lever.name:
            raise ConfigError(
                f"cannot resume: the checkpoint was trained with lever {lever['name']!r}, not {self.lever.name!r}"
            )
        self.lever.load_state_dict(lever["state"])
        self.backend.load_optimizer_state(self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stream.load_state_dict(state["stream"])
        self.last_clip_frac = state.get("last_clip_frac", math.nan)
        restore_rng(state["rng"], self.generators)
        self.step_count = int(state["step"])
        log.info("resumed from %s (step %d; schedules over %d steps)", path, self.step_count, self.horizon)

    # ---------------------------------------------------------------- rollout
    def rollout(self, examples) -> tuple[RolloutBatch, torch.Tensor, Any]:
        """Sample G completions of this rank's share of the step's prompts; (batch, rewards (P_local, G), scores).

        The sampling uniforms are drawn for the whole global batch on every rank and each rank
        uses its columns, so a completion does not depend on how the prompts are split.
        """
        g, n_new = self.cfg.rollout.group_size, self.cfg.rollout.max_new_tokens
        uniforms = torch.rand((n_new, len(examples) * g), generator=self.generators["rollout"], device=self.device)
        columns = self.backend.share(len(examples) * g)
        examples = examples[self.backend.share(len(examples))]
        flat = [ex for ex in examples for _ in range(g)]
        self.backend.sampler.eval()
        sampling = rollout_options(self.cfg.rollout) | self.finisher.generate_kwargs(generate)
        sampling |= {"uniforms": uniforms[:, columns], "all_finished": self.backend.sampling_done}
        prompts = [self.prompts.ids(ex) for ex in flat]  # templated (llm.prompts)
        batch = generate(self.backend.sampler, prompts, max_new_tokens=n_new, device=self.device, **sampling)
        self.model.train()
        self.finished = self.finisher(batch, flat)  # stops, truncation, rewards; kept for llm.samples
        return self.finished.batch, self.finished.rewards.view(len(examples), g), self.finished.scores

    # ----------------------------------------------------------------- update
    def update(self, batch: RolloutBatch, adv: torch.Tensor) -> dict[str, float] | None:
        """PPO epochs × mini-batches; the global sums of the update metrics, or None if anything is non-finite.

        Mini-batches are drawn from the global batch of sequences; each rank trains on its
        members of a mini-batch, with that mini-batch's global token count N in every loss.
        """
        ppo = self.cfg.ppo
        n_local = batch.response_ids.shape[0]  # B sequences on this rank
        n_global = self.backend.global_rows(n_local)
        micro = ppo.micro_batch_size or n_global // ppo.minibatches
        old_all = self._old_logprobs(batch, micro)  # (B, T)
        sums: dict[str, float] = {}  # this rank's metric sums over micro-batches
        tokens = norms = updates = 0.0  # global already: not all-reduced again
        snapshot = self.backend.snapshot(self.optimizer) if ppo.epochs * ppo.minibatches > 1 else None
        for _ in range(ppo.epochs):
            many = ppo.minibatches > 1
            perm = torch.randperm(n_global, generator=self.generators["shuffle"]) if many else torch.arange(n_global)
            for members in perm.split(n_global // ppo.minibatches):
                idx = self.backend.local_rows(members, n_local).to(self.device)  # this rank's rows (b,)
                step = self._optimizer_step(batch, adv, old_all, idx, micro, sums)
                if step is None:  # all or nothing: undo the step's earlier optimizer steps too
                    if snapshot is not None:
                        snapshot.restore()
                    return None
                tokens, norms, updates = tokens + step[0], norms + step[1], updates + 1
        self.lever.sync(self.backend.all_reduce)  # what the lever measured on this rank's tokens, made global
        return {**self.backend.all_reduce(sums), "train_tokens": tokens, "grad_norm": norms, "updates": updates}

    def _optimizer_step(self, batch, adv, old_all, idx, micro, sums) -> tuple[float, float] | None:
        """One mini-batch: Σ_micro ∇loss → backend hook → clip → AdamW; (global tokens N, grad norm) or None."""
        mask = batch.response_mask[idx].float()  # (b, T)
        counts = self.lever.counts(batch.logprobs[idx].reshape(1, -1), mask.reshape(1, -1))
        local = {"N": float(mask.sum()), **{f"count.{k}": float(v.sum()) for k, v in counts.items()}}
        glob = self.backend.all_reduce(local)  # the mini-batch's global token count N and lever counts
        n_tok = glob.pop("N")
        counts = {k.removeprefix("count."): torch.full((1, 1), v, device=self.device) for k, v in glob.items()}
        self.optimizer.zero_grad(set_to_none=True)
        finite = True
        pad_chunk = (torch.zeros(1, dtype=torch.long, device=self.device), 0, 1)  # one token, for padding passes
        own = batch.micro_chunks(idx, micro, self.cfg.ppo.max_tokens_per_micro_batch)
        chunks = self.backend.micro_batches(own, lambda: self._score(batch, pad_chunk, True))
        for chunk in chunks:
            loss, stats = self._micro_loss(batch, adv, old_all, chunk, max(n_tok, 1.0), counts)
            finite = finite and bool(torch.isfinite(loss))
            loss.backward()
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + float(value)
        self.backend.after_backward()  # Σ_ranks of the gradients (replicas), nothing (single, FSDP)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip or math.inf)
        if not (self.backend.all_true(finite) and torch.isfinite(norm)):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        return n_tok, float(norm)

    def _micro_loss(self, batch, adv, old_all, chunk: Chunk, n_tok: float, counts) -> tuple[torch.Tensor, dict]:
        """The micro-batch's share Σ ℓ_t / N of the mini-batch loss, and its metric sums."""
        mi, _, t = chunk
        logp, ent = self._score(batch, chunk, True)  # (m, t) each; ent: the lever's entropy signal or None
        ref = None
        if self.ref_model is not None:
            with torch.no_grad():
                ref, _ = self._score(batch, chunk, False, model=self.ref_model)
        old = logp.detach() if self.cfg.ppo.on_policy else old_all[mi, :t]
        flat = lambda x: None if x is None else x.reshape(1, -1)  # noqa: E731 - (m, t) → (1, m·t)
        tok = TokenBatch(
            logp=flat(logp),
            old_logp=flat(old),
            adv=flat(adv[mi, None].expand_as(logp)),
            mask=flat(batch.response_mask[mi, :t].float()),
            num_tokens=n_tok,
            counts=counts,
            ref_logp=flat(ref),
            **entropy_fields(self.lever, flat(ent)),  # H_t or the clamped H^c_t
        )
        loss = policy_loss(tok, self.lever.modify(tok), self.loss_cfg)
        return add_kl(loss, logp, ref, tok.mask.view_as(logp), n_tok, self.cfg.kl)  # beside any lever (llm.kl)

    def _score(self, batch, chunk: Chunk, entropy: bool, model=None):
        """(log-probs, the lever's entropy signal if ``entropy`` else None), (m, t); the policy unless ``model``."""
        mi, first, t = chunk
        cols = slice(first, batch.prompt_ids.shape[1] + t)
        args = (batch.input_ids[mi, cols], batch.attention_mask[mi, cols], batch.response_ids[mi, :t])
        kwargs = {"temperature": self.cfg.rollout.temperature, **(entropy_request(self.lever) if entropy else {})}
        if model is None:
            return self.backend.score(*args, **kwargs)
        with self.backend.autocast():
            return response_logprobs(model, *args, **kwargs)

    def _old_logprobs(self, batch: RolloutBatch, micro: int) -> torch.Tensor:
        """log π_old (B, T): the rollout's, or recomputed by the current policy before any update."""
        if self.cfg.ppo.on_policy or self.cfg.ppo.old_logprobs != "recompute":
            return batch.logprobs
        t = batch.response_ids.shape[1]
        with torch.no_grad():
            rows = torch.arange(batch.response_ids.shape[0], device=self.device).split(micro)
            return torch.cat([self._score(batch, (mi, 0, t), False)[0] for mi in rows])

    # ------------------------------------------------------------------- step
    def step(self) -> dict[str, Any]:
        """One RL step; returns its metrics row."""
        cfg, lever, t0 = self.cfg, self.lever, time.perf_counter()
        # rollout: this rank's share of the prompts, G completions each
        batch, rewards, scores = self.rollout(examples := self.stream.next_batch(cfg.data.prompts_per_step))
        t_roll = time.perf_counter() - t0
        # rewards (P, G) → group advantages, one per sequence (P·G,)
        adv = group_advantages(rewards, eps=cfg.ppo.adv_eps, scale_by_std=cfg.ppo.advantage == "grpo")
        adv = adv.reshape(-1).to(self.device)
        # global step statistics: token-weighted sums over ranks, identical on every rank
        local = rollout_sums(batch.entropy, batch.logprobs, batch.response_mask, rewards, scores)
        sums = self.backend.all_reduce(local)
        stats = reduce_sums(sums, update=False)
        # lever update from those statistics, rolled back below if the step is skipped
        saved, target = lever.state_dict(), lever.target_at(self.step_count)
        finite = math.isfinite(stats["entropy"]) and math.isfinite(stats["entropy_nll"])
        if finite:
            h, nll, reward = stats["entropy"], stats["entropy_nll"], stats["reward_mean"]
            lever.update(step_stats := StepStats(self.step_count, self.horizon, h, nll, reward, self.last_clip_frac))
        batch, adv, extra = add_extra_samples(self, examples, batch, adv, step_stats if finite else None)
        self.backend.check_replicated("the lever state", lever.metrics())
        # policy update: epochs × mini-batches × micro-batches (None: a non-finite loss or gradient)
        t1 = time.perf_counter()
        trained = self.update(batch, adv) if finite else None
        t_train = time.perf_counter() - t1
        lever_row = lever.metrics()  # after the update: what the lever did in this step's modify calls
        if trained is None:  # skipped: model, optimizer, lr schedule and lever as before the step
            lever.load_state_dict(saved)
            lever_row = {**lever.metrics(), **{k: 0.0 for k in lever.applied_metrics if k in lever_row}}
            log.warning("step %d skipped: non-finite entropy, loss or gradient", self.step_count + 1)
        update = reduce_sums(trained or {}, update=True)  # NaN when skipped
        if trained is not None:
            self.last_clip_frac = update["clip_frac"]
            self.scheduler.step()
        self.backend.sync_sampler()
        self.step_count += 1
        if self.trace is not None:
            self.trace.write(self.step_count, lever_row, lever.state_dict())
        # the metrics row (keys, TensorBoard tags and aggregations: llm.metrics.METRICS)
        step_s = time.perf_counter() - t0
        row = {"step": self.step_count, **stats, "entropy_target": math.nan if target is None else float(target)}
        row |= {**lever_row, **extra, **update, "lr": self.scheduler.get_last_lr()[0], "skipped": trained is None}
        row |= perf_metrics(sums["tokens"], (trained or {}).get("train_tokens", 0.0), t_roll, t_train, step_s)
        return row

    def train(self) -> list[dict[str, Any]]:
        cfg = self.cfg.train
        rows = []
        try:
            while self.step_count < cfg.steps:
                row = self.step()
                row |= self.reports.after_step(self.step_count)
                if self.logger is not None:
                    self.logger.log(row)
                rows.append(row)
                check_skip_streak(rows, cfg.max_skipped_steps)  # before a later save could keep a broken run
                if cfg.save_every and self.step_count % cfg.save_every == 0 and self.step_count < cfg.steps:
                    self.save()
            self.save()
        finally:
            for out in filter(None, (self.logger, self.trace)):
                out.close()
        return rows


def train(cfg: RLConfig) -> list[dict[str, Any]]:
    """Run (or resume) an RL run, with its directory locked (`llm.rundir`); the metrics rows of this invocation."""
    with lock_run_dir(cfg.train.out):
        return Trainer(cfg).train()
