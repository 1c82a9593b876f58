"""The lever registry: the single list of names, its duplicate guard, and the documented table.

Run: python -m pytest tests/pic/levers/test_registry.py
"""

from __future__ import annotations

import re

import pytest

import pic.levers
from pic.levers import LEVERS, EntroPIC, Lever, compared_levers, lever_parameters, make_lever, register_lever
from pic.levers.registry import _OUT_OF_COMPARISON
from sim.methods import DEFAULT_METHODS


@pytest.fixture
def scratch():
    """Registrations made by a test are removed afterwards."""
    before, out = dict(LEVERS), set(_OUT_OF_COMPARISON)
    yield
    LEVERS.clear()
    LEVERS.update(before)
    _OUT_OF_COMPARISON.clear()
    _OUT_OF_COMPARISON.update(out)


def test_a_decorated_class_is_registered_with_its_preset(scratch):
    @register_lever("test_lever", preset={"kp": 3.0}, compared=False)
    class Mine(EntroPIC):
        pass

    assert LEVERS["test_lever"] == (Mine, {"kp": 3.0})
    assert lever_parameters("test_lever")["kp"] == 3.0
    lever = make_lever("test_lever", loops=2)
    assert isinstance(lever, Mine) and lever.name == "test_lever" and float(lever.controller.kp) == 3.0
    assert "test_lever" not in compared_levers()


@pytest.mark.parametrize(
    "again",
    [
        lambda: register_lever("entropic")(EntroPIC),  # the same class again
        lambda: register_lever("entropic", preset={"ki": 0.5})(EntroPIC),  # a new preset
        lambda: register_lever("clip_cov", preset={"kp": 1.0})(type("Other", (EntroPIC,), {})),  # another class
    ],
)
def test_a_name_registers_once(scratch, again):
    before = dict(LEVERS)
    with pytest.raises(ValueError, match=r"lever name '\w+' is already registered .*names must be unique"):
        again()
    assert before == LEVERS


def test_only_levers_register(scratch):
    with pytest.raises(TypeError, match="needs a pic.levers.Lever subclass"):
        register_lever("not_a_lever")(dict)
    assert "not_a_lever" not in LEVERS


def test_every_registered_class_is_a_lever_and_builds():
    for name, (cls, preset) in LEVERS.items():
        assert issubclass(cls, Lever) and isinstance(preset, dict)
        assert make_lever(name).name == name


def test_the_documented_table_lists_exactly_the_registry():
    lines = pic.levers.__doc__.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("====")]
    assert len(rules) == 3 and lines[rules[0] + 1].split()[0] == "name"
    rows = [line.split()[0] for line in lines[rules[1] + 1 : rules[2]]]
    names = set()
    for row in rows:  # expand "flexec_{id,did,od,static}"
        m = re.fullmatch(r"(\w+)\{([\w,]+)\}", row)
        names |= {m.group(1) + s for s in m.group(2).split(",")} if m else {row}
    assert names == set(LEVERS)


def test_the_default_comparison_reads_the_registry():
    assert compared_levers() == tuple(n for n in LEVERS if n not in ("flexec_static", "entropic_auto"))
    assert DEFAULT_METHODS[: len(compared_levers())] == compared_levers()
    assert set(DEFAULT_METHODS) - set(LEVERS) == {"entropic_pi_id", "entropic_pi_did", "entropic_pi_od"}
