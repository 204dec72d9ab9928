"""Filtered rank-based evaluation of link prediction: ranks, metrics, relation categories (filter index: data).

Typical use::

    from imvia_core.evaluation import evaluate, relation_categories

    result = evaluate(
        model,
        graph.test,
        num_entities=graph.num_entities,
        num_relations=graph.num_relations,
        filter_index=graph.filter_index,
        relation_categories=relation_categories(graph.train, graph.num_relations),
        device="cuda",
    )
    print(result.summary())
    mrr = result.metric("mrr")  # realistic ranks, both directions, as a fraction
"""

from imvia_core.data.filtering import FilterIndex, check_triples
from imvia_core.evaluation.categories import CATEGORY_NAMES, relation_categories, relation_fanout
from imvia_core.evaluation.evaluator import DEFAULT_RANK_TYPES, ModelScorer, Scorer, evaluate, model_scorer
from imvia_core.evaluation.metrics import (
    DEFAULT_KS,
    DIRECTIONS,
    HEADLINE_RANK_TYPE,
    EvaluationResult,
    RankMetrics,
    result_parts,
)
from imvia_core.evaluation.ranks import RANK_TYPES, TIE_BREAKS, RankBatch, compute_ranks
from imvia_core.evaluation.trivial import PopularityScorer, RandomScorer

__all__ = [
    "CATEGORY_NAMES",
    "DEFAULT_KS",
    "DEFAULT_RANK_TYPES",
    "DIRECTIONS",
    "HEADLINE_RANK_TYPE",
    "RANK_TYPES",
    "TIE_BREAKS",
    "EvaluationResult",
    "FilterIndex",
    "ModelScorer",
    "PopularityScorer",
    "RandomScorer",
    "RankBatch",
    "RankMetrics",
    "Scorer",
    "check_triples",
    "compute_ranks",
    "evaluate",
    "model_scorer",
    "relation_categories",
    "relation_fanout",
    "result_parts",
]
