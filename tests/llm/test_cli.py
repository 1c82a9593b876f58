"""``python -m llm``: help generated from the dataclasses, precedence of the sources, one-line errors.

Run: python -m pytest tests/llm/test_cli.py
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from llm.cli import COMMANDS, CompareArgs, TrainArgs, main, parse_config
from llm.compare import CompareConfig
from llm.config import RLConfig, config_keys, field_docs

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "llm", *args], capture_output=True, text=True, env=env, cwd=ROOT)


def test_top_level_help_lists_every_command():
    res = _run("--help")
    assert res.returncode == 0, res.stderr
    for name in COMMANDS:
        assert f"\n  {name} " in res.stdout
    assert "FLAG:" not in res.stdout.upper()
    assert _run().returncode == 2  # no command: usage on stderr


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_subcommand_help_exits_0_with_descriptions(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "FLAG:" not in out.upper() and "usage: python -m llm " + command in out
    for key, _, _, doc in config_keys(COMMANDS[command][1]):
        flag = "RUN" if key == "runs" else "--" + key.replace("_", "-")  # plot's runs are positional
        assert flag in out and doc.split()[0] in out  # each field's docstring is its help


def test_train_help_describes_the_short_flags(capsys):
    main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--config", "--set", "--model", "--data", "--test", "--out", "--steps", "--seed", "--resume"):
        assert flag in out
    assert "--no-progress" in out and "No progress bar" in out
    assert "-v, --verbose" in out and "--ppo.epochs INT" in out and "--control.target TOML" in out


@pytest.mark.parametrize("cls", [RLConfig, CompareConfig, TrainArgs, CompareArgs, *(c for _, c in COMMANDS.values())])
def test_every_field_and_flag_has_a_docstring(cls):
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name != "cfg" and not dataclasses.is_dataclass(hints[f.name]):
            assert docs.get(f.name), f"{cls.__name__}.{f.name} has no docstring"
    if cls in (RLConfig, CompareConfig):
        assert all(doc for _, _, _, doc in config_keys(cls))


def test_precedence_defaults_config_set_flags(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[ppo]\nepochs = 2\nminibatches = 2\n[train]\nsteps = 7\nseed = 3\n[control]\nkp = 4\n")
    argv = [
        "--config",
        str(toml),
        "--set",
        "ppo.epochs=3",
        "--set",
        "train.steps=8",
        "--ppo.epochs",
        "4",
        "--steps",
        "9",
    ]
    _, cfg = parse_config(RLConfig, argv, "train", TrainArgs)
    assert cfg.ppo.epochs == 4  # flag over --set over the file
    assert cfg.train.steps == 9  # short flag over --set over the file
    assert cfg.ppo.minibatches == 2 and cfg.train.seed == 3 and cfg.control.kp == 4.0  # the file over defaults
    assert cfg.rollout.group_size == RLConfig().rollout.group_size  # defaults
    _, cfg = parse_config(RLConfig, ["--set", "ppo.epochs=2", "--set", "ppo.epochs=5"], "train", TrainArgs)
    assert cfg.ppo.epochs == 5  # repeated --set: the last wins


def test_short_flags_set_their_fields():
    argv = ["--model", "m", "--data", "d.jsonl", "--test", "t.jsonl", "--out", "o", "--steps", "3", "--seed", "5"]
    _, cfg = parse_config(RLConfig, [*argv, "--resume", "--no-progress", "--no-control"], "train", TrainArgs)
    assert (cfg.model.path, cfg.data.train, cfg.data.test, cfg.train.out) == ("m", "d.jsonl", "t.jsonl", "o")
    assert (cfg.train.steps, cfg.train.seed, cfg.train.resume, cfg.train.progress) == (3, 5, True, False)
    assert not cfg.control.enabled and cfg.lever_name == "grpo"
    _, cmp = parse_config(CompareConfig, ["--out", "c", "--steps", "2", "--model", "m"], "compare", CompareArgs)
    assert (cmp.compare.out, cmp.train.steps, cmp.model.path, cmp.train.out) == ("c", 2, "m", "")


def test_table_values_as_flags_and_set():
    target = '{kind = "linear", start = 0.5, end = 0.1, steps = 10}'
    _, cfg = parse_config(RLConfig, ["--control.target", target], "train", TrainArgs)
    assert cfg.control.target == {"kind": "linear", "start": 0.5, "end": 0.1, "steps": 10}
    assert cfg.control.schedule()(10) == pytest.approx(0.1)
    argv = ["--set", "lever.name=clip_cov", "--set", "lever.params.ratio=0.002", "--ppo.epochs", "2"]
    _, cfg = parse_config(RLConfig, argv, "train", TrainArgs)
    assert cfg.lever.params == {"ratio": 0.002} and cfg.build_lever().name == "clip_cov"
    methods = '[{label = "a", lever = "grpo"}, {label = "entropic"}]'
    _, cmp = parse_config(CompareConfig, ["--out", "c", "--compare.methods", methods], "compare", CompareArgs)
    assert [(m.label, m.lever) for m in cmp.methods()] == [("a", "grpo"), ("entropic", "entropic")]


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--set", "ppo.epochs=two"], "ppo.epochs must be an integer"),
        (["--set", "control.kq=1"], "unknown key control.kq"),
        (["--ppo.epochs", "x"], "--ppo.epochs"),
        (["--optim.schedule", "step"], "--optim.schedule"),
        (["--lever.name", "nope"], "--lever.name"),
        (["--control.tau", "1.5"], "control.tau must be in (0, 1)"),
        (["--control.target", '{kind = "spiral"}'], "control.target: unknown schedule kind"),
        (["--config", "missing.toml"], "config file missing.toml not found"),
        (["--set", "ppo"], "must look like key=value"),
    ],
)
def test_bad_values_one_line_naming_the_field_exit_2(argv, field, capsys):
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and field in err, err


def test_bad_value_from_the_shell_has_no_traceback():
    res = _run("train", "--set", "ppo.epochs=1.5")
    assert res.returncode == 2 and res.stderr == "error: ppo.epochs must be an integer, got 1.5\n"
    res = _run("make-data", "--out", "x", "--n-train", "many")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "--n-train" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("command", "key"), [("train", "ppo.epochs"), ("compare", "compare.seeds"), ("sft", "lr"), ("eval", "k")]
)
def test_help_keys_lists_every_key(command, key, capsys):
    assert main([command, "--help-keys"]) == 0
    lines = capsys.readouterr().out.splitlines()
    cls = COMMANDS[command][1]
    rows = config_keys(cls)
    assert [line.split()[0] for line in lines] == [k for k, *_ in rows]
    (line,) = [line for line in lines if line.split()[0] == key]
    _, kind, default, doc = next(r for r in rows if r[0] == key)
    assert f"{kind} = {json.dumps(default) if isinstance(default, str) else default}" in line and doc in line


def test_help_keys_shows_the_loaded_file_is_not_needed(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[ppo\n")
    assert main(["train", "--config", str(bad), "--help-keys"]) == 0  # help needs no valid config
    assert "ppo.epochs" in capsys.readouterr().out


def test_make_data_readme_command(tmp_path, capsys):
    from llm.data import load_jsonl
    from llm.tasks import make_dataset

    out = tmp_path / "data"
    assert main(["make-data", "--out", str(out), "--task", "countdown", "--difficulty", "3"]) == 0
    captured = capsys.readouterr()
    train, test = load_jsonl(out / "train.jsonl"), load_jsonl(out / "test.jsonl")
    assert len(test) == 200 and 0 < len(train) < 2000 and "capped" in captured.err
    assert not {e.prompt for e in train} & {e.prompt for e in test}
    with pytest.raises(ValueError, match=f"found only {len(train) + len(test)} distinct"):
        make_dataset("countdown", 2000, 200, 3, seed=0)  # uncapped, the same draw: every prompt found is used
    assert main(["make-data", "--out", str(tmp_path / "again"), "--task", "countdown", "--difficulty", "3"]) == 0
    assert (tmp_path / "again" / "train.jsonl").read_bytes() == (out / "train.jsonl").read_bytes()  # deterministic
