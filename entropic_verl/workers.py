"""verl worker subclasses: the entropy tap, the once-per-optimizer-step update, the checkpoint file.

verl 0.9.1 has no worker-side step or state hooks, so `EntroPICTrainingWorker` overrides four
`TrainingWorker` methods (re-applying verl's dispatch registration, so it also works as a
top-level Ray worker):

- ``set_loss_fn``: wraps verl's loss fn (``ppo_loss``) in an `EntropyTap`;
- ``train_batch`` (one call = one optimizer step): runs verl's step, then all-reduces the tapped
  ``[Σ H·m, Σ m]`` over the data-parallel group and feeds ``H = Σ H·m / Σ m`` to the controller,
  so every rank computes the same α from the same global entropy;
- ``save_checkpoint``: rank 0 writes ``<actor dir>/entropic_state.json`` atomically, then a barrier;
- ``load_checkpoint``: every rank reads it (before verl may delete the local copy).

`EntroPICActorRolloutRefWorker` installs that worker as the actor and configures the controller
from ``actor_rollout_ref.entropic``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.distributed as dist
from verl.single_controller.base.decorator import MAGIC_ATTR, register
from verl.utils import tensordict_utils as tu
from verl.utils.device import get_device_name
from verl.workers.engine_workers import ActorRolloutRefWorker, TrainingWorker
from verl.workers.utils.padding import no_padding_2_padding

from .config import PREFIX, check_actor_config
from .runtime import configure, get_runtime

__all__ = ["EntroPICActorRolloutRefWorker", "EntroPICTrainingWorker", "EntropyTap"]

logger = logging.getLogger(__name__)


def _dispatch_like(parent_method):
    """verl's ``@register`` with the dispatch/execute/blocking settings of the overridden method."""
    attrs = getattr(parent_method, MAGIC_ATTR)
    return register(
        dispatch_mode=attrs["dispatch_mode"], execute_mode=attrs["execute_mode"], blocking=attrs["blocking"]
    )


class EntropyTap:
    """Wraps a verl loss fn; while collecting, adds each micro-batch's ``[Σ H·m, Σ m]`` (float64).

    H is ``model_output["entropy"]`` of the training forward (the engine's temperature-scaled
    entropy, present when the driver sends ``calculate_entropy``), brought to the padded response
    layout and masked exactly as ``ppo_loss`` masks its log-probs. Only values are read.
    """

    def __init__(self, loss_fn) -> None:
        self.loss_fn = loss_fn
        self.collecting = False
        self.sums: torch.Tensor | None = None
        self.micro_batches = 0
        self.missing_entropy = 0

    def start(self, device: torch.device | str) -> None:
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)
        self.micro_batches = 0
        self.missing_entropy = 0
        self.collecting = True

    def stop(self) -> torch.Tensor:
        self.collecting = False
        return self.sums

    def __call__(self, *args, **kwargs):
        # verl calls its loss fn as loss_fn(model_output=, data=, dp_group=); the FSDP engine may also call it
        # as a logits processor (student_logits=, data=) for top-k distillation: that call is passed through.
        if self.collecting and kwargs.get("student_logits") is None:
            model_output = kwargs.get("model_output", args[0] if args else None)
            data = kwargs.get("data", args[1] if len(args) > 1 else None)
            if model_output is not None and data is not None:
                self._add(model_output, data)
        return self.loss_fn(*args, **kwargs)

    def _add(self, model_output, data) -> None:
        self.micro_batches += 1
        entropy = model_output.get("entropy", None)
        if entropy is None:
            self.missing_entropy += 1
            return
        h = no_padding_2_padding(entropy, data).detach().to(torch.float64)
        m = data.select("response_mask").to_padded_tensor()["response_mask"].to(torch.float64)
        self.sums += torch.stack([(h * m).sum(), m.sum()]).to(self.sums.device)


