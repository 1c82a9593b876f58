"""Two gloo ranks through verl's real ``TrainingWorker`` with the EntroPIC worker and a stand-in engine.

    python tests/engines/verl/two_rank_run.py OUT_DIR [--no-allreduce]

Each rank builds `EntroPICTrainingWorker` (verl's ``TrainingWorker`` subclass) over
`verl_standin.StandInEngine`, installs verl's ``ppo_loss`` with ``loss_mode=entropic`` as
``ActorRolloutRefWorker.init_model`` does, and calls verl's ``train_mini_batch`` (2 mini-batches,
1 epoch = 2 optimizer steps) twice on rank-specific data (different sequences and token counts).
After the first call it saves a checkpoint; after the second it resets the controller, loads the
checkpoint and repeats the second call. Each rank writes ``OUT_DIR/rank_R.json``; the test does
the all-reduce by hand and compares.

``--no-allreduce`` replaces the DP all-reduce with a no-op: the mutation the test must catch.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from functools import partial

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
STEPS_PER_CALL = 2  # mini-batches per train_mini_batch call = optimizer steps
BATCH = 8  # sequences per rank per call
PROMPT_WIDTH, RESPONSE_WIDTH = 4, 6
TEMPERATURE = 0.6
CONTROLLER = dict(target=0.3, kp=1.0, ki=0.1, tau=0.95, normalization="all_tokens")


def make_batch(table, rank: int, call: int):
    """Left-padded prompts, right-padded responses sampled from the model, as verl's driver builds them."""
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.padding import left_right_2_no_padding
    from verl_standin import VOCAB, bigram_outputs

    gen = torch.Generator().manual_seed(1000 * rank + call)
    bs = BATCH
    prompts = torch.zeros(bs, PROMPT_WIDTH, dtype=torch.long)
    responses = torch.zeros(bs, RESPONSE_WIDTH, dtype=torch.long)
    attn = torch.zeros(bs, PROMPT_WIDTH + RESPONSE_WIDTH, dtype=torch.long)
    rmask = torch.zeros(bs, RESPONSE_WIDTH)
    for i in range(bs):
        p_len = int(torch.randint(1, PROMPT_WIDTH + 1, (1,), generator=gen))
        # rank 1 gets longer responses: different token counts per rank
        r_len = int(torch.randint(2 + 2 * rank, RESPONSE_WIDTH + 1, (1,), generator=gen))
        prompts[i, PROMPT_WIDTH - p_len :] = torch.randint(0, VOCAB, (p_len,), generator=gen)
        tok = int(prompts[i, -1])
        for j in range(r_len):
            probs = torch.softmax(table[tok].detach() / TEMPERATURE, -1)
            tok = int(torch.multinomial(probs, 1, generator=gen))
            responses[i, j] = tok
        attn[i, PROMPT_WIDTH - p_len : PROMPT_WIDTH + r_len] = 1
        rmask[i, :r_len] = 1.0
    input_ids = torch.cat([prompts, responses], dim=1)
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)
    # old log-probs: the current model's, slightly perturbed, so the ratio is not identically 1
    old = torch.zeros(bs, RESPONSE_WIDTH)
    for i in range(bs):
        seq = input_ids[i][attn[i].bool()]
        lp, _ = bigram_outputs(table.detach(), seq, TEMPERATURE, False)
        r_len = int(rmask[i].sum())
        p_len = seq.numel() - r_len
        old[i, :r_len] = lp[p_len - 1 : p_len - 1 + r_len]
    old = old + 0.05 * torch.randn(bs, RESPONSE_WIDTH, generator=gen) * rmask
    adv = torch.randn(bs, 1, generator=gen).expand(bs, RESPONSE_WIDTH) * rmask
    td = TensorDict(
        {
            "input_ids": input_ids,
            "attention_mask": attn,
            "position_ids": position_ids,
            "prompts": prompts,
            "responses": responses,
            "response_mask": rmask,
            "old_log_probs": old,
            "advantages": adv.contiguous(),
        },
        batch_size=[bs],
    )
    td = left_right_2_no_padding(td)
    tu.assign_non_tensor(
        td,
        mini_batch_size=WORLD * BATCH // STEPS_PER_CALL,  # global, as the driver sends it
        epochs=1,
        seed=7,
        dataloader_kwargs={"shuffle": False},
        calculate_entropy=True,
        temperature=TEMPERATURE,
        global_batch_size=WORLD * BATCH // STEPS_PER_CALL,
    )
    return td


def state_of(runtime) -> dict:
    s = runtime.controller.state_dict()
    return {"alpha": s["alpha"], "integral": s["integral"], "error": s["error"], "step": s["step"]}


