"""The command line: table, exit status, --only / --json / --timeout / --strict, python -m proofs.

Run: python -m pytest tests/proofs/test_cli.py
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from proofs import pi_control, runner
from proofs.cli import format_table, main
from proofs.runner import Check, CheckResult, Verdict


def inject(monkeypatch, name: str, fn) -> None:
    """Register (for this test only) a check under ``name``, replacing any existing one."""
    monkeypatch.setitem(runner._REGISTRY, name, Check(name, fn))


def test_all_checks_pass_and_the_table_is_printed(suite_report):
    assert suite_report.rc == 0
    lines = suite_report.out.splitlines()
    assert lines[0].split() == ["check", "verdict", "seconds", "detail"]
    n = len(runner.registered_checks())
    assert lines[-1].startswith(f"{n} checks: {n} PASS, 0 FAIL, 0 UNDECIDED")
    assert len(suite_report.data["results"]) == n
    for prefix in ("Lemma A", "Lemma B", "P control", "PI control", "High-prob"):
        assert any(line.startswith(prefix) for line in lines)


def test_injected_failure_gives_nonzero_exit(monkeypatch, capsys):
    def drops_kp_gt_ki(kp, ki, k):
        kp, ki, k = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (kp, ki, k)))
        return (ki > 0) & (k * (2 * kp - ki) < 4) & (k * (kp - ki) < 2) & (k > 0)

    name = pi_control.check_region_numeric.check_name
    inject(monkeypatch, name, functools.partial(pi_control.check_region_numeric, is_stable=drops_kp_gt_ki))
    assert main(["--only", name]) == 1
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(name))
    assert " FAIL " in row


def test_json_output_is_valid(tmp_path, capsys):
    path = tmp_path / "out" / "proofs.json"
    assert main(["--only", "LinearPlant", "--json", str(path)]) == 0
    data = json.loads(path.read_text(encoding="utf-8"))
    assert [r["verdict"] for r in data["results"]] == ["PASS", "PASS"]
    assert {"name", "verdict", "seconds", "detail"} <= set(data["results"][0])
    assert data["summary"] == {"PASS": 2, "FAIL": 0, "UNDECIDED": 0}
    assert "LinearPlant" in capsys.readouterr().out


def test_timeout_is_undecided_and_strict_fails(monkeypatch, capsys):
    def sleeper():
        end = time.monotonic() + 3
        while time.monotonic() < end:
            time.sleep(0.01)
        return Verdict.PASS, ""

    inject(monkeypatch, "test-only: sleeper", sleeper)
    start = time.perf_counter()
    assert main(["--only", "test-only: sleeper", "--timeout", "0.3"]) == 0
    assert time.perf_counter() - start < 2
    assert "UNDECIDED" in capsys.readouterr().out
    assert main(["--only", "test-only: sleeper", "--timeout", "0.3", "--strict"]) == 1


def test_no_match_and_list(capsys):
    assert main(["--only", "no such check anywhere"]) == 2
    assert "no check name contains" in capsys.readouterr().err
    assert main(["--list", "--only", "lemma a"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed and all(line.startswith("Lemma A") for line in listed)


def test_bad_timeout_is_rejected(capsys):
    assert main(["--timeout", "0"]) == 2
    assert "--timeout" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "1e999", "ten"])
def test_non_finite_or_bad_timeout_is_one_line_on_stderr(capsys, value):
    assert main([f"--timeout={value}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (
        f"python -m proofs: argument --timeout: must be a positive finite number of seconds, got {value!r}"
    )


def test_huge_finite_timeout_is_accepted(capsys):
    assert main(["--only", "Lemma A: dH/dz (numeric", "--timeout", "1e300"]) == 0
    assert "1 checks: 1 PASS" in capsys.readouterr().out


def test_unwritable_json_path_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["--only", "Lemma A: dH/dz (numeric", "--json", str(blocker / "sub" / "r.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"--json: cannot write {blocker / 'sub' / 'r.json'}: ") and "\n" not in err


def test_format_table_clips_detail():
    rows = [CheckResult("a", Verdict.PASS, 0.5, "x" * 300), CheckResult("bb", Verdict.FAIL, 1.0, "short")]
    text = format_table(rows, detail_width=40)
    lines = text.splitlines()
    assert lines[2].endswith("…")
    assert len(lines[2].split("  ")[-1]) == 40
    assert lines[-1].startswith("2 checks: 1 PASS, 1 FAIL, 0 UNDECIDED")


def test_python_dash_m_entry_point():
    argv = ["--only", "Lemma A: dH/dz (numeric"]
    proc = subprocess.run(
        [sys.executable, "-m", "proofs", *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lemma A: dH/dz (numeric, finite differences)" in proc.stdout
    assert "1 checks: 1 PASS" in proc.stdout
