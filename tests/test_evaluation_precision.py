"""Ranks come from float32 scores even when the caller trains under bf16 autocast (CPU autocast here)."""

from __future__ import annotations

import torch

from imvia_core.data.graph import add_reciprocals
from imvia_core.evaluation import FilterIndex, evaluate
from imvia_core.model import build_model

NUM_ENTITIES = 3000
NUM_RELATIONS = 3


def _setup() -> tuple[torch.nn.Module, torch.Tensor, FilterIndex]:
    torch.manual_seed(0)
    model = build_model(
        "tucker",
        num_entities=NUM_ENTITIES,
        num_relations_with_reciprocals=2 * NUM_RELATIONS,
        config={"dim": 32},
    )
    gen = torch.Generator().manual_seed(1)
    triples = torch.stack(
        [
            torch.randint(0, NUM_ENTITIES, (200,), generator=gen),
            torch.randint(0, NUM_RELATIONS, (200,), generator=gen),
            torch.randint(0, NUM_ENTITIES, (200,), generator=gen),
        ],
        dim=1,
    )
    index = FilterIndex.from_triples(
        add_reciprocals(triples, NUM_RELATIONS),
        num_entities=NUM_ENTITIES,
        num_relations_with_reciprocals=2 * NUM_RELATIONS,
    )
    return model, triples, index


def _ranks(model, triples, index) -> dict[str, torch.Tensor]:
    result = evaluate(
        model,
        triples,
        num_entities=NUM_ENTITIES,
        num_relations=NUM_RELATIONS,
        filter_index=index,
        batch_size=64,
        progress=False,
        keep_ranks=True,
    )
    return result.ranks


def test_ranks_under_bf16_autocast_equal_float32_ranks() -> None:
    model, triples, index = _setup()
    reference = _ranks(model, triples, index)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        autocast_ranks = _ranks(model, triples, index)
    for kind in ("optimistic", "pessimistic", "realistic"):
        assert torch.equal(reference[kind], autocast_ranks[kind]), kind


def test_bf16_scores_would_tie_candidates() -> None:
    """The case the evaluator guards against: scored under autocast, thousands of candidates share one value."""
    model, triples, _ = _setup()
    model.eval()
    heads, relations = triples[:64, 0], triples[:64, 1]
    with torch.no_grad():
        exact = model.score_all(heads, relations)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            rounded = model.score_all(heads, relations)
    distinct_exact = sum(torch.unique(row).numel() for row in exact)
    distinct_rounded = sum(torch.unique(row).numel() for row in rounded)
    assert distinct_rounded < 0.5 * distinct_exact
