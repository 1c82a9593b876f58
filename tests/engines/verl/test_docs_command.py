"""The command lines in docs/integrations/verl.md compose against verl's ``ppo_trainer.yaml`` and pass its checks.

Hydra rejects an override whose key does not exist (unless prefixed with ``+``), so a typo in the
documented command fails here instead of on a user's GPU cluster.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
from engine_support import require_engine

pytestmark = pytest.mark.verl
verl = require_engine("verl", "verl")

from hydra import compose, initialize_config_dir  # noqa: E402
from verl.trainer.ppo.utils import need_critic, need_reference_policy  # noqa: E402
from verl.trainer.ppo.v1 import get_trainer_cls  # noqa: E402
from verl.utils.config import omega_conf_to_dataclass, validate_config  # noqa: E402
from verl.workers.config import FSDPActorConfig  # noqa: E402

from entropic_verl import EntroPICConfig, EntroPICTrainer, check_actor_config, reset_runtime  # noqa: E402

DOC = Path(__file__).resolve().parents[3] / "docs" / "integrations" / "verl.md"
FAKE_ENV = {"HOME": "/home/user"}


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)


def _expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), m.group(0)), text)


def _commands(block: str) -> list[list[str]]:
    """Each ``python -m verl.trainer.main_ppo`` line of a block, variables expanded, as override lists."""
    joined = block.replace("\\\n", " ")
    variables = dict(FAKE_ENV)
    for name, value in re.findall(r'^(\w+)=("[^"]*"|\S+)', joined, flags=re.M):
        variables[name] = _expand(value.strip('"'), variables)
    commands = []
    for line in joined.splitlines():
        if line.startswith("python -m verl.trainer.main_ppo"):
            commands.append(shlex.split(_expand(line, variables))[3:])
    return commands


def _compose(overrides: list[str]):
    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def _check(cfg) -> None:
    entropic = EntroPICConfig.from_mapping(cfg.actor_rollout_ref.entropic)
    check_actor_config(cfg.actor_rollout_ref.actor)
    assert get_trainer_cls(cfg.trainer.v1.trainer_mode) is EntroPICTrainer
    assert isinstance(omega_conf_to_dataclass(cfg.actor_rollout_ref.actor), FSDPActorConfig)
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    try:
        trainer = EntroPICTrainer(cfg)  # the driver-side part of the trainer, without Ray
    finally:
        reset_runtime()
    assert trainer.trainer_mode == "sync"
    return entropic


def test_official_recipe_command():
    blocks = [b for b in _bash_blocks() if "+actor_rollout_ref.entropic.ki=0.01" in b]
    assert len(blocks) == 1
    (overrides,) = _commands(blocks[0])
    cfg = _compose(overrides)
    entropic = _check(cfg)
    # the official run: Kp 1, Ki 0.01, target 0.1, τ 0.95, T 0.6, 8 rollouts, one mini-batch per step
    assert (entropic.kp, entropic.ki, entropic.target, entropic.tau) == (1.0, 0.01, 0.1, 0.95)
    assert cfg.actor_rollout_ref.rollout.temperature == 0.6 and cfg.actor_rollout_ref.rollout.n == 8
    assert cfg.data.train_batch_size == cfg.actor_rollout_ref.actor.ppo_mini_batch_size == 512
    assert cfg.actor_rollout_ref.actor.entropy_coeff == 0 and not cfg.actor_rollout_ref.actor.use_kl_loss
    assert cfg.actor_rollout_ref.model.path == "Qwen/Qwen3-8B-Base"


def test_gpu_smoke_commands():
    blocks = [b for b in _bash_blocks() if "entropic_smoke" in b]
    assert len(blocks) == 1
    first, resumed = _commands(blocks[0])
    assert "trainer.resume_mode=auto" in resumed
    for overrides in (first, resumed):
        cfg = _compose(overrides)
        _check(cfg)
        assert cfg.trainer.save_freq == 1 and cfg.trainer.n_gpus_per_node == 1


def test_ray_env_var_override_composes():
    """The documented fallback for workers that lack the entry point: ship the env var to every Ray process."""
    override = "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=entropic_verl"
    assert f"`{override}`" in DOC.read_text()
    cfg = _compose(["trainer.v1.trainer_mode=entropic_sync", override])
    assert cfg.ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES == "entropic_verl"