class EntroPICTrainingWorker(TrainingWorker):
    """verl's `TrainingWorker` plus the EntroPIC step update and checkpoint file."""

    @_dispatch_like(TrainingWorker.set_loss_fn)
    def set_loss_fn(self, loss_fn):
        if not isinstance(loss_fn, EntropyTap):
            loss_fn = EntropyTap(loss_fn)
        super().set_loss_fn(loss_fn)

    @_dispatch_like(TrainingWorker.train_batch)
    def train_batch(self, data):
        tap = self.loss_fn
        if not isinstance(tap, EntropyTap):
            raise RuntimeError("EntroPICTrainingWorker.train_batch: the loss fn is not tapped (use set_loss_fn)")
        tap.start(torch.device(get_device_name()))
        try:
            output = super().train_batch(data)
        finally:
            sums = tap.stop()
        stats = self._controller_step(sums, tap)
        if output is not None:
            metrics = dict(tu.get(output, "metrics", default={}) or {})
            metrics.update(stats)
            tu.assign_non_tensor(output, metrics=metrics)
        return output

    def _controller_step(self, sums: torch.Tensor, tap: EntropyTap) -> dict[str, float]:
        """All-reduce ``[Σ H·m, Σ m]`` over DP, then one controller update: α for the next step."""
        runtime = get_runtime()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=self.engine.get_data_parallel_group())
        h_sum, n_tokens = (float(v) for v in sums.tolist())
        if n_tokens <= 0:
            hint = (
                "set actor_rollout_ref.actor.calculate_entropy=True"
                if tap.missing_entropy
                else "the step had no valid response tokens"
            )
            raise RuntimeError(f"EntroPIC: no entropy measured in this optimizer step: {hint}")
        entropy = h_sum / n_tokens
        applied = runtime.alpha
        runtime.update(entropy)
        ctrl = runtime.controller
        stats = {
            "actor/entropic_entropy": entropy,
            "actor/entropic_alpha_applied": applied,
            "actor/entropic_alpha_next": runtime.alpha,
            "actor/entropic_error": float(ctrl.error),
            "actor/entropic_integral": float(ctrl.integral),
            "actor/entropic_target": float(ctrl.target_at(ctrl.step - 1)),
            "actor/entropic_target_reachable": float(ctrl.target_reachable),
        }
        for key in ("k_hat", "b_hat", "kp", "ki", "alpha_star", "excited"):  # the self-tuning controller
            if hasattr(ctrl, "k_hat"):
                stats[f"actor/entropic_{key}"] = float(getattr(ctrl, key))
        return stats

    @_dispatch_like(TrainingWorker.save_checkpoint)
    def save_checkpoint(self, local_path, hdfs_path=None, global_step=0, max_ckpt_to_keep=None):
        result = super().save_checkpoint(local_path, hdfs_path, global_step, max_ckpt_to_keep)
        if local_path is not None:
            distributed = dist.is_available() and dist.is_initialized()
            if not distributed or dist.get_rank() == 0:
                get_runtime().save(local_path)
            if distributed:
                dist.barrier()
        return result

    @_dispatch_like(TrainingWorker.load_checkpoint)
    def load_checkpoint(self, local_path, hdfs_path=None, del_local_after_load=False):
        if local_path is not None and not get_runtime().load(local_path):
            logger.warning("EntroPIC: no controller state in %s; starting from a fresh controller", local_path)
        return super().load_checkpoint(local_path, hdfs_path, del_local_after_load)


class EntroPICActorRolloutRefWorker(ActorRolloutRefWorker):
    """verl's hybrid worker with `EntroPICTrainingWorker` as the actor and the controller configured."""

    actor_worker_cls = EntroPICTrainingWorker

    def __init__(self, config, role: str, distillation_config=None, **kwargs: Any) -> None:
        super().__init__(config, role, distillation_config=distillation_config, **kwargs)
        if self._is_actor:
            check_actor_config(config.actor)
            configure(config.get("entropic", None))
            logger.info("EntroPIC controller configured from %s: %s", PREFIX, get_runtime().config)
