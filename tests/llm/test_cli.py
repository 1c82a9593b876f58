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


# ------------------------------------------------------------------ eval's model directory
def _checkpoint(root: Path, step: int) -> Path:
    """A complete (pre-manifest layout) checkpoint: config.json, trainer_state.pt, one safetensors file."""
    d = root / "checkpoints" / f"step_{step:06d}"
    d.mkdir(parents=True)
    for name in ("config.json", "trainer_state.pt", "model.safetensors"):
        (d / name).write_text("{}")
    (root / "checkpoints" / "latest").write_text(d.name + "\n")
    return d


def test_eval_model_accepts_a_run_dir_checkpoints_and_latest(tmp_path):
    from llm.cli import resolve_model_dir

    run = tmp_path / "run"
    _checkpoint(run, 3)
    newest = _checkpoint(run, 5)
    (run / "config.json").write_text("{}")  # a run directory has its own (non-model) config.json
    for given in (run, run / "checkpoints", run / "checkpoints" / "latest", newest):
        assert resolve_model_dir(str(given)) == str(newest), given
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert resolve_model_dir(str(model)) == str(model)


def test_eval_model_missing_checkpoint_names_the_newest(tmp_path, capsys):
    run = tmp_path / "run"
    _checkpoint(run, 5)
    missing = run / "checkpoints" / "step_000100"
    assert main(["eval", "--model", str(missing), "--data", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: model must be") and "step_000005" in err
    assert main(["eval", "--model", str(tmp_path / "nothing"), "--data", "x"]) == 2
    assert "a run directory, or checkpoints/latest" in capsys.readouterr().err


def test_train_summary_names_no_controller_for_a_run_without_one():
    from llm.cli import _train_summary

    cfg = RLConfig()
    grpo = {"step": 3, "entropy": 0.5, "reward_mean": 0.25}
    line = _train_summary(grpo, dataclasses.replace(cfg, control=dataclasses.replace(cfg.control, enabled=False)))
    assert "alpha" not in line and "target" not in line and "no entropy controller" in line and "grpo" in line
    pi = {**grpo, "alpha": -0.25, "entropy_target": 0.4}
    assert "(target 0.4), alpha -0.250" in _train_summary(pi, cfg)


def test_compare_report_title_comes_from_the_run():
    from llm.compare import report_title

    cfg = CompareConfig()
    cfg = dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, steps=3),
        ppo=dataclasses.replace(cfg.ppo, epochs=2, minibatches=4),
        compare=dataclasses.replace(cfg.compare, seeds=[0, 1], title="tiny"),
    )
    title = report_title(cfg, 5, "runs/base/sft")
    assert (
        title
        == "tiny: 5 entropy-control methods on sft, 3 RL steps (off-policy, 2 PPO epochs × 4 mini-batches), 2 seeds"
    )
