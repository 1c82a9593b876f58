"""`python -m sim autotune`: the metrics against direct computations, and a short end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sim.autotune import PLANTS, settling_step, tail_rms
from sim.cli import main


def test_tail_rms_is_the_last_third():
    ent = np.zeros((9, 2))
    ent[6:] = [[0.3, 0.1], [0.2, 0.2], [0.2, 0.2]]
    assert tail_rms(ent, 0.2) == pytest.approx(np.sqrt((0.1**2 + 0.1**2) / 6), rel=1e-12)


def test_settling_step_is_the_last_exit_from_the_band():
    mean = np.array([0.5, 0.21, 0.25, 0.2, 0.19, 0.2])
    ent = np.stack([mean, mean], axis=1)
    assert settling_step(ent, 0.2, band=0.1) == 3
    assert settling_step(np.full((4, 1), 0.2), 0.2) == 0
    assert settling_step(np.full((4, 1), 1.0), 0.2) == 4


def test_cli_writes_table_figure_and_json(tmp_path, capsys):
    assert main(["autotune", "--out", str(tmp_path), "--steps", "12", "--seeds", "2"]) == 0
    rows = json.loads((tmp_path / "autotune.json").read_text())
    assert len(rows) == 3 * len(PLANTS)
    assert {r["method"] for r in rows} >= {"self-tuning (defaults)"}
    assert (tmp_path / "autotune.png").stat().st_size > 10_000
    assert "tail RMS" in (tmp_path / "autotune.md").read_text()
    assert "self-tuning" in capsys.readouterr().out


def test_cli_refuses_bad_input(capsys):
    assert main(["autotune", "--out", "/tmp/x", "--steps", "0"]) == 2
    assert "steps" in capsys.readouterr().err
