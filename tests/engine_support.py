"""Engine plug-in tests: skipped where the engine is not installed, failed where it must be.

`scripts/engine_tests.sh ENGINE` sets ENTROPIC_REQUIRE_ENGINE=ENGINE in that engine's pinned
environment, so a broken install fails there instead of skipping silently.
"""

from __future__ import annotations

import importlib
import os

import pytest


def require_engine(name: str, module: str):
    """Import ``module`` of engine ``name``; skip the test module if it is absent (fail if required)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if os.environ.get("ENTROPIC_REQUIRE_ENGINE") == name:
            raise RuntimeError(f"engine {name!r} is required here but {module!r} does not import: {exc}") from exc
        pytest.skip(f"{module} is not installed (bash scripts/engine_tests.sh {name})", allow_module_level=True)
