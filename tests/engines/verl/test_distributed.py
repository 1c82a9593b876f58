"""(c) the once-per-optimizer-step update on 2 gloo ranks and (d) the checkpoint round trip.

`two_rank_run.py` drives verl's real ``TrainingWorker.train_mini_batch`` → ``train_batch`` on
2 processes with a stand-in engine (verl's FSDP engine is CUDA/NPU only). The ranks hold
different data and token counts; the test all-reduces the engine's per-rank hand entropy sums
itself, feeds a reference `PIController`, and requires both ranks to match it and each other.
The same checks run on a copy of the plug-in with the all-reduce removed and must fail there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from engine_support import require_engine

pytestmark = pytest.mark.verl
verl = require_engine("verl", "verl")

from pic.controller import PIController  # noqa: E402

HERE = Path(__file__).parent
SCRIPT = HERE / "two_rank_run.py"
CONTROLLER = dict(target=0.3, kp=1.0, ki=0.1)  # as in two_rank_run.CONTROLLER
TOL = 1e-6  # engine entropies are float32; the hand path is float64


def _run(out: Path, *flags: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads((out / f"rank_{r}.json").read_text()) for r in (0, 1)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The normal run and the no-all-reduce mutant, started together (they are independent)."""
    base = tmp_path_factory.mktemp("two_rank")
    with ThreadPoolExecutor(2) as pool:
        normal = pool.submit(_run, base / "normal")
        mutant = pool.submit(_run, base / "mutant", "--no-allreduce")
        return {"normal": normal.result(), "mutant": mutant.result(), "dir": base}


def reference_alphas(records: list[dict]) -> tuple[list[float], list[float], PIController]:
    """Hand all-reduce of the per-rank sums, then a reference controller: (H per step, α after each step)."""
    ref = PIController(**CONTROLLER)
    entropies, alphas = [], []
    for step in range(len(records[0]["hand"])):
        h_sum = sum(r["hand"][step][0] for r in records)
        n = sum(r["hand"][step][1] for r in records)
        entropies.append(h_sum / n)
        alphas.append(float(ref.update(h_sum / n)))
    return entropies, alphas, ref


def check_per_step_update(records: list[dict]) -> None:
    r0, r1 = records
    # different data on the two ranks ...
    assert r0["local_tokens"] != r1["local_tokens"]
    assert all(abs(a[0] / a[1] - b[0] / b[1]) > 1e-3 for a, b in zip(r0["hand"], r1["hand"], strict=True))
    # ... yet identical controller states, bit for bit, after every train_mini_batch call
    assert r0["states"] == r1["states"]
    entropies, alphas, ref = reference_alphas(records)
    assert len(entropies) == 4  # 2 calls × 2 mini-batches = 4 optimizer steps = 4 updates
    metrics = r0["metrics"][0], r0["metrics"][1]
    measured = metrics[0]["actor/entropic_entropy"] + metrics[1]["actor/entropic_entropy"]
    assert measured == pytest.approx(entropies, abs=TOL)
    assert metrics[0]["actor/entropic_alpha_next"] + metrics[1]["actor/entropic_alpha_next"] == pytest.approx(
        alphas, abs=TOL
    )
    # the α the loss applied in step t is the controller's output after step t − 1 (0 in step 1)
    applied = metrics[0]["actor/entropic_alpha"] + metrics[1]["actor/entropic_alpha"]
    assert applied == pytest.approx([0.0, *alphas[:-1]], abs=TOL)
    assert [s["step"] for s in r0["states"]] == [2, 4]
    assert r0["states"][1]["alpha"] == pytest.approx(alphas[-1], abs=TOL)
    assert r0["states"][1]["integral"] == pytest.approx(float(ref.integral), abs=4 * TOL)
    # the model replicas stayed in sync (DDP-style averaged gradients)
    assert r0["table_after"] == r1["table_after"]


def test_two_ranks_reach_the_reference_controller(runs):
    check_per_step_update(runs["normal"])
    entropies, alphas, _ = reference_alphas(runs["normal"])
    print("H per step", [round(h, 6) for h in entropies], "alpha per step", [round(a, 6) for a in alphas])
    assert all(a > 0 for a in alphas)  # entropy above the 0.3 target: α > 0 (lower it)


def test_dropping_the_allreduce_is_caught(runs):
    mutant = runs["mutant"]
    assert mutant[0]["states"] != mutant[1]["states"]  # per-rank entropy: the ranks drift apart
    with pytest.raises(AssertionError):
        check_per_step_update(mutant)


def test_checkpoint_round_trip(runs):
    r0, r1 = runs["normal"]
    ckpt = runs["dir"] / "normal" / "ckpt" / "global_step_2" / "actor"
    # rank 0 wrote one file, atomically (no temp file left), holding the state after step 2
    assert sorted(os.listdir(ckpt)) == ["entropic_state.json", "table_rank_0.pt", "table_rank_1.pt"]
    saved = json.loads((ckpt / "entropic_state.json").read_text())
    assert saved["format"] == 1 and saved["config"]["target"] == 0.3
    assert {k: saved["controller"][k] for k in ("alpha", "integral", "error", "step")} == r0["saved_state"]
    assert r0["saved_state"] == r0["states"][0]
    for r in (r0, r1):
        assert r["fresh_state"] == {"alpha": 0.0, "integral": 0.0, "error": 0.0, "step": 0}
        assert r["loaded_state"] == r0["saved_state"]  # every rank read it back
        # resuming at step 2 and redoing steps 3-4 gives the uninterrupted run exactly
        assert r["resumed_state"] == r0["states"][1]
        assert r["resumed_table"] == r0["table_after"]


def test_missing_entropy_is_a_clear_error(runs):
    for r in runs["normal"]:
        assert r["missing_entropy_error"] == (
            "EntroPIC: no entropy measured in this optimizer step: set actor_rollout_ref.actor.calculate_entropy=True"
        )
