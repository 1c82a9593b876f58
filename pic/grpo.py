"""Group-relative advantages (GRPO and Dr.GRPO), shared by the simulator and the trainer.

For a group of G rewards r_1..r_G of one prompt (or bandit context)::

    A_i = (r_i − mean(r)) / (std(r) + ε)      GRPO (scale_by_std=True)
    A_i =  r_i − mean(r)                      Dr.GRPO (scale_by_std=False)

``std`` is the unbiased sample standard deviation (divisor G − 1), the convention of
``torch.std`` and hence of verl's and TRL's GRPO; ε = 1e-6 as in verl. A group whose
rewards are all equal gets A = 0: no learning signal and nothing for the actuator.
"""

from __future__ import annotations

from ._array import namespace
from .validation import need

__all__ = ["group_advantages"]


def group_advantages(rewards, *, eps: float = 1e-6, scale_by_std: bool = True, unbiased: bool = True):
    """Advantages of ``rewards`` with shape (..., G), normalised over the last axis.

    Works on numpy arrays and torch tensors. G must be >= 2 when ``unbiased``.
    """
    g = rewards.shape[-1]
    need(g >= 2 or not (scale_by_std and unbiased), "group size", ">= 2 for the unbiased std", g)
    centred = rewards - rewards.mean(axis=-1, keepdims=True)
    if not scale_by_std:
        return centred
    ddof = 1 if unbiased else 0
    var = (centred * centred).sum(axis=-1, keepdims=True) / (g - ddof)
    xp = namespace(rewards)
    return centred / (xp.sqrt(var) + eps)
