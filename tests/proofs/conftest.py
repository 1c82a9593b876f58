"""Shared fixture: one full `python -m proofs` run (in process) whose report every test file reads.

Running the suite once keeps tests/proofs fast; the per-module files add the mutation tests.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass

import pytest

from proofs.cli import main


@dataclass(frozen=True)
class SuiteReport:
    """Exit status, printed table and JSON payload of ``main(["--json", PATH, "--wide"])``."""

    rc: int
    out: str
    data: dict

    def result(self, name: str) -> dict:
        return next(r for r in self.data["results"] if r["name"] == name)


@pytest.fixture(scope="session")
def suite_report(tmp_path_factory) -> SuiteReport:
    path = tmp_path_factory.mktemp("proofs") / "report.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["--json", str(path), "--wide", "--timeout", "60"])
    return SuiteReport(rc, buf.getvalue(), json.loads(path.read_text(encoding="utf-8")))
