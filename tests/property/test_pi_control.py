"""Property: PI control converges to zero error on random bandits, on- and off-policy, with
upward and downward drift; gains outside the region diverge while nearby inside gains converge.

Pairs with proofs/pi_control.py (the sympy derivation of the Jury region). Gains are given
normalised, K = k·gain, with k identified at the start state. They are drawn inside the region
with a factor-3 margin for a *frozen* plant gain: `pic.robustness` shows that a gain that varies
from step to step within [k/3, 3k] can still make the loop diverge (a frozen-gain margin is not a
robustness guarantee); the bandit's k changes slowly, which is why these loops converge.

Run: python -m pytest tests/property/test_pi_control.py
(HYPOTHESIS_PROFILE=thorough for many more examples.)
"""

from __future__ import annotations

import numpy as np
from bandit_cases import BANDIT_SETTINGS, cases, run_loops
from hypothesis import given
from hypothesis import strategies as st

from pic.stability import is_stable
from sim.plant import PlantConfig
from sim.sweep import settling_metrics

ON = PlantConfig(lr=1.0)
OFF = PlantConfig(lr=1.0, epochs=4)


@BANDIT_SETTINGS
@given(
    case=st.sampled_from([ON, OFF]).flatmap(cases),
    kp_n=st.floats(0.2, 0.6),
    ki_frac=st.floats(0.05, 0.5),
)
def test_pi_converges_to_zero_error(case, kp_n, ki_frac):
    ki_n = ki_frac * kp_n
    for scale in (1 / 3, 3.0):  # stable for any *frozen* plant gain in [k/3, 3k]
        assert is_stable(kp_n, ki_n, scale)
    errors, _, _ = run_loops(case, kp_n / case.k, ki_n / case.k, steps=2000)
    assert np.abs(errors[-100:]).max() <= 3e-5


@BANDIT_SETTINGS
@given(
    case=st.sampled_from([ON, OFF]).flatmap(cases),
    kp_n=st.floats(2.6, 4.0),
    ki_n=st.floats(0.05, 0.4),  # PI: P settles at its offset, not at the target
)
def test_outside_the_region_diverges_and_a_nearby_inside_point_converges(case, kp_n, ki_n):
    """Two-sided: the same plant settles at the target at the inside point on the same ray of gains (scaled so
    2K_p − K_i = 1.6, a factor 2.5 from the boundary for the plant's k drifting off-policy), so a
    plant that cannot converge at all does not pass as 'diverges outside'."""
    assert not is_stable(kp_n, ki_n, 1.0)  # 2K_p − K_i > 4.8: outside by a wide margin
    scale = 1.6 / (2 * kp_n - ki_n)
    kp_in, ki_in = kp_n * scale, ki_n * scale
    assert is_stable(kp_in, ki_in, 1.0)
    gains = np.array([kp_n, kp_in]) / case.k, np.array([ki_n, ki_in]) / case.k
    # the start is at or just below the case's target: a step of +0.005 nats gives |e₀| ≥ 0.005
    errors, _, _ = run_loops(case, *gains, steps=800, target_step=0.005, output_limits=None, on_nonfinite="hold")
    metrics = settling_metrics(errors)
    reached = metrics["converged"] & (np.abs(metrics["final"]) < 1e-3)
    assert not reached[0]  # unsaturated α: the linear instability shows (saturation can mask it)
    assert reached[1]
