"""The controller of this process, and its checkpoint file.

verl's policy-loss signature carries no per-step state, so the registered loss reads α from one
process-global `EntroPICRuntime` (one verl worker process = one rank). The actor worker creates
it (`configure`) from ``actor_rollout_ref.entropic``; every rank holds an identical copy because
each feeds its controller the same all-reduced entropy.

Timing: the α applied during optimizer step t is `PIController.alpha` after the update at the end
of step t − 1 (step 1 applies α = 0).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from pic.autotune import SelfTuningPI
from pic.controller import PIController
from pic.io import atomic_write_text

from .config import PREFIX, EntroPICConfig

__all__ = ["STATE_FILE", "EntroPICRuntime", "configure", "get_runtime", "reset_runtime"]

log = logging.getLogger(__name__)

STATE_FILE = "entropic_state.json"
_FORMAT = 1

_RUNTIME: EntroPICRuntime | None = None


class EntroPICRuntime:
    """A validated config plus the `PIController` (or, with ``autotune``, `SelfTuningPI`) it builds."""

    def __init__(self, config: EntroPICConfig) -> None:
        self.config = config.validated()
        self.controller: PIController | SelfTuningPI = config.build_controller()
        self._warned = False

    @property
    def alpha(self) -> float:
        """α to apply in the current optimizer step (the controller's last output)."""
        return float(self.controller.alpha)

    def update(self, entropy: float) -> float:
        """One controller step from the global token-mean entropy H of the step just taken."""
        alpha = float(self.controller.update(entropy))
        if not self._warned and self.controller.target_reachable == 0.0:
            self._warned = True  # once: what to change when the target is out of the actuator's reach
            alpha_star = getattr(self.controller, "alpha_star", None)
            log.warning("EntroPIC: %s", self.controller.monitor.advice(self.controller.target_at(), alpha_star))
        return alpha

    # ------------------------------------------------------------ checkpoint file
    def state(self) -> dict[str, Any]:
        return {"format": _FORMAT, "controller": self.controller.state_dict(), "config": self.config.to_dict()}

    def save(self, directory: str) -> str:
        """Write ``directory/entropic_state.json`` atomically and durably (`pic.io`), so a crash leaves
        the old file or the new one, never half of one."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, STATE_FILE)
        atomic_write_text(path, json.dumps(self.state(), indent=1, sort_keys=True) + "\n")
        return path

    def load(self, directory: str) -> bool:
        """Restore the controller from ``directory/entropic_state.json``; False if the file is absent.

        Gains and target come from the current config (changing them on resume is allowed);
        the integral, last α, last error and step count come from the file.
        """
        path = os.path.join(directory, STATE_FILE)
        if not os.path.exists(path):
            return False
        with open(path) as f:
            state = json.load(f)
        if state.get("format") != _FORMAT or "controller" not in state:
            raise ValueError(f"{path} is not an EntroPIC state file of format {_FORMAT}")
        self.controller.load_state_dict(state["controller"])
        return True


def configure(config: EntroPICConfig | Any) -> EntroPICRuntime:
    """Create this process's runtime from an `EntroPICConfig` or a ``actor_rollout_ref.entropic`` mapping."""
    global _RUNTIME
    if not isinstance(config, EntroPICConfig):
        config = EntroPICConfig.from_mapping(config)
    _RUNTIME = EntroPICRuntime(config)
    return _RUNTIME


def get_runtime() -> EntroPICRuntime:
    """This process's runtime; raises if no EntroPIC worker configured one."""
    if _RUNTIME is None:
        raise RuntimeError(
            "loss_mode=entropic has no controller in this process: run with trainer.v1.trainer_mode=entropic_sync "
            f"and +{PREFIX}.target=<nats> (or call entropic_verl.configure(...) yourself)"
        )
    return _RUNTIME


def reset_runtime() -> None:
    """Forget this process's runtime (tests)."""
    global _RUNTIME
    _RUNTIME = None
