"""Table II: the paper's reported rows beside this project's reproduced ones, exported as Markdown and LaTeX.

:func:`table_ii` puts one number per cell (one run per row). :func:`seed_table` aggregates the runs of several seeds
(mean, standard deviation, count) and adds paired p-values against IMVIA on the same test queries
(:mod:`imvia_core.reporting.significance`); :func:`table_ii_long` lays that out beside the reported rows.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from imvia_core.evaluation.rank_files import load_rank_file
from imvia_core.reporting.paper import DATASETS, TABLE_II, TABLE_II_METRICS
from imvia_core.reporting.results import rank_file_of
from imvia_core.reporting.significance import compare_runs

__all__ = [
    "table_ii",
    "to_markdown",
    "to_latex",
    "export_table",
    "REFERENCE_VARIANT",
    "seed_table",
    "table_ii_long",
    "long_to_markdown",
    "long_to_latex",
    "export_long_table",
]


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


# ------------------------------------------------------------------------------------------- seeds and p-values
#: the reference row of the paired tests: every other reproduced row of a dataset is compared with it
REFERENCE_VARIANT = "imvia"


def seed_table(
    runs: pd.DataFrame,
    *,
    reference: str = REFERENCE_VARIANT,
    metrics: tuple[str, ...] = TABLE_II_METRICS,
    resamples: int = 10_000,
) -> pd.DataFrame:
    """One row per (dataset, profile, variant) of ``runs``: mean and standard deviation over seeds, and p-values.

    :param runs: :func:`~imvia_core.reporting.results.collect_results` output (one row per published run, with the
        ``seed``, ``variant`` and ``source`` columns).
    :param reference: the variant every other row of the same dataset and profile is compared with.
    :param resamples: bootstrap resamples of the paired test.
    :return: columns ``dataset, profile, variant, label, modalities, seeds`` (how many), ``seed_list``, for each
        metric ``m`` the mean ``m`` and the sample standard deviation ``m std`` (NaN for one seed), and
        ``delta MRR`` (reference minus this row, percent points, from the paired queries), ``p wilcoxon`` and
        ``p bootstrap`` (two-sided, on per-query reciprocal ranks of the test split averaged over the seeds that
        have a rank file; NaN for the reference row and where either side has none), and ``paired seeds``
        (``"<reference runs> / <this row's runs>"`` that entered the test).
    """
    columns = ["dataset", "profile", "variant", "label", "modalities", "seeds", "seed_list"]
    columns += [c for m in metrics for c in (m, f"{m} std")]
    columns += ["delta MRR", "p wilcoxon", "p bootstrap", "paired seeds"]
    if runs.empty:
        return pd.DataFrame(columns=columns)

    def test_ranks(sources: list[str]) -> list:
        """The test ranks of the runs that have a rank file (runs published before rank files have none)."""
        loaded = [load_rank_file(f) for f in (rank_file_of(s) for s in sources) if f is not None]
        return [x["test"] for x in loaded if "test" in x]

    rows = []
    for (dataset, profile, variant), group in runs.groupby(["dataset", "profile", "variant"], sort=True):
        group = group.sort_values("seed")
        row = {
            "dataset": dataset,
            "profile": profile,
            "variant": variant,
            "label": group["label"].iloc[0],
            "modalities": group["modalities"].iloc[0] if "modalities" in group else "",
            "seeds": len(group),
            "seed_list": " ".join(str(int(s)) for s in group["seed"]),
        }
        for m in metrics:
            values = group[m].astype(float)
            row[m] = float(values.mean())
            row[f"{m} std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        row.update({"delta MRR": math.nan, "p wilcoxon": math.nan, "p bootstrap": math.nan, "paired seeds": ""})
        ref = runs[(runs["dataset"] == dataset) & (runs["profile"] == profile) & (runs["variant"] == reference)]
        if variant != reference and not ref.empty:
            mine, theirs = test_ranks(list(group["source"])), test_ranks(list(ref["source"]))
            row["paired seeds"] = f"{len(theirs)} / {len(mine)}"
            if mine and theirs:
                result = compare_runs(theirs, mine, resamples=resamples)
                row.update(
                    {
                        "delta MRR": 100.0 * result.mean_difference,
                        "p wilcoxon": result.p_wilcoxon,
                        "p bootstrap": result.p_bootstrap,
                    }
                )
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def _pm(mean: float, std: float) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean:.2f}" if std is None or math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


#: below this a p-value is written as a bound: scipy's normal tail underflows to 0.0 for very large samples
P_FLOOR = 1e-300


def _p(value: float) -> str:
    if value is None or math.isnan(value):
        return "–"
    if value < P_FLOOR:
        return "< 1e-300"
    return f"{value:.1e}" if value < 1e-3 else f"{value:.3f}"


def table_ii_long(
    seeds: pd.DataFrame,
    *,
    datasets: tuple[str, ...] | None = None,
    metrics: tuple[str, ...] = TABLE_II_METRICS,
    include_paper: bool = True,
) -> pd.DataFrame:
    """Table II, one line per (dataset, row): the paper's reported rows and this project's reproduced rows.

    :param seeds: :func:`seed_table` output.
    :return: columns ``dataset, status`` (``reported`` or ``reproduced``), ``model``, ``seeds``, each metric as text
        (``mean ± std`` for a reproduced row of several seeds) and ``p`` (Wilcoxon, against IMVIA's reproduced row),
        plus the numeric columns of ``seeds`` for reproduced rows. Sorted by dataset, then reported before
        reproduced.
    """
    if datasets is None:
        extra = [d for d in dict.fromkeys(seeds["dataset"]) if d not in DATASETS] if not seeds.empty else []
        datasets = (*DATASETS, *extra)
    lines = []
    for ds in datasets:
        if include_paper:
            for model, per_dataset in TABLE_II.items():
                if ds in per_dataset:
                    values = dict(zip(TABLE_II_METRICS, per_dataset[ds]))
                    line = {"dataset": ds, "status": "reported", "model": model, "seeds": "–", "p": "–"}
                    line.update({m: _fmt(values.get(m)) for m in metrics})
                    lines.append(line)
        for _, row in seeds[seeds["dataset"] == ds].iterrows() if not seeds.empty else ():
            name = f"{row['label']} ({row['modalities']})".replace(" ()", "")
            if row["profile"]:
                name += f" [{row['profile']}]"
            line = {"dataset": ds, "status": "reproduced", "model": name, "seeds": str(int(row["seeds"]))}
            line.update({m: _pm(row[m], row[f"{m} std"]) for m in metrics})
            line["p"] = _p(row["p wilcoxon"])
            lines.append(line)
    return pd.DataFrame(lines, columns=["dataset", "status", "model", "seeds", *metrics, "p"])


def long_to_markdown(table: pd.DataFrame) -> str:
    """One Markdown table per dataset (a ``###`` heading each), columns as in :func:`table_ii_long`."""
    out = []
    headers = [c for c in table.columns if c != "dataset"]
    for ds, part in table.groupby("dataset", sort=False):
        out += [f"### {ds}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        out += ["| " + " | ".join(str(v) for v in row) + " |" for row in part[headers].itertuples(index=False)]
        out.append("")
    return "\n".join(out)


def long_to_latex(table: pd.DataFrame, *, caption: str = "Link prediction results (filtered, %).") -> str:
    """A ``table*`` with one block of lines per dataset; columns as in :func:`table_ii_long`."""
    headers = [c for c in table.columns if c != "dataset"]
    out = [r"\begin{table*}[t]", r"\centering", rf"\caption{{{_tex_escape(caption)}}}"]
    out += [r"\begin{tabular}{" + "l" * 2 + "c" * (len(headers) - 2) + "}", r"\hline"]
    out.append(" & ".join(_tex_escape(h) for h in headers) + r" \\")
    for ds, part in table.groupby("dataset", sort=False):
        out += [r"\hline", rf"\multicolumn{{{len(headers)}}}{{l}}{{\textit{{{_tex_escape(ds)}}}}} \\"]
        for row in part[headers].itertuples(index=False):
            out.append(" & ".join(_tex_escape(str(v)).replace("±", r"$\pm$") for v in row) + r" \\")
    out += [r"\hline", r"\end{tabular}", r"\end{table*}"]
    return "\n".join(out) + "\n"


def export_long_table(
    table: pd.DataFrame, seeds: pd.DataFrame, out_dir: str | Path, stem: str = "table2"
) -> dict[str, Path]:
    """Write ``<stem>.md``, ``<stem>.tex`` (from :func:`table_ii_long`) and ``<stem>.csv`` (the numbers of
    :func:`seed_table`, one line per reproduced row) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / f"{stem}.md", "tex": out / f"{stem}.tex", "csv": out / f"{stem}.csv"}
    paths["md"].write_text(long_to_markdown(table), encoding="utf-8")
    paths["tex"].write_text(long_to_latex(table), encoding="utf-8")
    seeds.to_csv(paths["csv"], index=False, float_format="%.6g")
    return paths
