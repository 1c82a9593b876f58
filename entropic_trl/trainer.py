"""EntroPIC for TRL: a `GRPOTrainer` subclass with a PI controller of the policy entropy.

What it adds to TRL's own loss, per micro-batch of the optimizer step (no extra forward pass: the
log-probs and entropies are the ones TRL's loss forward already computed)::

    loss = L_TRL + α · Σ_{mask ∧ π>τ} (−ratio·|A|) / D

    ratio = exp(clamp(logπ_θ − logπ_old, ±20))    raw, unclipped, token level (as the official code)
    π     = exp(logπ_θ), detached                 at TRL's ``temperature``
    mask  = completion_mask · tool_mask           TRL's own valid-token mask

and once per optimizer step (at ``accelerator.sync_gradients``)::

    H = Σ_{window, ranks} H_tok·mask / Σ_{window, ranks} mask     exact token mean, nats
    α ← controller.update(H)                                      e = H − H*, α > 0 lowers entropy

The denominator ``D`` (``normalization``):

- ``"all_tokens"`` (the paper): D is the base loss's own token count, so the gradient is the PG
  gradient with per-token weights 1 ± α on confident tokens. For the token-sum losses ``dapo``,
  ``cispo`` and ``vespo`` that is TRL's window-global normaliser (all valid tokens of the optimizer
  step over all ranks), which makes the term exact under any gradient-accumulation split and any
  number of ranks. For the other loss types it is the micro-batch's valid-token count × the
  accumulation steps (``bnpo``'s normalisation; an approximation for ``grpo``/``dr_grpo``/``luspo``/``sapo``).
- ``"high_prob_tokens"`` (the official code): D = the micro-batch's count of confident tokens ×
  the accumulation steps, per rank. The effective weight is then 1 ± α·N/N_h.

Deliberate differences from the official fork (verl, ``dp_actor``):

1. **Global entropy.** The official controller is fed each micro-batch's local entropy on each
   rank, so ranks drift apart. Here H is the exact token mean of the whole optimizer step: the
   sums ``[Σ H·mask, Σ mask]`` are accumulated over the micro-steps and all-reduced over the ranks
   once, and every rank holds the same controller state.
2. **One update per optimizer step, with a one-step delay.** The official code recomputes α per
   micro-batch from that micro-batch, before its loss. Here the α applied during optimizer step t
   is the one computed from step t−1's entropy (step 1 applies the controller's initial α, 0 for a
   fresh controller), so every micro-batch of a step uses the same α.
3. **State in checkpoints.** The official integral is lost on restart. Here rank 0 writes
   ``checkpoint-N/entropic_state.json`` (atomically) with TRL's checkpoint and every rank reads it
   on ``train(resume_from_checkpoint=...)``.
4. **Normalisation.** Default ``"all_tokens"`` (the paper's 1 ± α); ``"high_prob_tokens"``
   reproduces the official runs.

The term stays token level with ``importance_sampling_level="sequence"``, and is neither multiplied
by TRL's vLLM importance-sampling ratio nor masked by ``top_entropy_quantile``.

The hooks are private TRL methods (``_compute_loss``, ``_get_per_token_logps_and_entropies``,
``_save_checkpoint``, ``_load_optimizer_and_scheduler``): TRL is pinned to 1.16.*.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

import numpy as np
import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer

from pic import PIController, SelfTuningPI
from pic.actuator import entropic_adjustment
from pic.io import atomic_write_json
from pic.params import EntroPICParams

__all__ = ["STATE_FILE", "TOKEN_SUM_LOSSES", "EntroPICGRPOTrainer"]

log = logging.getLogger(__name__)

STATE_FILE = "entropic_state.json"
"""Name of the controller state file inside each ``checkpoint-N`` folder."""

TOKEN_SUM_LOSSES = ("dapo", "cispo", "vespo")
"""TRL loss types normalised by the window-global token count (``num_items_in_batch``)."""

_FORMAT = "entropic-trl/1"
_DEFAULTS = EntroPICParams()
_LOG_RATIO_CLAMP = 20.0


class EntroPICGRPOTrainer(GRPOTrainer):
    """TRL's `GRPOTrainer` plus the EntroPIC term, driven by a `pic.PIController`.

    Parameters
    ----------
    *args, **kwargs
        Everything `trl.GRPOTrainer` takes (model, reward_funcs, args, train_dataset, ...).
    controller : pic.PIController or pic.SelfTuningPI
        (the self-tuner with ``delay=1``: the α of a step comes from the previous step's entropy)
        The entropy controller, with scalar gains. Its target is in nats at TRL's sampling
        ``temperature``. Its current α is applied from the first step (0 for a fresh controller).
    tau : float in (0, 1)
        Probability threshold of the confident tokens the term acts on (official 0.95).
    normalization : {"all_tokens", "high_prob_tokens"}
        The denominator of the term (see the module docstring).
        Defaults, ranges and errors of ``tau`` and ``normalization`` are `pic.params.EntroPICParams`'s
        (a `pic.params.EntroPICParams` also builds the controller: ``params.controller()``).

    Keep TRL's own entropy controller off (``use_adaptive_entropy=False``); a static
    ``entropy_coef`` is allowed but fights the controller. Resume with
    ``train(resume_from_checkpoint=...)``: the controller state comes back with the checkpoint.

    Metrics (TRL's ``self._metrics``, one value per optimizer step, the same on every rank):
    ``entropic/alpha`` α applied during the step; ``entropic/entropy`` the step's token-mean H
    (nats) fed to the controller; ``entropic/integral`` S after that update (nat·steps);
    ``entropic/term`` the rank-mean of Σ_micro term, so the step's loss grew by α·term;
    ``entropic/high_frac`` the share of valid tokens with π > τ; ``entropic/target`` H* (nats).
    """

    def __init__(
        self,
        *args: Any,
        controller: PIController | SelfTuningPI,
        tau: float = _DEFAULTS.tau,
        normalization: str = _DEFAULTS.normalization,
        **kwargs: Any,
    ) -> None:
        if not isinstance(controller, PIController | SelfTuningPI):
            raise ValueError(
                f"controller must be a pic.PIController or pic.SelfTuningPI, got {type(controller).__name__}"
            )
        if np.ndim(controller.alpha) != 0:
            raise ValueError(f"controller must have scalar gains (one loop), got shape {np.shape(controller.alpha)}")
        EntroPICParams(tau=tau, normalization=normalization).check(fields=("tau", "normalization"))
        args_ = kwargs.get("args", args[2] if len(args) > 2 else None)
        if getattr(args_, "use_adaptive_entropy", False):
            raise ValueError("use_adaptive_entropy must be False: TRL's own entropy controller would fight this one")
        self.controller = controller
        self.tau = float(tau)
        self.normalization = normalization
        self._capture: list[tuple[torch.Tensor, torch.Tensor | None]] | None = None
        # window sums, float64: [Σ H·mask, Σ mask, Σ high·mask, Σ term share of this rank]
        self._window: torch.Tensor | None = None
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ the loss
    def _get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any):
        """TRL's forward, unchanged; while our `_compute_loss` runs, keep its (B, T) log-probs and entropies."""
        out = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if self._capture is not None:
            self._capture.append((out[0], out[1]))
        return out

    def _compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        """TRL's loss (any ``loss_type``) + α·term, scaled for gradient accumulation like TRL's loss."""
        self._capture = []
        try:
            loss = super()._compute_loss(model, inputs)
            captured = self._capture
        finally:
            self._capture = None
        if len(captured) != 1 or captured[0][1] is None:
            raise RuntimeError(
                f"EntroPIC expects exactly one policy forward with entropies per TRL loss call, saw {len(captured)}; "
                "this TRL version is not supported (pin trl==1.16.*)"
            )
        logps, entropies = captured[0]  # (B, T) each, at TRL's temperature
        training = self.model.training
        mode = "train" if training else "eval"
        accum = self.current_gradient_accumulation_steps if training else 1

        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        mask = mask.to(torch.float32)  # (B, T); float32 so token counts stay exact under bf16 autocast
        adv = inputs["advantages"]
        if adv.dim() == 1:
            adv = adv.unsqueeze(1)  # (B, 1), broadcast over tokens
        old = inputs.get("old_per_token_logps")
        old = logps.detach() if old is None else old
        # raw token ratio π_θ/π_old (gradient flows through logps); ≡ 1 on-policy
        ratio = torch.exp(torch.clamp(logps - old, -_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP))
        prob = torch.exp(logps.detach())

        # per-micro-batch denominator D; the loss is summed over `accum` micro-steps
        if self.normalization == "all_tokens" and self.loss_type in TOKEN_SUM_LOSSES:
            # TRL's own normaliser of these losses: the window's global token count / ranks (per rank)
            denom = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            if training:
                denom = denom * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            term = entropic_adjustment(ratio, adv, prob, 1.0, mask=mask, tau=self.tau, num_tokens=denom)
        else:
            # a micro-batch mean over D = N (all_tokens) or N_h (high_prob_tokens), then / accum
            term = (
                entropic_adjustment(ratio, adv, prob, 1.0, mask=mask, tau=self.tau, normalization=self.normalization)
                / accum
            )
        alpha = float(self.controller.alpha)  # constant over the window: updated only at its end
        loss = loss + alpha * term

        # float64 window sums, so the token mean does not depend on how the window is split
        mask64 = mask.double()
        high = (prob > self.tau).double() * mask64
        stats = torch.stack(
            [(entropies.detach().double() * mask64).sum(), mask64.sum(), high.sum(), term.detach().double()]
        )
        if not training:
            self._log_window(mode, self._reduce_window(stats), alpha)
            return loss
        self._window = stats if self._window is None else self._window + stats
        if self.accelerator.sync_gradients:  # last micro-step of the optimizer step
            totals = self._reduce_window(self._window)  # every rank: the same sums
            self._window = None
            entropy = self._log_window(mode, totals, alpha)
            if entropy is not None:
                self.controller.update(entropy)  # α for the next optimizer step
            self._metrics[mode]["entropic/integral"].append(float(self.controller.integral))
        return loss

    def _reduce_window(self, local: torch.Tensor) -> torch.Tensor:
        """Sum the (4,) window sums over the ranks (one all-reduce per optimizer step)."""
        return self.accelerator.reduce(local, reduction="sum")

    def _log_window(self, mode: str, totals: torch.Tensor, alpha: float) -> float | None:
        """Log α, term, high-prob fraction and entropy of a window; return its token-mean H (None if empty)."""
        h_sum, n_tok, n_high, term_sum = totals.tolist()
        metrics = self._metrics[mode]
        metrics["entropic/alpha"].append(alpha)
        metrics["entropic/target"].append(self.controller.target_at())
        # the rank-average of Σ_micro term: the step's loss grew by α times this
        metrics["entropic/term"].append(term_sum / self.accelerator.num_processes)
        if n_tok <= 0:
            return None
        metrics["entropic/high_frac"].append(n_high / n_tok)
        entropy = h_sum / n_tok
        metrics["entropic/entropy"].append(entropy)
        return entropy if math.isfinite(entropy) else None

    # ------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        """TRL's checkpoint, plus ``checkpoint-N/entropic_state.json`` on the saving process.

        The state is written first, so any checkpoint TRL completes (trainer_state.json) has it.
        """
        if self.args.should_save:
            name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            folder = os.path.join(self._get_output_dir(trial=trial), name)
            os.makedirs(folder, exist_ok=True)
            atomic_write_json(os.path.join(folder, STATE_FILE), self.entropic_state())
        super()._save_checkpoint(model, trial)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        """TRL's resume, plus the controller state; runs on every rank."""
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        path = os.path.join(checkpoint, STATE_FILE)
        if not os.path.isfile(path):
            log.warning("%s has no %s: the EntroPIC controller starts from its current state", checkpoint, STATE_FILE)
            return
        with open(path, encoding="utf-8") as f:
            self.load_entropic_state(json.load(f))

    def entropic_state(self) -> dict[str, Any]:
        """The JSON-serialisable controller state saved with each checkpoint."""
        return {
            "format": _FORMAT,
            "global_step": int(self.state.global_step),
            "tau": self.tau,
            "normalization": self.normalization,
            "controller": self.controller.state_dict(),
        }

    def load_entropic_state(self, state: dict[str, Any]) -> None:
        """Restore `entropic_state` output into the controller (gains and target stay as constructed)."""
        if state.get("format") != _FORMAT:
            raise ValueError(f"{STATE_FILE} has format {state.get('format')!r}, expected {_FORMAT!r}")
        for key, current in (("tau", self.tau), ("normalization", self.normalization)):
            if state.get(key) != current:
                log.warning("checkpoint was written with %s=%r, this run uses %r", key, state.get(key), current)
        self.controller.load_state_dict(state["controller"])
