"""Relation categories 1-1, 1-N, N-1 and N-N, for breaking link-prediction metrics down by relation type.

The categories follow Bordes et al., "Translating Embeddings for Modeling Multi-relational Data" (NeurIPS 2013,
Sec. 4.4) and Wang et al., "Knowledge Graph Embedding by Translating on Hyperplanes" (AAAI 2014, Sec. 4.2): for each
relation, over its training triples, ``tph`` is the average number of tails per distinct head and ``hpt`` the
average number of heads per distinct tail. With the threshold 1.5:

=========  ===========  ===========
category   tph          hpt
=========  ===========  ===========
1-1        < 1.5        < 1.5
1-N        >= 1.5       < 1.5
N-1        < 1.5        >= 1.5
N-N        >= 1.5       >= 1.5
=========  ===========  ===========

Head prediction of a triple ``(h, r, t)`` (the reciprocal query ``(t, r + R)``) is reported under the category of
the original relation ``r``: the "1" side of a 1-N relation is its head.
"""

from __future__ import annotations

import torch

from imvia_core.errors import InputError

__all__ = ["CATEGORY_NAMES", "relation_categories", "relation_fanout"]

#: name of each category code returned by :func:`relation_categories`
CATEGORY_NAMES: tuple[str, ...] = ("1-1", "1-N", "N-1", "N-N")


def relation_fanout(train: torch.Tensor, num_relations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tails per head and heads per tail of every original relation, over distinct training triples.

    :param train: shape ``(n, 3)`` training triples with original relation ids ``0..R-1`` (no reciprocals).
    :param num_relations: number of original relations ``R``.
    :return: ``tph`` and ``hpt``, each float64 shape ``(R,)``; 0 for a relation without training triples.
    """
    if train.dim() != 2 or train.shape[1] != 3:
        raise InputError(f"train triples: found shape {tuple(train.shape)}; expected (n, 3) (head, relation, tail)")
    if num_relations <= 0:
        raise InputError(f"num_relations: found {num_relations}; expected a positive number of original relations")
    train = torch.unique(train.long().cpu(), dim=0)
    relations = train[:, 1]
    if train.shape[0] and (int(relations.min()) < 0 or int(relations.max()) >= num_relations):
        found = int(relations.max()) if int(relations.max()) >= num_relations else int(relations.min())
        raise InputError(
            f"train triples: found relation id {found}; expected original relation ids in 0..{num_relations - 1} "
            "(pass the triples without reciprocals)"
        )
    num_triples = torch.bincount(relations, minlength=num_relations).double()
    # distinct (relation, head) and (relation, tail) pairs
    distinct_heads = torch.bincount(torch.unique(train[:, [1, 0]], dim=0)[:, 0], minlength=num_relations).double()
    distinct_tails = torch.bincount(torch.unique(train[:, [1, 2]], dim=0)[:, 0], minlength=num_relations).double()
    tph = torch.where(distinct_heads > 0, num_triples / distinct_heads.clamp(min=1), torch.zeros_like(num_triples))
    hpt = torch.where(distinct_tails > 0, num_triples / distinct_tails.clamp(min=1), torch.zeros_like(num_triples))
    return tph, hpt


def relation_categories(train: torch.Tensor, num_relations: int, threshold: float = 1.5) -> torch.Tensor:
    """Category code of every original relation.

    :param train: shape ``(n, 3)`` training triples with original relation ids (no reciprocals); duplicates are
        counted once.
    :param num_relations: number of original relations ``R``.
    :param threshold: the many-side threshold on tails-per-head and heads-per-tail (1.5 in Bordes et al., 2013).
    :return: shape ``(R,)`` long codes: 0 = 1-1, 1 = 1-N, 2 = N-1, 3 = N-N (see :data:`CATEGORY_NAMES`). A relation
        without training triples has ``tph = hpt = 0`` and is therefore 1-1.
    """
    tph, hpt = relation_fanout(train, num_relations)
    return (tph >= threshold).long() + 2 * (hpt >= threshold).long()
