"""Data parallelism under ``torchrun``: process group, global sums, gradient all-reduce.

``torchrun --nproc_per_node N -m llm train …`` starts N copies of the trainer; each reads
RANK / WORLD_SIZE / LOCAL_RANK from the environment and joins one process group (NCCL on
CUDA, gloo on the CPU). Without those variables everything here is a no-op for one process.

The trainer splits every RL step's prompts across ranks (whole GRPO groups per rank), so
each rank samples, scores and computes advantages locally; what must be identical
everywhere is made so by sums over ranks:

- step statistics (entropy, NLL, rewards, …) as token-weighted sums → the same H and the
  same lever/controller update on every rank;
- each mini-batch's token counts N (and the lever's counts, e.g. N_h) → exact global token
  means in every rank's loss;
- gradients, summed after the backward passes of a mini-batch: with each rank's loss already
  divided by the global N, Σ_ranks ∇L_r is the gradient of the global token mean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Dist", "init_distributed"]


@dataclass
class Dist:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Σ over ranks of a float tensor (float64 on the wire for exact token counts)."""
        if not self.enabled:
            return values
        out = values.to(torch.float64).clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out.to(values.dtype)

    def sum_floats(self, *values: float, device=None) -> list[float]:
        """Σ over ranks of Python floats, in one all-reduce."""
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def all_reduce_grads(self, params) -> None:
        """Σ over ranks of every parameter's gradient (one flat buffer; missing grads count as 0)."""
        if not self.enabled:
            return
        params = [p for p in params if p.requires_grad]
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

    def assert_same(self, name: str, values: list[float], device=None) -> None:
        """Raise if ``values`` differ across ranks (a cheap runtime check of replicated state)."""
        if not self.enabled or not values:
            return
        t = torch.tensor([*values, *(-v for v in values)], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        hi, neg_lo = t[: len(values)], t[len(values) :]
        if not torch.equal(hi, -neg_lo):
            raise RuntimeError(f"{name} differs across ranks: max {hi.tolist()} vs min {(-neg_lo).tolist()}")

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device_type: str) -> Dist:
    """Join the ``torchrun`` process group if the environment describes one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return Dist(rank=rank, world=world, local_rank=local_rank)
