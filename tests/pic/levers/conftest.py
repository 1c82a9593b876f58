"""The lever tests run their references in torch (skipped where torch is missing)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")
