"""How the trainer runs on one or many processes: one backend object, chosen once from ``train.parallel``.

``torchrun --nproc_per_node N -m llm train …`` starts N copies of the trainer; each reads RANK /
WORLD_SIZE / LOCAL_RANK from the environment and joins one process group (NCCL on CUDA, gloo on
the CPU). `make_backend` returns

- `SingleProcess`: no environment (or WORLD_SIZE = 1); every collective is the identity;
- `DataParallel` (``train.parallel = "ddp"``): a full replica per rank, gradients summed over
  ranks after the backward passes of each mini-batch (one flat all-reduce);
- `FullySharded` (``train.parallel = "fsdp"``): FSDP2 shards the decoder layers and the rest of
  the model; gradients are reduced inside the backward hooks, parameters gathered in forwards.

The algorithm splits every RL step's prompts across ranks (whole GRPO groups per rank, `share`),
so each rank samples, scores and computes advantages locally; what must be identical everywhere
is made so by named sums over ranks (`all_reduce`, a dict in, a dict out):

- step statistics (entropy, NLL, rewards, …) as token-weighted sums → the same H and the same
  lever update on every rank;
- each mini-batch's token counts N (and the lever's counts) → exact global token means;
- gradients: with each rank's loss already divided by the global N, Σ_ranks ∇L_r is the
  gradient of the global token mean (`after_backward` for replicas, FSDP's hooks when sharded).

Every collective runs on the backend's ``device`` (a NCCL process group accepts CUDA tensors
only). This module scores token log-probs (`llm.losses.response_logprobs`) but knows no loss.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .checkpoint import load_checkpoint
from .losses import response_logprobs

__all__ = ["DataParallel", "FullySharded", "SingleProcess", "Snapshot", "make_backend", "resolve_device"]

T = TypeVar("T")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available, else the CPU; a CUDA device without CUDA is refused."""
    from .config import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"model.device is {name!r} but CUDA is not available")
    return dev


