"""Where the project keeps data, runs and results.

Defaults resolve against the project checkout when the package runs from one (the folder holding this package's
``pyproject.toml``), else against the current directory. Environment variables override them:
``IMVIA_DATA_DIR``, ``IMVIA_RUNS_DIR``, ``IMVIA_RESULTS_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["project_root", "data_dir", "runs_dir", "results_dir", "figures_dir"]


def project_root() -> Path:
    """The checkout this package lives in, or the current directory for a plain install."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "imvia_core").is_dir():
        return here
    return Path.cwd()


def _dir(env: str, default: str) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser() if value else project_root() / default


def data_dir() -> Path:
    return _dir("IMVIA_DATA_DIR", "data")


def runs_dir() -> Path:
    return _dir("IMVIA_RUNS_DIR", "runs")


def results_dir() -> Path:
    return _dir("IMVIA_RESULTS_DIR", "results")


def figures_dir() -> Path:
    return _dir("IMVIA_FIGURES_DIR", "figures")
