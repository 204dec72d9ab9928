"""Storing a finished run under ``results/``: the published file names and the copy itself.

A run trained under ``runs/<profile>/<dataset>/<variant>-<digest>`` is published as
``results/<profile>/<dataset>/<variant>.json`` (``<variant>-seed<N>.json`` for a seed other than 0) with its
per-query rank file beside it (:func:`publish_variant`, called by ``imvia experiment`` and the notebooks after
:func:`~imvia_core.training.experiments.run_variant`). Reading published files back is
:mod:`imvia_core.reporting.results`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from imvia_core.errors import InputError
from imvia_core.paths import results_dir

__all__ = ["RANK_SUFFIX", "load_results", "publish_name", "publish_run_as", "publish_variant", "split_publish_name"]

#: suffix of a published rank file: ``results/<profile>/<dataset>/<name>.ranks.npz`` beside ``<name>.json``
RANK_SUFFIX = ".ranks.npz"


def publish_name(variant: str, seed: int = 0) -> str:
    """The file stem of a published run: ``<variant>`` for seed 0, ``<variant>-seed<N>`` for another seed."""
    return variant if seed == 0 else f"{variant}-seed{seed}"


def split_publish_name(stem: str) -> tuple[str, int | None]:
    """``("imvia", 2)`` for ``imvia-seed2``; ``(stem, None)`` for a stem without a seed suffix."""
    head, sep, tail = stem.rpartition("-seed")
    if sep and head and tail.isdigit():
        return head, int(tail)
    return stem, None


def load_results(path: str | Path) -> dict:
    """A run's ``results.json`` as a dict; one clear :class:`InputError` for a missing, unreadable or partial file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a readable results file ({err})") from err
    for key in ("dataset", "config", "test"):
        if key not in data:
            raise InputError(f"{path}: results file lacks the key {key!r}")
    return data


def publish_run_as(run_dir: str | Path, results_root: str | Path, *, name: str) -> Path:
    """Copy ``run_dir/results.json`` to ``results_root/<dataset>/<name>.json``; return the copy's path.

    The run's per-query rank file (``ranks.npz``), when it has one, goes beside it as ``<name>.ranks.npz``.
    """
    source = Path(run_dir) / "results.json"
    data = load_results(source)
    target = Path(results_root) / Path(data["dataset"]).name / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    ranks = Path(run_dir) / data.get("rank_file", "ranks.npz")
    if ranks.is_file():
        shutil.copyfile(ranks, target.with_name(f"{name}{RANK_SUFFIX}"))
    return target


def publish_variant(run: dict[str, Any], results_root: str | Path | None = None) -> Path:
    """Publish a finished run of :func:`~imvia_core.training.experiments.run_variant`; return the copy's path.

    The copy is ``<results_root>/<dataset>/<variant>.json`` (:func:`publish_name` for a seed other than 0), with
    ``results_root`` by default ``results/<profile>`` (:func:`imvia_core.paths.results_dir`).
    """
    root = Path(results_root) if results_root is not None else results_dir() / run["profile"]
    return publish_run_as(run["run_dir"], root, name=publish_name(run["variant"], int(run["config"]["seed"])))
