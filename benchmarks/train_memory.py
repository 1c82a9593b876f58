"""Training memory per token, with and without gradient checkpointing, and the micro-batch that fits a budget.

One training micro-batch (forward of `llm.losses.response_logprobs` with entropies, backward
of the summed log-probs) of a random-initialised Qwen2-shaped model, at two sizes (``--rows``
sequences of ``--tokens`` and of twice that). Each measurement runs in its own subprocess so
its peak is its own: CPU — peak RSS (``ru_maxrss``); CUDA — ``torch.cuda.max_memory_allocated``.
Peak memory is linear in the tokens of a micro-batch, peak = base + m·tokens; from the two
points: m (bytes per token) and the largest micro-batch in tokens under ``--budget-gib``.
Also the time of one training step (forward, backward, AdamW; the second of two) and, on a
known GPU, its MFU = 6·N_params·tokens / time / peak bf16 FLOP/s.

    python benchmarks/train_memory.py                                  # CPU, hidden 256 × 8 layers
    python benchmarks/train_memory.py --device cuda --shape qwen2.5-1.5b --tokens 2048 --budget-gib 60
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}
"""Dense bf16 tensor-core peak FLOP/s by GPU name (for MFU)."""


def measure(args, rows: int, tokens: int, checkpointing: bool) -> dict:
    """Peak bytes of a forward + backward + AdamW step, its seconds (second of two) and MFU, in this process."""
    import time

    import torch

    from benchmarks.rollout_decode import build
    from llm.losses import response_logprobs
    from llm.parallel import training_mode

    device = torch.device(args.device)
    model = build(args, device, torch.float32)
    training_mode(model, gradient_checkpointing=checkpointing)
    ids = torch.randint(3, model.config.vocab_size, (rows, tokens), device=device)
    mask = torch.ones_like(ids)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    seconds = 0.0
    for _ in range(2):  # the first step allocates the optimizer state; the second is timed
        t0 = time.perf_counter()
        with ctx:
            logp, ent = response_logprobs(
                model, ids, mask, ids[:, tokens // 2 :], temperature=1.0, with_entropy=True, entropy_grad=True
            )
        (logp.sum() + ent.sum()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    flops = (8 if checkpointing else 6) * n_params * rows * tokens  # 2 forward + 4 backward (+2 recompute)
    peak_flops = next((v for k, v in PEAK_FLOPS.items() if cuda and k in torch.cuda.get_device_name()), None)
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "peak_bytes": float(peak),
        "step_seconds": seconds,
        "tokens_per_s": rows * tokens / seconds,
        "mfu": (6 * n_params * rows * tokens / seconds / peak_flops) if peak_flops else None,
        "hardware_flops_utilisation": (flops / seconds / peak_flops) if peak_flops else None,
    }


def run_child(args, rows: int, tokens: int, checkpointing: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", f"{rows},{tokens},{int(checkpointing)}", *args.passthrough]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    from llm.model import SHAPES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--shape", default="", choices=["", *SHAPES])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--rows", type=int, default=4, help="sequences per micro-batch")
    ap.add_argument("--tokens", type=int, default=256, help="tokens per sequence (the second point doubles it)")
    ap.add_argument("--budget-gib", type=float, default=8.0)
    ap.add_argument("--json", default="")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    if args.child:
        rows, tokens, ckpt = (int(x) for x in args.child.split(","))
        print(json.dumps(measure(args, rows, tokens, bool(ckpt))))
        return {}
    args.passthrough = [a for a in argv if a != "--json" and a != args.json]
    figures: dict = {}
    for ckpt in (False, True):
        first = run_child(args, args.rows, args.tokens, ckpt)
        second = run_child(args, args.rows, 2 * args.tokens, ckpt)
        small, large = first["peak_bytes"], second["peak_bytes"]
        n = args.rows * args.tokens
        per_token = (large - small) / n
        base = small - per_token * n
        fits = int((args.budget_gib * 2**30 - base) / per_token) if per_token > 0 else 0
        name = "with checkpointing" if ckpt else "without checkpointing"
        print(
            f"{name:>22}: peak {small / 2**20:8.1f} MiB at {n} tokens, {large / 2**20:8.1f} MiB at {2 * n};"
            f" {per_token / 2**10:7.1f} KiB/token; fits {fits} tokens per micro-batch in {args.budget_gib} GiB;"
            f" step {first['step_seconds']:.3f} s, {first['tokens_per_s']:.0f} tokens/s"
            + (f", MFU {100 * first['mfu']:.1f}%" if first["mfu"] else "")
        )
        figures["checkpointing" if ckpt else "plain"] = {
            "peak_bytes": [small, large],
            "bytes_per_token": per_token,
            "max_tokens_in_budget": fits,
            "step": first,
        }
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    main()
