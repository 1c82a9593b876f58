"""Tiny array-namespace helper: the same math on numpy arrays and torch tensors.

pic never imports torch; a torch tensor can only arrive if the caller already imported it,
so its module is taken from ``sys.modules``.
"""

from __future__ import annotations

import sys
from types import ModuleType

import numpy as np


def namespace(*xs) -> ModuleType:
    """``torch`` if any argument is a torch tensor, else ``numpy``."""
    for x in xs:
        if type(x).__module__.startswith("torch"):
            return sys.modules["torch"]
    return np
