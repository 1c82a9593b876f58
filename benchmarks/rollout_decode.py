"""Decode speed per rollout engine on a random-initialised Qwen2-shaped model (no download).

For each engine ('eager': Hugging Face forward per token; 'static': `llm.engine.StaticDecoder`
uncompiled; 'static+compile': its decode step under ``torch.compile``, with CUDA graphs on
CUDA) and each batch size, timed `llm.rollout.generate` calls of ``--new`` tokens after a
warm-up call (compilation, graph capture); the engines take turns and the fastest of
``--repeats`` calls counts (robust to a shared, loaded machine). No stop token is ever sampled, so every row decodes
every step. Printed per (engine, batch): ms per decode step and decode tokens/s.

CPU: the per-step host overhead, time per step at batch 1 and 8 vs batch 64, the time of the
step's matrix products alone (every weight read once: the floor no engine can beat, so
eager ÷ floor is the largest possible speed-up on this machine), and
``speed-up at batch 1: N.Nx`` / ``speed-up at batch 8: N.Nx`` (best static variant over eager).

CUDA: the fraction of the memory-bandwidth roofline per step,
bytes read (all weights + the live KV cache) ÷ step time ÷ measured device-to-device copy bandwidth.

    python benchmarks/rollout_decode.py --device cpu                       # hidden 256 × 8 layers
    python benchmarks/rollout_decode.py --device cuda --shape qwen2.5-1.5b --batch 1 64 256 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from llm.model import SHAPES
from llm.rollout import generate


def build(args, device: torch.device, dtype: torch.dtype):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    dims = dict(SHAPES[args.shape]) if args.shape else {}
    hidden = dims.get("hidden_size", args.hidden)
    config = Qwen2Config(
        vocab_size=dims.get("vocab_size", args.vocab),
        hidden_size=hidden,
        intermediate_size=dims.get("intermediate_size", 3 * hidden),
        num_hidden_layers=dims.get("num_layers", args.layers),
        num_attention_heads=dims.get("num_heads", args.heads),
        num_key_value_heads=dims.get("num_kv_heads", args.kv_heads),
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(dtype).eval()
    return model


def time_engines(model, engines: list[str], batch: int, args, device) -> dict[str, float]:
    """Seconds per decode step per engine: the fastest of ``--repeats`` timed calls after one warm-up each.

    The engines take turns within each repeat, so a load change on a shared machine hits them alike.
    """
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(batch)
    prompts = torch.randint(3, vocab, (batch, args.prompt), generator=gen).tolist()

    def call(engine: str, seed: int) -> float:
        name, compile_step = engine.split("+")[0], engine.endswith("+compile")
        kw = dict(max_new_tokens=args.new, eos_id=vocab + 1, pad_id=0, engine=name, compile=compile_step)
        sync(device)
        t0 = time.perf_counter()
        generate(model, prompts, generator=torch.Generator(device=device).manual_seed(seed), device=device, **kw)
        sync(device)
        return time.perf_counter() - t0

    for engine in engines:
        call(engine, 0)  # warm-up: compilation, graph capture, allocator
    best = dict.fromkeys(engines, float("inf"))
    for r in range(args.repeats):
        for engine in engines:
            best[engine] = min(best[engine], call(engine, r + 1))
    return {engine: sec / args.new for engine, sec in best.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def copy_bandwidth(device: torch.device) -> float:
    """Device-to-device copy bandwidth in bytes/s (1 GiB read + 1 GiB written per copy)."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(10):
        dst.copy_(src)
    sync(device)
    return 2 * 10 * src.numel() / (time.perf_counter() - t0)


