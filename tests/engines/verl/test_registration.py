"""(a) verl loads the plug-in itself, in a fresh process: by entry point and by VERL_USE_EXTERNAL_MODULES.

Each check starts a new interpreter that imports only ``verl`` (as a Ray worker does), from a
directory outside the checkout and without PYTHONPATH, so nothing but verl's own plug-in
mechanism can import ``entropic_verl``. With both mechanisms off, neither name is registered.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from engine_support import require_engine

pytestmark = pytest.mark.verl
verl = require_engine("verl", "verl")

from entropic_verl import assert_registered, fresh_process_status, registration_status  # noqa: E402

OURS = {"loss": "entropic_verl.loss.compute_policy_loss_entropic", "trainer": "entropic_verl.trainer.EntroPICTrainer"}


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VERL_USE_EXTERNAL_MODULES")}
    env.pop("VERL_USE_EXTERNAL_PLUGINS", None)
    env.update(overrides)
    return env


ENVS = {
    "entry_point": {},  # VERL_USE_EXTERNAL_PLUGINS=auto, verl's default
    "env_var": {"VERL_USE_EXTERNAL_PLUGINS": "none", "VERL_USE_EXTERNAL_MODULES": "entropic_verl"},
    "neither": {"VERL_USE_EXTERNAL_PLUGINS": "none"},
}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """One fresh interpreter per mechanism, run concurrently, from a directory outside the checkout."""
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("fresh"))
    try:
        with ThreadPoolExecutor(len(ENVS)) as pool:
            futures = {name: pool.submit(fresh_process_status, _env(**env)) for name, env in ENVS.items()}
            return {name: f.result() for name, f in futures.items()}
    finally:
        os.chdir(cwd)


def test_entry_point_registers_in_a_fresh_process(fresh):
    assert fresh["entry_point"] == {**OURS, "imported_by_verl": True}
    assert_registered(fresh["entry_point"])


def test_env_var_registers_with_entry_points_off(fresh):
    assert fresh["env_var"] == {**OURS, "imported_by_verl": True}


def test_absent_when_both_mechanisms_are_off(fresh):
    assert fresh["neither"] == {"loss": None, "trainer": None, "imported_by_verl": False}
    with pytest.raises(RuntimeError, match="not registered"):
        assert_registered(fresh["neither"])


def test_in_process_registration_is_ours():
    assert registration_status() == OURS
    assert_registered()
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    from entropic_verl.loss import compute_policy_loss_entropic

    assert get_policy_loss_fn("entropic") is compute_policy_loss_entropic


def test_assert_registered_names_what_is_wrong():
    with pytest.raises(RuntimeError, match=r"'trainer': 'somebody.Else'"):
        assert_registered({"loss": OURS["loss"], "trainer": "somebody.Else"})


def test_cli_exit_status(monkeypatch, capsys):
    import entropic_verl.__main__ as cli

    monkeypatch.setattr(cli, "check_fresh_process", lambda: OURS)
    assert cli.main() == 0
    assert "entropic_verl.trainer.EntroPICTrainer" in capsys.readouterr().out

    def broken():
        raise RuntimeError("entropic_verl is not registered in verl")

    monkeypatch.setattr(cli, "check_fresh_process", broken)
    assert cli.main() == 1
    assert "FAIL: entropic_verl is not registered" in capsys.readouterr().err
