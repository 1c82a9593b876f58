"""Levers on the sampled softmax bandit (`sim.levers`): EntroPIC reproduces the plant, the entropy-bonus
gradient is Lemma A, every lever runs, and GRPO collapses.

Run: python -m pytest tests/sim/test_sim_levers.py
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from numpy.testing import assert_allclose

from pic import PIController
from pic.levers import LEVERS, EntroPIC, StepStats, make_lever
from sim.bandit import Bandit, standard_problem
from sim.levers import lever_rollout, run_lever
from sim.plant import BanditPlant, PlantConfig, sampled_rollout

ON = PlantConfig(group_size=8, lr=1.0, mode="sampled")
OFF = PlantConfig(group_size=8, lr=1.0, mode="sampled", epochs=2, minibatches=2)


def _normalised(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


class FixedAlpha(EntroPIC):
    """EntroPIC with α held at a given value (no controller), to compare the actuator alone."""

    def __init__(self, alpha, **kw):
        super().__init__(**kw)
        self.fixed = np.asarray(alpha, dtype=float)

    def update(self, stats: StepStats) -> None:
        self._alpha = self._per_loop(self.fixed)


@pytest.fixture(scope="module")
def problem():
    # confident on a poor arm (π_max 0.93–0.98): the actuator has tokens above τ, and learning has work to do
    bandit, z0 = standard_problem(seed=3, contexts=4, arms=12, start_entropy=0.2)
    return bandit, z0


@pytest.mark.parametrize(
    ("cfg", "normalization"),
    [(OFF, "all_tokens"), (ON, "all_tokens"), (ON, "high_prob_tokens")],
    ids=["off-all_tokens", "on-all_tokens", "on-high_prob_tokens"],
)
def test_entropic_lever_reproduces_sampled_rollout(problem, cfg, normalization):
    """Same generator for samples and permutations: `sampled_rollout` draws (B, S, G) arms, (B, S, G) rewards and
    one permutation per epoch from one rng; `lever_rollout` draws each loop's block from ``rngs[b]`` in turn and
    the permutation from ``perm_rng`` — with rngs = [rng]·B and perm_rng = rng the streams coincide."""
    bandit, z0 = problem
    cfg = dataclasses.replace(cfg, normalization=normalization)
    loops = 3
    alpha = np.array([0.6, -0.7, 0.0])
    z = np.broadcast_to(_normalised(z0), (loops, *z0.shape)).copy()
    za, pa = z.copy(), np.exp(z)
    zb, pb = z.copy(), np.exp(z)
    rng_a, rng_b = np.random.default_rng(11), np.random.default_rng(11)
    lever = FixedAlpha(alpha, normalization=normalization, loops=loops)
    moved = 0.0
    for t in range(15):
        za, pa, _ = sampled_rollout(za, pa, alpha.reshape(-1, 1, 1), bandit.success, cfg, rng_a)
        zb, pb, _ = lever_rollout(
            zb, pb, lever, bandit.success, cfg, [rng_b] * loops, step=t, total_steps=15, perm_rng=rng_b
        )
        assert_allclose(zb, za, rtol=0, atol=1e-12)
        moved = max(moved, float(np.abs(za - z).max()))
    assert moved > 0.5  # the policy did move
    # the α term matters: with α = 0 the trajectories part
    zc, pc = z.copy(), np.exp(z)
    rng_c = np.random.default_rng(11)
    for t in range(15):
        zc, pc, _ = lever_rollout(
            zc,
            pc,
            FixedAlpha(0.0, loops=loops),
            bandit.success,
            cfg,
            [rng_c] * loops,
            step=t,
            total_steps=15,
            perm_rng=rng_c,
        )
    assert np.abs(zc[:2] - za[:2]).max() > 1e-3


@pytest.mark.parametrize("cfg", [ON, OFF], ids=["on", "off"])
def test_entropic_pi_lever_is_the_closed_loop_of_the_plant(problem, cfg):
    """`run_lever(EntroPIC)` = `BanditPlant` in sampled mode driven by `PIController`, seed for seed."""
    bandit, z0 = problem
    steps, seed = 30, 5
    run = run_lever(bandit, z0, make_lever("entropic", kp=3.0, ki=0.5, target=0.3), cfg, steps=steps, seeds=[seed])
    plant = BanditPlant(bandit, z0, loops=1, config=cfg, rng=np.random.default_rng(seed))
    ctrl = PIController(3.0, 0.5, 0.3)
    entropy, alpha = [], []
    for _ in range(steps):
        h = plant.entropy()
        entropy.append(h[0])
        alpha.append(ctrl.update(h[0]))
        plant.step(alpha[-1])
    assert_allclose(run.entropy[:, 0], entropy, rtol=0, atol=1e-10)
    assert_allclose(run.metrics["alpha"], alpha, rtol=0, atol=1e-10)
    assert np.ptp(alpha) > 0.1 and run.target is not None and np.all(run.target == 0.3)


def test_a_seed_does_not_depend_on_the_seeds_beside_it(problem):
    bandit, z0 = problem
    # (Clip-Cov's own selection stream is keyed by (its seed, loop index), so it is left out here)
    for name in ("grpo", "entropic", "kl_cov", "flexec_od", "sac_temperature"):
        together = run_lever(bandit, z0, make_lever(name, loops=3), OFF, steps=12, seeds=[0, 1, 2])
        for i, seed in enumerate([0, 1, 2]):
            alone = run_lever(bandit, z0, make_lever(name, loops=1), OFF, steps=12, seeds=[seed])
            assert_allclose(together.entropy[:, i], alone.entropy[:, 0], rtol=0, atol=1e-12)
            assert_allclose(together.reward[:, i], alone.reward[:, 0], rtol=0, atol=1e-12)


def test_entropy_bonus_step_is_lemma_a_by_autograd():
    """With every reward equal the PG part vanishes; what remains is Δz = η·c·∂H/∂z (Lemma A:
    ∂H/∂z = −π(log π + H)), which must match torch autograd of −c·H on a softmax."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    z = _normalised(rng.standard_normal((2, 3, 6)) * 2.0)
    bandit = Bandit(np.zeros((3, 6)))  # rewards all 0 → GRPO advantages 0
    coef, lr = 0.3, 0.7
    cfg = PlantConfig(group_size=8, lr=lr, mode="sampled")
    lever = make_lever("entropy_bonus", coef=coef, loops=2)
    rngs = [np.random.default_rng(1), np.random.default_rng(2)]
    z_new, _, _ = lever_rollout(z, np.exp(z), lever, bandit.success, cfg, rngs, step=0, total_steps=1)
    zt = torch.tensor(z, requires_grad=True)
    logp = torch.log_softmax(zt, -1)
    h = -(logp.exp() * logp).sum(-1)  # per-context entropy; the loss of each context is −c·H
    (grad,) = torch.autograd.grad((-coef * h).sum(), zt)
    want = _normalised(z - lr * grad.numpy())
    assert_allclose(z_new, want, rtol=0, atol=1e-12)
    assert (h.detach().numpy() < -(np.exp(z_new) * z_new).sum(-1)).all()  # the bonus raised every context's entropy


