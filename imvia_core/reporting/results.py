"""Reading ``results.json`` files into one tidy table, and storing a run's results under ``results/``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from imvia_core.evaluation import EvaluationResult
from imvia_core.evaluation.metrics import HEADLINE_METRICS
from imvia_core.model.factory import MODEL_LABELS
from imvia_core.training.publish import RANK_SUFFIX, load_results, publish_name, publish_run_as, split_publish_name

__all__ = [
    "load_results",
    "results_frame",
    "collect_results",
    "NOT_PROFILES",
    "run_label",
    "VARIANT_LABELS",
    "publish_run",
    "rank_file_of",
    "publish_name",
    "split_publish_name",
    "METRICS",
    "RANK_SUFFIX",
]

#: column name -> metric name of :class:`~imvia_core.evaluation.EvaluationResult`
METRICS = {("MRR" if m == "mrr" else m.replace("hits", "H")): m for m in HEADLINE_METRICS}


#: variants whose run label alone would repeat another variant's (TuckER trained with IMVIA's structure-branch
#: settings has a plain TuckER configuration): :func:`collect_results` labels their rows with this instead
VARIANT_LABELS = {"tucker-as-imvia": "TuckER at IMVIA's budget"}


def run_label(config: dict) -> str:
    """``IMVIA``, ``IMVIA w/o visual``, ``TuckER`` ...: a readable name of a run's model and ablation."""
    name = MODEL_LABELS.get(config.get("model", ""), config.get("model", "?"))
    missing = [m for m in ("structure", "visual", "text", "joint") if config.get(f"use_{m}", True) is False]
    return name + (" w/o " + ", ".join(missing) if missing else "")


def results_frame(paths: Iterable[str | Path], *, split: str = "test", rank_type: str = "realistic") -> pd.DataFrame:
    """One row per results file: dataset, label, metrics in percent (MRR, H@1/3/10/100), MR, provenance."""

    rows = []
    for path in sorted(Path(p) for p in paths):
        data = load_results(path)
        if data.get(split) is None:  # a run told to skip this split
            continue
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
        row["seed"] = data["config"].get("seed", 0)
        row["selection_split"] = data["config"].get("selection_split", "published")
        hw = data.get("hardware", {})
        row["hardware"] = hw.get("gpu") or hw.get("cpu", "")
        rows.append(row)
    return pd.DataFrame(rows)


#: folders of the results root that hold no profile's runs (``sweeps/<study>/``: hyperparameter studies)
NOT_PROFILES = ("sweeps",)


def collect_results(
    results_root: str | Path,
    *,
    variants: Iterable[str] | None = None,
    datasets: Iterable[str] | None = None,
    split: str = "test",
    rank_type: str = "realistic",
) -> pd.DataFrame:
    """:func:`results_frame` of every ``<results_root>/<profile>/<dataset>/<variant>.json``, with two more columns.

    ``profile`` and ``variant`` come from the path (``profile`` is ``""`` for a file at ``<dataset>/<variant>.json``);
    the variant of ``<variant>-seed<N>.json`` is ``<variant>`` (its seed is in the ``seed`` column).

    :param variants: keep only these variant names (file stems without a seed suffix), e.g. ``TABLE_VARIANTS``.
    :param datasets: keep only these datasets.
    :return: one row per file, sorted by dataset, profile and variant; an empty frame with the same columns when no
        file matches.
    """
    root = Path(results_root)
    wanted_variants = None if variants is None else set(variants)
    wanted_datasets = None if datasets is None else set(datasets)
    found: list[tuple[str, str, Path]] = []
    for path in sorted(root.glob("**/*.json")):
        parts = path.relative_to(root).parts
        if len(parts) not in (2, 3) or parts[0] in NOT_PROFILES:
            continue
        profile = parts[0] if len(parts) == 3 else ""
        variant, _ = split_publish_name(path.stem)
        if wanted_variants is not None and variant not in wanted_variants:
            continue
        if wanted_datasets is not None and parts[-2] not in wanted_datasets:
            continue
        found.append((profile, variant, path))
    frame = results_frame([p for _, _, p in found], split=split, rank_type=rank_type)
    if frame.empty:
        columns = ["dataset", "label", "source", *METRICS, "MR", "modalities", "best_epoch", "epochs", "dim", "seed"]
        return pd.DataFrame(columns=[*columns, "selection_split", "hardware", "profile", "variant"])
    by_source = {str(p): (profile, variant) for profile, variant, p in found}
    frame["profile"] = [by_source[s][0] for s in frame["source"]]
    frame["variant"] = [by_source[s][1] for s in frame["source"]]
    frame["label"] = [VARIANT_LABELS.get(v, label) for v, label in zip(frame["variant"], frame["label"])]
    return frame.sort_values(["dataset", "profile", "variant", "seed"]).reset_index(drop=True)


def publish_run(run_dir: str | Path, results_root: str | Path, *, name: str | None = None) -> Path:
    """Copy ``run_dir/results.json`` to ``results_root/<dataset>/<name>.json`` (name from the run's label).

    The run's per-query rank file (``ranks.npz``), when it has one, goes beside it as ``<name>.ranks.npz``
    (:func:`imvia_core.training.publish.publish_run_as`).
    """
    data = load_results(Path(run_dir) / "results.json")
    label = name or run_label(data["config"]).lower().replace(" w/o ", "-no-").replace(", ", "-no-").replace(" ", "-")
    return publish_run_as(run_dir, results_root, name=label)


def rank_file_of(results_path: str | Path) -> Path | None:
    """The rank file published beside ``results_path`` (``<name>.json`` -> ``<name>.ranks.npz``), or ``None``."""
    path = Path(results_path)
    candidate = path.with_name(path.stem + RANK_SUFFIX)
    return candidate if candidate.is_file() else None
