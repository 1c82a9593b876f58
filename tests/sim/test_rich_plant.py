"""sim.rich_plant: reduces to the plain plant, and each option does what its formula says.

Run: python -m pytest tests/sim/test_rich_plant.py
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.bandit import entropy_of_logits
from sim.identify import lemma_b_gain, local_linearisation
from sim.plant import BanditPlant, PlantConfig
from sim.rich_plant import RichConfig, RichPlant, identify, spread_problem, warm_up


@pytest.fixture(scope="module")
def problem():
    return spread_problem(16, 12, seed=3)


def test_spread_problem_has_a_spread_of_confidences(problem):
    bandit, z = problem
    h = entropy_of_logits(z)
    assert h.min() < 0.05 and h.max() > 1.0
    assert np.array_equal(z.argmax(-1), bandit.success.argmax(-1))  # confident on the best arm


@pytest.mark.parametrize("epochs", [1, 3])
def test_sgd_at_temperature_one_is_the_plain_plant(problem, epochs):
    bandit, z = problem
    cfg = PlantConfig(lr=0.7, epochs=epochs, tau=0.8)
    rich, plain = RichPlant(bandit, z, config=RichConfig(plant=cfg)), BanditPlant(bandit, z, config=cfg)
    for alpha in (0.3, -0.5, 0.0, 1.0):
        rich.step(alpha)
        plain.step(alpha)
    np.testing.assert_allclose(rich.logits(), plain.logits(), atol=1e-12)
    np.testing.assert_allclose(rich.entropy(), plain.entropy(), atol=1e-12)


def test_temperature_scales_the_sgd_step_by_one_over_t_squared(problem):
    bandit, z = problem
    hot = RichPlant(bandit, z, config=RichConfig(plant=PlantConfig(lr=0.04), temperature=0.5))
    ref = RichPlant(bandit, z, config=RichConfig(plant=PlantConfig(lr=0.16)))
    hot.step(0.2)
    ref.step(0.2)
    np.testing.assert_allclose(hot.logits(), ref.logits(), atol=1e-12)


def test_first_adam_step_moves_every_moving_logit_by_lr(problem):
    bandit, z = problem
    lr = 1e-3
    plant = RichPlant(bandit, z, config=RichConfig(plant=PlantConfig(lr=lr), optimizer="adam", adam_eps=1e-30))
    z0 = plant.state()[0]
    plant.step(0.0)
    dz = np.abs(plant.state()[0] - z0)
    moving = dz > 1e-15
    np.testing.assert_allclose(dz[moving], lr, rtol=1e-9)  # bias-corrected m̂/√v̂ = sign(g)


def test_grad_clip_bounds_the_sgd_step(problem):
    bandit, z = problem
    s = bandit.contexts
    free = RichPlant(bandit, z, config=RichConfig(plant=PlantConfig(lr=1.0)))
    clipped = RichPlant(bandit, z, config=RichConfig(plant=PlantConfig(lr=1.0), grad_clip=1e-3))
    z0 = free.state()[0]
    free.step(0.5)
    clipped.step(0.5)
    d_free, d_clip = free.state()[0] - z0, clipped.state()[0] - z0
    assert np.linalg.norm(d_free) / s > 1e-3  # the clip is active
    assert np.linalg.norm(d_clip) / s == pytest.approx(1e-3, rel=1e-9)
    cos = (d_free * d_clip).sum() / np.linalg.norm(d_free) / np.linalg.norm(d_clip)
    assert cos == pytest.approx(1.0, abs=1e-9)  # same direction


def test_sampled_entropy_is_unbiased_with_the_predicted_variance(problem):
    bandit, z = problem
    cfg = RichConfig(measure="sampled", measure_samples=4)
    plant = RichPlant(bandit, z, loops=20000, config=cfg, rng=np.random.default_rng(0))
    measured, exact = plant.entropy(), plant.true_entropy()[0]
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    var_per_context = (np.exp(logp) * logp**2).sum(-1) - entropy_of_logits(z) ** 2
    predicted = var_per_context.sum() / (bandit.contexts**2 * 4)
    assert measured.mean() == pytest.approx(exact, abs=4 * np.sqrt(predicted / measured.size))
    assert measured.var() == pytest.approx(predicted, rel=0.05)


def test_identify_matches_the_plain_plant_and_lemma_b(problem):
    bandit, z = problem
    cfg = PlantConfig(lr=0.3, tau=0.9)
    k, b = identify(RichPlant(bandit, z, config=RichConfig(plant=cfg)))
    k_ref, b_ref = local_linearisation(bandit, z, cfg)
    np.testing.assert_allclose([k[0], b[0]], [k_ref[0], b_ref[0]], rtol=1e-10)
    assert k[0] == pytest.approx(lemma_b_gain(bandit, z, cfg)[0], rel=0.05)


def test_k_falls_smoothly_with_tau_on_many_contexts():
    bandit, z = spread_problem(64, 20, seed=0)
    ks = [
        identify(RichPlant(bandit, z, config=RichConfig(plant=PlantConfig(lr=0.5, tau=t))))[0][0]
        for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
    ]
    assert np.all(np.diff(ks) < 0)  # every step in τ drops some contexts out of the actuator


def test_adam_identification_uses_the_moments(problem):
    bandit, z = problem
    plant = warm_up(RichPlant(bandit, z, config=RichConfig(plant=PlantConfig(lr=0.01), optimizer="adam")), 10)
    k_warm = identify(plant)[0][0]
    fresh = RichPlant(bandit, plant.logits()[0], config=plant.config)
    k_fresh = identify(fresh)[0][0]  # first Adam step: m̂/√v̂ = sign(g), α barely matters
    assert k_warm > 0
    assert abs(k_fresh) < 0.2 * k_warm


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"optimizer": "lion"}, "RichConfig.optimizer"),
        ({"temperature": 0.0}, "RichConfig.temperature"),
        ({"grad_clip": -1.0}, "RichConfig.grad_clip"),
        ({"measure": "guess"}, "RichConfig.measure"),
        ({"plant": PlantConfig(mode="sampled")}, "RichConfig.plant.mode"),
    ],
)
def test_bad_config_is_one_clear_line(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        RichConfig(**kwargs)


def test_entropy_bonus_adds_beta_times_the_entropy_gradient(problem):
    bandit, z = problem
    beta, lr = 0.3, 1e-4
    base = RichPlant(bandit, z, config=RichConfig(plant=PlantConfig(lr=lr)))
    bonus = RichPlant(bandit, z, config=RichConfig(plant=PlantConfig(lr=lr), entropy_coef=beta))
    base.step(0.0)
    bonus.step(0.0)
    # independent: finite-difference gradient of the per-context entropy in the logits
    eps = 1e-6
    grad = np.zeros_like(z)
    for s in range(z.shape[0]):
        for a in range(z.shape[1]):
            zp, zm = z.copy(), z.copy()
            zp[s, a] += eps
            zm[s, a] -= eps
            grad[s, a] = (entropy_of_logits(zp[s]) - entropy_of_logits(zm[s])) / (2 * eps)
    diff = bonus.state()[0][0] - base.state()[0][0]
    diff = diff - diff.mean(-1, keepdims=True)
    np.testing.assert_allclose(diff, lr * beta * (grad - grad.mean(-1, keepdims=True)), atol=1e-11)
    assert bonus.true_entropy()[0] > base.true_entropy()[0]
