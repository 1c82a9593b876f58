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

    def all_true(self, flag: bool, device=None) -> bool:
        """True when ``flag`` holds on every rank."""
        if not self.enabled:
            return bool(flag)
        t = torch.tensor([0.0 if flag else 1.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t) == 0.0

    def max_int(self, value: int, device=None) -> int:
        """max over ranks of an integer."""
        if not self.enabled:
            return int(value)
        t = torch.tensor([float(value)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t)

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
        from .losses import response_logprobs

        return response_logprobs(self.lm, *args, **kwargs)


class LMCall:
    """What `llm.rollout.generate` needs of a model, answered by a `ShardedPolicy`."""

    def __init__(self, policy: ShardedPolicy) -> None:
        self.policy = policy
        self.hf_model = policy.lm  # its forward signature says how to pass the KV cache

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


def decoder_layers(lm: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks of a Hugging Face causal LM (``model.layers`` for Llama/Qwen-style models)."""
    layers = getattr(getattr(lm, "base_model", lm), "layers", None)
    if layers is None:
        raise ValueError(f"train.parallel = 'fsdp' needs a model with base_model.layers; {type(lm).__name__} has none")
    return list(layers)


def shard(lm: torch.nn.Module) -> ShardedPolicy:
    """FSDP2: shard every decoder layer and the rest (the root) across the ranks.

    Gradients are *summed* over ranks (divide factor 1): every rank's loss is already its share
    of the global token mean, as in the data-parallel path.
    """
    from torch.distributed.fsdp import fully_shard

    policy = ShardedPolicy(lm)
    seen: dict[int, str] = {}
    for name, param in lm.named_parameters(remove_duplicate=False):  # tied weights (e.g. LM head = embeddings)
        if id(param) in seen:
            policy.tied_aliases.add(name)
        seen.setdefault(id(param), name)
    units = decoder_layers(lm)
    for layer in units:
        fully_shard(layer)
    fully_shard(policy, reshard_after_forward=False)
    for unit in (*units, policy):  # each FSDP unit reduces its own gradients
        unit.set_gradient_divide_factor(1.0)
        unit.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no pre-multiplied sum)
    return policy


def full_model_state(policy: ShardedPolicy) -> dict[str, torch.Tensor]:
    """The unsharded model weights on the CPU (a collective: call on every rank)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    sd = get_model_state_dict(policy, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    sd = {k.removeprefix("lm."): v for k, v in sd.items()}
    return {k: v for k, v in sd.items() if k not in policy.tied_aliases}


def full_optimizer_state(policy: ShardedPolicy, optimizer) -> dict:
    """The unsharded optimizer state keyed by parameter name (a collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(policy, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_optimizer_state(policy: ShardedPolicy, optimizer, state: dict) -> None:
    """Scatter a full optimizer state (as from `full_optimizer_state`) onto the shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(policy, optimizer, optim_state_dict=state, options=StateDictOptions(full_state_dict=True))
