"""Test stand-ins for what verl 0.9.1 has only on a GPU: a CPU platform and a tiny training engine.

verl's FSDP engine is registered for ``cuda``/``npu`` only and its platform layer falls back to
``cuda`` on a CPU machine. `CPUPlatform` makes ``get_device_name()`` return ``"cpu"``;
`StandInEngine` mirrors ``FSDPEngine.forward_backward_batch`` (global token all-reduce, verl's
``prepare_micro_batches`` and ``postprocess_batch_func``, per-micro-batch backward through the loss
fn it is given) on a one-table bigram "model" whose logits for the next token are ``table[token]``.
verl's own ``BaseEngine.train_batch`` (zero_grad → forward_backward_batch → optimizer_step) runs
unchanged. Gradients are averaged over ranks before a plain SGD step, as DDP/FSDP would.

The engine also records, per optimizer step, this rank's ``[Σ H·m, Σ m]`` computed by a separate
path (per sequence, from the padded prompts/responses, float64): the "hand" value the tests
all-reduce themselves.
"""

from __future__ import annotations

import contextlib
import os
import types

import torch
import torch.distributed as dist
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import set_platform
from verl.utils import tensordict_utils as tu
from verl.workers.engine.base import BaseEngine, EngineRegistry
from verl.workers.engine.utils import postprocess_batch_func, prepare_micro_batches

BACKEND = "entropic_standin"
VOCAB = 8


class CPUPlatform(PlatformBase):
    """Just enough of a verl platform for CPU: device "cpu", no memory stats, gloo."""

    _module = types.SimpleNamespace(
        max_memory_allocated=lambda *a, **k: 0,
        max_memory_reserved=lambda *a, **k: 0,
        empty_cache=lambda: None,
        synchronize=lambda *a, **k: None,
        is_available=lambda: True,
        manual_seed=torch.manual_seed,
        manual_seed_all=torch.manual_seed,
        device_count=lambda: 1,
        current_device=lambda: 0,
    )

    @property
    def device_name(self):
        return "cpu"

    @property
    def vendor_name(self):
        return "cpu"

    @property
    def device_module(self):
        return self._module

    def is_available(self):
        return True

    def current_device(self):
        return 0

    def device_count(self):
        return 1

    def set_device(self, device_index):
        pass

    def synchronize(self, device_index=None):
        pass

    def manual_seed(self, seed):
        torch.manual_seed(seed)

    def manual_seed_all(self, seed):
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings):
        pass

    def empty_cache(self):
        pass

    def get_device_capability(self, device_index=0):
        return (None, None)

    def communication_backend_name(self):
        return "gloo"

    def visible_devices_envvar(self):
        return "CUDA_VISIBLE_DEVICES"

    def nvtx_range(self, msg):
        return contextlib.nullcontext()

    def profiler_start(self):
        pass

    def profiler_stop(self):
        pass

    def ray_resource_name(self):
        return "CPU"

    def ray_noset_envvars(self):
        return []

    def is_ipc_supported(self):
        return False

    def cudart(self):
        return None


def use_cpu_platform() -> None:
    set_platform(CPUPlatform())


class ModelConfig(dict):
    """The two things TrainingWorker reads from an HFModelConfig: ``.get`` and a ``model_type`` attribute."""

    model_type = None


def bigram_outputs(table: torch.Tensor, input_ids: torch.Tensor, temperature: float, with_entropy: bool):
    """Per position t of the flattened sequences: log π(x_{t+1} | x_t) and the entropy H_t."""
    logits = table[input_ids] / temperature
    logp = torch.log_softmax(logits, dim=-1)
    nxt = torch.roll(input_ids, shifts=-1)  # as verl: the last position of a sequence is dropped later
    log_probs = logp.gather(-1, nxt.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1) if with_entropy else None
    return log_probs, entropy


def hand_entropy_sums(table: torch.Tensor, data, temperature: float) -> list[float]:
    """``[Σ H·m, Σ m]`` over the response tokens, sequence by sequence from the padded fields."""
    prompts, responses = data["prompts"], data["responses"]
    attn, rmask = data["attention_mask"], data["response_mask"]
    width = prompts.shape[1]
    t64 = table.detach().double()
    h_sum, n = 0.0, 0.0
    for i in range(prompts.shape[0]):
        p_len = int(attn[i, :width].sum())
        r_len = int(attn[i, width:].sum())
        seq = torch.cat([prompts[i, width - p_len :], responses[i, :r_len]])
        for j in range(r_len):
            ctx = int(seq[p_len - 1 + j])
            logp = torch.log_softmax(t64[ctx] / temperature, dim=-1)
            h = float(-(logp.exp() * logp).sum())
            m = float(rmask[i, j])
            h_sum += h * m
            n += m
    return [h_sum, n]


