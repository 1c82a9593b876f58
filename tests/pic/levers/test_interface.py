"""The lever interface: state round trips, the on-policy refusal, the registry and parameter errors.

Run: python -m pytest tests/pic/levers/test_interface.py
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pic.levers import LEVERS, LossModifiers, StepStats, TokenBatch, check_plant, make_lever
from pic.levers import lever_parameters as params_of

RATIO_ONLY = {"clip_higher", "ce_gppo", "flexec_id", "flexec_did", "flexec_od", "flexec_static", "kl_cov", "bapo"}

# every registered lever, plus variants whose state differs (official normalisation, scheduled target, given H_init)
CASES = [(name, {}) for name in LEVERS] + [
    ("entropic", {"normalization": "high_prob_tokens", "ki": 0.2}),
    ("entropic", {"target": {"kind": "linear", "start": 0.6, "end": 0.1, "steps": 5}}),
    ("flexec_od", {"h_init": 0.4}),
    ("adaptive_entropy_skywork", {"delta": 0.002, "coef_init": 0.001}),
    ("adaptive_entropy_skywork", {"target": 0.8, "delta": 0.001}),  # always below target: the bonus is on
    ("adaptive_entropy_trl", {"target": 0.8}),
    ("sac_temperature", {"signal": "entropy", "lr": 0.2}),
    ("aent", {"warmup_steps": 2, "lr": 0.01, "entropy_low": 0.6, "entropy_high": 0.9}),  # c moves after warm-up
]


def _rollout_stats(k: int, loops: int, rng: np.random.Generator) -> StepStats:
    h = rng.uniform(0.0, 0.6, loops)
    return StepStats(
        step=k, total_steps=12, entropy=h, nll=h + rng.uniform(-0.1, 0.1, loops), clip_frac=rng.uniform(0, 0.1, loops)
    )


def _token_batch(k: int, loops: int, lever, n: int = 600) -> TokenBatch:
    rng = np.random.default_rng(100 + k)
    p = np.where(
        rng.random((loops, n)) < 0.5, rng.uniform(0.951, 0.999, (loops, n)), rng.uniform(0.01, 0.9, (loops, n))
    )
    logp = np.log(p)
    old = logp + 0.3 * rng.standard_normal((loops, n))
    mask = (rng.random((loops, n)) > 0.1) * 1.0
    return TokenBatch(
        logp=logp,
        old_logp=old,
        adv=2.0 * rng.standard_normal((loops, n)),
        mask=mask,
        num_tokens=mask.sum(-1, keepdims=True),
        counts=lever.counts(old, mask),
        entropy=rng.uniform(0, 1, (loops, n)),
        ref_logp=logp + 0.1 * rng.standard_normal((loops, n)),
        clamped_entropy=rng.uniform(0, 1, (loops, n)),
    )


def _record(lever, k: int, loops: int, rng: np.random.Generator) -> list:
    """One RL step: update, then two micro-batches' modifiers and the metrics, as plain arrays."""
    lever.update(_rollout_stats(k, loops, rng))
    return [_flat(lever.modify(_token_batch(k, loops, lever))) for _ in range(2)] + [lever.metrics()]


def _flat(mods: LossModifiers) -> dict:
    return {key: v if v is None or isinstance(v, str) else np.asarray(v, dtype=float) for key, v in vars(mods).items()}


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            if x[key] is None or isinstance(x[key], str):
                assert x[key] == y[key], key
            else:
                np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}{'-' + '-'.join(p) if p else ''}" for n, p in CASES])
@pytest.mark.parametrize("cut", ["between_steps", "after_update"])
def test_state_round_trip_continues_the_same_sequence(name, params, cut):
    loops, steps, save_at = 2, 8, 4
    a = make_lever(name, loops=loops, **params)
    rng_a = np.random.default_rng(7)
    for k in range(save_at):
        _record(a, k, loops, rng_a)
    rng_b = np.random.default_rng(7)
    for _ in range(save_at):  # the statistics stream of the resumed run starts where the first left off
        _rollout_stats(0, loops, rng_b)
    if cut == "after_update":  # a checkpoint taken between update and the step's micro-batches
        a.update(_rollout_stats(save_at, loops, rng_a))
        _rollout_stats(save_at, loops, rng_b)
    state = json.loads(json.dumps(a.state_dict()))  # JSON-serialisable, and nothing lost on the way
    b = make_lever(name, loops=loops, **params)
    b.load_state_dict(state)
    start = save_at
    if cut == "after_update":
        same = [[_flat(x.modify(_token_batch(save_at, loops, x))) for _ in range(2)] + [x.metrics()] for x in (a, b)]
        _assert_same(same[0][:2], same[1][:2])
        # metrics too, except EntroPIC's i_term: ki·S *before* the last update, which PIController.state_dict
        # does not keep (a logging value of the interrupted step only; α and the state are exact)
        assert {k: v for k, v in same[0][2].items() if k != "i_term"} == {
            k: v for k, v in same[1][2].items() if k != "i_term"
        }
        start += 1
    for k in range(start, steps):
        ra, rb = _record(a, k, loops, rng_a), _record(b, k, loops, rng_b)
        _assert_same(ra[:2], rb[:2])
        assert ra[2] == rb[2]


