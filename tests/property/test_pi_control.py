"""Property: PI control converges on random bandits, on- and off-policy; bad gains do not.

Pairs with proofs/pi_control.py (the sympy derivation of the Jury region). Gains are drawn
inside the region with a factor-3 margin in the plant gain (k drifts while the policy
reorganises) and given normalised, K = k·gain, with k identified where the entropy first
reached the target.

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
    for scale in (1 / 3, 3.0):  # stable for any plant gain in [k/3, 3k]
        assert is_stable(kp_n, ki_n, scale)
    errors, _, _ = run_loops(case, kp_n / case.k, ki_n / case.k, steps=1500)
    assert np.abs(errors[-100:]).max() <= 1e-3


@BANDIT_SETTINGS
@given(
    case=st.sampled_from([ON, OFF]).flatmap(cases),
    kp_n=st.floats(2.6, 4.0),
    ki_n=st.floats(0.0, 0.4),
)
def test_gains_well_outside_the_region_do_not_converge(case, kp_n, ki_n):
    assert not is_stable(kp_n, ki_n, 1.0)  # 2K_p − K_i > 4.8: outside by a wide margin
    errors, _, _ = run_loops(case, kp_n / case.k, ki_n / case.k, steps=800)
    assert not settling_metrics(errors)["converged"][0]
    assert np.ptp(errors[-100:]) > 1e-6  # still swinging
