"""Entropy-control methods ("levers") behind one interface, for the simulator and the trainer.

`make_lever(name, **params)` builds one by its registered name; `LEVERS` lists them with their
default parameters. The interface is in `pic.levers.base`, the shared per-token loss in
`pic.levers.loss`. Every lever is numpy-only and runs unchanged on torch tensors.

======================== ============================================ ======================
name                     method                                       acts through
======================== ============================================ ======================
grpo                     no entropy control                           —
entropy_bonus            constant entropy bonus                       loss coefficient
kl_penalty               KL(π‖π_ref) penalty (k3)                      loss coefficient
adaptive_entropy_skywork Skywork-OR1 adaptive coefficient             loss coefficient
adaptive_entropy_trl     TRL ``use_adaptive_entropy``                 loss coefficient
sac_temperature          SAC automatic temperature (Adam on log c)    loss coefficient
clip_higher              DAPO clip-higher (ε_high 0.28)               ratio (off-policy only)
ce_gppo                  CE-GPPO gradient-preserving clip (β₁, β₂)    ratio (off-policy only)
flexec_{id,did,od,static} dynamic clip bounds (seed 002)              ratio (off-policy only)
clip_cov                 Clip-Cov: drop high-covariance tokens        gradient mask
kl_cov                   KL-Cov: |log r| on top-covariance tokens     ratio (off-policy only)
entropic                 EntroPIC PI (Kp 1, Ki 0.01)                  (1 ± α) token weights
entropic_p               EntroPIC P only (Ki 0)                       (1 ± α) token weights
======================== ============================================ ======================
"""

from __future__ import annotations

import inspect
from typing import Any

from .base import Lever, LossModifiers, StepStats, TokenBatch, check_plant
from .bonus import SKYWORK, TRL, AdaptiveEntropy, EntropyBonus, KLPenalty, SACTemperature
from .clipping import CEGPPO, FLEXEC_STRATEGIES, ClipHigher, FlexEC
from .covariance import ClipCov, KLCov
from .entropic import EntroPIC
from .loss import PolicyDefaults, token_loss, token_loss_grad

__all__ = [
    "CEGPPO",
    "LEVERS",
    "AdaptiveEntropy",
    "ClipCov",
    "ClipHigher",
    "EntroPIC",
    "EntropyBonus",
    "FlexEC",
    "KLCov",
    "KLPenalty",
    "Lever",
    "LossModifiers",
    "NoControl",
    "PolicyDefaults",
    "SACTemperature",
    "StepStats",
    "TokenBatch",
    "check_plant",
    "lever_parameters",
    "make_lever",
    "token_loss",
    "token_loss_grad",
]


class NoControl(Lever):
    """Plain GRPO: no entropy control (every modifier at its default)."""

    name = "grpo"


LEVERS: dict[str, tuple[type[Lever], dict[str, Any]]] = {
    "grpo": (NoControl, {}),
    "entropy_bonus": (EntropyBonus, {}),
    "kl_penalty": (KLPenalty, {}),
    "adaptive_entropy_skywork": (AdaptiveEntropy, SKYWORK),
    "adaptive_entropy_trl": (AdaptiveEntropy, TRL),
    "sac_temperature": (SACTemperature, {}),
    "clip_higher": (ClipHigher, {}),
    "ce_gppo": (CEGPPO, {}),
    **{f"flexec_{s}": (FlexEC, {"strategy": s}) for s in FLEXEC_STRATEGIES},
    "clip_cov": (ClipCov, {}),
    "kl_cov": (KLCov, {}),
    "entropic": (EntroPIC, {}),
    "entropic_p": (EntroPIC, {"ki": 0.0}),
}
"""Registered name → (class, preset parameters)."""


def lever_parameters(name: str) -> dict[str, Any]:
    """The parameters of lever ``name`` with their effective defaults."""
    cls, preset = _lookup(name)
    sig = inspect.signature(cls.__init__)
    params = {
        p.name: p.default for p in list(sig.parameters.values())[1:] if p.name != "loops" and p.kind != p.VAR_KEYWORD
    }
    return {**params, **preset}


def _lookup(name: str) -> tuple[type[Lever], dict[str, Any]]:
    if name not in LEVERS:
        raise ValueError(f"unknown lever {name!r}; choose from {sorted(LEVERS)}")
    return LEVERS[name]


def make_lever(name: str, *, loops: int = 1, **params: Any) -> Lever:
    """Build lever ``name`` with its preset, overridden by ``params`` (unknown names are refused)."""
    cls, preset = _lookup(name)
    allowed = lever_parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"lever {name!r} has no parameter(s) {unknown}; parameters: {sorted(allowed)}")
    lever = cls.__new__(cls)
    lever.name = name  # set first, so a bad parameter is reported as `<name>.<field>`
    lever.__init__(**{**preset, **params}, loops=loops)
    return lever
