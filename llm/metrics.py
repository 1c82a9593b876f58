"""Per-step metrics: one table (`METRICS`), ``RUN_DIR/metrics.jsonl``, TensorBoard, a progress bar.

Every metric of a step row is declared once in `METRICS`: its JSONL key (flat: ``entropy``,
``reward_mean``, …), its TensorBoard tag (namespaced: ``entropy/measured``, …) and how it is
aggregated over micro-batches and ranks (`REDUCTIONS`): the trainer collects named sums, the
backend all-reduces them, and `reduce_sums` divides each by its count. What the entropy-control
lever reports (`pic.levers.Lever.metrics`, e.g. EntroPIC's ``alpha``, ``integral``) is logged
under its own keys with the TensorBoard tag prefix `LEVER_TAG` (``lever/alpha``); keys in neither
go under ``misc/``. On resume the JSONL is cut back to the checkpoint's step (an atomic rewrite)
and TensorBoard purges the later events, so a resumed run's logs equal an uninterrupted run's.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pic.io import atomic_write_text

from .checkpoint import repair_jsonl

__all__ = [
    "LEVER_TAG",
    "METRICS",
    "REDUCTIONS",
    "LeverTrace",
    "Metric",
    "MetricsLogger",
    "RunStopped",
    "check_skip_streak",
    "perf_metrics",
    "read_metrics",
    "reduce_sums",
    "rollout_sums",
    "tb_tag",
]

log = logging.getLogger(__name__)

LEVER_TAG = "lever/"
"""TensorBoard tag prefix of the lever's own metrics (whatever `Lever.metrics()` returns)."""

REDUCTIONS: dict[str, str | None] = {
    "token_mean": "tokens",  # Σ value·mask over the rollout's tokens (all ranks) / Σ mask
    "train_token_mean": "train_tokens",  # Σ over the tokens of every update (micro-batches, ranks) / Σ tokens
    "sequence_mean": "sequences",  # Σ over sequences (all ranks) / number of sequences
    "sample_mean": "samples",  # Σ over rewards (all ranks) / number of rewards
    "sample_std": "samples",  # sqrt((Σ x² − n·mean²) / (n − 1)) from Σ x, Σ x² and n
    "group_mean": "groups",  # Σ over GRPO groups (all ranks) / number of groups
    "update_mean": "updates",  # Σ over micro-batches and ranks / number of optimizer steps
    "sum": None,  # Σ over ranks (a count: e.g. completions a verifier had to kill)
    "value": None,  # one value, already identical on every rank
}
"""How a metric is aggregated → the name of the count its sum is divided by."""


@dataclass(frozen=True)
class Metric:
    key: str
    tag: str
    reduce: str = "value"
    source: str = ""
    """Name of the collected sum (default: ``key``)."""
    update: bool = False
    """Measured by the policy update: NaN on a skipped step."""
    optional: bool = False
    """Measured only where its feature is on (KL to a reference, evaluation): absent from the other rows."""


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("entropy", "entropy/measured", "token_mean"),
        Metric("entropy_target", "entropy/target"),
        Metric("entropy_nll", "entropy/nll", "token_mean", "neg_logp"),
        Metric("reward_mean", "reward/mean", "sample_mean", "reward"),
        Metric("reward_std", "reward/std", "sample_std", "reward"),
        Metric("frac_zero_std_groups", "reward/frac_zero_std_groups", "group_mean", "flat_groups"),
        Metric("response_len_mean", "rollout/response_len_mean", "sequence_mean", "tokens"),
        Metric("truncated_frac", "rollout/truncated_frac", "sequence_mean", "truncated"),
        Metric("extra_samples", "rollout/extra_samples"),  # a lever's extra rollout (llm.extra_samples): sampled
        Metric("extra_trained", "rollout/extra_trained"),  # … and appended to the step's batch
        Metric("verifier_timeouts", "reward/verifier_timeouts", "sum"),
        Metric("verifier_crashes", "reward/verifier_crashes", "sum"),
        Metric("verifier_errors", "reward/verifier_errors", "sum"),
        Metric("pg_loss", "loss/policy", "train_token_mean", update=True),
        Metric("clip_frac", "loss/clip_frac", "train_token_mean", update=True),
        Metric("high_prob_frac", "loss/high_prob_frac", "train_token_mean", update=True),
        Metric("ppo_kl", "loss/ppo_kl", "train_token_mean", update=True),
        Metric("entropic_term", "loss/entropic_term", "update_mean", update=True),
        Metric("kl_ref", "loss/kl_ref", "train_token_mean", update=True, optional=True),
        Metric("grad_norm", "optim/grad_norm", "update_mean", update=True),
        Metric("lr", "optim/lr"),
        Metric("rollout_s", "perf/rollout_s"),
        Metric("train_s", "perf/train_s"),
        Metric("step_s", "perf/step_s"),
        Metric("tokens_per_s", "perf/tokens_per_s"),
        Metric("rollout_tokens_per_s", "perf/rollout_tokens_per_s"),
        Metric("train_tokens_per_s", "perf/train_tokens_per_s"),
        Metric("skipped", "train/skipped"),
        Metric("eval_avg_at_k", "eval/avg@k", optional=True),
        Metric("eval_pass_at_k", "eval/pass@k", optional=True),
    )
}
"""Every metric of a step row but the lever's: key → (TensorBoard tag, aggregation)."""


