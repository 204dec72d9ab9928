"""Reading ``results.json`` files into one tidy table, and storing a run's results under ``results/``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from imvia_core.errors import InputError

__all__ = ["load_results", "results_frame", "run_label", "publish_run", "METRICS"]

#: column name -> metric name of :class:`~imvia_core.evaluation.EvaluationResult`
METRICS = {"MRR": "mrr", "H@1": "hits@1", "H@3": "hits@3", "H@10": "hits@10", "H@100": "hits@100"}

_MODEL_NAMES = {
    "imvia": "IMVIA",
    "tucker": "TuckER",
    "transe": "TransE",
    "distmult": "DistMult",
    "complex": "ComplEx",
    "rotate": "RotatE",
}


def run_label(config: dict) -> str:
    """``IMVIA``, ``IMVIA w/o visual``, ``TuckER`` ...: a readable name of a run's model and ablation."""
    name = _MODEL_NAMES.get(config.get("model", ""), config.get("model", "?"))
    missing = [m for m in ("structure", "visual", "text", "joint") if config.get(f"use_{m}", True) is False]
    return name + (" w/o " + ", ".join(missing) if missing else "")


def load_results(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a readable results file ({err})") from err
    for key in ("dataset", "config", "test"):
        if key not in data:
            raise InputError(f"{path}: results file lacks the key {key!r}")
    return data


def results_frame(paths: Iterable[str | Path], *, split: str = "test", rank_type: str = "realistic") -> pd.DataFrame:
    """One row per results file: dataset, label, metrics in percent (MRR, H@1/3/10/100), MR, provenance."""
    from imvia_core.evaluation import EvaluationResult

    rows = []
    for path in sorted(Path(p) for p in paths):
        data = load_results(path)
        result = EvaluationResult.from_dict(data[split])
        row = {"dataset": data["dataset"], "label": run_label(data["config"]), "source": str(path)}
        for column, metric in METRICS.items():
            row[column] = 100.0 * result.metric(metric, rank_type=rank_type)
        row["MR"] = result.metric("mr", rank_type=rank_type)
        modalities = data.get("modalities", {})
        row["modalities"] = "+".join(m[0].upper() for m, on in modalities.items() if on) or "S"
        row["best_epoch"] = data.get("best_epoch")
        row["epochs"] = data.get("epochs_trained")
        row["dim"] = data["config"].get("dim")
        hw = data.get("hardware", {})
        row["hardware"] = hw.get("gpu") or hw.get("cpu", "")
        rows.append(row)
    return pd.DataFrame(rows)


def publish_run(run_dir: str | Path, results_root: str | Path, *, name: str | None = None) -> Path:
    """Copy ``run_dir/results.json`` to ``results_root/<dataset>/<name>.json`` (name from the run's label)."""
    data = load_results(Path(run_dir) / "results.json")
    label = name or run_label(data["config"]).lower().replace(" w/o ", "-no-").replace(", ", "-no-").replace(" ", "-")
    target = Path(results_root) / Path(data["dataset"]).name / f"{label}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(run_dir) / "results.json", target)
    return target
