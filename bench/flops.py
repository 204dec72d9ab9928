"""The FLOP model of a training step and of an evaluation.

Model FLOPs per training step (a multiply-add counts 2; ``B`` batch, ``E`` entities, ``d`` model dim, ``d_r``
relation dim of the Tucker cores, ``M`` score branches (4), ``U`` distinct relations in the batch, ``m`` a fused
modality (V, T), ``p_m`` input width of modality ``m``'s experts after pooling, ``K`` experts of width ``d_x``,
``S`` modalities in the joint embedding and in the pair losses (S, V, T), ``P`` modality pairs, ``h`` CLUB hidden
width)::

    scoring      3 * M * 2 B d E                    # q @ entity_table.T, forward + two backward matmuls
    tucker core  3 * M * 2 U d_r d^2                # W x_2 r once per distinct relation of the batch
    contraction  3 * M * 2 B d^2                    # x_b @ W_r (useful work; the grouped bmm pads up to 2x)
    experts      2 * sum_m 2 E p_m K d_x            # all entities; forward + weight gradient (the feature
                                                    # table takes no gradient); head views are rows of these
    fusion       3 * sum_m [ (E + B) (2 d d_x + 2 d_x d + 6 K d_x) + B 2 d d_x ]
                                                    # Eq. 1 gate and output projection for candidates (null
                                                    # relation) and heads (+ relation term), Eq. 2-3 cosines/sum
    joint        3 * (E + B) * S (2 d^2 + 4 d)      # projections, attention, weighted sum
    decision     3 * 2 B d M                        # beta(r)
    alignment    3 * P * 2 B^2 d                    # Eq. 5 similarity matrices
    MI bound     2 * P * 8 B d h                    # frozen CLUB nets: forward + input gradient
    aux step     sum_m [2 B p_m K d_x + B (4 d d_x + 2 d_x d + 6 K d_x)] + 3 * P * 8 B d h
                                                    # heads re-encoded without gradient, CLUB nets fitted

``tucker core`` and ``scoring`` dominate (about 80 and 81 GFLOP per DB15K step with ``U`` near 200). The
element-wise work of the loss over ``M x B x E`` entries (sigmoids, logarithms: about 13 M entries per branch) is
not counted as FLOPs but takes time. The TuckER baseline counts ``scoring``, ``tucker core`` and ``contraction``
with ``M = 1``. Evaluation counts the forward terms: the candidate tables once (experts, fusion and joint over
``E``), then per batch of ``b`` queries with ``U_b`` distinct relations (counted from the batches the scorer
receives) ``M (2 U_b d_r d^2 + 2 b d^2 + 2 b d E)`` plus the encoding of the ``b`` heads. Tests check the formula
against :class:`torch.utils.flop_counter.FlopCounterMode` on small models (within 10%; at dim 256 within 1%).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["evaluation_flops", "imvia_step_flops", "tucker_step_flops"]


def tucker_step_flops(
    *, batch_size: int, num_entities: int, dim: int, relation_dim: int, unique_relations: int
) -> dict[str, float]:
    """FLOPs of one TuckER training step (forward + backward): ``scoring``, ``tucker_core``, ``contraction``."""
    b, e, d, dr, u = batch_size, num_entities, dim, relation_dim, unique_relations
    return {
        "scoring": 3.0 * 2 * b * d * e,
        "tucker_core": 3.0 * 2 * u * dr * d * d,
        "contraction": 3.0 * 2 * b * d * d,
    }


def _fusion_dims(model) -> list[tuple[int, int, int]]:
    """``(p_m, K, d_x)`` per fused modality; ``p_m = 0`` for true multi-view features (no experts)."""
    dims = []
    for fusion in model.fusion.values():
        p = fusion.experts.in_features if fusion.experts is not None else 0
        dims.append((p, fusion.num_views, fusion.view_dim))
    return dims


def _club_terms(model) -> tuple[int, int, int]:
    """``(pairs, x_dim, hidden)`` of the CLUB estimators (0 pairs when there are none)."""
    if model.club_modalities is not None:
        est = next(iter(model.club_modalities.estimators.values()))
        return len(model.club_modalities.pairs), est.mean_net.first.in_features, est.mean_net.first.out_features
    pairs, x_dim, hidden = 0, 0, 0
    for club in model.club_views.values():
        pairs += len(club.pairs)
        est = next(iter(club.estimators.values()))
        x_dim, hidden = est.mean_net.first.in_features, est.mean_net.first.out_features
    return pairs, x_dim, hidden


def imvia_step_flops(model, *, batch_size: int, unique_relations: int) -> dict[str, float]:
    """FLOPs of one IMVIA training step by part, following the formula of the module docstring.

    :param model: an :class:`~imvia_core.model.IMVIA` (its sizes are read from its modules).
    :param batch_size: ``B``.
    :param unique_relations: ``U``, distinct relation ids in the batch.
    """
    e, d, b, u = model.num_entities, model.config.dim, batch_size, unique_relations
    m = len(model.score_branches)
    scorer = next(iter(model.scorers.values()))
    dr = scorer.relation_dim
    parts = {
        "scoring": 3.0 * m * 2 * b * d * e,
        "tucker_core": 3.0 * m * 2 * u * dr * d * d,
        "contraction": 3.0 * m * 2 * b * d * d,
        "experts": 0.0,
        "fusion": 0.0,
        "joint": 0.0,
        "decision": 3.0 * 2 * b * d * m if model.decision.gate is not None else 0.0,
        "alignment": 0.0,
        "mi_bound": 0.0,
        "aux_step": 0.0,
    }
    for p, k, dx in _fusion_dims(model):
        per_entity = 2 * d * dx + 2 * dx * d + 6 * k * dx
        parts["experts"] += 2.0 * 2 * e * p * k * dx
        parts["fusion"] += 3.0 * ((e + b) * per_entity + b * 2 * d * dx)
        parts["aux_step"] += 2.0 * b * p * k * dx + b * (per_entity + 2 * d * dx)
    s = len(model.modalities)
    if model.joint is not None:
        parts["joint"] = 3.0 * (e + b) * s * (2 * d * d + 4 * d)
    if model.alignment is not None and model.config.lambda_align > 0:
        parts["alignment"] = 3.0 * len(model.alignment.pairs) * 2 * b * b * d
    pairs, x_dim, hidden = _club_terms(model)
    if pairs:
        per_pair = 8.0 * b * x_dim * hidden  # two 2-layer nets of x_dim -> hidden -> x_dim
        parts["mi_bound"] = 2.0 * pairs * per_pair
        parts["aux_step"] += 3.0 * pairs * per_pair
    parts["total"] = float(sum(parts.values()))
    return parts


def evaluation_flops(model, *, batches: Sequence[tuple[int, int]]) -> dict[str, float]:
    """Forward FLOPs of an evaluation that scored the given batches (see the module docstring).

    :param batches: ``(b, U_b)`` per scored batch: queries and distinct relation ids in it (what the scorer saw).
    :return: ``candidates``, ``scoring``, ``tucker_core``, ``contraction``, ``heads`` and ``total``.
    """
    e, d = model.num_entities, model.config.dim
    m = len(model.score_branches)
    dr = next(iter(model.scorers.values())).relation_dim
    cand = 0.0
    head_cost = 0.0
    for p, k, dx in _fusion_dims(model):
        cand += e * (2 * p * k * dx + 2 * d * dx + 2 * dx * d + 6 * k * dx)
        head_cost += 2 * p * k * dx + 4 * d * dx + 2 * dx * d + 6 * k * dx
    if model.joint is not None:
        cand += e * len(model.modalities) * (2 * d * d + 4 * d)
        head_cost += len(model.modalities) * (2 * d * d + 4 * d)
    parts = {"candidates": cand, "scoring": 0.0, "tucker_core": 0.0, "contraction": 0.0, "heads": 0.0}
    for b, u in batches:
        parts["scoring"] += m * 2.0 * b * d * e
        parts["tucker_core"] += m * 2.0 * u * dr * d * d
        parts["contraction"] += m * 2.0 * b * d * d
        parts["heads"] += b * head_cost
    parts["total"] = float(sum(parts.values()))
    return parts
