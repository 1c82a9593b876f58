"""Reward terms: any float range, a reward function by import path, weighted sums, math-verify gold forms."""

from __future__ import annotations

import textwrap

import pytest

from llm.config import ConfigError, RewardConfig
from llm.data import Example
from llm.reward import RewardTerm, resolve_reward, score_batch


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        textwrap.dedent(
            """
            def plus_minus(completion, example):
                return 1.0 if completion.strip() == example.answer else -1.0

            def length_penalty(completion, example):
                return -0.01 * len(completion)

            NOT_CALLABLE = 3

            def hangs(completion, example):
                if completion == "loop":
                    while True:
                        pass
                return 1.0

            def raises(completion, example):
                if completion == "bad":
                    raise KeyError("no such field")
                return 0.5

            def pid(completion, example):
                import os

                return float(os.getpid())
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_rewards"


def test_a_reward_by_import_path_may_be_negative(user_module):
    fn = resolve_reward(f"{user_module}:plus_minus")
    ex = Example("1+1=", "2", "arithmetic")
    assert score_batch(["2", "3"], [ex, ex], [RewardTerm(f"{user_module}:plus_minus")]).rewards == [1.0, -1.0]
    assert fn("2", ex) == 1.0


def test_weighted_terms_sum_independently_computed(user_module):
    ex = Example("1+1=", "2", "arithmetic")
    completions = ["2", "33", "2 "]
    terms = [RewardTerm("", 2.0), RewardTerm(f"{user_module}:length_penalty", 0.5), RewardTerm("countdown", 3.0)]
    got = score_batch(completions, [ex] * 3, terms).rewards
    arithmetic = [1.0, 0.0, 1.0]  # first line, stripped, equals 2
    expected = [2.0 * a + 0.5 * (-0.01 * len(c)) + 3.0 * 0.0 for a, c in zip(arithmetic, completions, strict=True)]
    assert got == pytest.approx(expected)


def test_bad_import_paths_are_one_line_config_errors(user_module):
    with pytest.raises(ValueError, match=r"reward.fn 'no_such_mod:f' cannot be imported \(ModuleNotFoundError"):
        resolve_reward("no_such_mod:f")
    with pytest.raises(ValueError, match=r"is not callable"):
        resolve_reward(f"{user_module}:NOT_CALLABLE")
    with pytest.raises(ConfigError, match=r"^reward.fn: reward.fn 'my_rewards:nope' cannot be imported"):
        RewardConfig(fn=f"{user_module}:nope").check()
    with pytest.raises(ConfigError, match=r"reward.extra must be a table of reward name → finite weight"):
        RewardConfig(extra={"math": float("nan")}).check()
    RewardConfig(fn=f"{user_module}:plus_minus", extra={"math": 0.5}).check()


@pytest.mark.parametrize(
    ("gold", "right", "wrong"),
    [("72", "The answer is \\boxed{72}.", "\\boxed{71}"),
     ("\\frac{1}{2}", "so $\\frac{2}{4}$", "$\\frac{1}{3}$"),
     ("\\boxed{0.5}", "it is \\boxed{\\frac{1}{2}}", "\\boxed{2}")],
)  # fmt: skip
def test_math_gold_as_number_latex_or_boxed(gold, right, wrong):
    ex = Example("q", gold, "math")
    assert score_batch([right, wrong], [ex, ex]).rewards == [1.0, 0.0]


def test_an_imported_reward_runs_in_a_worker_under_its_deadline(user_module, caplog):
    """A user's function never runs in the trainer's process: a hang is killed at the deadline, an error
    scores 0 and is counted and logged, and the rest of the batch is scored."""
    import os

    ex = Example("1+1=", "2", "arithmetic")
    assert score_batch(["x"], [ex], [RewardTerm(f"{user_module}:pid")]).rewards != [float(os.getpid())]
    scores = score_batch(["ok", "loop", "ok"], [ex] * 3, [RewardTerm(f"{user_module}:hangs", timeout_s=0.5)])
    assert scores.rewards == [1.0, 0.0, 1.0] and scores.timeouts == 1
    with caplog.at_level("WARNING", logger="llm.reward"):
        scores = score_batch(["bad", "fine"], [ex, ex], [RewardTerm(f"{user_module}:raises", 2.0)])
    assert scores.rewards == [0.0, 1.0] and scores.errors == 1 and scores.timeouts == 0
    assert any("KeyError" in r.getMessage() and "1 raised" in r.getMessage() for r in caplog.records)


def test_reward_timeout_is_checked_and_reaches_the_terms(user_module):
    from llm.completions import reward_terms

    with pytest.raises(ConfigError, match=r"reward.timeout_s must be > 0 seconds"):
        RewardConfig(timeout_s=0).check()
    terms = reward_terms(RewardConfig(fn=f"{user_module}:plus_minus", extra={"math": 1.0}, timeout_s=7.5))
    assert [t.timeout_s for t in terms] == [7.5, 7.5]
