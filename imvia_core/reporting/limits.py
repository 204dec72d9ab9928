"""What limits IMVIA on a dataset, from committed runs: branch scores, the decision gate, and rare entities.

Three readings of the published runs of one dataset (``results/<profile>/<dataset>/``), none of which trains:

* each scoring branch of IMVIA alone on test (``test_branches``: structure ``S``, text ``T``, joint ``J``) beside
  the fused score, so a reader sees what the text branch ranks by itself;
* the decision gate's mean weight per branch over the test queries (Eq. 7; ``decision_weights`` of runs that
  recorded it);
* MRR over test queries grouped by how many training triples the *answer* entity has (its degree in the training
  split), IMVIA beside TuckER: modality features matter most where the structure has little to say.

Seeds are averaged query by query (as in :mod:`imvia_core.reporting.significance`). The figure and its CSV go to
``figures/limits_<dataset>.{png,pdf,csv}``::

    python -m imvia_core.reporting.limits --profile cpu --datasets MKG-Y MKG-W DB15K
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from imvia_core.data.loading import load_graph
from imvia_core.errors import ImviaError, InputError
from imvia_core.evaluation.rank_files import SplitRanks, load_rank_file
from imvia_core.paths import project_root
from imvia_core.reporting.figures import save_figure
from imvia_core.reporting.results import load_results, rank_file_of, split_publish_name
from imvia_core.reporting.significance import seed_mean_reciprocal_ranks

__all__ = [
    "DEGREE_BINS",
    "FEW_TRIPLES",
    "entity_degrees",
    "mrr_by_degree",
    "seed_results",
    "branch_frame",
    "limits_frames",
    "plot_limits",
    "write_limits",
    "main",
]

#: (lowest, highest or None, label) of the answer entity's number of training triples
DEGREE_BINS: tuple[tuple[int, int | None, str], ...] = (
    (0, 0, "0 (unseen)"),
    (1, 5, "1-5"),
    (6, 20, "6-20"),
    (21, None, "> 20"),
)
#: an entity with at most this many training triples counts as rare ("few") in the summary rows
FEW_TRIPLES = 5
_BRANCH_LABELS = {"final": "fused", "S": "structure", "V": "visual", "T": "text", "J": "joint"}


def entity_degrees(triples, num_entities: int) -> np.ndarray:
    """``(num_entities,)`` number of triples of ``triples`` (an ``(n, 3)`` array) each entity occurs in."""
    array = np.asarray(triples)
    if array.ndim != 2 or array.shape[1] != 3:
        raise InputError(f"entity_degrees: expected (n, 3) triples, got shape {array.shape}")
    ends = np.concatenate([array[:, 0], array[:, 2]]).astype(np.int64)
    # a self-loop counts once for its entity
    loops = array[array[:, 0] == array[:, 2], 0].astype(np.int64)
    counts = np.bincount(ends, minlength=num_entities) - np.bincount(loops, minlength=num_entities)
    return counts[:num_entities]


def _bins(few: int) -> list[tuple[int, int | None, str]]:
    return [*DEGREE_BINS, (0, few, f"<= {few} (few)"), (few + 1, None, f"> {few} (rest)")]


def mrr_by_degree(splits: Sequence[SplitRanks], degrees: np.ndarray, *, few: int = FEW_TRIPLES) -> pd.DataFrame:
    """MRR (%) of the queries in each answer-degree bin, reciprocal ranks averaged over ``splits`` (one per seed).

    The answer of a tail query ``(h, r, ?)`` is ``t``, of a head query ``(?, r, t)`` it is ``h``.

    :param splits: the same split's ranks from one run per seed (same triples).
    :param degrees: ``(num_entities,)`` training triples per entity (:func:`entity_degrees`).
    :return: columns ``bin``, ``queries``, ``MRR``: the rows of :data:`DEGREE_BINS`, then ``<= few`` and ``> few``.
    """
    reciprocal = seed_mean_reciprocal_ranks(splits, context="mrr_by_degree")
    queries = splits[0].queries()
    answer = np.where(queries["direction"] == 0, queries["tail"], queries["head"])
    if answer.size and answer.max() >= degrees.shape[0]:
        raise InputError(f"mrr_by_degree: entity {int(answer.max())} has no degree (got {degrees.shape[0]} entities)")
    degree = degrees[answer]
    rows = []
    for low, high, label in _bins(few):
        mask = degree >= low if high is None else (degree >= low) & (degree <= high)
        count = int(mask.sum())
        rows.append({"bin": label, "queries": count, "MRR": 100.0 * float(reciprocal[mask].mean()) if count else None})
    return pd.DataFrame(rows)


def seed_results(results_dir: str | Path, variant: str) -> list[Path]:
    """Published results of ``variant`` in ``results_dir``: ``<variant>.json`` (seed 0) and ``<variant>-seedN.json``."""
    return sorted(p for p in Path(results_dir).glob("*.json") if split_publish_name(p.stem)[0] == variant)


def _realistic_mrr(result: dict | None) -> float | None:
    """The overall realistic MRR of one evaluation result of ``results.json`` (a fraction), if it has one."""
    return ((((result or {}).get("metrics") or {}).get("realistic") or {}).get("overall") or {}).get("mrr")


def branch_frame(results: Sequence[dict]) -> pd.DataFrame:
    """Test MRR (%) of the fused score and each branch alone, and the gate's mean weight, averaged over seeds.

    :param results: ``results.json`` contents of one model's seeds.
    :return: columns ``branch``, ``MRR``, ``seeds``, ``gate weight`` (``None`` where no run recorded it).
    """
    scores: dict[str, list[float]] = {}
    weights: dict[str, list[float]] = {}
    for data in results:
        for branch, result in [("final", data.get("test")), *(data.get("test_branches") or {}).items()]:
            mrr = _realistic_mrr(result)
            if mrr is not None:
                scores.setdefault(branch, []).append(mrr)
        for branch, weight in (data.get("decision_weights") or {}).items():
            weights.setdefault(branch, []).append(weight)
    rows = []
    for branch, values in scores.items():
        weight = weights.get(branch)
        rows.append(
            {
                "branch": _BRANCH_LABELS.get(branch, branch),
                "MRR": 100.0 * float(np.mean(values)),
                "seeds": len(values),
                "gate weight": float(np.mean(weight)) if weight else None,
            }
        )
    return pd.DataFrame(rows, columns=["branch", "MRR", "seeds", "gate weight"])


def limits_frames(
    results_dir: str | Path, degrees: np.ndarray, *, variants: Sequence[str] = ("imvia", "tucker"), split: str = "test"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two frames behind :func:`plot_limits` for one dataset's published runs.

    :return: ``(by_degree, branches)``: MRR per answer-degree bin per variant (columns ``variant``, ``seeds``,
        ``bin``, ``queries``, ``MRR``), and :func:`branch_frame` of the first variant (IMVIA).
    :raises InputError: when a variant has no published run with a rank file.
    """
    parts = []
    branches = None
    for variant in variants:
        paths = [p for p in seed_results(results_dir, variant) if rank_file_of(p) is not None]
        if not paths:
            raise InputError(f"{results_dir}: no published {variant} run with a rank file ({variant}.ranks.npz)")
        splits = [load_rank_file(rank_file_of(p))[split] for p in paths]
        frame = mrr_by_degree(splits, degrees)
        frame.insert(0, "variant", variant)
        frame.insert(1, "seeds", len(paths))
        parts.append(frame)
        if branches is None:
            branches = branch_frame([load_results(p) for p in paths])
    return pd.concat(parts, ignore_index=True), branches


