"""``python -m llm train`` with the test reward registered; run directly or under torchrun by the tests.

The even-digit reward varies for an untrained model (the real verifier gives it 0 everywhere,
hence no gradient); it has to be registered in every process, so it lives here.
"""

from __future__ import annotations

import sys

from llm.cli import main
from llm.reward import register_reward


@register_reward("test_even_digit")
def even_digit(completion, example):
    return float(any(ch in "02468" for ch in completion))


if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
