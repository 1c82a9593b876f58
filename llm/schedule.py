"""Learning-rate schedules shared by RL (`llm.trainer`) and SFT (`llm.sft`).

Kept here rather than taken from ``transformers.get_scheduler``: its warmup is t/W (a zero lr
at step 0, where ours is (t + 1)/W), its linear decay has no floor and its cosine rises again
after the last step, so the values would differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["lr_lambda", "schedule_horizon"]


def lr_lambda(schedule: str, warmup: int, total: int, min_ratio: float) -> Callable[[int], float]:
    """Multiplier of the base lr at step t (0-based) for `torch.optim.lr_scheduler.LambdaLR`.

    Warmup (t + 1)/W for t < W; then, with progress p = min((t − W)/(T − W), 1):
    constant 1, linear m + (1 − m)(1 − p) or cosine m + (1 − m)·(1 + cos πp)/2 (m = ``min_ratio``).
    """

    def f(t: int) -> float:
        if warmup and t < warmup:
            return (t + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(max(t - warmup, 0) / max(total - warmup, 1), 1.0)
        if schedule == "linear":
            return min_ratio + (1 - min_ratio) * (1 - progress)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def schedule_horizon(steps: int, resumed: dict | None) -> int:
    """T of the step schedules (lr, and levers that read ``StepStats.total_steps``): ``train.steps`` of a new
    run; a resumed run keeps the T it was started with, so ``--resume --steps N`` extends a run past its plan
    (the schedules stay at their final values) and never re-times the steps already trained."""
    if resumed is None:
        return steps
    return int(resumed.get("horizon", resumed["config"]["train"]["steps"]))
