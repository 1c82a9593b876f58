"""Extra samples at another temperature on the sampled bandit (`sim.extra`, `Lever.extra_samples`).

Run: python -m pytest tests/sim/test_extra_samples.py
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from pic.grpo import group_advantages
from pic.levers import ExtraSamples, Lever, make_lever
from sim.bandit import standard_problem
from sim.extra import tempered
from sim.levers import lever_rollout, run_lever
from sim.plant import PlantConfig

ON = PlantConfig(group_size=8, lr=1.0, mode="sampled")
OFF = PlantConfig(group_size=8, lr=1.0, mode="sampled", epochs=2, minibatches=2)


class Extras(Lever):
    """Asks for extra samples at T on a fraction of the contexts; keeps all (``keep_all``) or none, A as drawn."""

    def __init__(self, temperature, fraction, keep_all, loops=1):
        super().__init__(loops)
        self.spec, self.keep_all = ExtraSamples(temperature, fraction), keep_all

    def extra_samples(self, stats):
        return self.spec

    def extra_advantages(self, adv, main_samples):
        return adv, adv * 0.0 + (1.0 if self.keep_all else 0.0)


@pytest.fixture(scope="module")
def problem():
    return standard_problem(seed=1, contexts=4, arms=20, start_entropy=1.5)


def test_tempered_policy_is_pi_to_the_one_over_t():
    rng = np.random.default_rng(0)
    z = np.log(rng.dirichlet(np.ones(7), size=(2, 3)))
    t = np.array([0.8, 1.2])
    for b in range(2):
        ref = np.exp(z[b]) ** (1 / t[b])
        assert_allclose(tempered(z, t)[b], ref / ref.sum(-1, keepdims=True), rtol=1e-12)
    assert_allclose(tempered(z, 1.0), np.exp(z), rtol=1e-12)


@pytest.mark.parametrize("cfg", [ON, OFF], ids=["on", "off"])
def test_dropped_extra_samples_leave_the_update_of_grpo(problem, cfg):
    """Extras drawn after the main rollout and all dropped: the step is GRPO's (same samples, same N)."""
    bandit, z0 = problem
    z = np.broadcast_to(z0 - np.log(np.exp(z0).sum(-1, keepdims=True)), (2, *z0.shape)).copy()
    out = []
    for lever in (make_lever("grpo", loops=2), Extras(1.2, 0.5, keep_all=False, loops=2)):
        rngs = [np.random.default_rng(s) for s in (5, 6)]
        perm = None if cfg is ON else np.random.default_rng(9)
        out.append(lever_rollout(z, np.exp(z), lever, bandit.success, cfg, rngs, step=0, total_steps=1, perm_rng=perm))
    assert_allclose(out[1][0], out[0][0], atol=1e-13)
    assert_allclose(out[1][2]["entropy"], out[0][2]["entropy"])  # the measurement is the main rollout's
    assert_allclose(out[1][2]["extra_samples"], [2 * 8] * 2)  # ⌈0.5 · 4⌉ contexts × G
    assert_allclose(out[0][2]["extra_samples"], [0, 0])


def test_kept_extra_samples_are_tokens_of_the_mean_loss(problem):
    """On policy, keeping every extra sample: Δz_s = η·S/N·Σ_i A_i(e_{a_i} − π_s) over main and extra samples."""
    bandit, z0 = problem
    s, k = bandit.success.shape
    g, temp = ON.group_size, 1.3
    z = (z0 - np.log(np.exp(z0).sum(-1, keepdims=True)))[None]
    pi = np.exp(z)
    z1, _, _ = lever_rollout(
        z, pi, Extras(temp, 0.5, keep_all=True), bandit.success, ON, [np.random.default_rng(3)], step=0, total_steps=1
    )
    # the same draws, written out: main (u, rewards), then extra (u, rewards) for the first 2 contexts at T
    rng = np.random.default_rng(3)

    def draw(probs, n_ctx):
        u = rng.random((n_ctx, g))
        arms = np.array(
            [
                [np.searchsorted(np.cumsum(probs[c]), u[c, j] * probs[c].sum(), side="right") for j in range(g)]
                for c in range(n_ctx)
            ]
        ).clip(max=k - 1)
        rewards = (rng.random((n_ctx, g)) < bandit.success[np.arange(n_ctx)[:, None], arms]) * 1.0
        return arms, group_advantages(rewards)

    arms, adv = draw(pi[0], s)
    p_t = pi[0][:2] ** (1 / temp)
    arms_x, adv_x = draw(p_t / p_t.sum(-1, keepdims=True), 2)
    n_total = s * g + 2 * g
    dz = np.zeros((s, k))
    for c in range(s):
        samples = [(arms[c, j], adv[c, j]) for j in range(g)]
        samples += [(arms_x[c, j], adv_x[c, j]) for j in range(g)] if c < 2 else []
        for a, A in samples:
            dz[c] += A * (np.eye(k)[a] - pi[0][c])
    ref = z[0] + ON.lr * s / n_total * dz
    ref = ref - np.log(np.exp(ref).sum(-1, keepdims=True))
    assert_allclose(z1[0], ref, atol=1e-12)


def test_aepo_runs_on_the_bandit_and_a_full_share_holds_entropy_up(problem):
    bandit, z0 = problem
    seeds = [0, 1, 2, 3]
    grpo = run_lever(bandit, z0, make_lever("grpo", loops=4), ON, steps=60, seeds=seeds)
    aepo = run_lever(bandit, z0, make_lever("aepo", loops=4), OFF, steps=15, seeds=seeds)
    assert_allclose(aepo.extra_samples, math.ceil(0.25 * 4) * 8)  # a quarter of the contexts × G, every step
    assert aepo.metrics["temperature"].shape == (15,)
    full = {"target": 3.0, "reinforce_share": 1.0, "fraction": 1.0}  # H < H* always: T = 1.2 on every prompt
    high = run_lever(bandit, z0, make_lever("aepo", loops=4, **full), ON, steps=60, seeds=seeds)
    assert np.all(high.metrics["temperature"] == 1.2) and high.metrics["extra_kept"].mean() > 5
    assert high.entropy[-10:].mean() > grpo.entropy[-10:].mean() + 0.3
