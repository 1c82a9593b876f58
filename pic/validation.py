"""The one validation helper: every bad parameter is one line naming the field and the rule.

``need(ok, "control.tau", "in (0, 1)", 1.5)`` raises
``ParameterError("control.tau must be in (0, 1), got 1.5")``. Every package (the controller,
the levers, the trainer's config, the plug-ins) reports bad input through it, so a user sees
the same shape of message wherever the value came from.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["ParameterError", "is_finite_number", "need"]


class ParameterError(ValueError):
    """A bad parameter value; the message is one line: ``<field> must be <rule>, got <value>``."""


def need(ok: bool, field: str, rule: str, value: Any) -> None:
    """Raise `ParameterError` ``"<field> must be <rule>, got <value!r>"`` unless ``ok``."""
    if not ok:
        raise ParameterError(f"{field} must be {rule}, got {value!r}")


def is_finite_number(x: Any) -> bool:
    """True for a real, finite int or float (bools and strings are not numbers here)."""
    if isinstance(x, bool | str | bytes):
        return False
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False
