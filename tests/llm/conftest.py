"""Fixtures for the trainer tests: one tiny model (built once per session) and tiny datasets."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from llm.model import build_tiny
    from llm.tasks import alphabet

    out = tmp_path_factory.mktemp("tiny")
    return build_tiny(out, alphabet=alphabet(), hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, seed=0)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    from llm.model import build_tiny
    from llm.tasks import alphabet

    out = tmp_path_factory.mktemp("tiny_llama")
    return build_tiny(
        out, arch="llama", alphabet=alphabet(), hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, seed=1
    )
