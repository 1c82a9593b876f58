"""The ``actor_rollout_ref.entropic`` config namespace, validated with one-line errors.

verl instantiates ``actor_rollout_ref.actor`` into a dataclass and rejects keys it does not know,
so the controller lives next to it, in its own namespace (added on the command line with ``+``)::

    +actor_rollout_ref.entropic.target=0.1 +actor_rollout_ref.entropic.kp=1.0 ...

Every error names the full key and the allowed range, e.g.
``actor_rollout_ref.entropic.tau must be in (0, 1), got 1.5``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from pic.autotune import SelfTuningPI
from pic.controller import PIController
from pic.params import EntroPICParams
from pic.setpoint import auto_target
from pic.validation import is_finite_number, need

__all__ = ["PREFIX", "EntroPICConfig", "check_actor_config"]

PREFIX = "actor_rollout_ref.entropic"
_NONFINITE = ("raise", "hold")
_DEFAULTS = EntroPICParams()
_SHARED = ("kp", "ki", "tau", "normalization", "anti_windup", "tracking_gain", "target")
"""The keys that are `pic.params.EntroPICParams` fields: their defaults, ranges and errors come from there."""


@dataclass(frozen=True)
class EntroPICConfig:
    """EntroPIC settings. Defaults, ranges and errors of the shared keys are `pic.params.EntroPICParams`'s
    (official: Kp 1, Ki 0.01, τ 0.95, α ∈ [−1, 1]); ``alpha_min``/``alpha_max``, ``integral_limit``
    (None = no bound) and ``on_nonfinite`` are verl's own keys.

    target : entropy setpoint H* in nats (required, >= 0), or a `pic.setpoint` schedule table;
        e = H − H*, α > 0 lowers entropy.
    kp, ki : PI gains (>= 0). ki = 0 is P control.
    tau : high-probability threshold; the term acts on tokens with current π > τ.
    normalization : "all_tokens" (paper: D = N, weights exactly 1 ± α) or "high_prob_tokens"
        (official: D = N_h per micro-batch, effective weights 1 ± α·N/N_h).
    alpha_min, alpha_max : output clip of α.
    anti_windup, integral_limit, tracking_gain, on_nonfinite : see `pic.controller.PIController`.
    autotune : true builds `pic.autotune.SelfTuningPI` (kp, ki, anti_windup, integral_limit, tracking_gain and
        on_nonfinite are then unused); it identifies the plant with the plug-in's one step of delay. Its
        target may also be "initial" or {relative: f, window: W} (`pic.setpoint.AutoTarget`).
    settling_steps : the self-tuner's requested settling time in steps (> 1).
    """

    target: Any
    kp: float = _DEFAULTS.kp
    ki: float = _DEFAULTS.ki
    tau: float = _DEFAULTS.tau
    normalization: str = _DEFAULTS.normalization
    alpha_min: float = -_DEFAULTS.alpha_limit
    alpha_max: float = _DEFAULTS.alpha_limit
    anti_windup: str = _DEFAULTS.anti_windup
    integral_limit: float | None = None
    tracking_gain: float = _DEFAULTS.tracking_gain
    on_nonfinite: str = "raise"
    autotune: bool = False
    settling_steps: float = 20.0

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None, prefix: str = PREFIX) -> EntroPICConfig:
        """Build from a dict or OmegaConf node; unknown keys and bad values raise ``ValueError``."""
        if mapping is None:
            raise ValueError(f"{prefix} is missing: add at least +{prefix}.target=<nats>")
        try:  # an OmegaConf DictConfig: resolve interpolations into plain values
            from omegaconf import DictConfig, OmegaConf

            if isinstance(mapping, DictConfig):
                mapping = OmegaConf.to_container(mapping, resolve=True)
        except ImportError:  # pragma: no cover - omegaconf ships with verl
            pass
        if not isinstance(mapping, Mapping):
            raise ValueError(f"{prefix} must be a mapping of keys, got {type(mapping).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(mapping) - set(known))
        if unknown:
            raise ValueError(f"{prefix} has unknown keys {unknown}; known keys: {known}")
        if mapping.get("target") is None:
            raise ValueError(f"{prefix}.target is required: the entropy setpoint in nats (>= 0)")
        return cls(**dict(mapping)).validated(prefix)

    def params(self) -> EntroPICParams:
        """The shared fields as `pic.params.EntroPICParams` (α limits and the integral bound are verl's own)."""
        return EntroPICParams(**{key: getattr(self, key) for key in _SHARED})

    def validated(self, prefix: str = PREFIX) -> EntroPICConfig:
        """Return self after checking every field; raise ``ValueError`` naming the first bad key."""
        p = f"{prefix}."
        need(isinstance(self.autotune, bool), f"{p}autotune", "true or false", self.autotune)
        auto = self.autotune and auto_target(self.target) is not None
        self.params().check(p, fields=tuple(k for k in _SHARED if not (auto and k == "target")))
        need(
            is_finite_number(self.settling_steps) and self.settling_steps > 1,
            f"{p}settling_steps",
            "> 1 (steps)",
            self.settling_steps,
        )
        for key in ("alpha_min", "alpha_max"):
            need(is_finite_number(getattr(self, key)), f"{p}{key}", "a finite number", getattr(self, key))
        if not self.alpha_min < self.alpha_max:
            raise ValueError(f"{p}alpha_min must be < alpha_max, got {self.alpha_min!r} >= {self.alpha_max!r}")
        limit = self.integral_limit
        need(limit is None or (is_finite_number(limit) and limit > 0), f"{p}integral_limit", "> 0 or null", limit)
        need(self.on_nonfinite in _NONFINITE, f"{p}on_nonfinite", f"one of {_NONFINITE}", self.on_nonfinite)
        return self

    def build_controller(self) -> PIController | SelfTuningPI:
        """The project's `PIController` with these settings (the one control law; no copy here), or with
        ``autotune`` its `SelfTuningPI` (delay 1: the α of step t comes from step t − 1's entropy)."""
        if self.autotune:
            auto = auto_target(self.target)
            return SelfTuningPI(
                auto or (self.target if is_finite_number(self.target) else self.params().schedule()),
                settling_steps=self.settling_steps,
                output_limits=(self.alpha_min, self.alpha_max),
                delay=1,
            )
        return PIController(
            kp=self.kp,
            ki=self.ki,
            target=self.target if is_finite_number(self.target) else self.params().schedule(),
            output_limits=(self.alpha_min, self.alpha_max),
            anti_windup=self.anti_windup,
            integral_limit=self.integral_limit,
            tracking_gain=self.tracking_gain,
            on_nonfinite=self.on_nonfinite,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_actor_config(actor: Mapping[str, Any], prefix: str = "actor_rollout_ref.actor") -> None:
    """The verl actor settings EntroPIC relies on; raise ``ValueError`` naming the key to change."""

    def get(node: Any, key: str, default: Any = None) -> Any:
        return node.get(key, default) if node is not None else default

    loss_mode = get(get(actor, "policy_loss"), "loss_mode", "vanilla")
    if loss_mode != "entropic":
        raise ValueError(
            f"{prefix}.policy_loss.loss_mode must be 'entropic' with trainer.v1.trainer_mode=entropic_sync, "
            f"got {loss_mode!r}"
        )
    if not get(actor, "calculate_entropy", False) and not get(actor, "entropy_coeff", 0):
        raise ValueError(
            f"{prefix}.calculate_entropy must be True for EntroPIC (the controller reads the training entropy)"
        )
    agg = get(actor, "loss_agg_mode", "token-mean")
    if agg != "token-mean":
        raise ValueError(f"{prefix}.loss_agg_mode must be 'token-mean' for loss_mode=entropic, got {agg!r}")
    if get(actor, "strategy") == "megatron":
        pp = get(get(actor, "megatron"), "pipeline_model_parallel_size", 1) or 1
        if pp != 1:
            raise ValueError(
                f"{prefix}.megatron.pipeline_model_parallel_size must be 1 for EntroPIC "
                f"(non-last pipeline stages compute no entropy), got {pp}"
            )
