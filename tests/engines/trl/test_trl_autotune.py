"""TRL plug-in driven by the self-tuning controller: it trains, its α is the self-tuner's on the logged
entropies (one step of delay), and the controller comes back exactly from a checkpoint."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from engine_support import require_engine

pytestmark = [pytest.mark.trl, pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.*:FutureWarning")]
trl = require_engine("trl", "trl")

from entropic_trl import STATE_FILE  # noqa: E402
from pic import SelfTuningPI  # noqa: E402

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("trl_scenarios", HERE / "trl_scenarios.py")
sc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sc)


def test_self_tuner_drives_trl_and_resumes(tmp_path):
    model_dir = sc.build_model_dir(tmp_path / "model")
    ctl = SelfTuningPI(sc.TARGET, delay=1)
    trainer = sc.make_trainer(model_dir, tmp_path / "run", steps=3, save_steps=2, ctl=ctl)
    trainer.train()
    entropies = sc.history(trainer, "entropic/entropy")
    replay = SelfTuningPI(sc.TARGET, delay=1)
    for h in entropies:
        replay.update(h)
    assert trainer.controller.state_dict() == replay.state_dict()
    saved = json.loads((tmp_path / "run" / "checkpoint-2" / STATE_FILE).read_text())["controller"]
    fresh = SelfTuningPI(sc.TARGET, delay=1)
    fresh.load_state_dict(saved)
    assert fresh.state_dict() == saved and fresh.step == 2
