"""Data parallelism (replicas, or FSDP2 shards): 2 gloo ranks under torchrun equal 1 process on the same global batch.

Run: python -m pytest tests/llm/test_distributed.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from llm.data import Example, write_jsonl  # noqa: E402
from llm.metrics import read_metrics  # noqa: E402
from llm.tasks import make_dataset  # noqa: E402

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[2]
COMPARED = ("entropy", "entropy_nll", "alpha", "integral", "reward_mean", "grad_norm", "pg_loss", "clip_frac", "ppo_kl")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir):
    train_set, _ = make_dataset("arithmetic", 64, 0, 2, seed=0)
    data = write_jsonl(
        tmp_path_factory.mktemp("ddp") / "train.jsonl",
        [Example(e.prompt, e.answer, "test_even_digit") for e in train_set],
    )
    return tiny_model_dir, data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(model, data, out, *, ranks: int, steps: int, resume: bool = False, extra=()):
    args = [
        "--model", str(model), "--data", str(data), "--out", str(out), "--steps", str(steps),
        "--set", "data.prompts_per_step=4", "--set", "rollout.group_size=4", "--set", "rollout.max_new_tokens=4",
        "--set", "ppo.epochs=2", "--set", "ppo.minibatches=2", "--set", "ppo.micro_batch_size=2",
        "--set", "optim.lr=1e-3", "--set", "control.target=2.0", "--set", "control.kp=2.0", "--set", "control.ki=0.1",
        "--set", "train.save_every=2", "--set", "train.threads=1",
        "--set", "train.tensorboard=false", "--set", "train.progress=false", *extra,
    ]  # fmt: skip
    if resume:
        args.append("--resume")
    if ranks == 1:
        cmd = [sys.executable, str(WORKER), *args]
    else:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}",
            "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(WORKER), *args,
        ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return read_metrics(out)


def _trace(out: Path, rank: int) -> list[dict]:
    return [json.loads(line) for line in (out / f"lever_rank{rank}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def one_process(setup, tmp_path_factory):
    model, data = setup
    return _train(model, data, tmp_path_factory.mktemp("one") / "run", ranks=1, steps=4)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_ranks_equal_one_process_and_agree_across_a_resume(setup, one_process, tmp_path, parallel):
    model, data = setup
    mode = ("--set", f"train.parallel={parallel}")
    one = one_process
    two = _train(model, data, tmp_path / "two", ranks=2, steps=4, extra=mode)
    assert [r["step"] for r in two] == [1, 2, 3, 4]
    assert any(r["grad_norm"] > 0 for r in one) and any(r["alpha"] != 0 for r in one)  # the test has signal
    for a, b in zip(one, two, strict=True):
        for key in COMPARED:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (a["step"], key)
    # every rank holds the identical lever (controller) state at every step
    assert _trace(tmp_path / "two", 0) == _trace(tmp_path / "two", 1)
    assert [t["alpha"] for t in _trace(tmp_path / "two", 0)] == [r["alpha"] for r in two]

    # interrupted after step 2, resumed by both ranks: the same run
    _train(model, data, tmp_path / "split", ranks=2, steps=2, extra=mode)
    resumed = _train(model, data, tmp_path / "split", ranks=2, steps=4, resume=True, extra=mode)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(two, resumed, strict=True):
        for key in COMPARED:
            assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9), (a["step"], key)
    t0, t1 = _trace(tmp_path / "split", 0), _trace(tmp_path / "split", 1)
    assert t0 == t1 and [t["step"] for t in t0] == [1, 2, 3, 4]


def test_prompts_must_split_evenly_across_ranks(setup, tmp_path):
    model, data = setup
    cmd_extra = ("--set", "data.prompts_per_step=3", "--set", "ppo.minibatches=1", "--set", "ppo.micro_batch_size=0")
    with pytest.raises(AssertionError, match="multiple of the 2 ranks"):
        _train(model, data, tmp_path / "bad", ranks=2, steps=1, extra=cmd_extra)