def plot_limits(by_degree: pd.DataFrame, branches: pd.DataFrame, *, title: str):
    """Left: MRR by the answer's training triples, one bar per variant; right: each branch alone and its gate weight."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    bins = [label for _, _, label in DEGREE_BINS]
    plotted = by_degree[by_degree["bin"].isin(bins)].copy()
    counts = plotted.drop_duplicates("bin").set_index("bin")["queries"]
    plotted["bin"] = pd.Categorical(plotted["bin"], categories=bins)
    sns.barplot(
        data=plotted,
        x="bin",
        y="MRR",
        hue="variant",
        palette=["#1b5e20", "#9e9e9e", "#1e88e5"][: plotted["variant"].nunique()],
        ax=left,
    )
    for container in left.containers:
        left.bar_label(container, fmt="%.1f", fontsize=7, padding=1)
    left.set_xticks(range(len(bins)), [f"{b}\n{int(counts.get(b, 0))} queries" for b in bins], fontsize=8)
    left.set_xlabel("training triples of the answer entity")
    left.set_ylabel("filtered test MRR (%)")
    left.legend(title="", fontsize=8, frameon=False)
    right.barh(branches["branch"], branches["MRR"], color="#1b5e20")
    for y, (mrr, weight) in enumerate(zip(branches["MRR"], branches["gate weight"])):
        note = f"{mrr:.1f}" + ("" if weight is None or pd.isna(weight) else f"  (gate {weight:.2f})")
        right.text(mrr, y, " " + note, va="center", fontsize=8)
    right.invert_yaxis()
    right.set_xlim(0, max(1.0, float(branches["MRR"].max())) * 1.45)
    right.set_xlabel("test MRR (%) of IMVIA's branch alone")
    for ax in (left, right):
        sns.despine(ax=ax)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def write_limits(dataset: str, graph, results_root: str | Path, out_dir: str | Path, *, profile: str = "cpu"):
    """Compute, plot and save ``limits_<dataset>`` for the published ``profile`` runs of ``dataset``.

    :param graph: the dataset's :class:`~imvia_core.data.graph.KnowledgeGraph` (its training split gives degrees).
    :return: ``(figure, paths, by_degree, branches)``; the figure is left open (close it when not shown).
    """
    degrees = entity_degrees(graph.split("train").cpu().numpy(), graph.num_entities)
    by_degree, branches = limits_frames(Path(results_root) / profile / dataset, degrees)
    seeds = ", ".join(
        f"{v} {n} seed{'s' if n > 1 else ''}"
        for v, n in by_degree.drop_duplicates("variant")[["variant", "seeds"]].itertuples(index=False)
    )
    fig = plot_limits(by_degree, branches, title=f"{dataset} ({profile} profile; {seeds}): what limits IMVIA")
    long = pd.concat(
        [
            by_degree.assign(section="MRR by answer degree"),
            branches.rename(columns={"branch": "bin"}).assign(section="IMVIA branch alone", variant="imvia"),
        ],
        ignore_index=True,
    )
    paths = save_figure(fig, long, out_dir, f"limits_{dataset}")
    return fig, paths, by_degree, branches


def main(argv: Sequence[str] | None = None) -> int:
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(
        prog="python -m imvia_core.reporting.limits",
        description="Per dataset, from the published runs under results/<profile>/<dataset>/ (imvia and tucker, "
        "every seed with a rank file): MRR by the answer entity's number of training triples, each IMVIA branch "
        "alone and the decision gate's mean weights; written to <out>/limits_<dataset>.{png,pdf,csv}. The datasets "
        "are read from data/ or the mirror (IMVIA_DATA_MIRROR); nothing is trained.",
    )
    parser.add_argument("--profile", default="cpu", help="results/<profile>/ to read (default cpu)")
    parser.add_argument("--datasets", nargs="+", default=["MKG-Y", "MKG-W", "DB15K"], help="default: all three")
    parser.add_argument("--results", default=None, help="results folder (default: the project's results/)")
    parser.add_argument("--out", default=None, help="output folder (default: the project's figures/)")
    args = parser.parse_args(argv)
    root = project_root()
    results = Path(args.results) if args.results else root / "results"
    out = Path(args.out) if args.out else root / "figures"
    failed = 0
    for dataset in args.datasets:
        try:
            graph = load_graph(dataset, progress=False)
            fig, paths, by_degree, branches = write_limits(dataset, graph, results, out, profile=args.profile)
            plt.close(fig)
        except ImviaError as exc:
            print(f"{dataset}: {exc}")
            failed += 1
            continue
        few = by_degree[by_degree["bin"].str.endswith("(few)") | by_degree["bin"].str.endswith("(rest)")]
        summary = "; ".join(f"{r.variant} {r.bin} {r.MRR:.2f}" for r in few.itertuples())
        print(f"{dataset}: {summary} -> {paths['png']}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
