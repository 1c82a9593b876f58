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


def detach(x):
    """``x`` without gradient (torch), or ``x`` itself (numpy)."""
    return x.detach() if hasattr(x, "detach") else x


def like(value, ref):
    """``value`` (number or array) in the namespace, dtype and device of the array ``ref``."""
    xp = namespace(ref)
    if xp is np:
        return np.asarray(value, dtype=ref.dtype)
    return xp.as_tensor(
        np.asarray(value) if not hasattr(value, "device") else value, dtype=ref.dtype, device=ref.device
    )


def clip(x, lo, hi):
    """Elementwise clip of ``x`` to [lo, hi]; bounds may be numbers or arrays broadcasting with x."""
    if namespace(x) is np:
        return np.clip(x, lo, hi)
    return x.clamp(like(lo, x), like(hi, x))


def sort_last(x):
    """``x`` sorted ascending along the last axis (values only)."""
    if namespace(x) is np:
        return np.sort(x, axis=-1)
    return x.sort(dim=-1).values


def take_last(x, index):
    """``x[..., index]`` row by row: ``index`` holds integral positions along the last axis (any float/int dtype)."""
    if namespace(x) is np:
        return np.take_along_axis(x, np.asarray(index).astype(np.int64), axis=-1)
    return x.gather(-1, index.long())