def reduce_sums(sums: dict[str, float], *, update: bool) -> dict[str, float]:
    """The step (``update=False``) or policy-update (``update=True``) metrics from global named sums.

    A metric whose sum is missing (a skipped update) is NaN; an `optional` one whose sum is missing is left out.
    """
    out = {}
    for m in METRICS.values():
        if m.update != update or m.reduce == "value":
            continue
        src, count = m.source or m.key, REDUCTIONS[m.reduce]
        if m.optional and src not in sums:
            continue
        if src not in sums:
            out[m.key] = math.nan
        elif m.reduce == "sum":
            out[m.key] = sums[src]
        elif m.reduce == "sample_std":
            n, mean = sums[count], sums[src] / sums[count]
            out[m.key] = math.sqrt(max(sums[src + "_sq"] - n * mean**2, 0.0) / max(n - 1, 1))
        else:
            out[m.key] = sums[src] / max(sums[count], 1.0)
    return out


def rollout_sums(entropy, logprobs, mask, rewards, scores=None, truncated=None) -> dict[str, float]:
    """This rank's sums behind the step statistics (to be all-reduced, then `reduce_sums`).

    ``entropy``, ``logprobs``, ``mask``: (B, T) per response token; ``rewards``: (P, G), one row per group;
    ``scores``: the `llm.reward.Scores` of the rollout (its verifier fallback counts), if any;
    ``truncated``: (B,) bool, the responses that hit max_new_tokens without a stop (default: ``scores.truncated``).
    """
    mask = mask.to(entropy.dtype)
    return {
        "tokens": float(mask.sum()),
        "entropy": float((entropy * mask).sum()),
        "neg_logp": -float((logprobs * mask).sum()),
        "sequences": float(mask.shape[0]),
        "reward": float(rewards.sum()),
        "reward_sq": float((rewards * rewards).sum()),
        "samples": float(rewards.numel()),
        "flat_groups": float((rewards.max(-1).values == rewards.min(-1).values).sum()),
        "groups": float(rewards.shape[0]),
        "verifier_timeouts": float(scores.timeouts if scores is not None else 0),
        "verifier_crashes": float(scores.crashes if scores is not None else 0),
        "verifier_errors": float(getattr(scores, "errors", 0) if scores is not None else 0),
        "truncated": float(truncated.sum()) if truncated is not None else float(getattr(scores, "truncated", 0)),
    }


def perf_metrics(tokens: float, trained_tokens: float, t_roll: float, t_train: float, step_s: float) -> dict:
    """The step's timings (seconds) and throughputs (tokens/s) for its metrics row."""
    row = {"rollout_s": t_roll, "train_s": t_train, "step_s": step_s, "tokens_per_s": tokens / step_s}
    row["rollout_tokens_per_s"] = tokens / max(t_roll, 1e-9)
    row["train_tokens_per_s"] = trained_tokens / max(t_train, 1e-9)
    return row


class RunStopped(ValueError):
    """The run cannot go on (one line naming the setting that stopped it)."""


def check_skip_streak(rows: list[dict[str, Any]], limit: int) -> None:
    """Raise `RunStopped` when the last ``limit + 1`` rows are all skipped steps (non-finite loss, gradient, …)."""
    streak = next((i for i, row in enumerate(reversed(rows)) if not row.get("skipped")), len(rows))
    if streak > limit:
        raise RunStopped(
            f"{streak} steps in a row were skipped (non-finite entropy, loss or gradient), more than "
            f"train.max_skipped_steps = {limit}: lower optim.lr or check the data and the reward"
        )


def tb_tag(key: str) -> str:
    """The TensorBoard tag of a row key: the table's, else `LEVER_TAG` + key (a lever metric)."""
    return METRICS[key].tag if key in METRICS else LEVER_TAG + key


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
            atomic_write_text(self.path, "")
        else:
            repair_jsonl(self.path)  # a torn last row (crash, full disk) is cut back, with a warning
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
        keep = [row for row in read_metrics(self.path) if row.get("step", 0) <= step] if self.path.exists() else []
        atomic_write_text(self.path, "".join(json.dumps(row) + "\n" for row in keep))

    def log(self, row: dict[str, Any]) -> None:
        step = row["step"]
        self._fh.write(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n")
        self._fh.flush()
        if self._tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, int | float) and math.isfinite(value):
                    self._tb.add_scalar(tb_tag(key), float(value), step)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(
                H=f"{row.get('entropy', float('nan')):.3f}",
                target=f"{row.get('entropy_target', float('nan')):.3f}",
                reward=f"{row.get('reward_mean', float('nan')):.2f}",
                refresh=False,
            )

    def text(self, tag: str, text: str, step: int = 0) -> None:
        if self._tb is not None:
            self._tb.add_text(tag, text, step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()
        if self._bar is not None:
            self._bar.close()


class LeverTrace:
    """``RUN_DIR/lever_rank{r}.jsonl``: the lever's metrics and state after every step, one file per rank.

    Written by every rank of a distributed run, so a test (or a user) can check that all ranks hold
    the identical lever state. On resume the rows after ``resume_step`` are dropped (an atomic rewrite).
    """

    def __init__(self, path: str | Path, resume_step: int | None) -> None:
        path = Path(path)
        kept = [] if resume_step is None or not path.exists() else path.read_text().splitlines()
        kept = [line for line in kept if json.loads(line)["step"] <= (resume_step or 0)]
        atomic_write_text(path, "".join(line + "\n" for line in kept))
        self._fh = open(path, "a")  # noqa: SIM115 - kept open for the run

    def write(self, step: int, metrics: dict[str, float], state: dict[str, Any]) -> None:
        self._fh.write(json.dumps({"step": step, **metrics, "lever": state}) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
