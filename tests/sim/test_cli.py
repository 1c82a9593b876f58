"""The ``python -m sim`` commands: help, tiny runs, outputs, errors.

Run: python -m pytest tests/sim/test_cli.py
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sim.cli import main


def test_help_exits_zero():
    proc = subprocess.run([sys.executable, "-m", "sim", "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert "stability" in proc.stdout


@pytest.mark.parametrize("cmd", ["stability", "compare", "linear"])
def test_subcommand_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    assert "--out" in capsys.readouterr().out


def test_linear(tmp_path, capsys):
    assert main(["linear", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "linear.json").read_text())
    assert res["P"]["final_error"] == pytest.approx(res["P"]["predicted_error"], abs=1e-6)
    assert abs(res["PI"]["final_error"]) < 1e-6
    assert (tmp_path / "linear.png").stat().st_size > 0


def test_stability_tiny(tmp_path, capsys):
    args = [
        "stability",
        "--out",
        str(tmp_path),
        "--grid",
        "4",
        "--steps",
        "150",
        "--arms",
        "20",
        "--plant",
        "off",
        "--hold",
        "300",
        "--max-hold",
        "600",
        "--backend",
        "numpy",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "cells agree" in out
    info = json.loads((tmp_path / "stability_off.json").read_text())
    assert info["cells"] == 16
    assert 0 <= info["agreement"] <= 1
    assert len((tmp_path / "stability_off.csv").read_text().splitlines()) == 17
    assert (tmp_path / "stability_off.png").exists()


def test_compare_tiny(tmp_path, capsys):
    args = [
        "compare",
        "--out",
        str(tmp_path),
        "--steps",
        "400",
        "--band-steps",
        "600",
        "--arms",
        "20",
        "--plant",
        "off",
    ]
    assert main(args) == 0
    res = json.loads((tmp_path / "compare.json").read_text())
    names = [r["name"] for r in res["off"]["runs"]]
    assert names == ["GRPO", "P", "PI"]
    for name in ("compare.png", "band.png", "windup_off.png", "trajectories_off.csv"):
        assert (tmp_path / name).exists()


def test_bad_target_is_one_line_error(tmp_path, capsys):
    args = [
        "stability",
        "--out",
        str(tmp_path),
        "--grid",
        "2",
        "--steps",
        "10",
        "--arms",
        "20",
        "--plant",
        "off",
        "--hold",
        "100",
        "--backend",
        "numpy",
        "--target",
        "2.9",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:")
    assert len(err.splitlines()) == 1
