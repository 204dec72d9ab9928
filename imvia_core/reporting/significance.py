"""Paired significance tests on per-query reciprocal ranks (two models, the same test queries).

Two runs on the same split rank the same queries (:mod:`imvia_core.evaluation.rank_files`), so their reciprocal
ranks pair up query by query. With several seeds per model, each query's reciprocal rank is first averaged over the
model's seeds, and the pairs are those means (the test asks whether one model ranks the same queries better, with
the seed variation averaged out).

* :func:`wilcoxon_signed_rank`: the two-sided Wilcoxon signed-rank test (scipy), zero differences dropped;
* :func:`paired_bootstrap`: a two-sided paired bootstrap of the mean difference (resampling queries).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imvia_core.errors import InputError

__all__ = [
    "seed_mean_reciprocal_ranks",
    "paired_reciprocal_ranks",
    "wilcoxon_signed_rank",
    "paired_bootstrap",
    "PairedTest",
    "compare_runs",
]


def _check_same_triples(splits: Sequence, context: str) -> None:
    reference = splits[0].triples
    for split in splits[1:]:
        if split.triples.shape != reference.shape or not np.array_equal(split.triples, reference):
            raise InputError(f"{context}: the runs ranked different triples; compare runs of the same split")


def seed_mean_reciprocal_ranks(splits: Sequence, *, context: str = "paired test") -> np.ndarray:
    """Per-query reciprocal ranks averaged over ``splits`` (one model's seeds on one split), shape ``(2n,)``.

    :param splits: :class:`~imvia_core.evaluation.rank_files.SplitRanks`, at least one, all of the same triples.
    :param context: what the error message names.
    :raises InputError: no splits, or splits of different triples.
    """
    if not splits:
        raise InputError(f"{context}: no ranks given")
    _check_same_triples(splits, context)
    return np.mean([s.reciprocal_ranks() for s in splits], axis=0)


def paired_reciprocal_ranks(a: Sequence, b: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Per-query reciprocal ranks of two models, each averaged over its seeds.

    :param a: :class:`~imvia_core.evaluation.rank_files.SplitRanks` of model A, one per seed (at least one).
    :param b: the same for model B.
    :return: two arrays of shape ``(2n,)`` (tail queries, then head queries of the ``n`` triples).
    :raises InputError: when the runs ranked different triples.
    """
    if not a or not b:
        raise InputError("paired test: each model needs the ranks of at least one run")
    _check_same_triples([*a, *b], "paired test")
    return seed_mean_reciprocal_ranks(a), seed_mean_reciprocal_ranks(b)


def wilcoxon_signed_rank(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test of ``x - y`` (shape ``(n,)`` each).

    Zero differences are dropped (Wilcoxon's original treatment); scipy uses the exact null distribution for small
    samples without ties and the normal approximation (with tie correction) otherwise. ``1.0`` when every
    difference is zero.
    """
    from scipy.stats import wilcoxon

    d = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    if d.shape != np.shape(x) or np.ndim(d) != 1:
        raise InputError(f"wilcoxon: found shapes {np.shape(x)} and {np.shape(y)}; expected two equal (n,) arrays")
    if not np.any(d != 0):
        return 1.0
    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def paired_bootstrap(x: np.ndarray, y: np.ndarray, *, resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of a paired bootstrap of ``mean(x - y)``.

    Queries are resampled with replacement ``resamples`` times; the p-value is twice the smaller share of resampled
    means on either side of zero (``<= 0`` and ``>= 0``), capped at 1.

    :param x: shape ``(n,)``; :param y: shape ``(n,)``.
    """
    d = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    if d.ndim != 1 or d.shape != np.shape(y) or d.size == 0:
        raise InputError(f"bootstrap: found shapes {np.shape(x)} and {np.shape(y)}; expected two equal (n,) arrays")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // d.size)  # memory: chunk x n indices at a time
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        idx = rng.integers(0, d.size, size=(stop - start, d.size))
        means[start:stop] = d[idx].mean(axis=1)
    low, high = np.mean(means <= 0), np.mean(means >= 0)
    return float(min(1.0, 2.0 * min(low, high)))


@dataclass(frozen=True)
class PairedTest:
    """Result of comparing model A with model B on the same queries.

    :param mean_difference: mean over queries of A's minus B's (seed-averaged) reciprocal rank.
    :param p_wilcoxon: two-sided Wilcoxon signed-rank p-value.
    :param p_bootstrap: two-sided paired bootstrap p-value.
    :param queries: number of paired queries.
    """

    mean_difference: float
    p_wilcoxon: float
    p_bootstrap: float
    queries: int


def compare_runs(a: Sequence, b: Sequence, *, resamples: int = 10_000, seed: int = 0) -> PairedTest:
    """:class:`PairedTest` of two models given their runs' :class:`~imvia_core.evaluation.rank_files.SplitRanks`."""
    x, y = paired_reciprocal_ranks(a, b)
    return PairedTest(
        mean_difference=float(np.mean(x - y)),
        p_wilcoxon=wilcoxon_signed_rank(x, y),
        p_bootstrap=paired_bootstrap(x, y, resamples=resamples, seed=seed),
        queries=int(x.size),
    )
