"""Tiny CPU scenarios for the TRL plug-in tests, shared by the pytest module and the torchrun worker.

The model is `llm.model.build_tiny` (1 hidden layer pair, 32 wide, character tokenizer, no
download) with its final RMSNorm scaled up (``SHARPEN``), so that a fair share of the sampled
tokens have π > τ = 0.95 and the EntroPIC term is not zero, as it would be at random init. The
reward is dense (the share of digits in the completion), so GRPO groups have non-zero advantages.

Run as a script under torchrun it is the 2-rank worker::

    python -m torch.distributed.run --nproc_per_node 2 --master_addr 127.0.0.1 --master_port PORT \\
        trl_scenarios.py MODEL_DIR OUT_DIR

Each rank writes ``OUT_DIR/rank{R}.json``: the α and entropy histories, its local and the global
window sums, and the controller state, before and after a resume from ``checkpoint-2``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from datasets import Dataset
from trl import GRPOConfig

from entropic_trl import EntroPICGRPOTrainer
from llm.model import build_tiny, load_model
from llm.tasks import alphabet, make_dataset
from pic import PIController

SHARPEN = 12.0  # × final-norm weight: mixes confident (π > 0.95) and uncertain tokens
KP, KI, TARGET = 1.0, 0.1, 0.3


def build_model_dir(out_dir: str | Path) -> Path:
    """The tiny Qwen2 model + character tokenizer of the tests (written once, reused)."""
    out = Path(out_dir)
    if not (out / "config.json").is_file():
        build_tiny(out, alphabet=alphabet(), hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, seed=0)
    return out


def load_sharp_model(model_dir: str | Path):
    model, tok = load_model(model_dir)
    with torch.no_grad():
        model.model.norm.weight.mul_(SHARPEN)
    return model, tok


def digit_share(prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
    """Dense reward: the fraction of digits in each completion (0 for an empty one)."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


def dataset() -> Dataset:
    train, _ = make_dataset("arithmetic", 64, 0, 1, seed=0)
    return Dataset.from_list([{"prompt": e.prompt, "answer": e.answer} for e in train])


def controller() -> PIController:
    return PIController(KP, KI, TARGET)


def make_trainer(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    batch: int = 32,
    grad_accum: int = 1,
    steps: int = 3,
    save_steps: int | None = None,
    trainer_cls: type[EntroPICGRPOTrainer] = EntroPICGRPOTrainer,
    ctl: PIController | None = None,
    tau: float = 0.95,
    normalization: str = "all_tokens",
    **config: Any,
) -> EntroPICGRPOTrainer:
    """An `EntroPICGRPOTrainer` on the tiny model: groups of 8, completions of ≤ 12 characters."""
    model, tok = load_sharp_model(model_dir)
    config = {"learning_rate": 1e-3, **config}
    args = GRPOConfig(
        output_dir=str(out_dir),
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=grad_accum,
        num_generations=8,
        max_completion_length=12,
        max_steps=steps,
        logging_steps=1,
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
        **config,
    )
    return trainer_cls(
        model=model,
        reward_funcs=digit_share,
        args=args,
        train_dataset=dataset(),
        processing_class=tok,
        controller=ctl if ctl is not None else controller(),
        tau=tau,
        normalization=normalization,
    )


def history(trainer: EntroPICGRPOTrainer, key: str, after: int = 0) -> list[float]:
    """Per-optimizer-step values of a logged metric (``logging_steps=1``) for steps > ``after``.

    A resumed trainer's log history starts with the checkpoint's, hence ``after``.
    """
    return [h[key] for h in trainer.state.log_history if key in h and h["step"] > after]


class RecordingTrainer(EntroPICGRPOTrainer):
    """Keeps each optimizer step's local and all-reduced window sums."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.windows: list[dict[str, list[float]]] = []

    def _reduce_window(self, local: torch.Tensor) -> torch.Tensor:
        total = super()._reduce_window(local)
        if self.model.training:
            self.windows.append({"local": local.tolist(), "global": total.tolist()})
        return total


def _ddp_main(model_dir: str, out_dir: str) -> None:
    """2 steps (checkpoint at 2), then a fresh trainer and controller resume to step 3."""
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    rank = int(os.environ["RANK"])
    out = Path(out_dir)
    common = {"batch": 8, "grad_accum": 2, "save_steps": 2, "trainer_cls": RecordingTrainer}  # 2 ranks × 8 × GA 2
    first = make_trainer(model_dir, out / "run", steps=2, **common)
    first.train()
    state_2 = first.controller.state_dict()
    second = make_trainer(model_dir, out / "run", steps=3, **common)
    second.train(resume_from_checkpoint=str(out / "run" / "checkpoint-2"))
    record = {
        "rank": rank,
        "world_size": second.accelerator.num_processes,
        "distributed_type": str(second.accelerator.distributed_type),
        "alpha": history(first, "entropic/alpha") + history(second, "entropic/alpha", after=2),
        "entropy": history(first, "entropic/entropy") + history(second, "entropic/entropy", after=2),
        "windows": first.windows + second.windows,
        "state_2": state_2,
        "state_3": second.controller.state_dict(),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    _ddp_main(sys.argv[1], sys.argv[2])
