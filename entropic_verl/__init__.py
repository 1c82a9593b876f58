"""EntroPIC for verl 0.9.1: PI control of policy entropy, as a plug-in (no fork of verl).

Importing this package registers, through verl's own registries:

- the policy loss ``entropic`` (`entropic_verl.loss`): verl's ``vanilla`` clipped loss + α·term,
  term = Σ_{mask ∧ π>τ}(−ratio·|A|)/D from `pic.actuator.entropic_adjustment`;
- the v1 trainer ``entropic_sync`` (`entropic_verl.trainer`), which runs the actor as
  `entropic_verl.workers.EntroPICTrainingWorker`: after every optimizer step it all-reduces the
  training forward's ``[Σ H·mask, Σ mask]`` over the data-parallel group and calls
  `pic.controller.PIController.update` (e = H − H*, α > 0 lowers entropy) once.

verl imports it in every process, either from the ``verl.plugins`` entry point of this package
(installed with ``pip install``) or from ``VERL_USE_EXTERNAL_MODULES=entropic_verl``. Entry-point
plug-ins that fail to import are skipped silently: check with `assert_registered` or
``python -m entropic_verl``.

Run it with::

    python -m verl.trainer.main_ppo trainer.v1.trainer_mode=entropic_sync \\
        actor_rollout_ref.actor.policy_loss.loss_mode=entropic actor_rollout_ref.actor.calculate_entropy=True \\
        +actor_rollout_ref.entropic.target=0.1 +actor_rollout_ref.entropic.kp=1.0 +actor_rollout_ref.entropic.ki=0.01

Deliberate differences from the official EntroPIC fork (github.com/yk7333/EntroPIC):

1. **Global entropy.** The official controller runs per rank on each micro-batch's local
   entropy, so ranks drift apart. Here H is the token-weighted mean over the whole optimizer step
   on all DP ranks, and every rank holds the identical controller state.
2. **One update per optimizer step.** The official code updates α per micro-batch (integral
   weighted by the micro-batch's share) with no delay. Here the α applied in step t is computed
   at the end of step t − 1 from step t − 1's entropy (step 1 uses α = 0); with k mini-batches ×
   E epochs per rollout the controller still advances k·E times per rollout, like the official
   integral.
3. **State in checkpoints.** The official integral is lost on resume. Here rank 0 writes
   ``global_step_N/actor/entropic_state.json`` atomically and every rank reads it back.
4. **Normalisation.** Default ``all_tokens`` (the paper): the term is divided by the same global
   token count as verl's token-mean loss, so high-probability weights are exactly 1 ± α.
   ``normalization=high_prob_tokens`` reproduces the official per-micro-batch mean over the N_h
   high-probability tokens (weights 1 ± α·N/N_h, which can flip a negative token's sign).

Also: τ, the α limits and anti-windup are config keys (official: τ hard-coded 0.95, none); keys
live in ``actor_rollout_ref.entropic`` because verl rejects unknown actor keys.
"""

from __future__ import annotations

from .config import PREFIX, EntroPICConfig, check_actor_config
from .loss import LOSS_MODE, compute_policy_loss_entropic, entropic_term
from .registration import assert_registered, check_fresh_process, fresh_process_status, registration_status
from .runtime import STATE_FILE, EntroPICRuntime, configure, get_runtime, reset_runtime
from .trainer import TRAINER_MODE, EntroPICTrainer
from .workers import EntroPICActorRolloutRefWorker, EntroPICTrainingWorker, EntropyTap

__all__ = [
    "LOSS_MODE",
    "PREFIX",
    "STATE_FILE",
    "TRAINER_MODE",
    "EntroPICActorRolloutRefWorker",
    "EntroPICConfig",
    "EntroPICRuntime",
    "EntroPICTrainer",
    "EntroPICTrainingWorker",
    "EntropyTap",
    "assert_registered",
    "check_actor_config",
    "check_fresh_process",
    "compute_policy_loss_entropic",
    "configure",
    "entropic_term",
    "fresh_process_status",
    "get_runtime",
    "registration_status",
    "reset_runtime",
]