def run(rank: int, port: int, out_dir: str, no_allreduce: bool) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.environ.update(LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, init_method=f"tcp://127.0.0.1:{port}")
    torch.manual_seed(0)

    import verl_standin
    from verl.utils import tensordict_utils as tu
    from verl.workers.config import FSDPActorConfig, PolicyLossConfig, TrainingWorkerConfig
    from verl.workers.config.engine import EngineConfig
    from verl.workers.utils.losses import ppo_loss

    import entropic_verl
    from entropic_verl import EntroPICConfig, EntroPICTrainingWorker, configure, get_runtime

    verl_standin.use_cpu_platform()
    entropic_verl.assert_registered()
    if no_allreduce:
        import entropic_verl.workers as w

        class NoAllReduce:  # torch.distributed, minus the all-reduce of the entropy sums
            def __getattr__(self, name):
                return getattr(dist, name)

            def all_reduce(self, *args, **kwargs):
                pass

        w.dist = NoAllReduce()

    configure(EntroPICConfig(**CONTROLLER))
    worker = EntroPICTrainingWorker(
        TrainingWorkerConfig(
            model_type="language_model",
            model_config=verl_standin.ModelConfig(),
            engine_config=EngineConfig(strategy=verl_standin.BACKEND, use_dynamic_bsz=True, max_token_len_per_gpu=24),
            optimizer_config={"lr": 0.5, "seed": 0},
            checkpoint_config={},
        )
    )
    worker.reset()
    actor_config = FSDPActorConfig(
        strategy="fsdp",
        rollout_n=1,
        ppo_mini_batch_size=WORLD * BATCH // STEPS_PER_CALL,
        ppo_micro_batch_size_per_gpu=2,
        policy_loss=PolicyLossConfig(loss_mode="entropic"),
    )
    worker.set_loss_fn(partial(ppo_loss, config=actor_config))  # as ActorRolloutRefWorker.init_model
    engine = worker.engine

    record: dict = {"rank": rank, "states": [], "metrics": [], "hand": None, "local_tokens": None}
    batches = [make_batch(engine.table, rank, call) for call in range(2)]

    def train(call: int) -> dict:
        out = worker.train_mini_batch(batches[call].clone())
        metrics = tu.get(out, "metrics")
        keep = {k: v for k, v in metrics.items() if "entropic" in k or k in ("loss", "pg_loss", "actor/pg_loss")}
        return json.loads(json.dumps(keep, default=float))

    record["metrics"].append(train(0))
    record["states"].append(state_of(get_runtime()))
    ckpt = os.path.join(out_dir, "ckpt", "global_step_2", "actor")
    worker.save_checkpoint(ckpt, global_step=2)
    record["saved_state"] = state_of(get_runtime())
    record["metrics"].append(train(1))
    record["states"].append(state_of(get_runtime()))
    record["hand"] = list(engine.hand)
    record["local_tokens"] = list(engine.local_tokens)
    record["table_after"] = engine.table.detach().flatten().tolist()

    # resume: fresh controller (alpha 0), load the step-2 checkpoint, redo the second call
    configure(EntroPICConfig(**CONTROLLER))
    record["fresh_state"] = state_of(get_runtime())
    worker.load_checkpoint(ckpt)
    record["loaded_state"] = state_of(get_runtime())
    record["resumed_metrics"] = train(1)
    record["resumed_state"] = state_of(get_runtime())
    record["resumed_table"] = engine.table.detach().flatten().tolist()
    record["ckpt_files"] = sorted(os.listdir(ckpt))

    # the driver did not ask for the entropy (actor.calculate_entropy=False): a clear error on every rank
    no_entropy = batches[1].clone()
    tu.assign_non_tensor(no_entropy, calculate_entropy=False)
    try:
        worker.train_mini_batch(no_entropy)
        record["missing_entropy_error"] = None
    except RuntimeError as exc:
        record["missing_entropy_error"] = str(exc)

    with open(os.path.join(out_dir, f"rank_{rank}.json"), "w") as f:
        json.dump(record, f)
    dist.barrier()
    dist.destroy_process_group()


def main(argv: list[str]) -> int:
    out_dir = argv[0]
    no_allreduce = "--no-allreduce" in argv
    os.makedirs(out_dir, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # import verl once here and fork the ranks: the import is most of the wall time on a small machine
    import verl_standin  # noqa: F401  (imports verl, which loads the plug-in)

    mp.start_processes(run, args=(port, out_dir, no_allreduce), nprocs=WORLD, join=True, start_method="fork")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main(sys.argv[1:]))
