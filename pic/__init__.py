"""EntroPIC core: the PI entropy controller, the actuator rule, setpoints and loop analysis.

numpy/scipy only — no torch. The simulator (`sim`), the proofs (`proofs`) and the trainer
(`llm`) all import their controller and actuator from here.
"""

from . import actuator, autotune, setpoint, stability, tuning
from .actuator import effective_weights, entropic_adjustment, entropic_weights, high_prob_mask
from .autotune import SelfTuningPI
from .controller import ANTI_WINDUP_MODES, PIController, pi_step
from .plant import LinearPlant, LoopHistory, run_loop
from .setpoint import schedule_from_dict
from .stability import is_stable, spectral_radius, stable_region, steady_state_error

__all__ = [
    "ANTI_WINDUP_MODES",
    "LinearPlant",
    "LoopHistory",
    "PIController",
    "SelfTuningPI",
    "actuator",
    "autotune",
    "effective_weights",
    "entropic_adjustment",
    "entropic_weights",
    "high_prob_mask",
    "is_stable",
    "pi_step",
    "run_loop",
    "schedule_from_dict",
    "setpoint",
    "spectral_radius",
    "stability",
    "stable_region",
    "steady_state_error",
    "tuning",
]

__version__ = "0.1.0"
