"""The ``auralize`` command: parse, call, report.

Each sub-command lives in :mod:`auralize.commands` as a module with a
``register(subparsers)`` function that adds its parser and sets ``run`` (a callable
taking the parsed namespace and returning an exit code).  This file only wires
them together and turns :class:`~auralize.errors.AuralizeError` into a one-line
message with exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from auralize import __version__
from auralize.errors import AuralizeError

# Imported lazily by name so that `auralize --version` does not pay for torch.
COMMAND_MODULES = [
    "devices",
    "check_audio",
    "dream",
    "activations",
    "render",
    "demo",
    "sweep",
    "compare",
    "generate",
    "serve",
    "follow",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auralize",
        description="Hear neural networks: training, activations, dreams, generative audio.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `auralize COMMAND --help` for each command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"auralize {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"auralize.commands.{name}").register(sub)
    return parser


def _warning_one_line(message, category, filename, lineno, file=None, line=None):
    return f"auralize: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _warning_one_line
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except AuralizeError as exc:
        print(f"auralize: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("auralize: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
