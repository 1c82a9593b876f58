"""Property: the actuator lowers entropy for α > 0 and raises it for α < 0 (confident arms).

Pairs with proofs/high_prob.py (τ ≥ 0.5 makes the actuated token the argmax, Lemma B makes
its effect sign-definite). Checked on one exact GRPO update of random bandits, on- and
off-policy, relative to the same update with α = 0. The statement is first order in the
step: a large step that carries a near-uniform policy across its entropy maximum can
reverse it, so steps are kept moderate (lr ≤ 0.1) and the confident arm above 0.6.

Run: python -m pytest tests/property/test_high_prob.py
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import logits as logit_vectors

from sim.bandit import Bandit
from sim.plant import BanditPlant, PlantConfig


@settings(max_examples=200)
@given(
    z=logit_vectors(n_min=2, n_max=12, scale=8.0),
    seed=st.integers(0, 2**31 - 1),
    alpha=st.floats(0.05, 1.0),
    tau=st.floats(0.5, 0.99),
    lr=st.floats(0.001, 0.1),
    epochs=st.sampled_from([1, 2]),
)
def test_alpha_sign_sets_the_entropy_direction(z, seed, alpha, tau, lr, epochs):
    pi = np.exp(z - z.max())
    pi /= pi.sum()
    # first-order statement: keep the step from carrying π across the uniform point
    assume(pi.max() > max(tau, 0.6) and pi.max() < 1 - 1e-9)
    rng = np.random.default_rng(seed)
    bandit = Bandit(rng.uniform(0.05, 0.95, size=(1, len(z))))
    plant = BanditPlant(bandit, np.log(pi)[None], loops=3, config=PlantConfig(lr=lr, tau=tau, epochs=epochs))
    plant.step(np.array([0.0, alpha, -alpha]))
    h0, h_pos, h_neg = plant.entropy()
    assume(abs(h_pos - h_neg) > 1e-12)  # the confident arm had advantage mass to weigh
    assert h_pos < h0 < h_neg
