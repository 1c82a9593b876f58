"""EntroPIC plug-in for TRL (pinned to trl 1.16.*): `EntroPICGRPOTrainer`.

See `entropic_trl.trainer` for the math and the deliberate differences from the official fork,
and docs/integrations/trl.md for a copy-paste example.
"""

from .trainer import STATE_FILE, TOKEN_SUM_LOSSES, EntroPICGRPOTrainer

__all__ = ["STATE_FILE", "TOKEN_SUM_LOSSES", "EntroPICGRPOTrainer"]
