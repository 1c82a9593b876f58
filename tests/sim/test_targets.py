"""The "holds an arbitrary target" table (`sim.targets`): per-loop targets reproduce separate runs,
the method list follows ``Lever.holds_target``, settling is read as documented.

Run: python -m pytest tests/sim/test_targets.py
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.testing import assert_allclose

from pic.levers import LEVERS, make_lever
from sim.bandit import standard_problem
from sim.cli import main
from sim.levers import run_lever
from sim.plant import PlantConfig
from sim.targets import PerLoopTargets, auto_targets, holding_levers, settle_step

OFF = PlantConfig(group_size=8, lr=1.0, mode="sampled", epochs=2, minibatches=2)


def test_the_table_runs_every_lever_that_holds_a_target():
    names = holding_levers()
    assert set(names) == {n for n in LEVERS if make_lever(n).holds_target}
    expected = {
        "entropic",
        "entropic_auto",
        "aepo",
        "adaptive_entropy_trl",
        "adaptive_entropy_skywork",
        "sac_temperature",
    }
    assert expected <= set(names)
    assert not {"grpo", "entropic_p", "entropy_bonus", "clip_higher", "bapo"} & set(names)  # no target, or P only


@pytest.mark.parametrize("name", ["entropic", "adaptive_entropy_trl", "sac_temperature", "aepo"])
def test_per_loop_targets_reproduce_one_run_per_target(name):
    """Loop i of the batched run is the lone run of its target and seed (each loop draws from its own generator)."""
    bandit, z0 = standard_problem(seed=2, contexts=4, arms=12, start_entropy=1.2)
    targets, seeds = [0.3, 0.8], [4, 5]
    batched = PerLoopTargets([make_lever(name, target=t, loops=2) for t in targets])
    both = run_lever(bandit, z0, batched, OFF, steps=12, seeds=seeds * 2)
    for i, t in enumerate(targets):
        alone = run_lever(bandit, z0, make_lever(name, target=t, loops=2), OFF, steps=12, seeds=seeds)
        assert_allclose(both.entropy[:, 2 * i : 2 * i + 2], alone.entropy, rtol=0, atol=1e-12)
        assert_allclose(both.extra_samples[:, 2 * i : 2 * i + 2], alone.extra_samples)
        for key, value in alone.metrics.items():
            assert_allclose(both.metrics[f"{key}@{i}"], value, atol=1e-12)


def test_settling_is_entering_the_ten_percent_band_for_good():
    h = np.concatenate([np.full(30, 1.0), np.full(70, 0.52)])  # within ±10 % of 0.5 from step 30 on
    assert settle_step(h, 0.5, window=1) == 30
    assert settle_step(h, 0.5, window=5) == 34  # the 5-step moving average enters at step 34
    late = np.concatenate([np.full(90, 1.0), np.full(10, 0.5)])  # enters after 80 % of the run
    assert settle_step(late, 0.5, window=1) is None
    assert settle_step(np.full(50, 0.56), 0.5, window=1) is None  # 12 % off: never inside


def test_auto_targets_lie_inside_the_band_and_one_above():
    targets = auto_targets((0.1, 0.6), h_max=2.3)
    assert_allclose(targets, [0.2, 0.3, 0.4, 0.5, 1.2])
    assert auto_targets((0.1, 2.0), h_max=2.3)[-1] == pytest.approx(0.9 * 2.3)


def test_cli_writes_the_table_and_its_figure(tmp_path, capsys):
    args = ["compare", "--only", "methods", "--out", str(tmp_path), "--methods", "grpo", "--seeds", "1"]
    args += ["--method-steps", "20", "--target-seeds", "1", "--targets", "0.2,0.9", "--method-arms", "6"]
    assert main(args) == 0
    out = tmp_path / "methods"
    data = json.loads((out / "targets.json").read_text())
    assert {r["method"] for r in data["rows"]} == set(holding_levers())
    assert sorted({r["target"] for r in data["rows"]}) == [0.2, 0.9]
    aepo = next(r for r in data["rows"] if r["method"] == "aepo")
    assert aepo["extra_samples_per_step"] == 8 * 16  # ⌈32 contexts / 4⌉ × G (16)
    assert (out / "targets.png").exists() and "| aepo |" in (out / "targets.md").read_text()
    assert main([*args[:-2], "--targets", "0.0"]) == 2  # a ±10 % band around 0 is empty
