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


# ----------------------------------------------------------------- every collective on the backend's device
class _Recorded(Exception):
    """Raised by the stand-in all-reduce: the test only needs the tensor a collective was given."""


@pytest.mark.parametrize("kind", ["ddp", "fsdp"])
def test_every_collective_runs_on_the_backend_device(monkeypatch, kind):
    """A NCCL group accepts CUDA tensors only: each collective must be handed a tensor on ``backend.device``.

    The backend is put on the ``meta`` device (so a CPU default anywhere shows up) and
    ``torch.distributed.all_reduce`` records the device of what it receives, then stops the call.
    """
    import torch.distributed as dist

    from llm.parallel import DataParallel, FullySharded

    seen = []

    def spy(tensor, op=None, **kwargs):
        seen.append(tensor.device)
        raise _Recorded

    monkeypatch.setattr(dist, "all_reduce", spy)
    backend = (FullySharded if kind == "fsdp" else DataParallel)(torch.device("meta"), rank=0, world=2)
    backend.model = torch.nn.Linear(3, 2, device="meta")
    for p in backend.model.parameters():
        p.grad = torch.zeros_like(p)
    calls = [
        lambda: backend.all_reduce({"tokens": 3.0, "entropy": 1.5}),
        lambda: backend.all_reduce({"n": 1.0}, op="max"),
        lambda: backend.all_true(True),
        lambda: backend.check_replicated("the lever state", {"alpha": 0.5}),
    ]
    if kind == "ddp":
        calls.append(backend.after_backward)  # FSDP reduces its gradients inside backward hooks
        assert backend.sampling_done(torch.ones(2, dtype=torch.bool))  # replicas sample independently: local
    else:
        calls.append(lambda: backend.sampling_done(torch.ones(2, dtype=torch.bool)))  # sharded: in lockstep
        calls.append(lambda: list(backend.micro_batches([1, 2], pad_pass=lambda: ())))
    for call in calls:
        with pytest.raises(_Recorded):
            call()
    assert len(seen) == len(calls)
    assert all(d == torch.device("meta") for d in seen), seen


def test_named_all_reduce_single_process_is_the_identity():
    from llm.parallel import SingleProcess

    b = SingleProcess(torch.device("cpu"))
    assert b.all_reduce({"b": 2, "a": 1.5}) == {"a": 1.5, "b": 2.0}
    assert b.all_true(True) and not b.all_true(False)
    assert b.share(8) == slice(0, 8) and b.global_rows(5) == 5
    assert b.local_rows(torch.tensor([4, 0, 2]), 5).tolist() == [4, 0, 2]


def test_rank_shares_partition_the_global_batch():
    """Ranks' shares and mini-batch members, computed independently, cover the batch once each."""
    from llm.parallel import DataParallel

    world, n_local = 4, 3
    ranks = [DataParallel(torch.device("cpu"), rank=r, world=world) for r in range(world)]
    shares = [list(range(12))[b.share(12)] for b in ranks]
    assert shares == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    members = torch.tensor([11, 0, 5, 3, 7])
    local = [b.local_rows(members, n_local) for b in ranks]
    glob = sorted(int(i) + r * n_local for r, rows in enumerate(local) for i in rows)
    assert glob == sorted(members.tolist())


def test_sharded_micro_batches_pad_to_the_busiest_rank_with_zero_weight_passes(monkeypatch):
    """A rank with 1 micro-batch when another has 3 adds 2 passes whose gradient is exactly 0."""
    import torch.distributed as dist

    from llm.parallel import FullySharded

    def busiest_rank_has_three(tensor, op=None, **kwargs):
        tensor.fill_(3.0)

    monkeypatch.setattr(dist, "all_reduce", busiest_rank_has_three)
    backend = FullySharded(torch.device("cpu"), rank=1, world=2)
    w = torch.nn.Parameter(torch.ones(3))
    passes = []

    def pad_pass():
        passes.append(1)
        return (w * 2.0, None)

    assert list(backend.micro_batches(["only"], pad_pass)) == ["only"]
    assert len(passes) == 2 and torch.equal(w.grad, torch.zeros(3))


def test_a_sharded_policy_samples_with_the_static_engine_what_the_plain_model_samples(tiny_model_dir, monkeypatch):
    """FSDP2 (one gloo rank, in process): rollouts gather the parameters once and run the static engine;
    the samples equal the unsharded model's, and the policy is sharded again afterwards."""
    import torch.distributed as dist
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    from llm import engine
    from llm.model import load_model
    from llm.parallel import LMCall, shard
    from llm.rollout import generate

    model, _ = load_model(tiny_model_dir)
    prompts = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    kw = dict(
        max_new_tokens=6, eos_id=3, pad_id=0, uniforms=torch.rand(6, 3, generator=torch.Generator().manual_seed(0))
    )
    reference = generate(model.eval(), prompts, engine="eager", **kw)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        policy = shard(model)
        prefills = []
        real_prefill = engine.StaticDecoder.prefill
        monkeypatch.setattr(
            engine.StaticDecoder, "prefill", lambda self, *a: prefills.append(1) or real_prefill(self, *a)
        )
        sampler = LMCall(policy).eval()
        calls = []
        batch = generate(
            sampler, prompts, engine="static", all_finished=lambda d: calls.append(1) or bool(d.all()), **kw
        )
        assert prefills == [1] and calls == []  # the static engine ran, with no collective while decoding
        assert torch.equal(batch.response_ids, reference.response_ids)
        assert torch.allclose(batch.logprobs, reference.logprobs, atol=1e-5)
        layer = policy.lm.model.layers[0]
        assert isinstance(layer, FSDPModule) and isinstance(layer.self_attn.q_proj.weight, DTensor)  # resharded
        eager = generate(sampler, prompts, engine="eager", **kw)  # the per-layer gathering path still works
        assert torch.equal(eager.response_ids, reference.response_ids)
    finally:
        dist.destroy_process_group()
