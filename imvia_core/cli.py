"""Command line: ``imvia`` (or ``python -m imvia_core``).

Subcommands are registered by the module that owns them, so that each part of the project keeps its own options.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from imvia_core import __version__
from imvia_core.allocator import tune_allocator
from imvia_core.errors import ImviaError

__all__ = ["main", "build_parser", "run_parsed"]

#: modules that each expose ``register(subparsers)``
_COMMAND_MODULES = (
    "imvia_core.data.cli",
    "imvia_core.training.cli",
    "imvia_core.training.sweep_cli",
    "imvia_core.features.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imvia",
        description=(
            "IMVIA: intra-modality multi-view fusion and inter-modality alignment for multi-modal knowledge graph "
            "completion (ICASSP 2025). Fetch and inspect datasets, extract multi-view features, train and evaluate."
        ),
    )
    parser.add_argument("--version", action="version", version=f"imvia {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:  # a part of the project that is not installed
            if err.name != name:
                raise
            continue
        module.register(sub)
    return parser


def _one_line_warning(prog: str):
    """A ``warnings.showwarning`` that prints ``prog: warning: message`` (no source line of the library)."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - warnings' API
        print(f"{prog}: warning: {message}", file=file if file is not None else sys.stderr)

    return show


def run_parsed(parser: argparse.ArgumentParser, argv: list[str] | None, *, prog: str) -> int:
    """Parse ``argv`` and run the chosen command; project errors become one line on stderr and exit code 1."""
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(prog)
            return int(args.func(args) or 0)
    except ImviaError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    """Every ``imvia`` command: the allocator is tuned first (:mod:`imvia_core.allocator`), then the command runs."""
    tune_allocator()
    return run_parsed(build_parser(), argv, prog="imvia")


if __name__ == "__main__":
    sys.exit(main())
