"""Build of kvverify's optional native scanner (``kvverify/evidence/_scan.c``).

Everything else is declared in ``pyproject.toml``. The extension is optional: where no C
compiler works (or ``CC=false``), ``pip install`` still succeeds and kvverify parses logs in pure
Python (``kvverify.evidence.parse.engine_name()`` says which path runs).
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that reports a failed build of the scanner and carries on without it."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all, broken toolchain, missing headers
            self._skipped(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skipped(exc)

    @staticmethod
    def _skipped(exc: Exception) -> None:
        print(
            f"kvverify: the native scanner was not built ({exc}); "
            "logs will be parsed in pure Python (same results, slower)",
            file=sys.stderr,
        )


extra = [] if sys.platform == "win32" else ["-O2", "-std=c99"]

setup(
    ext_modules=[
        Extension(
            "kvverify.evidence._scan",
            ["kvverify/evidence/_scan.c"],
            extra_compile_args=extra,
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