@EngineRegistry.register(model_type="language_model", backend=BACKEND, device="cpu")
class StandInEngine(BaseEngine):
    def __init__(self, model_config, engine_config, optimizer_config, checkpoint_config, **kwargs):
        self.engine_config = engine_config
        self.lr = float(optimizer_config["lr"])
        gen = torch.Generator().manual_seed(int(optimizer_config.get("seed", 0)))  # same init on every rank
        self.table = torch.nn.Parameter(3.0 * torch.randn(VOCAB, VOCAB, generator=gen))
        self.hand: list[list[float]] = []  # per optimizer step, this rank's [Σ H·m, Σ m]
        self.local_tokens: list[int] = []

    # -- the parts of BaseEngine that TrainingWorker calls
    def initialize(self):
        pass

    @contextlib.contextmanager
    def train_mode(self, **kwargs):
        yield

    @contextlib.contextmanager
    def eval_mode(self, **kwargs):
        yield

    def to(self, device, model=True, optimizer=True, grad=True):
        pass

    def get_data_parallel_rank(self):
        return dist.get_rank()

    def get_data_parallel_size(self):
        return dist.get_world_size()

    def get_data_parallel_group(self):
        return dist.group.WORLD

    def is_mp_src_rank_with_outputs(self):
        return True

    def optimizer_zero_grad(self):
        self.table.grad = None

    def optimizer_step(self):
        grad = self.table.grad
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        grad /= dist.get_world_size()
        grad_norm = grad.norm()
        with torch.no_grad():
            self.table -= self.lr * grad
        return grad_norm

    def lr_scheduler_step(self):
        return self.lr

    def forward_backward_batch(self, data, loss_function, forward_only=False):
        temperature = float(tu.get_non_tensor_data(data=data, key="temperature", default=1.0))
        if not forward_only:
            self.hand.append(hand_entropy_sums(self.table, data, temperature))
        # as FSDPEngine: global token count for the loss normalisation, then verl's micro-batching
        batch_num_tokens = data["loss_mask"].sum()
        self.local_tokens.append(int(batch_num_tokens))
        dist.all_reduce(batch_num_tokens, op=dist.ReduceOp.SUM, group=self.get_data_parallel_group())
        tu.assign_non_tensor(data, batch_num_tokens=batch_num_tokens.item())
        tu.assign_non_tensor(data, dp_size=self.get_data_parallel_size())
        micro_batches, indices = prepare_micro_batches(
            data=data, dp_group=self.get_data_parallel_group(), same_micro_num_in_dp=True
        )
        outputs = []
        for micro_batch in micro_batches:
            with torch.no_grad() if forward_only else contextlib.nullcontext():
                loss, out = self.forward_step(micro_batch, loss_function, temperature)
                if not forward_only:
                    loss.backward()
                    out.pop("model_output")
            outputs.append(out)
        return postprocess_batch_func(output_lst=outputs, indices=indices, data=data)

    def forward_step(self, micro_batch, loss_function, temperature):
        input_ids = micro_batch["input_ids"]  # nested (jagged): prompt + response per sequence
        with_entropy = bool(tu.get_non_tensor_data(data=micro_batch, key="calculate_entropy", default=False))
        log_probs, entropy = bigram_outputs(self.table, input_ids.values(), temperature, with_entropy)
        offsets = input_ids.offsets()
        model_output = {"log_probs": torch.nested.nested_tensor_from_jagged(log_probs, offsets=offsets)}
        if entropy is not None:
            model_output["entropy"] = torch.nested.nested_tensor_from_jagged(entropy, offsets=offsets)
        loss, metrics = loss_function(model_output=model_output, data=micro_batch, dp_group=dist.group.WORLD)
        detached = {k: v.detach() for k, v in model_output.items()}
        return loss, {"model_output": detached, "loss": loss.detach().item(), "metrics": metrics}

    # -- checkpoint: the parameters, one file per rank (the controller file is the worker's job)
    def save_checkpoint(self, local_path, hdfs_path=None, global_step=0, max_ckpt_to_keep=None, **kwargs):
        os.makedirs(local_path, exist_ok=True)
        torch.save(self.table.detach().clone(), os.path.join(local_path, f"table_rank_{dist.get_rank()}.pt"))
        dist.barrier()

    def load_checkpoint(self, local_path, hdfs_path=None, del_local_after_load=False, **kwargs):
        table = torch.load(os.path.join(local_path, f"table_rank_{dist.get_rank()}.pt"))
        with torch.no_grad():
            self.table.copy_(table)
        dist.barrier()
