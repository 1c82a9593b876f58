"""Every CUDA path, on one GPU: bf16 autocast scoring, static decode with CUDA graphs, gradient
checkpointing, FSDP2 with mixed precision on one rank, NCCL collectives with world size 1.

Skipped without CUDA (marker ``gpu``). Run: python -m pytest -q -m gpu tests/llm/test_gpu.py
(`scripts/gpu_check.sh` runs them and records the result).
"""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from llm.model import load_model  # noqa: E402
from llm.rollout import generate  # noqa: E402

pytestmark = pytest.mark.gpu

PROMPTS = ["12+34=", "7-1=", "3 5 7 -> 22:", "9="]


@pytest.fixture
def cuda_model(tiny_model_dir):
    model, tok = load_model(tiny_model_dir, device="cuda", dtype=torch.float32)
    return model, tok, [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS] * 4


def test_static_decode_with_cuda_graphs_samples_what_eager_samples(cuda_model):
    """fp32 on CUDA: compiled static step replayed from CUDA graphs == the eager HF loop."""
    model, tok, prompts = cuda_model
    stops = [tok.eos_token_id, *tok("05", add_special_tokens=False)["input_ids"]]
    kw = dict(max_new_tokens=20, eos_ids=stops, pad_id=tok.pad_token_id, device="cuda")
    eager = generate(model, prompts, generator=torch.Generator("cuda").manual_seed(0), engine="eager", **kw)
    fast = generate(model, prompts, generator=torch.Generator("cuda").manual_seed(0), compile=True, **kw)
    assert torch.equal(eager.response_mask, fast.response_mask)
    assert torch.equal(eager.response_ids, fast.response_ids)
    assert torch.allclose(eager.logprobs, fast.logprobs, atol=1e-4)
    again = generate(model, prompts, generator=torch.Generator("cuda").manual_seed(0), compile=True, **kw)
    assert torch.equal(again.response_ids, fast.response_ids)  # graphs replay deterministically


def test_bf16_sampling_and_autocast_scoring_are_close_to_fp32(cuda_model):
    from llm.losses import response_logprobs

    model, tok, prompts = cuda_model
    kw = dict(max_new_tokens=8, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, device="cuda")
    batch = generate(model, prompts, generator=torch.Generator("cuda").manual_seed(0), **kw)
    with torch.no_grad():
        fp32, _ = response_logprobs(model, batch.input_ids, batch.attention_mask, batch.response_ids)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16, _ = response_logprobs(model, batch.input_ids, batch.attention_mask, batch.response_ids)
    mask = batch.response_mask.bool()
    assert torch.allclose(fp32[mask], batch.logprobs[mask], atol=1e-4)
    assert (fp32[mask] - bf16[mask]).abs().max() < 0.1
    half = generate(model.to(torch.bfloat16), prompts, generator=torch.Generator("cuda").manual_seed(0), **kw)
    assert half.logprobs.dtype == torch.float32 and torch.isfinite(half.logprobs).all()


def test_gradient_checkpointing_gives_the_same_gradient(cuda_model):
    from llm.losses import response_logprobs
    from llm.parallel import training_mode

    model, tok, prompts = cuda_model
    batch = generate(model, prompts, max_new_tokens=8, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    grads = []
    for ckpt in (False, True):
        training_mode(model, gradient_checkpointing=ckpt)
        model.zero_grad()
        logp, _ = response_logprobs(model, batch.input_ids, batch.attention_mask, batch.response_ids)
        (logp * batch.response_mask).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5, rtol=1e-4)


@pytest.fixture
def nccl_world_of_one():
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533", RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=torch.device("cuda:0"))
    yield
    dist.destroy_process_group()


def test_nccl_collectives_and_fsdp2_mixed_precision_on_one_rank(nccl_world_of_one, tiny_model_dir):
    from llm.losses import response_logprobs
    from llm.parallel import DataParallel, FullySharded

    dev = torch.device("cuda:0")
    ddp = DataParallel(dev, rank=0, world=1)
    assert ddp.all_reduce({"a": 2.5, "b": 1.0}) == {"a": 2.5, "b": 1.0}
    assert ddp.all_true(True) and not ddp.all_true(False)
    model, tok = load_model(tiny_model_dir, device=dev, dtype=torch.float32)
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    ref = generate(model, prompts, max_new_tokens=6, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, device=dev)
    with torch.no_grad():
        want, _ = response_logprobs(model, ref.input_ids, ref.attention_mask, ref.response_ids)
    fsdp = FullySharded(dev, rank=0, world=1)
    fsdp.wrap(model, checkpoint=None, sampling_dtype="bfloat16")
    batch = generate(fsdp.sampler, prompts, max_new_tokens=6, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    assert torch.isfinite(batch.logprobs).all()
    logp, _ = fsdp.score(ref.input_ids, ref.attention_mask, ref.response_ids)
    mask = ref.response_mask.bool()
    assert (logp[mask].float() - want[mask]).abs().max() < 0.1  # bf16 parameters
    (logp * ref.response_mask).sum().backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in model.parameters())  # fp32 reduce
