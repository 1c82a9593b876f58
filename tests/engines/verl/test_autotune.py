"""verl plug-in with ``autotune``: the runtime builds the self-tuner (one step of delay), validates
its keys, warns once when the target is out of reach, and its state file round-trips exactly."""

from __future__ import annotations

import logging

import pytest
from engine_support import require_engine

pytestmark = pytest.mark.verl
verl = require_engine("verl", "verl")

from entropic_verl import EntroPICConfig, EntroPICRuntime  # noqa: E402
from pic.autotune import SelfTuningPI  # noqa: E402
from pic.controller import PIController  # noqa: E402


def test_autotune_builds_the_self_tuner_with_one_step_of_delay():
    rt = EntroPICRuntime(EntroPICConfig.from_mapping({"target": 0.3, "autotune": True, "settling_steps": 15}))
    assert isinstance(rt.controller, SelfTuningPI) and rt.controller.delay == 1
    assert rt.controller.settling_steps == 15
    ref = SelfTuningPI(0.3, settling_steps=15, delay=1)
    for h in (0.5, 0.45, 0.42, 0.4):
        assert rt.update(h) == ref.update(h)
    assert isinstance(EntroPICRuntime(EntroPICConfig(target=0.3)).controller, PIController)


def test_autotune_accepts_automatic_targets_only_when_on():
    cfg = EntroPICConfig.from_mapping({"target": {"relative": 0.8, "window": 3}, "autotune": True})
    assert cfg.build_controller().target.relative == 0.8
    with pytest.raises(ValueError, match=r"actor_rollout_ref\.entropic\.target"):
        EntroPICConfig.from_mapping({"target": "initial"})
    with pytest.raises(ValueError, match=r"actor_rollout_ref\.entropic\.settling_steps must be > 1"):
        EntroPICConfig.from_mapping({"target": 0.3, "autotune": True, "settling_steps": 1})


def test_state_file_round_trip_and_one_warning(tmp_path, caplog):
    rt = EntroPICRuntime(EntroPICConfig(target=0.1, autotune=True))
    with caplog.at_level(logging.WARNING, logger="entropic_verl.runtime"):
        for _ in range(120):
            rt.update(0.9)  # far above the target whatever α does
    assert rt.controller.target_reachable == 0.0
    assert sum("target unreachable" in r.getMessage() for r in caplog.records) == 1
    rt.save(str(tmp_path))
    other = EntroPICRuntime(EntroPICConfig(target=0.1, autotune=True))
    assert other.load(str(tmp_path))
    assert other.controller.state_dict() == rt.controller.state_dict()
    assert other.update(0.8) == rt.update(0.8)