def test_a_fresh_lever_differs_from_a_resumed_one():
    """The round trip above is not vacuous: without the state the sequences differ."""
    rng = np.random.default_rng(0)
    a = make_lever("entropic", ki=0.5)
    for k in range(4):
        _record(a, k, 1, rng)
    b = make_lever("entropic", ki=0.5)
    stats = _rollout_stats(4, 1, rng)
    a.update(stats)
    b.update(stats)
    assert a.alpha != pytest.approx(b.alpha)


@pytest.mark.parametrize("name", sorted(LEVERS))
def test_check_plant_refuses_ratio_only_levers_on_policy(name):
    lever = make_lever(name)
    assert lever.acts_through_ratio == (name in RATIO_ONLY)
    check_plant(lever, updates_per_rollout=2)
    if name in RATIO_ONLY:
        with pytest.raises(ValueError, match="identically 1") as err:
            check_plant(lever, updates_per_rollout=1)
        msg = str(err.value)
        assert name in msg and "more PPO epochs or mini-batches" in msg and "\n" not in msg
        with pytest.raises(ValueError, match="--off-epochs"):
            check_plant(lever, updates_per_rollout=1, field_hint="--off-epochs >= 2")
    else:
        check_plant(lever, updates_per_rollout=1)


def test_registry_names_and_parameters():
    assert set(LEVERS) == {
        "grpo",
        "entropy_bonus",
        "kl_penalty",
        "adaptive_entropy_skywork",
        "adaptive_entropy_trl",
        "sac_temperature",
        "clip_higher",
        "ce_gppo",
        "flexec_id",
        "flexec_did",
        "flexec_od",
        "flexec_static",
        "clip_cov",
        "kl_cov",
        "entropic",
        "entropic_p",
        "entropic_auto",
        "nsr",
        "w_reinforce",
        "entropy_advantage",
        "top_entropy_tokens",
        "aent",
        "bapo",
        "aepo",
    }
    for name in LEVERS:
        lever = make_lever(name, loops=3)
        assert lever.name == name and lever.loops == 3
    assert params_of("entropic_p")["ki"] == 0.0 and params_of("entropic")["ki"] == 0.01
    assert params_of("clip_higher") == {"eps_low": 0.2, "eps_high": 0.28}
    assert params_of("clip_cov") == {
        "ratio": 2e-4,
        "lower": 1.0,
        "upper": 5.0,
        "eps_low": 1.0,
        "eps_high": 1.0,
        "seed": 0,
    }
    assert params_of("kl_cov") == {"fraction": 2e-3, "beta": 1.0}
    assert params_of("ce_gppo") == {"beta_low": 0.75, "beta_high": 1.0, "eps_low": None, "eps_high": None}
    assert params_of("flexec_did")["strategy"] == "did"


def test_make_lever_refuses_unknown_names_and_parameters():
    with pytest.raises(ValueError, match=r"unknown lever 'dapo'; choose from \[.*'clip_higher'"):
        make_lever("dapo")
    with pytest.raises(ValueError, match=r"lever 'clip_higher' has no parameter\(s\) \['eps'\]; parameters: "):
        make_lever("clip_higher", eps=0.3)
    with pytest.raises(ValueError, match=r"\['beta', 'kp'\]"):
        make_lever("entropy_bonus", kp=1.0, beta=2.0)


