"""The ``entropic_sync`` v1 trainer: verl's `PPOTrainerSync` with the EntroPIC actor worker.

verl hard-codes ``ray.remote(ActorRolloutRefWorker)`` in ``PPOTrainer._init_resource_pool_mgr``;
this subclass swaps in `EntroPICActorRolloutRefWorker` for the actor roles. The base class also
branches on ``trainer_mode == "sync"`` (replay buffer, TransferQueue checkpoint and refill), so
once verl has picked this class from ``trainer.v1.trainer_mode=entropic_sync``, the mode is set
back to ``sync`` and the rest of the trainer runs exactly as stock sync.
"""

from __future__ import annotations

import ray
from verl.trainer.ppo.utils import Role
from verl.trainer.ppo.v1 import PPOTrainerSync, register_trainer

from .config import EntroPICConfig, check_actor_config
from .workers import EntroPICActorRolloutRefWorker

__all__ = ["TRAINER_MODE", "EntroPICTrainer"]

TRAINER_MODE = "entropic_sync"
_ACTOR_ROLES = (Role.ActorRollout, Role.ActorRolloutRef, Role.Actor)


@register_trainer(TRAINER_MODE)
class EntroPICTrainer(PPOTrainerSync):
    """Synchronous PPO/GRPO with the EntroPIC controller in the actor workers."""

    def __init__(self, config) -> None:
        # fail on the driver, before any Ray worker starts
        EntroPICConfig.from_mapping(config.actor_rollout_ref.get("entropic", None))
        check_actor_config(config.actor_rollout_ref.actor)
        config.trainer.v1.trainer_mode = "sync"
        super().__init__(config)

    def _init_resource_pool_mgr(self) -> None:
        super()._init_resource_pool_mgr()
        for role in _ACTOR_ROLES:
            if role in self.role_worker_mapping:
                self.role_worker_mapping[role] = ray.remote(EntroPICActorRolloutRefWorker)