def test_per_loop_entropy_coefficients_reach_their_own_loops(problem):
    """An adaptive coefficient (shape (L, 1)) is applied loop by loop, not broadcast across loops."""
    bandit, z0 = problem
    rngs = [np.random.default_rng(0), np.random.default_rng(0)]
    z = np.broadcast_to(_normalised(z0), (2, *z0.shape)).copy()
    lever = make_lever("adaptive_entropy_trl", coef_init=0.4, target=0.2, loops=2)
    lever.update(StepStats(step=0, total_steps=2, entropy=np.array([0.5, 0.1])))  # gate: loop 0 shut, loop 1 open
    z1, _, _ = lever_rollout(z, np.exp(z), lever, bandit.success, ON, rngs, step=1, total_steps=2)
    assert lever.metrics()["entropy_coef"] == pytest.approx(0.405 / 2)
    grpo = make_lever("grpo", loops=2)
    rngs = [np.random.default_rng(0), np.random.default_rng(0)]
    z2, _, _ = lever_rollout(z, np.exp(z), grpo, bandit.success, ON, rngs, step=1, total_steps=2)
    assert_allclose(z1[0], z2[0], atol=1e-14)  # loop 0 is plain GRPO
    assert np.abs(z1[1] - z2[1]).max() > 1e-3


