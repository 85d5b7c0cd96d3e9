"""``python -m kvverify`` runs the command-line interface."""

from __future__ import annotations

import sys

from kvverify.cli import main

if __name__ == "__main__":
    sys.exit(main())
