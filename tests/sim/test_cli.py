"""The ``python -m sim`` commands: help, tiny runs, outputs, errors.

Run: python -m pytest tests/sim/test_cli.py
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
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


@pytest.mark.slow  # ~45 s: every plant, windup case and method of `sim compare`
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


def _strict(text: str):
    """json.loads that refuses NaN/Infinity, as strict parsers do."""

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_compare_target_above_the_band_is_reported_and_completes(tmp_path, capsys):
    """0.5 nats is far below log K but above the band (no arm above τ): a note, not a ZeroDivisionError."""
    args = ["compare", "--only", "controllers", "--out", str(tmp_path), "--target", "0.5", "--plant", "on"]
    assert main([*args, "--steps", "60", "--band-steps", "300"]) == 0
    out = capsys.readouterr().out
    assert "outside the reachable band" in out and "alpha*" in out
    res = _strict((tmp_path / "compare.json").read_text())["on"]
    lo, hi = res["band"]
    assert not lo <= 0.5 <= hi and res["target_inside_band"] is False
    assert res["k_ref"] > 0 and res["k_ref_at"].startswith("band edge")
    assert "outside the reachable band" in res["band_note"]
    grpo = res["runs"][0]
    assert grpo["tail_error"] is None and "nan" in grpo["tail_error_null_reason"]


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["linear", "--target", "100"], "--target"),
        (["linear", "--target", "-0.1"], "--target"),
        (["linear", "--h0", "9"], "--h0"),
        (["compare", "--target", "5", "--arms", "100"], "--target"),
        (["compare", "--only", "methods", "--method-target", "2.5", "--method-arms", "10"], "--method-target"),
    ],
)
def test_out_of_range_targets_are_one_line(argv, field, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err and "log K" in err


def test_linear_warns_when_the_target_is_too_far_for_the_steps(tmp_path, capsys):
    # k − |b| = 0.18 nats/step at full α: 4.0 − 1.0 = 3 nats needs ≥ 17 steps
    assert main(["linear", "--out", str(tmp_path), "--target", "4.0", "--steps", "10"]) == 0
    assert "takes at least 17 steps" in capsys.readouterr().out


def test_strict_json_replaces_non_finite_values_with_a_reason():
    import math

    from pic.levers.report import strict_json

    data = {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -math.inf}, "e": 2}
    out = strict_json(data, "why")
    assert out["a"] is None and out["a_null_reason"] == "nan: why"
    assert out["b"] == [1.0, None] and out["c"]["d"] is None and out["c"]["d_null_reason"] == "-inf: why"
    assert out["e"] == 2
    _strict(json.dumps(out, allow_nan=False))


def test_method_styles_distinguish_every_method_and_group_families():
    from sim.figures import method_styles
    from sim.methods import DEFAULT_METHODS

    names = [*DEFAULT_METHODS, "extra_a", "extra_b"]
    styles = method_styles(names)
    from matplotlib.colors import to_rgba

    pairs = {(tuple(np.round(to_rgba(s["color"]), 3)), s["ls"]) for s in styles.values()}
    assert len(names) >= 25 and len(pairs) == len(names)
    assert styles["grpo"]["color"] == "black"
    fam = {n: s["family"] for n, s in styles.items()}
    assert fam["entropic"] == fam["entropic_pi_od"] != fam["clip_cov"] == fam["flexec_id"] == fam["ce_gppo"]
    assert fam["entropy_bonus"] == fam["kl_penalty"] == fam["sac_temperature"] != fam["entropic"]
    assert fam["aent"] == fam["entropy_bonus"] and fam["nsr"] == fam["w_reinforce"] == fam["top_entropy_tokens"]
    assert fam["entropy_advantage"] == fam["nsr"] not in (fam["entropic"], fam["clip_cov"], fam["entropy_bonus"])
    assert fam["bapo"] == fam["clip_cov"]


def test_report_verdict_and_table_use_the_same_final_target(tmp_path):
    """A falling setpoint: the table's target is the final one, and the verdict compares against it."""
    from pic.levers.report import MethodResult, summarize, write_report

    steps = 200
    target = np.linspace(0.6, 0.2, steps)  # a decreasing schedule, like the ID/DID/OD shapes
    entropy = np.full((steps, 1), 0.26)  # above the final target (~0.21), below the second-half mean (~0.3)
    r = MethodResult("shaped", entropy, np.zeros((steps, 1)), np.zeros((steps, 1)), target=target)
    row = summarize(r, 0.3, window=10)
    tail = slice(steps - steps // 10, steps)
    assert row["target"] == pytest.approx(target[tail].mean())
    assert row["target_mean_second_half"] == pytest.approx(target[steps // 2 :].mean())
    assert row["target"] < row["final_entropy"] < row["target_mean_second_half"]
    assert row["verdict"] == "above target"
    rows = write_report([r], tmp_path, reference_target=0.3, title="t")
    md = (tmp_path / "report.md").read_text()
    assert f"| {row['target']:.3g} |" in md and rows[0]["verdict"] == "above target"


def test_report_says_no_smoothing_for_short_runs_and_writes_strict_json(tmp_path):
    from pic.levers.report import MethodResult, write_report

    steps = 12  # window = steps // 20 = 0 -> 1: no smoothing
    nan_clip = np.full((steps, 1), np.nan)
    r = MethodResult("grpo", np.linspace(1.0, 0.5, steps), np.zeros(steps), nan_clip)
    write_report([r], tmp_path, reference_target=0.3, title="t")
    md = (tmp_path / "report.md").read_text()
    assert "no smoothing" in md and "of 1 steps" not in md
    row = _strict((tmp_path / "report.json").read_text())["rows"][0]
    assert row["clip_frac"] is None and "nan" in row["clip_frac_null_reason"]


def test_unwritable_out_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["linear", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
