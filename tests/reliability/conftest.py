"""Fixtures for the reliability tests: one very small model, built once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory):
    pytest.importorskip("torch")
    from llm.model import build_tiny
    from llm.tasks import alphabet

    out = tmp_path_factory.mktemp("small")
    return build_tiny(out, alphabet=alphabet(), hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1, seed=0)
