"""Plain GRPO: the lever that does not control entropy."""

from __future__ import annotations

from .base import Lever
from .registry import register_lever

__all__ = ["NoControl"]


@register_lever("grpo")
class NoControl(Lever):
    """Plain GRPO: no entropy control (every modifier at its default)."""

    name = "grpo"
