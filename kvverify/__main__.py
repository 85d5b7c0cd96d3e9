"""``python -m kvverify`` runs the command-line interface."""

from __future__ import annotations

from kvverify.cli import main

if __name__ == "__main__":
    main()
