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