@pytest.mark.parametrize("name", sorted(LEVERS))
def test_every_lever_runs_on_the_bandit(problem, name):
    bandit, z0 = problem
    lever = make_lever(name, loops=2)
    cfgs = [OFF] if lever.acts_through_ratio else [ON, OFF]
    for cfg in cfgs:
        run = run_lever(bandit, z0, make_lever(name, loops=2), cfg, steps=15, seeds=[0, 1])
        assert run.name == name and run.entropy.shape == run.reward.shape == run.clip_frac.shape == (15, 2)
        assert np.all(np.isfinite(run.entropy)) and np.all(run.entropy > 0) and np.all(run.entropy <= np.log(12))
        assert np.all((run.reward >= 0) & (run.reward <= 1))
        assert np.all(np.isfinite(run.clip_frac[1:]))
        for key, value in run.metrics.items():
            assert value.shape == (15,) and np.all(np.isfinite(value)), key


def test_on_policy_refusal_on_the_bandit(problem):
    bandit, z0 = problem
    with pytest.raises(ValueError, match="acts through the importance ratio.*--off-epochs >= 2"):
        run_lever(bandit, z0, make_lever("clip_higher"), ON, steps=2, seeds=[0])


def test_grpo_collapses_and_a_bonus_holds_entropy():
    bandit, z0 = standard_problem(seed=1, contexts=4, arms=20, start_entropy=1.5)
    seeds = [0, 1, 2, 3]
    grpo = run_lever(bandit, z0, make_lever("grpo", loops=4), ON, steps=60, seeds=seeds)
    bonus = run_lever(bandit, z0, make_lever("entropy_bonus", coef=0.05, loops=4), ON, steps=60, seeds=seeds)
    final = slice(-10, None)
    assert grpo.entropy[0].mean() == pytest.approx(1.5)
    assert grpo.entropy[final].mean() < 1.0  # GRPO alone loses a third of its entropy in 60 rollouts
    assert bonus.entropy[final].mean() > grpo.entropy[final].mean() + 0.15
    assert grpo.reward[final].mean() > grpo.reward[0].mean()


def test_the_report_numbers_need_no_figure_and_the_figure_comes_from_sim(tmp_path, problem):
    """`pic.levers.report.write_report` writes the table and JSON only; `sim.figures.write_report` adds the PNG."""
    import json

    from pic.levers.report import MethodResult
    from pic.levers.report import write_report as write_numbers
    from sim.figures import write_report

    bandit, z0 = problem
    run = run_lever(bandit, z0, make_lever("entropic", target=0.3, loops=2), ON, steps=12, seeds=[0, 1])
    alpha = run.metrics["alpha"].reshape(-1, 1)
    result = MethodResult("entropic", run.entropy, run.reward, run.clip_frac, alpha, "α", target=run.target)
    rows = write_numbers([result], tmp_path / "numbers", reference_target=0.3, title="t")
    assert sorted(p.name for p in (tmp_path / "numbers").iterdir()) == ["report.json", "report.md"]
    both = write_report([result], tmp_path / "full", reference_target=0.3, title="t")
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["report.json", "report.md", "report.png"]
    assert both == rows == json.loads((tmp_path / "full" / "report.json").read_text())["rows"]
    assert (tmp_path / "full" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
