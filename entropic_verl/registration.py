"""Make the plug-in's registration assertable.

verl imports plug-ins (``VERL_USE_EXTERNAL_MODULES`` and the ``verl.plugins`` entry points) while
``import verl`` runs and, for entry points, *silently skips* one that fails to import. So a broken
install shows up only as "Unsupported loss mode: entropic" deep inside a Ray worker. Call
`assert_registered` (in-process) or `check_fresh_process` (a new interpreter that imports only
``verl``, as a Ray worker does) to find out up front.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping

__all__ = ["assert_registered", "check_fresh_process", "fresh_process_status", "registration_status"]

_PROBE = """
import json, sys
import verl  # verl loads its plug-ins here
from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
loss = POLICY_LOSS_REGISTRY.get("entropic")
trainer = TRAINER_REGISTRY.get("entropic_sync")
print(json.dumps({
    "loss": None if loss is None else f"{loss.__module__}.{loss.__qualname__}",
    "trainer": None if trainer is None else f"{trainer.__module__}.{trainer.__qualname__}",
    "imported_by_verl": "entropic_verl" in sys.modules,
}))
"""


def registration_status() -> dict[str, str | None]:
    """What this process's verl registries hold under ``entropic`` / ``entropic_sync``."""
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY

    loss = POLICY_LOSS_REGISTRY.get("entropic")
    trainer = TRAINER_REGISTRY.get("entropic_sync")
    return {
        "loss": None if loss is None else f"{loss.__module__}.{loss.__qualname__}",
        "trainer": None if trainer is None else f"{trainer.__module__}.{trainer.__qualname__}",
    }


def assert_registered(status: Mapping[str, str | None] | None = None) -> None:
    """Raise ``RuntimeError`` unless verl's registries hold this package's loss and trainer."""
    status = registration_status() if status is None else status
    expected = {
        "loss": "entropic_verl.loss.compute_policy_loss_entropic",
        "trainer": "entropic_verl.trainer.EntroPICTrainer",
    }
    wrong = {k: status.get(k) for k, v in expected.items() if status.get(k) != v}
    if wrong:
        raise RuntimeError(
            f"entropic_verl is not registered in verl (got {wrong}); install the package in this environment "
            "(pip install -e .) or set VERL_USE_EXTERNAL_MODULES=entropic_verl, and check that "
            "`python -c 'import entropic_verl'` imports without error"
        )


def fresh_process_status(env: Mapping[str, str] | None = None, timeout: float = 300.0) -> dict:
    """Import ``verl`` (only) in a new interpreter and return what it registered.

    ``env`` replaces the environment (default: this one's), e.g. to compare runs with and
    without ``VERL_USE_EXTERNAL_MODULES``. The result also says whether ``entropic_verl`` was
    imported at all (``imported_by_verl``).
    """
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=dict(os.environ if env is None else env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"`import verl` failed in a fresh process: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_fresh_process(env: Mapping[str, str] | None = None, timeout: float = 300.0) -> dict:
    """`fresh_process_status`, raising ``RuntimeError`` unless verl registered this package."""
    status = fresh_process_status(env, timeout)
    assert_registered(status)
    return status