class SingleProcess:
    """One process holds the whole policy; every collective is the identity."""

    name = "single"
    distributed = False

    def __init__(self, device: torch.device, *, rank: int = 0, world: int = 1, local_rank: int = 0) -> None:
        self.device, self.rank, self.world, self.local_rank = device, rank, world, local_rank
        self.model: torch.nn.Module | None = None
        self.sampler: Any = None
        """What `llm.rollout.generate` samples from (the policy, or a bf16 copy of it on CUDA)."""

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the logs and checkpoints."""
        return self.rank == 0

    # ---------------------------------------------------------------- collectives
    def share(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` items (``n`` a multiple of ``world``)."""
        k = n // self.world
        return slice(self.rank * k, (self.rank + 1) * k)

    def global_rows(self, n_local: int) -> int:
        """Rows of the global batch when every rank holds ``n_local``."""
        return n_local * self.world

    def local_rows(self, rows: torch.Tensor, n_local: int) -> torch.Tensor:
        """This rank's members of ``rows`` (indices into the global batch; rank r holds [r·n, (r+1)·n)), local."""
        offset = self.rank * n_local
        return rows[(rows >= offset) & (rows < offset + n_local)] - offset

    def all_reduce(self, values: dict[str, float], op: str = "sum") -> dict[str, float]:
        """``{name: Σ_ranks value}`` (or max); float64 on the wire, so token counts stay exact."""
        return {k: float(v) for k, v in values.items()}

    def all_true(self, flag: bool) -> bool:
        """True when ``flag`` holds on every rank."""
        return bool(self.all_reduce({"false": float(not flag)}, op="max")["false"] == 0.0)

    def sampling_done(self, done: torch.Tensor) -> bool:
        """Whether sampling may stop: every local sequence has finished (``done``: (B,) bool)."""
        return bool(done.all())

    def check(self, prompts_per_step: int, needs_reference: bool) -> None:
        """Refuse a setup this backend cannot run (one line naming the field)."""
        from .config import ConfigError

        if prompts_per_step % self.world:
            raise ConfigError(
                f"data.prompts_per_step must be a multiple of the {self.world} ranks, got {prompts_per_step}"
            )

    def check_replicated(self, name: str, values: dict[str, float]) -> None:
        """Raise if ``values`` (state every rank must hold identically) differ across ranks."""

    def barrier(self) -> None:
        pass

    def close(self) -> None:
        pass

    # -------------------------------------------------------------------- policy
    def wrap(self, model: torch.nn.Module, *, checkpoint: Path | None, sampling_dtype: str) -> dict[str, Any] | None:
        """Take the policy (loading ``checkpoint``'s weights first); returns the checkpoint's trainer state.

        On CUDA with ``sampling_dtype != "float32"`` rollouts sample from a bf16 copy, refreshed
        by `sync_sampler` after every step; otherwise from the policy itself.
        """
        state = load_checkpoint(checkpoint, model) if checkpoint is not None else None
        self.model = model
        self.sampler = model
        if self.device.type == "cuda" and sampling_dtype != "float32":
            self.sampler = copy.deepcopy(model).to(torch.bfloat16).eval()
        return state

    def sync_sampler(self) -> None:
        """Copy the updated weights into the sampling copy (if there is one)."""
        if self.sampler is not self.model:
            with torch.no_grad():
                for dst, src in zip(self.sampler.parameters(), self.model.parameters(), strict=True):
                    dst.copy_(src)

    def autocast(self):
        """bf16 autocast for scoring on CUDA."""
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else nullcontext()

    def score(self, input_ids, attn, response_ids, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`llm.losses.response_logprobs` of the policy: (log-probs, entropies or None), shape (B, T)."""
        with self.autocast():
            return response_logprobs(self.model, input_ids, attn, response_ids, **kwargs)

    def micro_batches(self, chunks: list[T], pad_pass: Callable[[], Iterable[torch.Tensor | None]]) -> Iterator[T]:
        """The micro-batches of one mini-batch, in order (``pad_pass`` is for sharded backends)."""
        yield from chunks

    def after_backward(self) -> None:
        """Called once per mini-batch after its backward passes, before clipping."""

    # ------------------------------------------------------------------- state
    def full_state(self, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor] | None, dict]:
        """(full model weights or None when the model holds them itself, full optimizer state); every rank calls."""
        return None, optimizer.state_dict()

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict) -> None:
        optimizer.load_state_dict(state)

    def snapshot(self, optimizer: torch.optim.Optimizer) -> Snapshot:
        """A host copy of this rank's parameters and optimizer state (`Snapshot.restore` puts it back)."""
        return Snapshot(self.model, optimizer)

    def _tensor(self, values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64, device=self.device)


class DataParallel(SingleProcess):
    """A full replica per rank; gradients summed over ranks after each mini-batch's backward passes."""

    name = "ddp"
    distributed = True

    def all_reduce(self, values: dict[str, float], op: str = "sum") -> dict[str, float]:
        if not values:
            return {}
        keys = sorted(values)
        t = self._tensor([float(values[k]) for k in keys])
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return dict(zip(keys, t.tolist(), strict=True))

    def check_replicated(self, name: str, values: dict[str, float]) -> None:
        if not values:
            return
        hi = self.all_reduce(values, op="max")
        lo = {k: -v for k, v in self.all_reduce({k: -v for k, v in values.items()}, op="max").items()}
        if hi != lo:
            raise RuntimeError(f"{name} differs across ranks: max {hi} vs min {lo}")

    def barrier(self) -> None:
        dist.barrier()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    def after_backward(self) -> None:
        """Σ over ranks of every gradient (one flat buffer on the device; a missing gradient counts as 0)."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p in params:
            n = p.grad.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n


class FullySharded(DataParallel):
    """FSDP2: each rank holds a shard of the parameters, gradients and optimizer state.

    Sharded parameters are gathered and gradients reduced inside every forward and backward, so
    all ranks make the same number of them: sampling steps until every rank has finished, and a
    rank with fewer micro-batches in a mini-batch adds zero-weight passes (`micro_batches`).
    """

    name = "fsdp"

    def wrap(self, model, *, checkpoint, sampling_dtype):
        state = load_checkpoint(checkpoint, model) if checkpoint is not None else None  # weights before sharding
        bf16 = self.device.type == "cuda" and sampling_dtype != "float32"
        self.root = shard(model, param_dtype=torch.bfloat16 if bf16 else None)  # sampling and scoring in bf16
        self.model = model
        self.sampler = LMCall(self.root)
        return state

    def sampling_done(self, done):
        return self.all_true(bool(done.all()))  # a sharded model samples in lockstep on every rank

    def check(self, prompts_per_step, needs_reference):
        from .config import ConfigError

        super().check(prompts_per_step, needs_reference)
        if needs_reference:
            raise ConfigError("train.parallel = 'fsdp' does not support a reference model (lever kl_penalty)")

    def sync_sampler(self) -> None:
        pass  # the sampler is the sharded policy itself

    def score(self, input_ids, attn, response_ids, **kwargs):
        with self.autocast():
            return self.root("score", input_ids, attn, response_ids, **kwargs)

    def micro_batches(self, chunks, pad_pass):
        # agreed before any forward: a collective here after another rank's first forward would deadlock
        n_pad = int(self.all_reduce({"n": len(chunks)}, op="max")["n"]) - len(chunks)
        yield from chunks
        for _ in range(n_pad):  # as many forward/backward passes as the busiest rank, each with weight 0
            sum(out.sum() * 0.0 for out in pad_pass() if out is not None).backward()

    def after_backward(self) -> None:
        pass  # FSDP reduced the gradients in its backward hooks

    def full_state(self, optimizer):
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        sd = {k.removeprefix("lm."): v for k, v in get_model_state_dict(self.root, options=opts).items()}
        weights = {k: v for k, v in sd.items() if k not in self.root.tied_aliases}
        return weights, get_optimizer_state_dict(self.root, optimizer, options=opts)

    def load_optimizer_state(self, optimizer, state):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        opts = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(self.root, optimizer, optim_state_dict=state, options=opts)


def _local(t: torch.Tensor) -> torch.Tensor:
    """The tensor this rank holds (its shard of a sharded DTensor)."""
    return t.to_local() if hasattr(t, "to_local") else t


class Snapshot:
    """This rank's parameters and optimizer state, copied to host memory; `restore` writes them back bit for bit.

    An all-or-nothing RL step takes one before its first optimizer step and restores it when a
    later mini-batch turns non-finite. Costs one host copy of the (local) parameters and state.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        host = lambda t: _local(t).detach().to("cpu", copy=True) if torch.is_tensor(t) else copy.deepcopy(t)  # noqa: E731
        with torch.no_grad():
            self.params = [host(p) for p in model.parameters()]
            self.state = {p: {k: host(v) for k, v in optimizer.state[p].items()} for p in optimizer.state}

    @torch.no_grad()
    def restore(self) -> None:
        for p, saved in zip(self.model.parameters(), self.params, strict=True):
            _local(p).copy_(saved)
        for p in list(self.optimizer.state):  # state created after the snapshot goes
            if p not in self.state:
                del self.optimizer.state[p]
        for p, saved in self.state.items():
            state = self.optimizer.state[p]
            for k, v in saved.items():
                if torch.is_tensor(state.get(k)):
                    _local(state[k]).copy_(v)
                else:
                    state[k] = copy.deepcopy(v)


def make_backend(parallel: str, device: str) -> SingleProcess:
    """The backend for this process: joins the ``torchrun`` process group if the environment describes one.

    ``parallel``: ``train.parallel`` ("ddp" or "fsdp"); ``device``: ``model.device`` ("auto", "cpu", "cuda", …).
    """
    dev = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SingleProcess(dev)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    cls = FullySharded if parallel == "fsdp" else DataParallel
    return cls(dev, rank=rank, world=world, local_rank=local_rank)


# ------------------------------------------------------------------------------ FSDP2
class ShardedPolicy(torch.nn.Module):
    """The causal LM as the root FSDP2 module, with one forward per use.

    FSDP2 gathers a module's parameters in its forward pre-hook and reduces their gradients
    from hooks set up there, so every use of the root's own parameters (embeddings, final
    norm, LM head) must go through this module's forward: ``mode="lm"`` is the model's own
    forward (sampling with a KV cache), ``mode="score"`` the chunked response log-probs and
    entropies of `llm.losses.response_logprobs`.
    """

    def __init__(self, lm: torch.nn.Module) -> None:
        super().__init__()
        self.lm = lm
        self.tied_aliases: set[str] = set()
        """Parameter names that alias another one (left out of saved weights, as Hugging Face does)."""

    def forward(self, mode: str, *args, **kwargs):
        if mode == "lm":
            return self.lm(*args, **kwargs)
        return response_logprobs(self.lm, *args, **kwargs)


class LMCall:
    """What `llm.rollout.generate` needs of a model, answered by a `ShardedPolicy`."""

    def __init__(self, policy: ShardedPolicy) -> None:
        self.policy = policy
        self.hf_model = policy.lm  # its forward signature says how to pass the KV cache

    @contextmanager
    def gathered(self) -> Iterator[torch.nn.Module]:
        """The full parameters on this rank for the block (``unshard`` every FSDP unit, ``reshard`` after).

        Yields the Hugging Face model, whose modules then hold plain (unsharded) parameters in the
        sampling dtype, so the static engine can call them directly: one all-gather per FSDP
        unit per rollout, where the eager loop gathers every layer at every decode step. Costs
        the memory of one full copy of the parameters (in the ``MixedPrecisionPolicy`` dtype)
        while sampling. Every rank must enter it (the gathers are collectives).
        """
        from torch.distributed.fsdp import FSDPModule

        units = [m for m in self.policy.modules() if isinstance(m, FSDPModule)]
        for unit in units:
            unit.unshard()
        try:
            yield self.hf_model
        finally:
            for unit in units:
                unit.reshard()

    def __call__(self, **kwargs):
        return self.policy("lm", **kwargs)

    def parameters(self):
        return self.policy.parameters()

    def eval(self):
        self.policy.eval()
        return self

    def train(self, mode: bool = True):
        self.policy.train(mode)
        return self


def training_mode(model: torch.nn.Module, *, gradient_checkpointing: bool) -> None:
    """Put the policy in training mode; with ``gradient_checkpointing`` each block's activations are
    recomputed in the backward pass (non-reentrant), so only block inputs are kept: memory per
    token ~ layers × hidden instead of ~ layers × (hidden × ~20 + heads × seq)."""
    model.train()
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def decoder_layers(lm: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks of a Hugging Face causal LM (``model.layers`` for Llama/Qwen-style models)."""
    layers = getattr(getattr(lm, "base_model", lm), "layers", None)
    if layers is None:
        raise ValueError(f"train.parallel = 'fsdp' needs a model with base_model.layers; {type(lm).__name__} has none")
    return list(layers)


def shard(lm: torch.nn.Module, *, param_dtype: torch.dtype | None = None) -> ShardedPolicy:
    """FSDP2: shard every decoder layer and the rest (the root) across the ranks.

    ``param_dtype`` (e.g. bf16): a `MixedPrecisionPolicy` — the gathered parameters, hence every
    forward (sampling and scoring), run in that dtype; the sharded master weights, the optimizer
    state and the gradient reduce-scatter stay float32 (``reduce_dtype``).

    Gradients are *summed* over ranks (divide factor 1): every rank's loss is already its share
    of the global token mean, as in the data-parallel path.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32 if param_dtype else None)
    policy = ShardedPolicy(lm)
    seen: dict[int, str] = {}
    for name, param in lm.named_parameters(remove_duplicate=False):  # tied weights (e.g. LM head = embeddings)
        if id(param) in seen:
            policy.tied_aliases.add(name)
        seen.setdefault(id(param), name)
    units = decoder_layers(lm)
    for layer in units:
        fully_shard(layer, mp_policy=mp)
    fully_shard(policy, reshard_after_forward=False, mp_policy=mp)
    for unit in (*units, policy):  # each FSDP unit reduces its own gradients
        unit.set_gradient_divide_factor(1.0)
        unit.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no pre-multiplied sum)
    return policy
