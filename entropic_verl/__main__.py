"""``python -m entropic_verl``: check that a fresh ``import verl`` registers the plug-in.

Exit status 0 and one line per registry when it does; 1 with the reason when it does not. Run it
in the environment (and with the environment variables) your Ray workers use.
"""

from __future__ import annotations

import sys

from .registration import check_fresh_process


def main() -> int:
    try:
        status = check_fresh_process()
    except RuntimeError as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 1
    print(f"policy loss 'entropic'  -> {status['loss']}")
    print(f"trainer 'entropic_sync' -> {status['trainer']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
