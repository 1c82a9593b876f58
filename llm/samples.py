"""What a run shows besides its metrics: sampled completions and evaluations during training.

- ``train.sample_every`` = N: after every N-th step, rank 0 appends ``train.sample_count`` of the
  step's completions to ``RUN_DIR/samples.jsonl``, one row each::

      {"step": 10, "prompt": "<|im_start|>user\\n…<|im_start|>assistant\\n", "completion": "19", "reward": 1.0}

  ``prompt`` is the exact text given to the model (after templating, `llm.prompts`), ``completion``
  the decoded response as it was scored. The same rows go to TensorBoard as a text table (tag
  ``samples``).
- ``train.eval_every`` = N: after every N-th step, avg@k and pass@k (k = ``train.eval_k``) on
  ``data.test`` (its first ``train.eval_prompts`` prompts, 0 = all), sampled at the rollout
  temperature with the run's templating and stops (`llm.evaluate.evaluate_model`). The figures join
  that step's metrics row (``eval_avg_at_k``, ``eval_pass_at_k``, TensorBoard ``eval/…``) and a row
  ``{"step", "k", "n", "avg@k", "pass@k", "by_task"}`` is appended to ``RUN_DIR/eval.jsonl``. Every
  rank evaluates (a sharded model samples on all ranks together); rank 0 writes.

On resume, rows after the checkpoint's step are dropped from both files, as from metrics.jsonl.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pic.io import atomic_write_text

__all__ = ["Reports", "markdown_table", "trim_jsonl"]


def trim_jsonl(path: Path, step: int | None) -> None:
    """Start ``path`` afresh (``step`` None) or keep its rows with ``"step" <= step`` (a resumed run)."""
    if step is None or not path.exists():
        atomic_write_text(path, "")
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line + "\n")
        except (ValueError, KeyError, TypeError):  # a torn last row
            continue
    atomic_write_text(path, "".join(keep))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows {prompt, completion, reward} as a Markdown table (TensorBoard renders it)."""

    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", "\\n")

    lines = ["| prompt | completion | reward |", "|---|---|---|"]
    lines += [f"| {cell(r['prompt'])} | {cell(r['completion'])} | {r['reward']:.4g} |" for r in rows]
    return "\n".join(lines)


class Reports:
    """Samples and evaluations of a run at their intervals (see the module docstring)."""

    def __init__(self, trainer, resume_step: int | None) -> None:
        from .datasets import load_data

        self.trainer, self.cfg, data = trainer, trainer.cfg.train, trainer.cfg.data
        self.test = (
            load_data(data.test, data)[: self.cfg.eval_prompts or None] if data.test and self.cfg.eval_every else []
        )
        self.main = trainer.backend.is_main
        run = Path(trainer.cfg.train.out)
        self.samples_path, self.eval_path = run / "samples.jsonl", run / "eval.jsonl"
        if self.main:
            for path, every in ((self.samples_path, self.cfg.sample_every), (self.eval_path, self.cfg.eval_every)):
                if every:
                    trim_jsonl(path, resume_step)

    def after_step(self, step: int) -> dict[str, float]:
        """Write the samples and run the evaluation due at ``step``; the metrics to add to its row."""
        finished = getattr(self.trainer, "finished", None)  # the step's rollout (llm.completions.Finished)
        if self.cfg.sample_every and step % self.cfg.sample_every == 0 and self.main and finished is not None:
            self._write_samples(step, finished)
        if self.cfg.eval_every and step % self.cfg.eval_every == 0 and self.test:
            return self._evaluate(step)
        return {}

    def _write_samples(self, step: int, finished) -> None:
        prompts, n = self.trainer.prompts, min(self.cfg.sample_count, len(finished.texts))
        rows = [
            {"step": step, "prompt": prompts.text(ex), "completion": text, "reward": float(r)}
            for ex, text, r in zip(
                finished.examples[:n], finished.texts[:n], finished.rewards[:n].tolist(), strict=True
            )
        ]
        with open(self.samples_path, "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        if self.trainer.logger is not None:
            self.trainer.logger.text("samples", markdown_table(rows), step)

    def _evaluate(self, step: int) -> dict[str, float]:
        from .evaluate import evaluate_model

        t = self.trainer
        r = t.cfg.rollout
        res = evaluate_model(
            t.backend.sampler,
            t.tokenizer,
            self.test,
            k=self.cfg.eval_k,
            temperature=r.temperature,
            max_new_tokens=r.max_new_tokens,
            seed=self.cfg.seed + step,
            device=t.device,
            prompts=t.prompts,
            finisher=t.finisher,
            all_finished=t.backend.sampling_done,
        )
        t.model.train()
        if self.main:
            with open(self.eval_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": step, **res}) + "\n")
        return {"eval_avg_at_k": res["avg@k"], "eval_pass_at_k": res["pass@k"]}
