"""Configuration: defaults, TOML, --set overrides, one-line errors naming the field.

Run: python -m pytest tests/llm/test_config.py
"""

from __future__ import annotations

import dataclasses
import typing

import pytest

from llm.config import (
    ConfigError,
    ControlConfig,
    EvalConfig,
    InitTinyConfig,
    LeverConfig,
    ModelConfig,
    OptimConfig,
    RLConfig,
    TrainConfig,
    load_config,
)


def test_defaults_are_valid_and_official_gains():
    cfg = load_config(RLConfig)
    assert (cfg.control.kp, cfg.control.ki, cfg.control.tau) == (1.0, 0.01, 0.95)
    assert cfg.ppo.on_policy


def test_toml_then_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[ppo]\nepochs = 2\nminibatches = 4\n[control]\nkp = 3\ntarget = 0.3\n")
    cfg = load_config(
        RLConfig, f, ["control.ki=0.05", "optim.lr=1e-5", "train.out=runs/x", "control.anti_windup=clamp"]
    )
    assert cfg.ppo.epochs == 2 and cfg.ppo.minibatches == 4 and not cfg.ppo.on_policy
    assert cfg.control.kp == 3.0 and isinstance(cfg.control.kp, float)  # ints become floats
    assert cfg.control.ki == 0.05 and cfg.optim.lr == 1e-5
    assert cfg.train.out == "runs/x" and cfg.control.anti_windup == "clamp"


def test_schedule_target_from_an_inline_table():
    cfg = load_config(RLConfig, None, ['control.target={kind = "linear", start = 0.5, end = 0.1, steps = 100}'])
    sched = cfg.control.schedule()
    assert sched(0) == 0.5 and sched(100) == pytest.approx(0.1)
    assert cfg.control.max_target(50) == 0.5


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["control.kp=-1"], r"control.kp must be a finite number >= 0, got -1"),
        (["control.tau=1.0"], r"control.tau must be in \(0, 1\)"),
        (["control.normalization=sum"], "control.normalization must be one of"),
        (["control.target=-0.1"], "control.target: value must be a finite entropy >= 0"),
        (['control.target={kind = "spiral"}'], "control.target: unknown schedule kind"),
        (["rollout.temperature=0"], r"rollout.temperature must be > 0"),
        (["rollout.group_size=1"], "rollout.group_size must be an integer >= 2"),
        (["ppo.minibatches=3"], "ppo.minibatches must divide data.prompts_per_step × rollout.group_size = 128"),
        (["ppo.micro_batch_size=5"], "ppo.micro_batch_size must divide the mini-batch of 128"),
        (["ppo.eps_low=1.5"], r"ppo.eps_low must be in \[0, 1\)"),
        (["optim.schedule=step"], "optim.schedule must be"),
        (["ppo.epochs=two"], "ppo.epochs must be an integer"),
        (["ppo.epochs=1.5"], "ppo.epochs must be an integer"),
        (["control.enabled=1"], "control.enabled must be true or false"),
        (["control.kq=1"], "unknown key control.kq"),
        (["controll.kp=1"], "unknown key controll"),
        (["control"], "must look like key=value"),
    ],
)
def test_bad_values_give_one_line_naming_the_field(overrides, match):
    with pytest.raises(ConfigError, match=match) as exc:
        load_config(RLConfig, None, overrides)
    assert "\n" not in str(exc.value)


def test_missing_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(RLConfig, tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[ppo\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(RLConfig, bad)


def test_paths_are_checked_by_the_trainer(tmp_path):
    cfg = load_config(RLConfig, None, [f"model.path={tmp_path / 'none'!s}", "data.train=x.jsonl", "train.out=o"])
    with pytest.raises(ConfigError, match="model.path must be an existing directory"):
        cfg.check_paths()


def test_flat_configs():
    assert load_config(InitTinyConfig, None, ["arch=llama", "hidden_size=64"]).arch == "llama"
    with pytest.raises(ConfigError, match="hidden_size must be a multiple of num_heads=3"):
        load_config(InitTinyConfig, None, ["num_heads=3"])
    with pytest.raises(ConfigError, match="k must be an integer >= 1"):
        load_config(EvalConfig, None, ["k=0"])


def test_config_json_round_trips_through_loading(tmp_path):
    import json

    from llm.config import build_config, config_to_dict

    cfg = load_config(
        RLConfig,
        None,
        ['control.target={kind = "cosine", start = 0.5, end = 0.2, steps = 50}', "ppo.epochs=2", "optim.lr=3e-5"],
    )
    again = build_config(RLConfig, json.loads(json.dumps(config_to_dict(cfg))))
    assert again == cfg and isinstance(again.control, ControlConfig)
    assert load_config(RLConfig, None, ["lever.name=entropy_bonus", "lever.params.coef=0.01"]).lever.params == {
        "coef": 0.01
    }


def test_control_is_entropic_params_plus_enabled_and_autotune():
    from pic.params import EntroPICParams

    assert issubclass(ControlConfig, EntroPICParams)
    fields = [f.name for f in dataclasses.fields(ControlConfig)]
    assert fields == [f.name for f in dataclasses.fields(EntroPICParams)] + ["enabled", "autotune"]
    assert {f.name: f.default for f in dataclasses.fields(ControlConfig) if f.name not in ("enabled", "autotune")} == {
        f.name: f.default for f in dataclasses.fields(EntroPICParams)
    }
    lever = load_config(RLConfig, None, ["control.kp=3", "control.tau=0.5", "control.integral_limit=2"]).build_lever()
    assert (float(lever.controller.kp), lever.tau, lever.controller.integral_limit) == (3.0, 0.5, 2.0)
    p_only = load_config(RLConfig, None, ["lever.name=entropic_p", "control.ki=0.5"]).build_lever()
    assert float(p_only.controller.ki) == 0.0 and load_config(RLConfig).build_lever().controller.integral_limit is None


def test_choices_are_literals_and_lever_names_come_from_the_registry():
    from pic.levers import LEVERS

    hints = typing.get_type_hints(LeverConfig)
    assert typing.get_args(hints["name"]) == tuple(sorted(LEVERS))
    for cls, name in [(OptimConfig, "schedule"), (ModelConfig, "dtype"), (TrainConfig, "parallel")]:
        assert typing.get_origin(typing.get_type_hints(cls)[name]) is typing.Literal
    assert typing.get_args(typing.get_type_hints(ControlConfig)["anti_windup"]) == ("none", "clamp", "back_calculation")


def test_a_wrong_type_in_a_file_names_the_field(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[ppo]\nepochs = "2"\n')
    with pytest.raises(ConfigError, match=r"^ppo.epochs must be an integer, got '2'$"):
        load_config(RLConfig, f)
    f.write_text("ppo = 3\n")
    with pytest.raises(ConfigError, match="ppo must be a table"):
        load_config(RLConfig, f)
