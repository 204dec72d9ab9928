"""Exceptions that carry what a user needs to fix their input: the file, the line, what was found and expected."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ImviaError", "InputError", "DataFormatError", "ChecksumError", "ConfigError"]


class ImviaError(Exception):
    """Base class of every error this project raises on purpose; the CLI prints these without a traceback."""


class InputError(ImviaError):
    """A user-supplied file or value is unusable."""


class DataFormatError(InputError):
    """A line of a data file does not have the expected form.

    :param path: the file.
    :param line: 1-based line number, or ``None`` when the problem is not tied to one line.
    :param found: what was read (shortened).
    :param expected: what the file should contain there.
    """

    def __init__(self, path: str | Path, line: int | None, found: str, expected: str) -> None:
        self.path = str(path)
        self.line = line
        self.found = found
        self.expected = expected
        where = f"{self.path}:{line}" if line is not None else self.path
        shown = found if len(found) <= 200 else found[:197] + "..."
        super().__init__(f"{where}: found {shown}; expected {expected}")


class ChecksumError(InputError):
    """A downloaded or stored file does not match its expected SHA-256."""


class ConfigError(InputError):
    """A configuration key is unknown or a value is impossible."""
