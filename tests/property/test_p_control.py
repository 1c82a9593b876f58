"""Property: P control settles at the offset e_ss = b/(k·kp) predicted by the linear plant.

Pairs with proofs/p_control.py. e_ss = b/(k·kp) = α*/kp does not shrink with the step size
(k and b both scale with η): P always leaves the offset. The predictions are not circular:

- on-policy (small steps), k and b are identified at the start state, before the loop runs;
- off-policy (4 PPO epochs, η = 1) the state moves while P settles, so k and b come from an
  open-loop step test at the settled state: ΔH(α = 0) and ΔH(±δ), *not* the final α.

Both tolerances are relative, so a PI loop (error → 0, ratio → 0) or a gain off by ×3 fails.
Cases have upward and downward drift (tests/bandit_cases.py).

Run: python -m pytest tests/property/test_p_control.py
"""

from __future__ import annotations

import numpy as np
import pytest
from bandit_cases import BANDIT_SETTINGS, cases, run_loops
from hypothesis import given
from hypothesis import strategies as st

from sim.plant import PlantConfig
from sim.rich_plant import RichPlant, identify

ON_SMALL_STEPS = PlantConfig(lr=0.1)
OFF = PlantConfig(lr=1.0, epochs=4)


@BANDIT_SETTINGS
@given(case=cases(ON_SMALL_STEPS), kp_n=st.floats(0.3, 0.9))
def test_p_on_policy_settles_at_the_offset_predicted_from_the_start_state(case, kp_n):
    kp = kp_n / case.k
    errors, _, _ = run_loops(case, kp, 0.0, steps=600)
    predicted = case.b / (case.k * kp)  # = α*/kp, nonzero by construction (|α*| ≥ 0.1)
    assert np.sign(predicted) == (1 if case.direction == "up" else -1)
    assert np.ptp(errors[-50:]) <= 0.05 * abs(predicted)  # settled
    assert errors[-50:].mean() == pytest.approx(predicted, rel=0.35)


@BANDIT_SETTINGS
@given(case=cases(OFF), kp_n=st.floats(0.1, 0.5))
def test_p_off_policy_offset_matches_an_open_loop_step_test(case, kp_n):
    kp = kp_n / case.k
    errors, logits, _ = run_loops(case, kp, 0.0, steps=800)
    k, b = (float(x[0]) for x in identify(RichPlant(case.bandit, logits[0], config=case.config)))
    assert k > 0
    assert errors[-50:].mean() == pytest.approx(b / (k * kp), rel=0.25)
    assert abs(errors[-50:].mean()) > 1e-2 * abs(b) / k / kp  # an offset is left
