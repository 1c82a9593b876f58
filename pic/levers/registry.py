"""The lever registry, the single list of lever names: ``@register_lever(name, preset=...)``.

A lever module registers each name it provides when it is imported (`pic.levers` imports them
all); `LEVERS`, `make_lever`, `lever_parameters` and `compared_levers` read only this registry.
A name registers once: a second registration of it is an error, whatever the class or preset.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from .base import Lever

__all__ = ["LEVERS", "compared_levers", "lever_parameters", "make_lever", "register_lever"]

L = TypeVar("L", bound=type[Lever])

LEVERS: dict[str, tuple[type[Lever], dict[str, Any]]] = {}
"""Registered name → (class, preset parameters), in registration order."""

_OUT_OF_COMPARISON: set[str] = set()


def register_lever(name: str, preset: dict[str, Any] | None = None, *, compared: bool = True) -> Callable[[L], L]:
    """Class decorator: register ``cls`` under ``name`` with ``preset`` parameters.

    ``compared = False`` keeps the lever out of the default comparison set (`compared_levers`).
    Raises ``ValueError`` if ``name`` is already registered.
    """

    def register(cls: L) -> L:
        if name in LEVERS:
            other, other_preset = LEVERS[name]
            raise ValueError(
                f"lever name {name!r} is already registered ({other.__name__}, preset {other_preset}); "
                f"names must be unique"
            )
        if not (isinstance(cls, type) and issubclass(cls, Lever)):
            raise TypeError(f"register_lever({name!r}) needs a pic.levers.Lever subclass, got {cls!r}")
        LEVERS[name] = (cls, dict(preset or {}))
        if not compared:
            _OUT_OF_COMPARISON.add(name)
        return cls

    return register


def compared_levers() -> tuple[str, ...]:
    """The registered names of the default comparison set, in registration order."""
    return tuple(name for name in LEVERS if name not in _OUT_OF_COMPARISON)


def _lookup(name: str) -> tuple[type[Lever], dict[str, Any]]:
    if name not in LEVERS:
        raise ValueError(f"unknown lever {name!r}; choose from {sorted(LEVERS)}")
    return LEVERS[name]


def lever_parameters(name: str) -> dict[str, Any]:
    """The parameters of lever ``name`` with their effective defaults."""
    cls, preset = _lookup(name)
    sig = inspect.signature(cls.__init__)
    params = {
        p.name: p.default for p in list(sig.parameters.values())[1:] if p.name != "loops" and p.kind != p.VAR_KEYWORD
    }
    return {**params, **preset}


def make_lever(name: str, *, loops: int = 1, **params: Any) -> Lever:
    """Build lever ``name`` with its preset, overridden by ``params`` (unknown names are refused)."""
    cls, preset = _lookup(name)
    allowed = lever_parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"lever {name!r} has no parameter(s) {unknown}; parameters: {sorted(allowed)}")
    lever = cls.__new__(cls)
    lever.name = name  # set first, so a bad parameter is reported as `<name>.<field>`
    lever.__init__(**{**preset, **params}, loops=loops)
    return lever
