"""Per-step metrics: ``RUN_DIR/metrics.jsonl`` (one JSON object per step), TensorBoard, a progress bar.

The JSONL keys are flat (``entropy``, ``alpha``, ``reward_mean``, …); TensorBoard tags are
namespaced (``entropy/measured``, ``control/alpha``, …) by `TB_TAGS`. On resume the JSONL
is cut back to the checkpoint's step and TensorBoard purges the later events, so a resumed
run's logs equal an uninterrupted run's.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["MetricsLogger", "read_metrics"]

log = logging.getLogger(__name__)

TB_TAGS = {
    "entropy": "entropy/measured",
    "entropy_target": "entropy/target",
    "alpha": "control/alpha",
    "integral": "control/integral",
    "p_term": "control/p_term",
    "i_term": "control/i_term",
    "reward_mean": "reward/mean",
    "reward_std": "reward/std",
    "frac_zero_std_groups": "reward/frac_zero_std_groups",
    "clip_frac": "loss/clip_frac",
    "high_prob_frac": "loss/high_prob_frac",
    "pg_loss": "loss/policy",
    "entropic_term": "loss/entropic_term",
    "ppo_kl": "loss/ppo_kl",
    "grad_norm": "optim/grad_norm",
    "lr": "optim/lr",
    "response_len_mean": "rollout/response_len_mean",
    "tokens_per_s": "perf/tokens_per_s",
    "rollout_tokens_per_s": "perf/rollout_tokens_per_s",
    "train_tokens_per_s": "perf/train_tokens_per_s",
    "step_s": "perf/step_s",
}


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl file (or of ``RUN_DIR/metrics.jsonl`` when given a directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    rows = []
    with open(path) as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf
    return value


class MetricsLogger:
    """Writes metrics rows; ``resume_step`` drops rows after that step (they are re-run)."""

    def __init__(
        self,
        run_dir: str | Path,
        *,
        tensorboard: bool = True,
        resume_step: int | None = None,
        total_steps: int | None = None,
        progress: bool = False,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "metrics.jsonl"
        if resume_step is None:
            self.path.write_text("")
        else:
            self._truncate(resume_step)
        self._fh = open(self.path, "a")  # noqa: SIM115 - kept open for the run
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                purge = None if resume_step is None else resume_step + 1
                self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge)
            except ImportError:
                log.warning("tensorboard is not installed; logging to metrics.jsonl only")
        self._bar = None
        if progress and total_steps:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total_steps, initial=resume_step or 0, unit="step", dynamic_ncols=True)

    def _truncate(self, step: int) -> None:
        if not self.path.exists():
            self.path.write_text("")
            return
        keep = [row for row in read_metrics(self.path) if row.get("step", 0) <= step]
        tmp = self.path.with_name(f".metrics.jsonl.tmp-{os.getpid()}")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in keep))
        os.replace(tmp, self.path)

    def log(self, row: dict[str, Any]) -> None:
        step = row["step"]
        self._fh.write(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n")
        self._fh.flush()
        if self._tb is not None:
            for key, value in row.items():
                if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                    self._tb.add_scalar(TB_TAGS.get(key, f"misc/{key}"), value, step)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(
                H=f"{row.get('entropy', float('nan')):.3f}",
                target=f"{row.get('entropy_target', float('nan')):.3f}",
                alpha=f"{row.get('alpha', 0.0):+.2f}",
                reward=f"{row.get('reward_mean', float('nan')):.2f}",
                refresh=False,
            )

    def text(self, tag: str, text: str) -> None:
        if self._tb is not None:
            self._tb.add_text(tag, text, 0)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()
        if self._bar is not None:
            self._bar.close()
