"""Plots: the Fig. 2 modality ablation and training curves. Every plot is saved with the CSV behind it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

__all__ = [
    "ABLATION_ORDER",
    "ablation_frame",
    "plot_ablation",
    "training_curves",
    "plot_training_curves",
    "save_figure",
]

#: the variants of Fig. 2, in the paper's order
ABLATION_ORDER = ("IMVIA", "IMVIA w/o structure", "IMVIA w/o visual", "IMVIA w/o text", "IMVIA w/o joint")
_METRICS = ("MRR", "H@1", "H@3", "H@10", "H@100")


def ablation_frame(runs: pd.DataFrame, *, dataset: str) -> pd.DataFrame:
    """Long-form frame (variant, metric, value in %) of the IMVIA ablation runs of ``dataset``."""
    sub = runs[(runs["dataset"] == dataset) & runs["label"].isin(ABLATION_ORDER)]
    long = sub.melt(id_vars=["label"], value_vars=list(_METRICS), var_name="metric", value_name="value")
    long = long.rename(columns={"label": "variant"})
    long["variant"] = pd.Categorical(long["variant"], categories=[v for v in ABLATION_ORDER if v in set(sub["label"])])
    long["metric"] = pd.Categorical(long["metric"], categories=list(_METRICS))
    return long.sort_values(["metric", "variant"]).reset_index(drop=True)


def save_figure(fig, data: pd.DataFrame, out_dir: str | Path, stem: str) -> dict[str, Path]:
    """Save ``fig`` as PNG and PDF and ``data`` as CSV, all named ``stem``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"png": out / f"{stem}.png", "pdf": out / f"{stem}.pdf", "csv": out / f"{stem}.csv"}
    fig.savefig(paths["png"], dpi=150, bbox_inches="tight")
    fig.savefig(paths["pdf"], bbox_inches="tight", metadata={"CreationDate": None})
    data.to_csv(paths["csv"], index=False, float_format="%.4f")
    return paths


def plot_ablation(long: pd.DataFrame, *, title: str):
    """Grouped bars: one group per metric, one bar per variant (full model first), value labels on top."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(9, 4))
    palette = ["#1b5e20", "#9e9e9e", "#1e88e5", "#fb8c00", "#8e24aa"][: long["variant"].nunique()]
    sns.barplot(data=long, x="metric", y="value", hue="variant", palette=palette, ax=ax)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.1f", fontsize=7, padding=1)
    ax.set_xlabel("")
    ax.set_ylabel("filtered test score (%)")
    ax.set_ylim(0, min(105, long["value"].max() * 1.08 + 1))
    ax.set_title(title)
    # below the axes: inside, a full-width legend would cover the bars of scores near 100 %
    ax.legend(title="", ncol=len(palette), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.09), frameon=False)
    sns.despine(ax=ax)
    fig.tight_layout()
    return fig


def training_curves(metrics_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read ``metrics.jsonl``: (per-epoch training losses, per-evaluation validation metrics)."""
    records = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    train = pd.DataFrame([r for r in records if r.get("kind") == "train"])
    valid = pd.DataFrame([r for r in records if r.get("kind") == "valid"])
    return train, valid


def plot_training_curves(train: pd.DataFrame, valid: pd.DataFrame, *, title: str = ""):
    """Left: loss terms per epoch (log scale); right: validation MRR and Hits@10 per evaluation."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    for column in [c for c in ("loss", "kgc", "align", "mi") if c in train]:
        values = train[column].abs() if column == "mi" else train[column]
        a.plot(train["epoch"], values, label=column + (" (|value|)" if column == "mi" else ""))
    a.set_yscale("log")
    a.set_xlabel("epoch")
    a.set_ylabel("training loss term")
    a.legend(frameon=False)
    if len(valid):
        for column in [c for c in ("mrr", "hits@10") if c in valid]:
            b.plot(valid["epoch"], 100 * valid[column], marker="o", label=column.upper().replace("HITS@", "Hits@"))
        best = valid.loc[valid["mrr"].idxmax()]
        b.axvline(best["epoch"], color="grey", linestyle=":", label=f"selected (epoch {int(best['epoch'])})")
    b.set_xlabel("epoch")
    b.set_ylabel("validation (%)")
    b.legend(frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
