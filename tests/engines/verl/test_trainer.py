"""The ``entropic_sync`` trainer and worker on verl's own ``ppo_trainer.yaml`` (Hydra-composed, no Ray run)."""

from __future__ import annotations

import copy
import os

import pytest
from engine_support import require_engine

pytestmark = pytest.mark.verl
verl = require_engine("verl", "verl")

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import open_dict  # noqa: E402
from verl.trainer.ppo.utils import Role  # noqa: E402
from verl.trainer.ppo.v1 import get_trainer_cls  # noqa: E402
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer  # noqa: E402
from verl.utils.config import omega_conf_to_dataclass  # noqa: E402
from verl.workers.config import FSDPActorConfig  # noqa: E402

from entropic_verl import (  # noqa: E402
    EntroPICActorRolloutRefWorker,
    EntroPICTrainer,
    EntroPICTrainingWorker,
    get_runtime,
    reset_runtime,
)

OVERRIDES = [
    "algorithm.adv_estimator=grpo",
    "critic.enable=False",
    "trainer.v1.trainer_mode=entropic_sync",
    "actor_rollout_ref.actor.policy_loss.loss_mode=entropic",
    "actor_rollout_ref.actor.calculate_entropy=True",
    "+actor_rollout_ref.entropic.target=0.1",
    "+actor_rollout_ref.entropic.kp=1.0",
    "+actor_rollout_ref.entropic.ki=0.01",
    "+actor_rollout_ref.entropic.tau=0.95",
    "actor_rollout_ref.rollout.temperature=0.6",
    "actor_rollout_ref.rollout.n=8",
    "actor_rollout_ref.model.path=Qwen/Qwen2.5-0.5B",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
]


@pytest.fixture(scope="module")
def composed():
    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=OVERRIDES)


@pytest.fixture
def cfg(composed):
    yield copy.deepcopy(composed)
    reset_runtime()


def test_verl_builds_its_actor_config_with_our_loss(cfg):
    assert get_trainer_cls(cfg.trainer.v1.trainer_mode) is EntroPICTrainer
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    assert isinstance(actor, FSDPActorConfig) and actor.policy_loss.loss_mode == "entropic"


def test_official_actor_keys_are_rejected_by_verl(cfg):
    """Why the keys live in actor_rollout_ref.entropic: verl's actor dataclass refuses unknown ones."""
    with open_dict(cfg.actor_rollout_ref.actor):
        cfg.actor_rollout_ref.actor.target_entropy = 0.1
    with pytest.raises(Exception, match="target_entropy"):
        omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)


@pytest.mark.parametrize("use_kl_loss", [False, True])
def test_trainer_runs_as_sync_with_the_entropic_worker(cfg, use_kl_loss):
    cfg.actor_rollout_ref.actor.use_kl_loss = use_kl_loss  # True adds the reference policy: ActorRolloutRef
    trainer = EntroPICTrainer(cfg)
    assert trainer.trainer_mode == "sync" and cfg.trainer.v1.trainer_mode == "sync"
    assert type(trainer.replay_buffer) is ReplayBuffer
    trainer._init_resource_pool_mgr()
    role = Role.ActorRolloutRef if use_kl_loss else Role.ActorRollout
    assert set(trainer.role_worker_mapping) == {role}
    assert trainer.role_worker_mapping[role].__ray_actor_class__ is EntroPICActorRolloutRefWorker


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("actor_rollout_ref.entropic.tau", 1.5, r"actor_rollout_ref\.entropic\.tau must be in \(0, 1\), got 1\.5"),
        (
            "actor_rollout_ref.entropic.kp",
            -1.0,
            r"actor_rollout_ref\.entropic\.kp must be a finite number >= 0, got -1\.0",
        ),
        ("actor_rollout_ref.entropic.typo", 1, r"actor_rollout_ref\.entropic has unknown keys \['typo'\]"),
        (
            "actor_rollout_ref.actor.policy_loss.loss_mode",
            "vanilla",
            r"actor_rollout_ref\.actor\.policy_loss\.loss_mode must be 'entropic'",
        ),
        (
            "actor_rollout_ref.actor.calculate_entropy",
            False,
            r"actor_rollout_ref\.actor\.calculate_entropy must be True",
        ),
    ],
)
def test_trainer_validates_on_the_driver(cfg, key, value, message):
    node, leaf = key.rsplit(".", 1)
    target = cfg
    for part in node.split("."):
        target = target[part]
    with open_dict(target):
        target[leaf] = value
    with pytest.raises(ValueError, match=message):
        EntroPICTrainer(cfg)


def test_trainer_needs_the_namespace(cfg):
    with open_dict(cfg.actor_rollout_ref):
        del cfg.actor_rollout_ref["entropic"]
    with pytest.raises(ValueError, match=r"actor_rollout_ref\.entropic is missing"):
        EntroPICTrainer(cfg)


@pytest.fixture
def worker_env(monkeypatch):
    for key, value in dict(WORLD_SIZE="1", RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29555").items():
        monkeypatch.setenv(key, value)


def test_actor_worker_configures_the_controller(cfg, worker_env):
    worker = EntroPICActorRolloutRefWorker(cfg.actor_rollout_ref, role="actor_rollout")
    assert worker.actor_worker_cls is EntroPICTrainingWorker
    runtime = get_runtime()
    assert (runtime.config.target, runtime.config.kp, runtime.config.ki, runtime.config.tau) == (0.1, 1.0, 0.01, 0.95)
    assert runtime.alpha == 0.0 and runtime.controller.step == 0


def test_rollout_only_worker_leaves_the_controller_alone(cfg, worker_env):
    reset_runtime()
    EntroPICActorRolloutRefWorker(cfg.actor_rollout_ref, role="rollout")
    with pytest.raises(RuntimeError):
        get_runtime()
