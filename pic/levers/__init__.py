"""Entropy-control methods ("levers") behind one interface, for the simulator and the trainer.

`make_lever(name, **params)` builds one by its registered name; `LEVERS` lists them with their
default parameters. Each lever module registers its names with ``@register_lever(name, preset=...)``
(`pic.levers.registry`, the single list of names); the table below is documentation, checked
against the registry by a test. The interface is in `pic.levers.base`, the shared per-token loss in
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
aent                     AEnt clamped-entropy bonus, dead-band c      loss coefficient
clip_higher              DAPO clip-higher (ε_high 0.28)               ratio (off-policy only)
ce_gppo                  CE-GPPO gradient-preserving clip (β₁, β₂)    ratio (off-policy only)
flexec_{id,did,od,static} dynamic clip bounds (FlexEC strategies)     ratio (off-policy only)
clip_cov                 Clip-Cov: drop high-covariance tokens        gradient mask
kl_cov                   KL-Cov: |log r| on top-covariance tokens     ratio (off-policy only)
entropic                 EntroPIC PI (Kp 1, Ki 0.01)                  (1 ± α) token weights
entropic_p               EntroPIC P only (Ki 0)                       (1 ± α) token weights
entropic_auto            self-tuning EntroPIC (no gains given)        (1 ± α) token weights
nsr                      negative-sample reinforcement (λ 0)          PG token weights
w_reinforce              W-REINFORCE λ·L_PSR + L_NSR (λ 0.1)          PG token weights
entropy_advantage        A + min(α·H_t, |A|/κ) (α 0.4, κ 2)           PG token weights
top_entropy_tokens       PG on the top-20 % entropy tokens            gradient mask
bapo                     BAPO adaptive ratio bounds (ρ₀ ½)            ratio (off-policy only)
aepo                     AEPO bang-bang temperature of extra samples  extra rollout (A = 1)
======================== ============================================ ======================
"""

from __future__ import annotations

from . import grpo  # noqa: F401  (registers first: the registry lists levers in import order)
from .autotune import EntroPICAuto
from .base import ExtraSamples, Lever, LossModifiers, StepStats, TokenBatch, check_plant
from .bonus import SKYWORK, TRL, AdaptiveEntropy, AEnt, EntropyBonus, KLPenalty, SACTemperature
from .clipping import CEGPPO, FLEXEC_STRATEGIES, ClipHigher, FlexEC
from .covariance import ClipCov, KLCov
from .entropic import EntroPIC
from .grpo import NoControl
from .loss import PolicyDefaults, token_loss, token_loss_grad
from .registry import LEVERS, compared_levers, lever_parameters, make_lever, register_lever
from .shaping import EntropyAdvantage, SampleReinforce, TopEntropyTokens

from .bapo import BAPO  # isort: skip  (registers after the levers above: the registry lists in import order)
from .aepo import AEPO  # isort: skip

__all__ = [
    "AEPO",
    "BAPO",
    "CEGPPO",
    "FLEXEC_STRATEGIES",
    "LEVERS",
    "SKYWORK",
    "TRL",
    "AEnt",
    "AdaptiveEntropy",
    "ClipCov",
    "ClipHigher",
    "EntroPIC",
    "EntroPICAuto",
    "EntropyAdvantage",
    "EntropyBonus",
    "ExtraSamples",
    "FlexEC",
    "KLCov",
    "KLPenalty",
    "Lever",
    "LossModifiers",
    "NoControl",
    "PolicyDefaults",
    "SACTemperature",
    "SampleReinforce",
    "StepStats",
    "TokenBatch",
    "TopEntropyTokens",
    "check_plant",
    "compared_levers",
    "lever_parameters",
    "make_lever",
    "register_lever",
    "token_loss",
    "token_loss_grad",
]
