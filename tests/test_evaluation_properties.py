"""Property tests of ranks, filtering and metrics on generated score matrices (hypothesis)."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imvia_core.evaluation import FilterIndex, RankMetrics, compute_ranks

torch.set_num_threads(1)

SETTINGS = settings(max_examples=80, deadline=None)


@st.composite
def ranking_problems(draw):
    """Scores (B, E) with many ties or none, targets, and filter coordinates (possibly repeated, hitting targets)."""
    batch = draw(st.integers(1, 5))
    entities = draw(st.integers(1, 12))
    tied = draw(st.booleans())
    if tied:
        elements = st.integers(-2, 2).map(float)
    else:
        elements = st.floats(-1e6, 1e6, width=32) | st.sampled_from([-np.inf, np.inf])
    scores = draw(hnp.arrays(np.float32, (batch, entities), elements=elements))
    targets = draw(st.lists(st.integers(0, entities - 1), min_size=batch, max_size=batch))
    pairs = draw(st.lists(st.tuples(st.integers(0, batch - 1), st.integers(0, entities - 1)), max_size=3 * entities))
    rows = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    cols = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    return torch.from_numpy(scores), torch.tensor(targets), rows, cols


@SETTINGS
@given(ranking_problems(), st.integers(0, 2**31 - 1))
def test_rank_bounds_and_order(problem, seed: int) -> None:
    scores, targets, rows, cols = problem
    entities = scores.shape[1]
    gen = torch.Generator().manual_seed(seed)
    ranks = compute_ranks(scores, targets, tie_break="random", generator=gen)
    assert bool((ranks.optimistic >= 1).all()) and bool((ranks.pessimistic <= entities).all())
    assert bool((ranks.optimistic <= ranks.realistic).all()) and bool((ranks.realistic <= ranks.pessimistic).all())
    assert bool((ranks.optimistic <= ranks.random).all()) and bool((ranks.random <= ranks.pessimistic).all())
    assert torch.equal(ranks.random, ranks.random.round())
    # pessimistic - optimistic = number of other entities tied with the target
    target_scores = scores.gather(1, targets[:, None])
    ties = (scores == target_scores).sum(1) - 1
    assert torch.equal((ranks.pessimistic - ranks.optimistic).long(), ties)


@SETTINGS
@given(ranking_problems())
def test_filtered_not_worse_than_raw(problem) -> None:
    scores, targets, rows, cols = problem
    raw = compute_ranks(scores, targets)
    filtered = compute_ranks(scores, targets, filter_rows=rows, filter_cols=cols)
    for kind in ("optimistic", "pessimistic", "realistic"):
        assert bool((filtered.get(kind) <= raw.get(kind)).all())
        assert bool((filtered.get(kind) >= 1).all())
    # the filtered pessimistic rank counts at most the unfiltered candidates (target included)
    removed = torch.zeros_like(scores, dtype=torch.bool)
    removed[rows, cols] = True
    removed[torch.arange(len(targets)), targets] = False
    assert bool((filtered.pessimistic <= scores.shape[1] - removed.sum(1)).all())
    # equivalent formulation: filtered scores replaced by a value below every other score
    floor = torch.where(removed, torch.full_like(scores, -np.inf), scores)
    if not torch.isinf(scores).any():
        masked = compute_ranks(floor, targets)
        assert torch.equal(masked.realistic, filtered.realistic)


@SETTINGS
@given(ranking_problems())
def test_mrr_in_unit_interval(problem) -> None:
    scores, targets, rows, cols = problem
    ranks = compute_ranks(scores, targets, filter_rows=rows, filter_cols=cols)
    for kind in ("optimistic", "pessimistic", "realistic"):
        metrics = RankMetrics.from_ranks(ranks.get(kind))
        assert 0.0 < metrics.mrr <= 1.0
        assert 1.0 <= metrics.mr <= scores.shape[1]
        assert all(0.0 <= v <= 1.0 for v in metrics.hits.values())
        assert list(metrics.hits.values()) == sorted(metrics.hits.values())  # Hits@k grows with k


@SETTINGS
@given(
    st.integers(1, 10),
    st.integers(1, 4),
    st.lists(st.tuples(st.integers(0, 9), st.integers(0, 3), st.integers(0, 9)), max_size=60),
    st.lists(st.tuples(st.integers(0, 9), st.integers(0, 3)), max_size=20),
)
def test_filter_index_matches_sets(entities: int, relations: int, triples, queries) -> None:
    triples = [(h % entities, r % relations, t % entities) for h, r, t in triples]
    queries = [(h % entities, r % relations) for h, r in queries]
    tensor = torch.tensor(triples, dtype=torch.long).reshape(-1, 3)
    index = FilterIndex.from_triples(tensor, num_entities=entities, num_relations_with_reciprocals=relations)
    heads = torch.tensor([q[0] for q in queries], dtype=torch.long)
    rels = torch.tensor([q[1] for q in queries], dtype=torch.long)
    rows, cols = index.known_tails(heads, rels)
    got = set(zip(rows.tolist(), cols.tolist()))
    expected = {(b, t) for b, (h, r) in enumerate(queries) for (hh, rr, t) in set(triples) if (hh, rr) == (h, r)}
    assert got == expected and len(got) == rows.numel()
    assert index.num_triples == len(set(triples))
    qh, qr = index.unique_queries()
    assert set(zip(qh.tolist(), qr.tolist())) == {(h, r) for h, r, _ in triples}
