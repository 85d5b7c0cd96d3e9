"""Run directories: a run never destroys an earlier run's evidence.

By default each run gets a directory of its own, ``kvverify-out/<scenario>/<date>-<time>/``,
and ``kvverify-out/<scenario>/latest`` points at the newest; ``--out DIR`` that already holds
logs is refused unless the user asks to overwrite them. A run directory, or a scenario's
directory (its latest run), is also what ``kvverify compare`` reads as a side.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

from kvverify.errors import InputError, KvverifyError

#: Where runs go by default, one directory per scenario, one below it per run.
DEFAULT_ROOT = Path("kvverify-out")
LATEST = "latest"


def run_logs(directory: Path) -> list[Path]:
    """The logs of a run directory; a scenario's directory means its latest run."""
    logs = sorted(directory.glob("*.log"))
    if not logs and (directory / LATEST).is_dir():
        logs = sorted((directory / LATEST).glob("*.log"))
    named = directory / f"{LATEST}.txt"  # where symlinks cannot be made
    if not logs and named.is_file():
        logs = sorted((directory / named.read_text(encoding="utf-8").strip()).glob("*.log"))
    if not logs:
        raise InputError(
            "holds no logs: not a run directory",
            where=str(directory),
            hint="give a run directory (kvverify-out/<scenario>/<run>), a log or a baseline",
        )
    return logs


Overwrite = Literal["no", "run", "variants"]


def claim_directory(
    scenario: str,
    out_dir: Path | None,
    overwrite: Overwrite,
    variants: list[str],
    *,
    root: Path = DEFAULT_ROOT,
) -> Path:
    """The directory this run writes to, created and checked writable before any engine
    starts. Never one that holds an earlier run's logs, unless ``overwrite``: ``"run"``
    (``--overwrite``) replaces the whole earlier run, so that a directory never mixes two
    runs' logs; ``"variants"`` only the variants run (a session adding to its own directory,
    as the pytest plugin does). Without ``out_dir``, a new one below ``root/<scenario>/``."""
    try:
        if out_dir is None:
            directory = _new_run_directory(root / scenario)
        else:
            directory = out_dir
            directory.mkdir(parents=True, exist_ok=True)
            earlier = sorted(directory.glob("*.log"))
            if earlier and overwrite == "no":
                names = [p.name for p in earlier]
                raise KvverifyError(
                    f"already holds logs of an earlier run ({', '.join(names[:4])}"
                    + (", ..." if len(names) > 4 else "")
                    + "): a run never replaces evidence",
                    where=str(directory),
                    hint="give a new directory, leave out --out (each run then gets its own), "
                    "or add --overwrite to replace them",
                )
            replaced = {
                "no": [],
                "run": earlier,
                "variants": [directory / f"{v}.log" for v in variants],
            }[overwrite]
            for log in replaced:
                log.unlink(missing_ok=True)
                log.with_suffix(".plan.json").unlink(missing_ok=True)
        probe = directory / ".kvverify-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise KvverifyError(
            f"cannot write the logs there: {exc.strerror or exc}",
            where=str(out_dir or root),
            hint="give a writable directory with --out",
        ) from None
    return directory


def _new_run_directory(root: Path) -> Path:
    """``root/<date>-<time>[-n]``, claimed atomically (two runs in one second get two), and
    ``root/latest`` pointing at it."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        directory = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - a thousand runs in one second
        raise KvverifyError("cannot find a free run directory", where=str(root))
    latest = root / LATEST
    try:
        tmp = root / f".{LATEST}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(directory.name, target_is_directory=True)
        tmp.replace(latest)
    except OSError:  # no symlinks here: a file that names it
        (root / f"{LATEST}.txt").write_text(directory.name + "\n", encoding="utf-8")
    return directory
