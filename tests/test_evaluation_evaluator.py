"""The vectorised evaluator against a brute-force reference written with plain Python loops."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from imvia_core.data.graph import add_reciprocals
from imvia_core.errors import ConfigError, InputError
from imvia_core.evaluation import (
    CATEGORY_NAMES,
    FilterIndex,
    PopularityScorer,
    RandomScorer,
    RankMetrics,
    evaluate,
    model_scorer,
    relation_categories,
)
from imvia_core.model.base import KGCModel

torch.set_num_threads(1)

NUM_ENTITIES = 23
NUM_RELATIONS = 4


def _graph(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random distinct triples split into train and test; some relations dense (N-N), some sparse."""
    gen = torch.Generator().manual_seed(seed)
    n = 160
    heads = torch.randint(0, NUM_ENTITIES, (n,), generator=gen)
    relations = torch.randint(0, NUM_RELATIONS, (n,), generator=gen)
    # relation 0 always points to one of 3 tails (many heads per tail), relation 1 from one of 3 heads
    tails = torch.randint(0, NUM_ENTITIES, (n,), generator=gen)
    tails = torch.where(relations == 0, tails % 3, tails)
    heads = torch.where(relations == 1, heads % 3, heads)
    triples = torch.unique(torch.stack([heads, relations, tails], dim=1), dim=0)
    order = torch.randperm(triples.shape[0], generator=gen)
    triples = triples[order]
    return triples[:-40], triples[-40:]


