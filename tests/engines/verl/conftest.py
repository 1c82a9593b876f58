"""verl test setup: import verl once with its import-time warnings silenced.

``import verl`` warns about optional engines it cannot find (torchtitan, veomni, megatron, ...);
under this project's ``filterwarnings = error`` those would turn into import errors, and because
verl loads plug-ins inside ``import verl`` an error there is swallowed silently. In the main
environment, where verl is absent, this does nothing and the test modules skip themselves.
"""

from __future__ import annotations

import contextlib
import warnings

with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore")
    import verl  # noqa: F401
