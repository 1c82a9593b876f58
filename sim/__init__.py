"""Softmax-bandit plants for the EntroPIC loop: simulation, identification, gain sweeps.

The plants are driven by `pic.PIController` and `pic.actuator` unchanged; see
`sim.plant` for the update rule and `sim.sweep` for the stability experiment.
"""

from .bandit import Bandit, logits_with_entropy, standard_problem
from .identify import PlantMap, local_linearisation, map_along_trajectory
from .plant import BanditPlant, PlantConfig
from .sweep import OperatingPoint, SweepResult, find_operating_point, settling_metrics, sweep_gains

__all__ = [
    "Bandit",
    "BanditPlant",
    "OperatingPoint",
    "PlantConfig",
    "PlantMap",
    "SweepResult",
    "find_operating_point",
    "local_linearisation",
    "logits_with_entropy",
    "map_along_trajectory",
    "settling_metrics",
    "standard_problem",
    "sweep_gains",
]
