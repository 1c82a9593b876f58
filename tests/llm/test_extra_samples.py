"""Appending a lever's extra rows to a rollout batch (`llm.rollout.concat_batches`).

Run: python -m pytest tests/llm/test_extra_samples.py
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from llm.rollout import RolloutBatch, concat_batches  # noqa: E402


def _batch(prompts, responses):
    """Left-padded prompts and right-padded responses (pad id 0) from lists of token ids."""
    p, t = max(map(len, prompts)), max(map(len, responses))
    ids = torch.tensor([[0] * (p - len(x)) + x for x in prompts])
    resp = torch.tensor([x + [0] * (t - len(x)) for x in responses])
    rmask = torch.tensor([[1] * len(x) + [0] * (t - len(x)) for x in responses])
    lp, ent = -0.5 * rmask.float(), 2 * rmask.float()
    return RolloutBatch(ids, (ids > 0).long(), resp, rmask, lp, ent, torch.zeros(len(prompts), dtype=bool))


def test_rows_are_appended_with_prompts_left_and_responses_right_padded():
    a = _batch([[5, 6], [7]], [[1, 2, 3], [4]])
    b = _batch([[8, 9, 10]], [[11]])
    c = concat_batches([a, b], pad_id=0)
    assert c.prompt_ids.tolist() == [[0, 5, 6], [0, 0, 7], [8, 9, 10]]
    assert c.prompt_mask.tolist() == [[0, 1, 1], [0, 0, 1], [1, 1, 1]]
    assert c.response_ids.tolist() == [[1, 2, 3], [4, 0, 0], [11, 0, 0]]
    assert c.response_mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 0, 0]]
    assert c.logprobs.tolist() == [[-0.5] * 3, [-0.5, 0, 0], [-0.5, 0, 0]]
    assert c.entropy.sum() == 2 * 5 and c.truncated.tolist() == [False] * 3
    # what the model sees is unchanged for every row: prompt ⧺ response with the padding masked
    for i, (src, j) in enumerate([(a, 0), (a, 1), (b, 0)]):
        keep = c.attention_mask[i].bool()
        assert c.input_ids[i][keep].tolist() == src.input_ids[j][src.attention_mask[j].bool()].tolist()
