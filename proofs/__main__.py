"""``python -m proofs``: run every proof check (see `proofs.cli`)."""

from .cli import main

raise SystemExit(main())
