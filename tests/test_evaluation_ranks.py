"""Ranks, filter index, relation categories and metrics, on hand-computed examples and set-based references."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from imvia_core.errors import ConfigError, InputError
from imvia_core.evaluation import (
    CATEGORY_NAMES,
    EvaluationResult,
    FilterIndex,
    RankMetrics,
    compute_ranks,
    relation_categories,
    relation_fanout,
)

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------------------- ranks
def test_hand_computed_ties_1x5() -> None:
    # entity:   0    1    2    3    4
    # score:  0.5  0.9  0.7  0.9  0.9       target = 1 (score 0.9), tied with entities 3 and 4
    # optimistic  = 1 + #{score > 0.9}                      = 1 + 0 = 1
    # pessimistic = #{score >= 0.9} (target included)       = 3
    # realistic   = (1 + 3) / 2                             = 2
    scores = torch.tensor([[0.5, 0.9, 0.7, 0.9, 0.9]])
    ranks = compute_ranks(scores, torch.tensor([1]))
    assert ranks.optimistic.tolist() == [1.0]
    assert ranks.pessimistic.tolist() == [3.0]
    assert ranks.realistic.tolist() == [2.0]
    assert ranks.random is None
    # target = 2 (score 0.7): three entities score higher, no tie -> 4, 4, 4
    ranks = compute_ranks(scores, torch.tensor([2]))
    assert (ranks.optimistic.item(), ranks.pessimistic.item(), ranks.realistic.item()) == (4.0, 4.0, 4.0)
    # target = 0 (lowest): 5, 5, 5
    ranks = compute_ranks(scores, torch.tensor([0]))
    assert (ranks.optimistic.item(), ranks.pessimistic.item(), ranks.realistic.item()) == (5.0, 5.0, 5.0)


def test_hand_computed_filtered_vs_raw() -> None:
    # Query with target 2 (score 0.7). Known tails of the query: {1, 2, 3} -> entities 1 and 3 are filtered out,
    # the target 2 itself is kept although it is in the filter set.
    scores = torch.tensor([[0.5, 0.9, 0.7, 0.9, 0.7]])
    target = torch.tensor([2])
    raw = compute_ranks(scores, target)
    # raw: greater = {1, 3} -> optimistic 3; >= = {1, 2, 3, 4} -> pessimistic 4; realistic 3.5
    assert (raw.optimistic.item(), raw.pessimistic.item(), raw.realistic.item()) == (3.0, 4.0, 3.5)
    rows, cols = torch.tensor([0, 0, 0]), torch.tensor([1, 2, 3])
    filtered = compute_ranks(scores, target, filter_rows=rows, filter_cols=cols)
    # filtered candidates {0, 2, 4}: greater = {} -> 1; >= = {2, 4} -> 2; realistic 1.5
    assert (filtered.optimistic.item(), filtered.pessimistic.item(), filtered.realistic.item()) == (1.0, 2.0, 1.5)
    for kind in ("optimistic", "pessimistic", "realistic"):
        assert filtered.get(kind).item() <= raw.get(kind).item()
    # duplicated coordinates count once
    dup = compute_ranks(
        scores, target, filter_rows=torch.tensor([0, 0, 0, 0, 0]), filter_cols=torch.tensor([1, 1, 3, 3, 2])
    )
    assert torch.equal(dup.realistic, filtered.realistic)


def test_filtered_entity_never_counts_even_when_target_scores_minus_inf() -> None:
    scores = torch.tensor([[-math.inf, -math.inf, 0.0]])
    ranks = compute_ranks(scores, torch.tensor([0]), filter_rows=torch.tensor([0]), filter_cols=torch.tensor([1]))
    # candidates {0, 2}: entity 2 is above the target; entity 1 is filtered and not a tie
    assert (ranks.optimistic.item(), ranks.pessimistic.item()) == (2.0, 2.0)


def test_caller_scores_untouched_and_dtypes_agree() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (6, 9), generator=gen).float()
    before = scores.clone()
    targets = torch.randint(0, 9, (6,), generator=gen)
    rows = torch.randint(0, 6, (20,), generator=gen)
    cols = torch.randint(0, 9, (20,), generator=gen)
    reference = compute_ranks(scores, targets, filter_rows=rows, filter_cols=cols)
    assert torch.equal(scores, before)
    for dtype in (torch.float16, torch.bfloat16, torch.float64, torch.int64):
        other = compute_ranks(scores.to(dtype), targets, filter_rows=rows, filter_cols=cols)
        assert torch.equal(other.realistic, reference.realistic), dtype
        assert torch.equal(other.optimistic, reference.optimistic), dtype


def test_random_tie_break_is_uniform_over_the_ties() -> None:
    # 4000 copies of one query whose target ties with 4 others: optimistic 1, pessimistic 5
    scores = torch.ones(4000, 5)
    gen = torch.Generator().manual_seed(123)
    ranks = compute_ranks(scores, torch.zeros(4000, dtype=torch.long), tie_break="random", generator=gen)
    values = ranks.random
    assert set(values.unique().tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert abs(values.mean().item() - 3.0) < 0.1  # expected value = realistic rank
    again = compute_ranks(
        scores, torch.zeros(4000, dtype=torch.long), tie_break="random", generator=torch.Generator().manual_seed(123)
    )
    assert torch.equal(values, again.random)


def test_rank_input_errors() -> None:
    scores = torch.rand(2, 4)
    with pytest.raises(InputError, match="NaN"):
        bad = scores.clone()
        bad[1, 3] = math.nan
        compute_ranks(bad, torch.tensor([0, 1]))
    with pytest.raises(InputError, match="targets"):
        compute_ranks(scores, torch.tensor([0, 4]))
    with pytest.raises(InputError, match="shape"):
        compute_ranks(scores, torch.tensor([0]))
    with pytest.raises(InputError, match="shape"):
        compute_ranks(scores[0], torch.tensor([0]))
    with pytest.raises(InputError, match="both or neither"):
        compute_ranks(scores, torch.tensor([0, 1]), filter_rows=torch.tensor([0]))
    with pytest.raises(InputError, match="filter coordinates"):
        compute_ranks(scores, torch.tensor([0, 1]), filter_rows=torch.tensor([2]), filter_cols=torch.tensor([0]))
    with pytest.raises(ConfigError, match="tie_break"):
        compute_ranks(scores, torch.tensor([0, 1]), tie_break="mean")


# ---------------------------------------------------------------------------------------------------- filter index
def _random_triples(seed: int, *, num_entities: int, num_relations: int, n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.stack(
        [
            torch.randint(0, num_entities, (n,), generator=gen),
            torch.randint(0, num_relations, (n,), generator=gen),
            torch.randint(0, num_entities, (n,), generator=gen),
        ],
        dim=1,
    )


def test_known_tails_matches_set_reference() -> None:
    num_entities, num_relations = 15, 4
    triples = _random_triples(1, num_entities=num_entities, num_relations=num_relations, n=120)  # has duplicates
    index = FilterIndex.from_triples(triples, num_entities=num_entities, num_relations_with_reciprocals=num_relations)
    known: dict[tuple[int, int], set[int]] = {}
    for h, r, t in triples.tolist():
        known.setdefault((h, r), set()).add(t)
    assert index.num_queries == len(known)
    assert index.num_triples == sum(len(v) for v in known.values())

    rng = random.Random(2)
    heads = torch.tensor([rng.randrange(num_entities) for _ in range(300)])
    relations = torch.tensor([rng.randrange(num_relations) for _ in range(300)])
    rows, cols = index.known_tails(heads, relations)
    got = sorted(zip(rows.tolist(), cols.tolist()))
    expected = sorted(
        (b, e) for b, (h, r) in enumerate(zip(heads.tolist(), relations.tolist())) for e in known.get((h, r), ())
    )
    assert got == expected
    assert len(set(got)) == len(got)

    mask = index.dense_mask(heads, relations)
    assert mask.shape == (300, num_entities)
    assert sorted(map(tuple, mask.nonzero().tolist())) == expected
    assert index.counts(heads, relations).tolist() == [
        len(known.get((h, r), ())) for h, r in zip(heads.tolist(), relations.tolist())
    ]

    qh, qr = index.unique_queries()
    assert sorted(zip(qh.tolist(), qr.tolist())) == sorted(known)


def test_known_tails_edge_cases() -> None:
    index = FilterIndex.from_triples(
        torch.tensor([[0, 1, 2], [0, 1, 2], [3, 0, 1]]), num_entities=4, num_relations_with_reciprocals=2
    )
    assert index.num_triples == 2
    # empty batch
    rows, cols = index.known_tails(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    assert rows.numel() == 0 and cols.numel() == 0
    # keys above and below every indexed key, and in between
    rows, cols = index.known_tails(torch.tensor([3, 0, 0, 3, 1]), torch.tensor([1, 0, 1, 0, 1]))
    assert list(zip(rows.tolist(), cols.tolist())) == [(2, 2), (3, 1)]
    # empty index
    empty = FilterIndex.from_triples(
        torch.zeros(0, 3, dtype=torch.long), num_entities=4, num_relations_with_reciprocals=2
    )
    rows, cols = empty.known_tails(torch.tensor([0, 1]), torch.tensor([1, 1]))
    assert rows.numel() == 0
    assert not empty.dense_mask(torch.tensor([0]), torch.tensor([1])).any()
    assert empty.to("cpu") is empty
    with pytest.raises(InputError, match="row 1"):
        FilterIndex.from_triples(torch.tensor([[0, 1, 2], [0, 2, 2]]), num_entities=4, num_relations_with_reciprocals=2)
    with pytest.raises(InputError, match="shape"):
        FilterIndex.from_triples(torch.tensor([[0, 1]]), num_entities=4, num_relations_with_reciprocals=2)


# ------------------------------------------------------------------------------------------------------ categories
def test_relation_categories_hand_example() -> None:
    train = torch.tensor(
        [
            [0, 0, 1], [2, 0, 3],                               # r0: tph 1, hpt 1 -> 1-1
            [0, 1, 1], [0, 1, 2], [0, 1, 3],                    # r1: tph 3, hpt 1 -> 1-N
            [1, 2, 0], [2, 2, 0], [3, 2, 0], [3, 2, 0],         # r2: tph 1, hpt 3 -> N-1 (duplicate counted once)
            [0, 3, 1], [0, 3, 2], [1, 3, 1], [1, 3, 2],         # r3: tph 2, hpt 2 -> N-N
        ]
    )  # fmt: skip
    codes = relation_categories(train, 5)
    assert [CATEGORY_NAMES[c] for c in codes.tolist()] == ["1-1", "1-N", "N-1", "N-N", "1-1"]  # r4 has no triple
    tph, hpt = relation_fanout(train, 5)
    assert tph.tolist() == [1.0, 3.0, 1.0, 2.0, 0.0]
    assert hpt.tolist() == [1.0, 1.0, 3.0, 2.0, 0.0]
    # a higher threshold turns r3 into 1-1
    assert CATEGORY_NAMES[relation_categories(train, 5, threshold=2.5)[3]] == "1-1"
    with pytest.raises(InputError, match="without reciprocals"):
        relation_categories(train, 3)


# ---------------------------------------------------------------------------------------------------------- metrics
def test_rank_metrics_hand_example() -> None:
    m = RankMetrics.from_ranks(torch.tensor([1.0, 2.0, 4.0, 1.5]), ks=(1, 3, 10))
    assert m.count == 4
    assert m.mrr == math.fsum([1.0, 0.5, 0.25, 1 / 1.5]) / 4
    assert m.mr == (1 + 2 + 4 + 1.5) / 4
    assert m.hits == {1: 0.25, 3: 0.75, 10: 1.0}
    assert m.get("hits@3") == 0.75 and m.get("MRR") == m.mrr and m.get("count") == 4.0
    with pytest.raises(ConfigError, match="hits@100"):
        m.get("hits@100")
    assert RankMetrics.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    empty = RankMetrics.from_ranks(torch.zeros(0))
    assert empty.count == 0 and math.isnan(empty.mrr)
    assert empty.to_dict()["mrr"] is None
    with pytest.raises(InputError, match="1-based"):
        RankMetrics.from_ranks(torch.tensor([0.0, 1.0]))


def test_evaluation_result_parts_and_round_trip() -> None:
    ranks = {"realistic": torch.tensor([1.0, 3.0, 2.0, 5.0]), "optimistic": torch.tensor([1.0, 2.0, 2.0, 5.0])}
    directions = torch.tensor([0, 0, 1, 1])
    categories = torch.tensor([0, 3, 0, 3])
    result = EvaluationResult.from_ranks(ranks, directions=directions, categories=categories, ks=(1, 3))
    assert result.rank_types == ("optimistic", "realistic")
    assert result.metric("mrr", part="tail") == (1 + 1 / 3) / 2
    assert result.metric("count", part="head/N-N") == 1.0
    assert result.metric("count", part="1-N") == 0.0
    assert result.metric("hits@1", rank_type="optimistic", part="overall") == 0.25
    with pytest.raises(ConfigError, match="rank type"):
        result.metric(rank_type="random")
    with pytest.raises(ConfigError, match="part"):
        result.metric(part="sideways")
    data = json.loads(json.dumps(result.to_dict()))
    again = EvaluationResult.from_dict(data)
    assert again.to_dict() == result.to_dict()
    text = result.summary()
    assert "realistic" in text and "head/N-N" in text and "optimistic" in text
    with pytest.raises(InputError):
        EvaluationResult.from_dict({"metrics": {}})
