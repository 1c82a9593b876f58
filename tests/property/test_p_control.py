"""Property: P control converges on-policy; off-policy it settles at the predicted b/(k·kp).

Pairs with proofs/p_control.py. On-policy with small steps the per-rollout drift b is
small, so P lands within 1e-3 nats of the target; off-policy (4 PPO epochs per rollout)
the drift is larger and P settles at e_ss = b/(k·kp), with k and b the tangent model at the
state and α where the loop settled.

Run: python -m pytest tests/property/test_p_control.py
"""

from __future__ import annotations

import numpy as np
import pytest
from bandit_cases import BANDIT_SETTINGS, cases, run_loops
from hypothesis import assume, given
from hypothesis import strategies as st

from sim.identify import local_linearisation
from sim.plant import PlantConfig

ON_SMALL_STEPS = PlantConfig(lr=0.1)
OFF = PlantConfig(lr=1.0, epochs=4)


@BANDIT_SETTINGS
@given(case=cases(ON_SMALL_STEPS), kp_n=st.floats(0.6, 0.9))
def test_p_on_policy_converges(case, kp_n):
    errors, _, _ = run_loops(case, kp_n / case.k, 0.0, steps=600)
    assert np.abs(errors[-100:]).max() <= 1e-3


@BANDIT_SETTINGS
@given(case=cases(OFF), kp_n=st.floats(0.1, 0.5))
def test_p_off_policy_settles_at_b_over_k_kp(case, kp_n):
    kp = kp_n / case.k
    errors, logits, alpha = run_loops(case, kp, 0.0, steps=800)
    # the tangent model at the operating point the loop settled at (α = its final α)
    k, b = (float(x[0]) for x in local_linearisation(case.bandit, logits[0], case.config, alpha0=alpha[0]))
    assume(k > 0)  # the loop may have settled where no arm is above τ: nothing to predict with
    predicted = b / (k * kp)
    assume(abs(predicted) > 1e-4)  # a relative check needs an offset above the numerical floor
    assert errors[-50:].mean() == pytest.approx(predicted, rel=0.10)