BAD = [
    ("entropic", {"kp": -1.0}, "entropic.kp"),
    ("entropic", {"ki": math.nan}, "entropic.ki"),
    ("entropic_p", {"tau": 1.2}, "entropic_p.tau"),
    ("entropic", {"target": -0.1}, "entropic.target"),
    ("entropic", {"target": {"kind": "zigzag"}}, "entropic.target"),
    ("entropic", {"normalization": "tokens"}, "entropic.normalization"),
    ("entropic", {"anti_windup": "yes"}, "entropic.anti_windup"),
    ("entropic", {"signal": "kl"}, "entropic.signal"),
    ("entropy_bonus", {"coef": -0.1}, "entropy_bonus.coef"),
    ("kl_penalty", {"coef": 0.0}, "kl_penalty.coef"),
    ("adaptive_entropy_skywork", {"delta": 0.0}, "adaptive_entropy_skywork.delta"),
    ("adaptive_entropy_trl", {"coef_max": -1.0}, "adaptive_entropy_trl.coef_max"),
    ("adaptive_entropy_trl", {"coef_init": 2.0}, "adaptive_entropy_trl.coef_init"),
    ("adaptive_entropy_trl", {"target": math.inf}, "adaptive_entropy_trl.target"),
    ("sac_temperature", {"coef_init": 0.0}, "sac_temperature.coef_init"),
    ("sac_temperature", {"betas": (0.9, 1.0)}, "sac_temperature.betas"),
    ("sac_temperature", {"lr": -1e-3}, "sac_temperature.lr"),
    ("clip_higher", {"eps_low": 1.0}, "clip_higher.eps_low"),
    ("clip_higher", {"eps_high": math.nan}, "clip_higher.eps_high"),
    ("ce_gppo", {"beta_low": -0.5}, "ce_gppo.beta_low"),
    ("ce_gppo", {"eps_high": math.inf}, "ce_gppo.eps_high"),
    ("flexec_id", {"phase_split": 1.0}, "flexec_id.phase_split"),
    ("flexec_did", {"bound_max": 1.5}, "flexec_did.bound_max"),
    ("flexec_od", {"h_min_ratio": 0.0}, "flexec_od.h_min_ratio"),
    ("flexec_od", {"h_init": -1.0}, "flexec_od.h_init"),
    ("flexec_static", {"strategy": "zigzag"}, "flexec_static.strategy"),
    ("clip_cov", {"ratio": 0.2 * 100}, "clip_cov.ratio"),
    ("clip_cov", {"lower": 5.0, "upper": 1.0}, "clip_cov.upper"),
    ("clip_cov", {"lower": math.nan}, "clip_cov.lower"),
    ("kl_cov", {"fraction": 2.0}, "kl_cov.fraction"),
    ("kl_cov", {"beta": 0.0}, "kl_cov.beta"),
    ("nsr", {"positive_weight": -0.1}, "nsr.positive_weight"),
    ("w_reinforce", {"advantage": "sign"}, "w_reinforce.advantage"),
    ("entropy_advantage", {"kappa": 1.0}, "entropy_advantage.kappa"),
    ("entropy_advantage", {"alpha": math.inf}, "entropy_advantage.alpha"),
    ("top_entropy_tokens", {"fraction": 0.0}, "top_entropy_tokens.fraction"),
    ("aent", {"clamp": 1.0}, "aent.clamp"),
    ("aent", {"entropy_low": 0.6}, "aent.entropy_high"),
    ("aent", {"coef_init": 0.5}, "aent.coef_init"),
    ("aent", {"warmup_steps": -1}, "aent.warmup_steps"),
]


@pytest.mark.parametrize(("name", "params", "field"), BAD, ids=[f for _, _, f in BAD])
def test_bad_parameters_name_the_field(name, params, field):
    with pytest.raises(ValueError) as err:
        make_lever(name, **params)
    msg = str(err.value)
    assert msg.startswith(field) and "\n" not in msg


def test_kl_cov_refuses_a_percent():
    with pytest.raises(ValueError, match=r"kl_cov.fraction must be a fraction in \(0, 1\] \(not a percent\)"):
        make_lever("kl_cov", fraction=20.0)


def test_loops_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="loops must be an integer >= 1"):
        make_lever("grpo", loops=0)


def test_per_loop_statistics_must_match_the_loops():
    lever = make_lever("adaptive_entropy_trl", loops=3)
    with pytest.raises(ValueError, match="expected 3 per-loop values"):
        lever.update(StepStats(step=0, total_steps=1, entropy=np.array([0.1, 0.2])))
    with pytest.raises(ValueError, match="'nll' must be finite"):
        make_lever("adaptive_entropy_skywork").update(StepStats(step=0, total_steps=1, entropy=0.1))


def test_moving_average_matches_a_brute_force_nan_aware_mean():
    from pic.levers.report import moving_average

    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 3))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[5:9, 1] = np.nan  # a whole window of NaN stays NaN
    for w in (1, 3, 4):
        ref = np.full_like(x, np.nan)
        for i in range(len(x)):
            seg = x[max(0, i - w + 1) : i + 1]
            for j in range(x.shape[1]):
                if np.isfinite(seg[:, j]).any():
                    ref[i, j] = np.nanmean(seg[:, j])
        assert np.allclose(moving_average(x, w), ref, equal_nan=True)
