"""The decision gate of Eq. 7 read out: how much each scoring branch weighs, on average, over a split's queries.

Nothing here trains a model or imports one: ``model`` is anything with IMVIA's ``inspect`` (the relation-aware gate
``beta_m(r)`` of every relation), ``graph`` a :class:`~imvia_core.data.graph.KnowledgeGraph`.
"""

from __future__ import annotations

import torch

__all__ = ["mean_decision_weights"]


def mean_decision_weights(model, graph, *, split: str = "test") -> dict[str, float]:
    """Mean decision weight ``beta_m(r)`` (Eq. 7) of each scoring branch over the queries of ``split``.

    Both directions of every triple count (relation ``r`` for tail queries, ``r + R`` for head queries), so a
    relation weighs as often as it is asked. With ``decision_fusion="uniform"`` every weight is ``1 / branches``.

    :return: ``{branch: mean weight}`` over the model's scoring branches (they sum to 1).
    """
    relations = graph.with_reciprocals(split)[:, 1]
    device = next(model.parameters()).device
    ids = torch.arange(graph.num_relations_with_reciprocals, device=device)
    with torch.no_grad():
        inspection = model.inspect(torch.zeros_like(ids), ids)
    weights = inspection.decision_weights.float().cpu()  # (2R, branches)
    counts = torch.bincount(relations.cpu(), minlength=weights.shape[0]).float()
    mean = (counts[:, None] * weights).sum(0) / counts.sum().clamp_min(1.0)
    return {branch: float(w) for branch, w in zip(inspection.decision_branches, mean)}
