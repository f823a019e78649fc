"""Entry point: ``python -m tests.lab <create|destroy|status|exec> ...``."""

from __future__ import annotations

import sys

from tests.lab.cli import main

if __name__ == "__main__":
    sys.exit(main())