def linear_floor(model, batch: int, repeats: int) -> float:
    """Seconds per decode step spent in the model's matrix products alone: every ``nn.Linear``
    (and the tied LM head) applied once to a (batch, in) input, fastest of ``repeats`` passes.

    On a CPU at small batch this is the weight-streaming floor no engine can beat (the weights
    are read from memory once per step); what an engine spends above it is per-op overhead.
    """
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    inputs = [torch.randn(batch, m.in_features, dtype=m.weight.dtype, device=m.weight.device) for m in linears]
    best = float("inf")
    with torch.no_grad():
        for _ in range(max(repeats, 3) * 10):
            t0 = time.perf_counter()
            for m, x in zip(linears, inputs, strict=True):
                torch.nn.functional.linear(x, m.weight, m.bias)
            best = min(best, time.perf_counter() - t0)
    return best


def step_bytes(model, batch: int, context: int) -> int:
    """Bytes one decode step must read: every weight once + the live KV cache (K and V, every layer)."""
    cfg = model.config
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * context * batch
    return weights + kv * next(model.parameters()).element_size()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--shape", default="", choices=["", *SHAPES], help="a published shape (overrides the sizes)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--prompt", type=int, default=16, help="prompt tokens")
    ap.add_argument("--new", type=int, default=64, help="decode steps per call")
    ap.add_argument("--batch", type=int, nargs="+", default=None, help="batch sizes (cpu: 1 8 64)")
    ap.add_argument("--engines", nargs="+", default=["eager", "static", "static+compile"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default="", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    batches = args.batch or ([1, 8, 64] if device.type == "cpu" else [1, 64, 256])
    model = build(args, device, dtype)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.1f}M parameters, {dtype}, {device}, prompt {args.prompt}, new {args.new}")
    bw = copy_bandwidth(device) if device.type == "cuda" else None
    figures: dict = {"parameters": n_params, "device": str(device), "steps": {}}
    for b in batches:
        per_engine = time_engines(model, args.engines, b, args, device)
        if device.type == "cpu":
            floor = linear_floor(model, b, args.repeats)
            figures["steps"][f"matmul-floor@{b}"] = {"ms_per_step": 1e3 * floor}
            print(f"{'matmuls alone':>15}  batch {b:>4}: {1e3 * floor:8.3f} ms/step  (every weight read once)")
        for engine, sec in per_engine.items():
            row = {"ms_per_step": 1e3 * sec, "tokens_per_s": b / sec}
            line = f"{engine:>15}  batch {b:>4}: {1e3 * sec:8.3f} ms/step  {b / sec:10.0f} tokens/s"
            if bw is not None:
                frac = step_bytes(model, b, args.prompt + args.new // 2) / sec / bw
                row["roofline_fraction"] = frac
                line += f"  {100 * frac:5.1f}% of the {bw / 1e12:.2f} TB/s copy roofline"
            print(line, flush=True)
            figures["steps"][f"{engine}@{b}"] = row
    report(figures, batches, args.engines, device)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def report(figures: dict, batches: list[int], engines: list[str], device: torch.device) -> None:
    steps = figures["steps"]
    if device.type == "cpu" and 64 in batches:
        for engine in engines:
            base = steps[f"{engine}@64"]["ms_per_step"]
            small = ", ".join(
                f"batch {b}: {steps[f'{engine}@{b}']['ms_per_step'] / base:.2f}" for b in (1, 8) if b in batches
            )
            print(f"host overhead {engine}: time per step vs batch 64 -> {small}")
    fast = [e for e in engines if e != "eager"]
    if "eager" in engines and fast:
        for b in batches:
            best = min(steps[f"{e}@{b}"]["ms_per_step"] for e in fast)
            ratio = steps[f"eager@{b}"]["ms_per_step"] / best
            figures[f"speedup@{b}"] = ratio
            line = f"speed-up at batch {b}: {ratio:.1f}x"
            floor = steps.get(f"matmul-floor@{b}", {}).get("ms_per_step")
            if floor:
                ceiling = steps[f"eager@{b}"]["ms_per_step"] / floor
                line += f"  (ceiling {ceiling:.1f}x: eager's step over its matmuls alone)"
            print(line)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
