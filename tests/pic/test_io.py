"""pic.io: the atomic write leaves the old or the new file, never a partial one or a temp file."""

import json
import math
import os

import pytest

from pic.io import atomic_write_bytes, atomic_write_json, atomic_write_text


def test_write_and_replace(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path):
    p = tmp_path / "a.json"
    atomic_write_json(p, {"x": 1})
    with pytest.raises(ValueError):
        atomic_write_json(p, {"x": math.nan})  # strict JSON: refused before anything is renamed
    assert json.loads(p.read_text()) == {"x": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_bytes_round_trip(tmp_path):
    p = atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
