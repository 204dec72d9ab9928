"""Table II: the paper's reported rows beside this project's reproduced ones, exported as Markdown and LaTeX."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from imvia_core.reporting.paper import DATASETS, TABLE_II, TABLE_II_METRICS

__all__ = ["table_ii", "to_markdown", "to_latex", "export_table"]


def table_ii(
    runs: pd.DataFrame | None = None,
    *,
    datasets: tuple[str, ...] | None = None,
    metrics: tuple[str, ...] = TABLE_II_METRICS,
    include_paper: bool = True,
) -> pd.DataFrame:
    """Build Table II.

    :param runs: output of :func:`~imvia_core.reporting.results.results_frame` (this project's runs).
    :param datasets: column groups, default: the paper's three plus any other dataset in ``runs``.
    :return: a frame indexed by ``(status, model)`` with columns ``(dataset, metric)``; ``status`` is
        ``"reported"`` for the paper's numbers and ``"reproduced"`` for this project's runs. Missing cells are NaN.
    """
    runs = runs if runs is not None else pd.DataFrame(columns=["dataset", "label", *metrics])
    if datasets is None:
        extra = [d for d in dict.fromkeys(runs["dataset"]) if d not in DATASETS]
        datasets = (*DATASETS, *extra)
    columns = pd.MultiIndex.from_product([datasets, metrics], names=["dataset", "metric"])
    rows: dict[tuple[str, str], dict] = {}
    if include_paper:
        for model, per_dataset in TABLE_II.items():
            row = {}
            for ds, values in per_dataset.items():
                if ds in datasets:
                    row.update({(ds, m): v for m, v in zip(TABLE_II_METRICS, values) if m in metrics})
            rows[("reported", model)] = row
    for _, run in runs.iterrows():
        key = ("reproduced", f"{run['label']} ({run.get('modalities', '')})".replace(" ()", ""))
        row = rows.setdefault(key, {})
        for m in metrics:
            if m in run and (run["dataset"], m) in columns:
                row[(run["dataset"], m)] = float(run[m])
    index = pd.MultiIndex.from_tuples(list(rows), names=["status", "model"])
    return pd.DataFrame([rows[k] for k in rows], index=index, columns=columns)


def _fmt(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table: one header row naming ``dataset metric`` pairs."""
    headers = ["status", "model"] + [f"{ds} {m}" for ds, m in table.columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for (status, model), row in table.iterrows():
        lines.append("| " + " | ".join([status, model] + [_fmt(v) for v in row.tolist()]) + " |")
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(a, b)
    return text


def to_latex(table: pd.DataFrame, *, caption: str = "Link prediction results (filtered, %).") -> str:
    """A ``table*`` environment with one column group per dataset, best value per column in bold."""
    datasets = list(dict.fromkeys(ds for ds, _ in table.columns))
    metrics = list(dict.fromkeys(m for _, m in table.columns))
    best = table.max(axis=0)
    out = [r"\begin{table*}[t]", r"\centering", rf"\caption{{{_tex_escape(caption)}}}"]
    out.append(r"\begin{tabular}{ll" + "c" * len(table.columns) + "}")
    out.append(r"\hline")
    out.append(
        " & & " + " & ".join(rf"\multicolumn{{{len(metrics)}}}{{c}}{{{_tex_escape(d)}}}" for d in datasets) + r" \\"
    )
    out.append("status & model & " + " & ".join(_tex_escape(m) for _ in datasets for m in metrics) + r" \\")
    out.append(r"\hline")
    for (status, model), row in table.iterrows():
        cells = []
        for col, v in row.items():
            text = _fmt(v)
            if text != "–" and v == best[col]:
                text = rf"\textbf{{{text}}}"
            cells.append(text)
        out.append(f"{status} & {_tex_escape(model)} & " + " & ".join(cells) + r" \\")
    out += [r"\hline", r"\end{tabular}", r"\end{table*}"]
    return "\n".join(out) + "\n"


def export_table(table: pd.DataFrame, out_dir: str | Path, stem: str = "table2") -> dict[str, Path]:
    """Write ``<stem>.md``, ``<stem>.tex`` and ``<stem>.csv`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / f"{stem}.md", "tex": out / f"{stem}.tex", "csv": out / f"{stem}.csv"}
    paths["md"].write_text(to_markdown(table), encoding="utf-8")
    paths["tex"].write_text(to_latex(table), encoding="utf-8")
    table.to_csv(paths["csv"], float_format="%.4f")
    return paths
