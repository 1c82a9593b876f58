"""RL step speed and memory: this trainer vs TRL's GRPOTrainer, same tiny model, batch and CPU.

Both trainers run on-policy GRPO (one optimizer step per generation batch of P prompts × G
completions, temperature 1, no KL, no reference model) on the same tiny Qwen2 model built by
`llm.model.build_tiny` and the same arithmetic prompts and reward. Each runs in its own
subprocess so peak memory (max RSS, which includes each one's imports) is measured separately.
Reported per trainer: median (and fastest)
wall seconds per optimizer step after warm-up (ours: one
`Trainer.step()` plus its metrics line; TRL: from one `on_step_end` to the next, so the batch
fetch, generation, rewards, forward/backward, optimizer and logging are all inside), response
tokens per second, and peak RSS; for ours also the rollout and training phases separately.
The load average is printed before and after: the timings mean little on a busy machine.

    .venvs/trl/bin/python benchmarks/trainer_step.py        # ours vs TRL, both in the pinned TRL environment
    python benchmarks/trainer_step.py                       # ours here, TRL from .venvs/trl (--trl-python)

Run both in one environment (the first line; `bash scripts/engine_tests.sh trl` creates it) for a
fair peak RSS: transformers' own imports are ~220 MB and differ between its releases.
    python benchmarks/trainer_step.py --only ours --device cuda --hidden 1024 --layers 16

Goal: an optimizer step at least 1.5x faster than TRL's on the CPU, with less memory; on a GPU,
rollout decode close to the memory-bandwidth limit (the script prints the weight bytes read
per decode step and the implied bandwidth).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _setup(tmp: Path, args) -> tuple[Path, Path]:
    from llm.data import write_jsonl
    from llm.model import build_tiny
    from llm.tasks import alphabet, make_dataset

    model = build_tiny(
        tmp / "model",
        alphabet=alphabet(),
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=args.heads,
        num_kv_heads=max(args.heads // 2, 1),
        seed=0,
    )
    train, _ = make_dataset("arithmetic", 2000, 0, 2, seed=0, ops="+")
    data = write_jsonl(tmp / "train.jsonl", train)
    return model, data


def run_ours(model: Path, data: Path, out: Path, args) -> dict:
    import torch

    from llm.config import RLConfig, load_config
    from llm.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(
        RLConfig,
        None,
        [
            f"model.path={json.dumps(str(model))}",
            f"data.train={json.dumps(str(data))}",
            f"train.out={json.dumps(str(out))}",
            f"model.device={json.dumps(args.device)}",
            f"data.prompts_per_step={args.prompts}",
            f"rollout.group_size={args.group}",
            f"rollout.max_new_tokens={args.max_new_tokens}",
            f"train.steps={args.steps + args.warmup}",
            "train.progress=false",
            "train.tensorboard=false",
            "train.save_every=0",
            "control.target=0.5",
        ],
    )
    trainer = Trainer(cfg)
    rows, walls = [], []
    for _ in range(args.steps + args.warmup):
        t0 = time.perf_counter()
        row = trainer.step()
        trainer.logger.log(row)  # the per-step metrics line, as in a real run
        if torch.cuda.is_available() and args.device.startswith("cuda"):
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - t0)
        rows.append(row)
    trainer.logger.close()
    rows, walls = rows[args.warmup :], walls[args.warmup :]
    mean_len = statistics.mean(r["response_len_mean"] for r in rows)
    return {
        "step_s": statistics.median(walls),
        "step_min_s": min(walls),
        "rollout_s": statistics.median(r["rollout_s"] for r in rows),
        "train_s": statistics.median(r["train_s"] for r in rows),
        "response_len": mean_len,
        "rollout_tokens_per_s": statistics.median(r["rollout_tokens_per_s"] for r in rows),
        "train_tokens_per_s": statistics.median(r["train_tokens_per_s"] for r in rows),
        "tokens_per_s": args.prompts * args.group * mean_len / statistics.median(walls),
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
    }


def run_trl(model: Path, data: Path, out: Path, args) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from llm.data import load_jsonl
    from llm.reward import score

    if args.threads:
        torch.set_num_threads(args.threads)
    examples = load_jsonl(data)
    by_prompt = {ex.prompt: ex for ex in examples}
    ds = Dataset.from_list([{"prompt": ex.prompt} for ex in examples])

    def reward(prompts, completions, **kw):
        return score(completions, [by_prompt[p] for p in prompts])

    tok = PreTrainedTokenizerFast.from_pretrained(model, local_files_only=True)
    lm = AutoModelForCausalLM.from_pretrained(model, local_files_only=True)
    batch = args.prompts * args.group
    cfg = GRPOConfig(
        output_dir=str(out),
        use_cpu=args.device == "cpu",
        bf16=False,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        num_generations=args.group,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        beta=0.0,
        learning_rate=1e-4,
        max_steps=args.steps + args.warmup,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    marks: list[float] = []

    class Clock(TrainerCallback):
        # Wall time from one optimizer step's end to the next: the whole step, like ours —
        # fetching the prompts, generation (inside training_step), rewards, forward/backward,
        # optimizer and the per-step logging. on_step_begin would miss the batch fetch,
        # which the Trainer does before it.
        def on_train_begin(self, *a, **k):
            marks.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            marks.append(time.perf_counter())

    trainer = GRPOTrainer(
        model=lm, reward_funcs=reward, args=cfg, train_dataset=ds, processing_class=tok, callbacks=[Clock()]
    )
    trainer.train()
    times = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    steps = times[args.warmup :]
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    mean_len = statistics.mean(lengths[args.warmup :]) if lengths else float("nan")
    return {
        "step_s": statistics.median(steps),
        "step_min_s": min(steps),
        "tokens_per_s": batch * mean_len / statistics.median(steps),
        "response_len": mean_len,
    }


def child(which: str, args) -> None:
    tmp = Path(args.tmp)
    model, data = tmp / "model", tmp / "train.jsonl"
    res = (run_ours if which == "ours" else run_trl)(model, data, tmp / f"out_{which}", args)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--only", choices=["ours", "trl"], default=None)
    venv = Path(__file__).resolve().parents[1] / ".venvs" / "trl" / "bin" / "python"
    ap.add_argument(
        "--trl-python",
        default=str(venv) if venv.is_file() else sys.executable,
        help="interpreter of the TRL run (default: the pinned .venvs/trl of scripts/engine_tests.sh if it "
        "exists, else this one); ours always runs with this interpreter",
    )
    ap.add_argument("--child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        model, _ = _setup(Path(tmp), args)
        from llm.model import count_parameters, load_model

        n_params = count_parameters(load_model(model)[0])
        print(
            f"model: qwen2 hidden {args.hidden} x {args.layers} layers ({n_params:,} parameters); batch "
            f"{args.prompts} prompts x {args.group} completions, <= {args.max_new_tokens} new tokens; "
            f"device {args.device}, {args.threads or os.cpu_count()} threads"
        )
        print("load average (1, 5, 15 min) at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        results = {}
        for which in [args.only] if args.only else ["ours", "trl"]:
            python = args.trl_python if which == "trl" else sys.executable
            argv = [python, __file__, "--child", which, "--tmp", tmp] + [
                f"--{k.replace('_', '-')}={v}"
                for k, v in vars(args).items()
                if k not in ("child", "tmp", "only", "trl_python") and v is not None
            ]
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                print(f"{which}: failed\n{proc.stderr[-2000:]}")
                continue
            res = json.loads(line[7:])
            results[which] = res
            extra = (
                f" (rollout {res['rollout_s'] * 1000:.0f} ms, train {res['train_s'] * 1000:.0f} ms, "
                f"decode {res['rollout_tokens_per_s']:.0f} tok/s, train {res['train_tokens_per_s']:.0f} tok/s)"
                if which == "ours"
                else ""
            )
            print(
                f"{which:>4}: {res['step_s'] * 1000:.0f} ms/step (min {res['step_min_s'] * 1000:.0f}){extra}, "
                f"{res['tokens_per_s']:.0f} response tok/s, "
                f"peak RSS {res['peak_rss_mb']:.0f} MB, mean response {res['response_len']:.1f} tokens"
            )
        if "ours" in results:
            o = results["ours"]
            # a decode step reads every weight once (bf16 on CUDA, fp32 on the CPU); a random model
            # rarely emits EOS, so a rollout is close to max_new_tokens decode steps (an upper bound)
            weight_bytes = n_params * (2 if args.device.startswith("cuda") else 4)
            bandwidth = weight_bytes * args.max_new_tokens / o["rollout_s"]
            gpu = f"; peak GPU memory {o['gpu_peak_mb']:.0f} MB" if o.get("gpu_peak_mb") else ""
            print(
                f"ours: weights {weight_bytes / 2**20:.1f} MB read per decode step; <= {args.max_new_tokens} "
                f"decode steps in {o['rollout_s'] * 1000:.0f} ms -> <= {bandwidth / 1e9:.2f} GB/s of weight reads{gpu}"
            )
        if "ours" in results and "trl" in results:
            o, t = results["ours"], results["trl"]
            print(
                f"speed-up: {t['step_s'] / o['step_s']:.1f}x per optimizer step (median; "
                f"{t['step_min_s'] / o['step_min_s']:.1f}x on the fastest steps); "
                f"memory: {o['peak_rss_mb']:.0f} MB vs {t['peak_rss_mb']:.0f} MB"
            )
        print("load average (1, 5, 15 min) at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
