"""Trivial scorers: lower bounds that any trained model must beat, and end-to-end checks of the evaluator.

* :class:`PopularityScorer` ranks candidate tails by how often they are a tail of the query relation in training
  (with reciprocals, so head prediction counts heads), breaking ties by global degree. It ignores the query's head
  entity, so it measures how much of a benchmark is answerable from relation-level popularity alone.
* :class:`RandomScorer` gives i.i.d. uniform scores: its expected filtered MRR is close to ``H_E / E``.
"""

from __future__ import annotations

import torch

from imvia_core.data.filtering import check_triples
from imvia_core.data.graph import add_reciprocals
from imvia_core.errors import InputError

__all__ = ["PopularityScorer", "RandomScorer"]


class PopularityScorer:
    """Score of tail ``e`` for query ``(h, r)``: ``count(r, e) + degree_weight * degree(e) / max_degree``.

    ``count(r, e)`` is the number of training triples ``(*, r, e)`` once reciprocals are added; ``degree(e)`` is the
    number of training triples in which ``e`` appears (head or tail). With ``degree_weight < 1`` the degree term
    only orders candidates of equal count.

    :param train_triples: shape ``(n, 3)`` training triples with original relation ids ``0..R-1``.
    :param num_entities: ``E``.
    :param num_relations: number of original relations ``R``; queries may use ids ``0..2R-1``.
    :param degree_weight: weight of the normalised global degree, in ``[0, 1)``.
    """

    def __init__(
        self, train_triples: torch.Tensor, *, num_entities: int, num_relations: int, degree_weight: float = 0.5
    ) -> None:
        if not 0.0 <= degree_weight < 1.0:
            raise InputError(f"degree_weight: found {degree_weight}; expected a value in [0, 1)")
        train = check_triples(
            train_triples.cpu(),
            num_entities=num_entities,
            num_relations=num_relations,
            name="train triples",
            relation_note="original relations, without reciprocals",
        )
        both = add_reciprocals(train, num_relations)
        counts = torch.zeros(2 * num_relations, num_entities, dtype=torch.float32)
        counts.index_put_((both[:, 1], both[:, 2]), torch.ones(both.shape[0]), accumulate=True)
        degree = torch.bincount(train[:, [0, 2]].reshape(-1), minlength=num_entities).float()
        self.num_entities = num_entities
        self.num_relations = num_relations
        self.table = counts + degree_weight * degree / degree.max().clamp(min=1.0)  # (2R, E)
        self._on_device: dict[torch.device, torch.Tensor] = {self.table.device: self.table}

    @classmethod
    def from_graph(cls, graph, *, degree_weight: float = 0.5) -> PopularityScorer:  # graph: KnowledgeGraph
        """Scorer fitted on ``graph.train``."""
        return cls(
            graph.train,
            num_entities=graph.num_entities,
            num_relations=graph.num_relations,
            degree_weight=degree_weight,
        )

    def __call__(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(B, E)`` on the device of ``relations``."""
        device = relations.device
        if device not in self._on_device:
            self._on_device[device] = self.table.to(device)
        return self._on_device[device][relations.long()]


class RandomScorer:
    """I.i.d. uniform scores in ``[0, 1)``, drawn on a seeded CPU generator (identical on every device).

    :param num_entities: ``E``.
    :param seed: seed of the generator; the sequence of calls determines the scores.
    """

    def __init__(self, num_entities: int, *, seed: int = 0) -> None:
        if num_entities <= 0:
            raise InputError(f"num_entities: found {num_entities}; expected a positive number")
        self.num_entities = num_entities
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))

    def __call__(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(B, E)`` float32 on the device of ``heads``."""
        scores = torch.rand(heads.shape[0], self.num_entities, generator=self.generator)
        return scores.to(heads.device)
