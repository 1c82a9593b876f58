"""Bandit plant: exact mode against brute-force enumeration, sampled mode against exact mode.

Run: python -m pytest tests/sim/test_plant.py
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose

from pic.grpo import group_advantages
from sim.bandit import Bandit, entropy_of_logits, logits_with_entropy
from sim.plant import (
    BanditPlant,
    BernsteinMoments,
    PlantConfig,
    TabulatedMoments,
    advantage_table,
    bernstein,
    expected_logit_step,
)


def enumerated_step(pi, pi_old, p, alpha, cfg: PlantConfig):
    """E[Δz] by summing over every group of G arms and every reward pattern (K^G·2^G terms).

    Independent of the plant code: samples from π_old, GRPO advantages of each group,
    per-sample PPO clip mask, EntroPIC weight, token-mean over the group.
    """
    k, g = len(pi), cfg.group_size
    out = np.zeros(k)
    for arms in itertools.product(range(k), repeat=g):
        p_arms = np.prod(pi_old[list(arms)])
        for rewards in itertools.product((0.0, 1.0), repeat=g):
            prob = p_arms * np.prod([p[a] if r else 1 - p[a] for a, r in zip(arms, rewards, strict=True)])
            adv = group_advantages(np.array(rewards), eps=cfg.adv_eps)
            for a, adv_i in zip(arms, adv, strict=True):
                ratio = pi[a] / pi_old[a]
                if adv_i > 0:
                    clip = 1.0 if ratio <= 1 + cfg.eps_high else 0.0
                else:
                    clip = 1.0 if (1 - cfg.eps_low) <= ratio <= (cfg.dual_clip or np.inf) else 0.0
                w = 1 + alpha * np.sign(adv_i) * (pi[a] > cfg.tau)
                grad = -pi.copy()
                grad[a] += 1
                out += prob * cfg.lr / g * ratio * adv_i * (clip + w - 1) * grad
    return out


def _exact(pi, pi_old, p, alpha, cfg):
    moments = BernsteinMoments(advantage_table(cfg.group_size, eps=cfg.adv_eps))
    mu = (pi_old * p).sum()
    p1, n0 = moments(mu)
    return expected_logit_step(
        pi[None, None],
        np.log(pi / pi_old)[None, None],
        pi_old[None, None],
        (p * p1)[None, None],
        ((1 - p) * n0)[None, None],
        np.full((1, 1, 1), alpha),
        cfg,
    )[0, 0]


@pytest.mark.parametrize("alpha", [0.0, 0.6, -0.8])
def test_on_policy_exact_step_equals_enumeration(alpha):
    rng = np.random.default_rng(0)
    pi = np.array([0.96, 0.03, 0.01])
    p = np.array([0.7, 0.4, 0.2])
    cfg = PlantConfig(group_size=3, lr=0.7, tau=0.9)
    assert_allclose(_exact(pi, pi, p, alpha, cfg), enumerated_step(pi, pi, p, alpha, cfg), atol=1e-12)
    pi = rng.dirichlet(np.ones(4))
    p = rng.uniform(0.1, 0.9, 4)
    cfg = PlantConfig(group_size=4, lr=0.3, tau=0.5)
    assert_allclose(_exact(pi, pi, p, alpha, cfg), enumerated_step(pi, pi, p, alpha, cfg), atol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.5, -0.5])
def test_off_policy_exact_step_equals_enumeration(alpha):
    # current policy moved away from the behaviour policy so that every clip branch fires
    pi_old = np.array([0.55, 0.25, 0.12, 0.08])
    pi = np.array([0.93, 0.04, 0.022, 0.008])  # ratios 1.69, 0.16, 0.18, 0.1
    p = np.array([0.6, 0.5, 0.3, 0.1])
    for dual in (3.0, 1.5, None):
        cfg = PlantConfig(group_size=3, lr=0.5, tau=0.9, epochs=2, eps_high=0.28, dual_clip=dual)
        assert_allclose(_exact(pi, pi_old, p, alpha, cfg), enumerated_step(pi, pi_old, p, alpha, cfg), atol=1e-12)


def test_off_policy_with_ratio_one_equals_on_policy():
    pi = np.array([0.97, 0.02, 0.01])
    p = np.array([0.7, 0.4, 0.2])
    on = PlantConfig(group_size=4, lr=0.4)
    off = dataclasses.replace(on, epochs=3)
    assert_allclose(_exact(pi, pi, p, 0.3, on), _exact(pi, pi, p, 0.3, off), atol=1e-15)


def test_advantage_table_matches_group_advantages():
    tab = advantage_table(5)
    # a success with 2 other successes among the 4 others: rewards (1, 1, 1, 0, 0)
    assert tab[1, 2] == pytest.approx(group_advantages(np.array([1.0, 1, 1, 0, 0]))[0])
    assert tab[0, 0] == 0.0  # all fail: no signal
    assert tab[1, 4] == 0.0  # all succeed: no signal
    assert np.all(tab[1] >= 0) and np.all(tab[0] <= 0)


def test_bernstein_is_the_binomial_expectation():
    from math import comb

    coef = np.array([0.3, -1.0, 2.0, 0.5, 1.5])
    n = len(coef) - 1
    for t in (0.0, 0.13, 0.5, 0.97, 1.0):
        ref = sum(coef[j] * comb(n, j) * t**j * (1 - t) ** (n - j) for j in range(n + 1))
        assert bernstein(coef, t) == pytest.approx(ref, abs=1e-14)


def test_tabulated_moments_match_exact_ones():
    torch = pytest.importorskip("torch")
    table = advantage_table(16)
    exact = BernsteinMoments(table)
    tab = TabulatedMoments(table, torch, torch.float64)
    mu = np.linspace(0, 1, 1001)
    got = tab(torch.tensor(mu))
    for g, e in zip(got, exact(mu), strict=True):
        assert_allclose(g.numpy(), e, atol=1e-8)


def test_sampled_mode_is_unbiased_for_the_exact_update():
    """Mean over many sampled rollouts of the (renormalisation-free) logit change = exact."""
    rng = np.random.default_rng(3)
    bandit = Bandit.random(2, 6, rng)
    z0 = logits_with_entropy(bandit, 0.6, rng)
    for alpha in (0.0, 0.8, -0.8):
        cfg = PlantConfig(group_size=6, lr=0.05, tau=0.6)
        exact = BanditPlant(bandit, z0, config=cfg)
        exact.step(alpha)
        n = 40_000
        sampled = BanditPlant(bandit, z0, loops=n, config=dataclasses.replace(cfg, mode="sampled"), rng=rng)
        sampled.step(alpha)
        # differences to arm 0 are invariant to renormalisation, so linear in the samples
        d_exact = exact.logits()[0] - exact.logits()[0][..., :1]
        d = sampled.logits() - sampled.logits()[..., :1]
        mean, sem = d.mean(0), d.std(0) / np.sqrt(n)
        # lr is small, so renormalisation makes the exact update ≈ the mean one to O(lr²)
        assert np.all(np.abs(mean - d_exact) <= 5 * sem + 2e-4)


def test_sampled_runs_with_the_same_seed_are_bitwise_identical():
    bandit = Bandit.random(3, 5, np.random.default_rng(0))
    z0 = logits_with_entropy(bandit, 1.0, np.random.default_rng(1))
    cfg = PlantConfig(mode="sampled", epochs=2, minibatches=2, group_size=8)
    runs = []
    for _ in range(2):
        plant = BanditPlant(bandit, z0, loops=4, config=cfg, rng=np.random.default_rng(42))
        for t in range(20):
            plant.step(0.1 * np.sin(t))
        runs.append(plant.logits())
    assert np.array_equal(runs[0], runs[1])


def test_grpo_collapses_entropy_in_both_modes():
    rng = np.random.default_rng(5)
    bandit = Bandit.random(4, 8, rng)
    z0 = logits_with_entropy(bandit, 1.5, rng)
    for cfg in (PlantConfig(lr=1.0), PlantConfig(lr=1.0, mode="sampled", epochs=2)):
        plant = BanditPlant(bandit, z0, loops=2, config=cfg, rng=np.random.default_rng(0))
        for _ in range(400):
            plant.step(0.0)
        assert np.all(plant.entropy() < 0.5)


def test_entropy_matches_the_state():
    rng = np.random.default_rng(0)
    bandit = Bandit.random(3, 7, rng)
    z0 = logits_with_entropy(bandit, 1.2, rng)
    plant = BanditPlant(bandit, z0, loops=2, config=PlantConfig(epochs=2, tau=0.5))  # arms above τ exist
    for _ in range(5):
        plant.step(np.array([0.3, -0.3]))
    assert_allclose(plant.entropy(), entropy_of_logits(plant.logits()).mean(-1), atol=1e-12)
    assert plant.entropy()[0] < plant.entropy()[1]  # α > 0 lowered entropy relative to α < 0


def test_torch_backend_matches_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    bandit = Bandit.random(2, 20, rng)
    z0 = logits_with_entropy(bandit, 0.5, rng)
    alphas = np.linspace(-1, 1, 3)
    for cfg in (PlantConfig(lr=1.0), PlantConfig(lr=1.0, epochs=3, tau=0.8)):
        ref = BanditPlant(bandit, z0, loops=3, config=cfg)
        t64 = BanditPlant(bandit, z0, loops=3, config=cfg, backend="torch", dtype=torch.float64)
        t32 = BanditPlant(bandit, z0, loops=3, config=cfg, backend="torch")
        for _ in range(100):
            for plant in (ref, t64, t32):
                plant.step(alphas)
        assert_allclose(t64.entropy(), ref.entropy(), rtol=1e-7)  # table interpolation only
        assert_allclose(t32.entropy(), ref.entropy(), rtol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"group_size": 1}, "group_size must be an integer >= 2"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"mode": "mean"}, "mode must be one of"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"mode": "sampled", "group_size": 6, "minibatches": 4}, "minibatches must be a divisor"),
        ({"eps_low": 1.0}, r"eps_low must be in \[0, 1\)"),
        ({"dual_clip": 1.0}, "dual_clip must be > 1 or None"),
        ({"tau": 1.0}, r"tau must be in \(0, 1\)"),
        ({"normalization": "sum"}, "normalization must be one of"),
    ],
)
def test_config_errors_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match="PlantConfig." + match):
        PlantConfig(**kwargs)


def test_plant_argument_errors():
    bandit = Bandit(np.array([[0.5, 0.2]]))
    with pytest.raises(ValueError, match="rng"):
        BanditPlant(bandit, np.zeros((1, 2)), config=PlantConfig(mode="sampled"))
    with pytest.raises(ValueError, match="logits must end in shape"):
        BanditPlant(bandit, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="success probabilities"):
        Bandit(np.array([[1.5, 0.2]]))