class TableScorer:
    """Fixed scores per query, so that a brute-force loop can read the same numbers."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table  # (E, 2R, E)
        self.calls = 0

    def __call__(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.table[heads, relations]


def _brute_force(
    table: torch.Tensor, triples: torch.Tensor, known: set[tuple[int, int, int]] | None
) -> dict[str, list[float]]:
    """Filtered (or raw when ``known`` is None) ranks by explicit loops over queries and entities."""
    scores = table.tolist()
    out: dict[str, list[float]] = {"optimistic": [], "pessimistic": [], "realistic": [], "direction": []}
    queries = [(h, r, t, 0) for h, r, t in triples.tolist()]
    queries += [(t, r + NUM_RELATIONS, h, 1) for h, r, t in triples.tolist()]
    for head, rel, target, direction in queries:
        row = scores[head][rel]
        above = ties = 0
        for e in range(NUM_ENTITIES):
            if e == target or (known is not None and (head, rel, e) in known):
                continue
            if row[e] > row[target]:
                above += 1
            elif row[e] == row[target]:
                ties += 1
        out["optimistic"].append(1.0 + above)
        out["pessimistic"].append(1.0 + above + ties)
        out["realistic"].append(1.0 + above + ties / 2)
        out["direction"].append(direction)
    return out


def _setup(seed: int, *, tied: bool):
    train, test = _graph(seed)
    both = add_reciprocals(torch.cat([train, test]), NUM_RELATIONS)
    known = {tuple(x) for x in both.tolist()}
    index = FilterIndex.from_triples(both, num_entities=NUM_ENTITIES, num_relations_with_reciprocals=2 * NUM_RELATIONS)
    gen = torch.Generator().manual_seed(seed + 100)
    shape = (NUM_ENTITIES, 2 * NUM_RELATIONS, NUM_ENTITIES)
    table = torch.randint(0, 3, shape, generator=gen).float() if tied else torch.randn(shape, generator=gen)
    return train, test, known, index, table


@pytest.mark.parametrize("tied", [False, True], ids=["random-scores", "tied-integer-scores"])
@pytest.mark.parametrize("filtered", [True, False], ids=["filtered", "raw"])
def test_matches_brute_force(tied: bool, filtered: bool) -> None:
    train, test, known, index, table = _setup(7, tied=tied)
    reference = _brute_force(table, test, known if filtered else None)
    result = evaluate(
        TableScorer(table),
        test,
        num_entities=NUM_ENTITIES,
        num_relations=NUM_RELATIONS,
        filter_index=index if filtered else None,
        batch_size=16,
        progress=False,
        keep_ranks=True,
    )
    assert result.filtered is filtered
    if tied:  # the test would be vacuous without ties
        assert any(o != p for o, p in zip(reference["optimistic"], reference["pessimistic"]))
    for kind in ("optimistic", "pessimistic", "realistic"):
        assert result.ranks[kind].tolist() == reference[kind], kind
        ranks = reference[kind]
        expected_mrr = math.fsum(1.0 / r for r in ranks) / len(ranks)
        assert result.metric("mrr", rank_type=kind) == expected_mrr  # to the last digit
        assert result.metric("mr", rank_type=kind) == math.fsum(ranks) / len(ranks)
        for k in (1, 3, 10):
            assert result.metric(f"hits@{k}", rank_type=kind) == sum(r <= k for r in ranks) / len(ranks)
        head = [r for r, d in zip(ranks, reference["direction"]) if d == 1]
        assert result.metric("mrr", rank_type=kind, part="head") == math.fsum(1.0 / r for r in head) / len(head)


def test_filtered_never_worse_than_raw_and_better_somewhere() -> None:
    train, test, known, index, table = _setup(3, tied=False)
    kwargs = dict(num_entities=NUM_ENTITIES, num_relations=NUM_RELATIONS, progress=False, keep_ranks=True)
    filtered = evaluate(TableScorer(table), test, filter_index=index, **kwargs)
    raw = evaluate(TableScorer(table), test, filter_index=None, **kwargs)
    for kind in ("optimistic", "pessimistic", "realistic"):
        assert bool((filtered.ranks[kind] <= raw.ranks[kind]).all())
    assert bool((filtered.ranks["realistic"] < raw.ranks["realistic"]).any())
    assert filtered.metric("mrr") >= raw.metric("mrr")


def test_part_counts_add_up() -> None:
    train, test, known, index, table = _setup(5, tied=True)
    categories = relation_categories(train, NUM_RELATIONS)
    result = evaluate(
        TableScorer(table),
        test,
        num_entities=NUM_ENTITIES,
        num_relations=NUM_RELATIONS,
        filter_index=index,
        relation_categories=categories,
        random_tie_break_seed=0,
        progress=False,
    )
    n = test.shape[0]
    for kind in ("optimistic", "pessimistic", "realistic", "random"):

        def count(part: str, kind: str = kind) -> int:
            return result.part(part, kind).count

        assert count("overall") == 2 * n
        assert count("tail") == count("head") == n
        assert sum(count(c) for c in CATEGORY_NAMES) == 2 * n
        for d in ("tail", "head"):
            assert sum(count(f"{d}/{c}") for c in CATEGORY_NAMES) == n
        for c in CATEGORY_NAMES:
            assert count(f"tail/{c}") + count(f"head/{c}") == count(c)
        # a category's count is twice its number of test triples (both directions)
        for code, name in enumerate(CATEGORY_NAMES):
            assert count(name) == 2 * int((categories[test[:, 1]] == code).sum())
        # the overall MRR is the count-weighted mean of the direction MRRs
        tail, head = result.part("tail", kind), result.part("head", kind)
        assert math.isclose(result.metric("mrr", kind), (tail.mrr + head.mrr) / 2, rel_tol=1e-12)
    assert len({c for c in categories.tolist()}) >= 2  # the graph has relations of several categories


def test_random_tie_break_bounds_and_seed() -> None:
    train, test, known, index, table = _setup(11, tied=True)
    kwargs = dict(
        num_entities=NUM_ENTITIES,
        num_relations=NUM_RELATIONS,
        filter_index=index,
        progress=False,
        keep_ranks=True,
        batch_size=32,
    )
    first = evaluate(TableScorer(table), test, random_tie_break_seed=1, **kwargs)
    again = evaluate(TableScorer(table), test, random_tie_break_seed=1, **kwargs)
    other = evaluate(TableScorer(table), test, random_tie_break_seed=2, **kwargs)
    rnd = first.ranks["random"]
    assert bool((rnd >= first.ranks["optimistic"]).all()) and bool((rnd <= first.ranks["pessimistic"]).all())
    assert torch.equal(rnd, rnd.round())
    assert torch.equal(rnd, again.ranks["random"])
    assert not torch.equal(rnd, other.ranks["random"])
    assert first.metric("mrr", "random") == again.metric("mrr", "random")
    assert first.metadata["random_tie_break_seed"] == 1
    with pytest.raises(ConfigError, match="seed"):
        evaluate(TableScorer(table), test, rank_types=("random",), **{k: v for k, v in kwargs.items()})


def test_batch_size_does_not_change_results() -> None:
    train, test, known, index, table = _setup(13, tied=True)
    categories = relation_categories(train, NUM_RELATIONS)
    results = [
        evaluate(
            TableScorer(table),
            test,
            num_entities=NUM_ENTITIES,
            num_relations=NUM_RELATIONS,
            filter_index=index,
            relation_categories=categories,
            batch_size=batch_size,
            progress=False,
        ).to_dict()
        for batch_size in (1, 7, 80, 1000)
    ]
    assert all(r == results[0] for r in results[1:])


class _TinyModel(KGCModel):
    branches = ("final", "structure")

    def __init__(self) -> None:
        super().__init__()
        self.entity = nn.Embedding(NUM_ENTITIES, 8)
        self.relation = nn.Embedding(2 * NUM_RELATIONS, 8)
        self.dropout = nn.Dropout(0.5)

    def score_all(self, heads: torch.Tensor, relations: torch.Tensor, *, branch: str = "final") -> torch.Tensor:
        query = self.dropout(self.entity(heads) * self.relation(relations))
        scores = query @ self.entity.weight.T
        return scores if branch == "final" else -scores


def test_model_adapter_eval_mode_no_grad_and_restored_mode() -> None:
    torch.manual_seed(0)
    model = _TinyModel()
    model.train()
    train, test, known, index, _ = _setup(17, tied=False)
    kwargs = dict(num_entities=NUM_ENTITIES, num_relations=NUM_RELATIONS, filter_index=index, progress=False)
    direct = evaluate(model, test, **kwargs)
    assert model.training  # restored
    again = evaluate(model, test, **kwargs)
    assert direct.to_dict() == again.to_dict()  # dropout was off: deterministic
    scorer = model_scorer(model)
    scores = scorer(test[:, 0], test[:, 1])
    assert not scores.requires_grad and not model.training
    assert evaluate(scorer, test, **kwargs).to_dict() == direct.to_dict()
    other_branch = evaluate(model, test, branch="structure", **kwargs)
    assert other_branch.metric("mrr") != direct.metric("mrr")
    with pytest.raises(ConfigError, match="branch"):
        model_scorer(model, branch="visual")


def test_input_errors() -> None:
    train, test, known, index, table = _setup(19, tied=False)
    kwargs = dict(num_entities=NUM_ENTITIES, num_relations=NUM_RELATIONS, progress=False)
    with pytest.raises(InputError, match="original relations"):
        evaluate(TableScorer(table), add_reciprocals(test, NUM_RELATIONS), filter_index=index, **kwargs)
    with pytest.raises(InputError, match="filter_index"):
        small = FilterIndex.from_triples(test, num_entities=NUM_ENTITIES, num_relations_with_reciprocals=NUM_RELATIONS)
        evaluate(TableScorer(table), test, filter_index=small, **kwargs)
    with pytest.raises(InputError, match="scorer output"):
        evaluate(lambda h, r: torch.zeros(h.shape[0], 3), test, filter_index=None, **kwargs)
    with pytest.raises(InputError, match="NaN"):
        evaluate(lambda h, r: torch.full((h.shape[0], NUM_ENTITIES), math.nan), test, filter_index=None, **kwargs)
    with pytest.raises(InputError, match="relation_categories"):
        evaluate(TableScorer(table), test, filter_index=None, relation_categories=torch.zeros(2), **kwargs)
    with pytest.raises(ConfigError, match="rank_types"):
        evaluate(TableScorer(table), test, filter_index=None, rank_types=("median",), **kwargs)


def test_trivial_scorers_end_to_end() -> None:
    # Structured graph: every relation has 3 popular tails that get most of its triples.
    gen = torch.Generator().manual_seed(0)
    num_entities, num_relations, n = 60, 3, 900
    relations = torch.randint(0, num_relations, (n,), generator=gen)
    popular = torch.randint(0, 3, (n,), generator=gen) + 3 * relations
    tails = torch.where(
        torch.rand(n, generator=gen) < 0.8, popular, torch.randint(0, num_entities, (n,), generator=gen)
    )
    heads = torch.randint(0, num_entities, (n,), generator=gen)
    triples = torch.unique(torch.stack([heads, relations, tails], dim=1), dim=0)
    triples = triples[torch.randperm(triples.shape[0], generator=gen)]
    train, test = triples[:-100], triples[-100:]
    index = FilterIndex.from_triples(
        add_reciprocals(triples, num_relations),
        num_entities=num_entities,
        num_relations_with_reciprocals=2 * num_relations,
    )
    kwargs = dict(num_entities=num_entities, num_relations=num_relations, filter_index=index, progress=False)
    popularity = evaluate(
        PopularityScorer(train, num_entities=num_entities, num_relations=num_relations), test, **kwargs
    )
    chance = evaluate(RandomScorer(num_entities, seed=0), test, **kwargs)
    assert popularity.metric("mrr") > 2 * chance.metric("mrr")
    assert popularity.metric("mrr", part="tail") > popularity.metric("mrr", part="head")  # tails are predictable
    # raw ranks of i.i.d. scores: expected MRR is H_E / E
    raw = evaluate(RandomScorer(num_entities, seed=1), test, **{**kwargs, "filter_index": None})
    harmonic = sum(1.0 / k for k in range(1, num_entities + 1)) / num_entities
    assert abs(raw.metric("mrr") - harmonic) < 0.04
    with pytest.raises(InputError, match="without reciprocals"):
        PopularityScorer(add_reciprocals(train, num_relations), num_entities=num_entities, num_relations=num_relations)


def test_metrics_consistent_with_rank_metrics() -> None:
    train, test, known, index, table = _setup(23, tied=False)
    result = evaluate(
        TableScorer(table),
        test,
        num_entities=NUM_ENTITIES,
        num_relations=NUM_RELATIONS,
        filter_index=index,
        progress=False,
        keep_ranks=True,
        ks=(1, 5),
    )
    tail_mask = result.ranks["direction"] == 0
    expected = RankMetrics.from_ranks(result.ranks["pessimistic"][tail_mask], ks=(1, 5))
    assert result.part("tail", "pessimistic") == expected
    assert set(result.part().hits) == {1, 5}
