"""The trainer's run-level safety: one run per directory, a torn metrics row repaired on resume,
verifier fallbacks counted in the metrics row.

Run: python -m pytest tests/llm/test_trainer_safety.py
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from llm.config import RLConfig, load_config  # noqa: E402
from llm.data import write_jsonl  # noqa: E402
from llm.metrics import read_metrics  # noqa: E402
from llm.rundir import RunDirBusy, RunDirLock  # noqa: E402
from llm.tasks import make_dataset  # noqa: E402
from llm.trainer import train  # noqa: E402


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    train_set, _ = make_dataset("arithmetic", 16, 0, 2, seed=0)
    return write_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl", train_set)


def _cfg(model, data, out, *extra):
    keys = [f"model.path={json.dumps(str(model))}", f"data.train={json.dumps(str(data))}"]
    keys += [f"train.out={json.dumps(str(out))}", "data.prompts_per_step=2", "rollout.group_size=2"]
    keys += ["rollout.max_new_tokens=2", "train.steps=2", "train.progress=false", "train.tensorboard=false"]
    return load_config(RLConfig, None, [*keys, "control.target=2.0", *extra])


def test_a_second_run_on_a_held_directory_is_refused(tiny_model_dir, data_file, tmp_path):
    out = tmp_path / "run"
    with RunDirLock(out), pytest.raises(RunDirBusy, match=str(out)):
        train(_cfg(tiny_model_dir, data_file, out))
    assert not (out / "metrics.jsonl").exists()  # refused before writing anything
    rows = train(_cfg(tiny_model_dir, data_file, out))  # the lock is released with its holder
    assert len(rows) == 2


def test_verifier_counts_are_logged(tiny_model_dir, data_file, tmp_path):
    rows = train(_cfg(tiny_model_dir, data_file, tmp_path / "run"))
    for row in rows:
        assert row["verifier_timeouts"] == 0 and row["verifier_crashes"] == 0
    assert "verifier_timeouts" in read_metrics(tmp_path / "run")[0]


def test_resume_repairs_a_torn_metrics_row(tiny_model_dir, data_file, tmp_path, caplog):
    out = tmp_path / "run"
    train(_cfg(tiny_model_dir, data_file, out, "train.save_every=1"))
    path = out / "metrics.jsonl"
    complete = path.read_text()
    path.write_text(complete + '{"step": 3, "entro')  # a power loss in the middle of a row
    rows = train(_cfg(tiny_model_dir, data_file, out, "train.steps=3", "train.resume=true"))
    assert [r["step"] for r in rows] == [3]
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3]
    assert "torn" in caplog.text


def test_lever_metrics_describe_the_step_they_are_logged_with(tiny_model_dir, data_file, tmp_path):
    """Clip-Cov selects tokens inside the policy update: the first row already shows that step's share."""
    cfg = _cfg(
        tiny_model_dir,
        data_file,
        tmp_path / "run",
        "lever.name=clip_cov",
        "lever.params.ratio=0.5",
        "lever.params.lower=-1e9",
    )
    rows = train(cfg)
    assert rows[0]["cov_selected"] > 0  # logged before the update, it was the initial 0


def test_a_run_of_skipped_steps_stops_before_anything_is_saved(tiny_model_dir, data_file, tmp_path, monkeypatch):
    import llm.trainer as trainer_mod
    from llm.metrics import RunStopped

    real = trainer_mod.policy_loss

    def nan_loss(*args, **kwargs):
        loss, stats = real(*args, **kwargs)
        return loss * float("nan"), stats

    monkeypatch.setattr(trainer_mod, "policy_loss", nan_loss)
    out = tmp_path / "run"
    cfg = _cfg(tiny_model_dir, data_file, out, "train.steps=5", "train.max_skipped_steps=1")
    with pytest.raises(RunStopped, match=r"2 steps in a row .* train.max_skipped_steps = 1"):
        train(cfg)
    assert [r["skipped"] for r in read_metrics(out)] == [True, True]
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").glob("step_*"))


@pytest.mark.parametrize(
    ("key", "field"), [("optim.lr=inf", "optim.lr"), ("train.seed=-1", "train.seed"), ("optim.lr=nan", "optim.lr")]
)
def test_non_finite_lr_and_negative_seed_are_refused(tiny_model_dir, data_file, tmp_path, key, field):
    from llm.config import ConfigError

    with pytest.raises(ConfigError, match=rf"^{field} must be"):
        _cfg(tiny_model_dir, data_file, tmp_path / "run", key)


def test_extending_a_finished_run_keeps_its_schedule_horizon(tiny_model_dir, data_file, tmp_path):
    """`--resume --steps 4` after a 2-step linear-decay run: steps 3-4 run at the schedule's end value."""
    out = tmp_path / "run"
    decay = ["optim.schedule=linear", "optim.min_lr_ratio=0.25", "optim.lr=1e-3"]
    first = train(_cfg(tiny_model_dir, data_file, out, *decay))
    more = train(_cfg(tiny_model_dir, data_file, out, *decay, "train.steps=4", "train.resume=true"))
    assert [r["step"] for r in more] == [3, 4]
    assert first[0]["lr"] > first[1]["lr"]  # the 2-step plan decays
    assert more[0]["lr"] == more[1]["lr"] == pytest.approx(0.25e-3)  # its end value, not a re-timed 4-step decay


def test_a_prompt_longer_than_the_model_allows_is_one_clear_error(tiny_model_dir, tmp_path):
    from llm.data import DataError, Example

    data = write_jsonl(tmp_path / "long.jsonl", [Example("1+" * 200 + "1=", "201", "arithmetic")] * 2)
    cfg = _cfg(tiny_model_dir, data, tmp_path / "run", "rollout.max_new_tokens=8")
    with pytest.raises(DataError, match=r"over the limit of \d+ \(the model's positions minus rollout.max_new_tokens"):
        train(cfg)


def test_a_character_outside_the_alphabet_is_one_clear_error(tiny_model_dir, tmp_path):
    from llm.data import DataError, Example

    data = write_jsonl(tmp_path / "odd.jsonl", [Example("1+1=\u00e9", "2", "arithmetic")] * 2)
    with pytest.raises(DataError, match=r"odd.jsonl.*character 'é' \(U\+00E9\).*does not know"):
        train(_cfg(tiny_model_dir, data, tmp_path / "run"))
