"""The in-memory knowledge graph every other part of the project consumes.

A :class:`KnowledgeGraph` holds id-mapped triples of the three published splits, the entity and relation
vocabularies, optional human-readable names, and derived structures (reciprocal triples, the filter index of all
known triples) that training and evaluation share.

Reciprocal relations: relation ``r`` gets the inverse ``r + num_relations`` so that head prediction
``(?, r, t)`` becomes tail prediction ``(t, r^-1, ?)``. All scoring in this project is tail prediction over
``2 * num_relations`` relation ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch

from imvia_core.data.filtering import FilterIndex

__all__ = ["KnowledgeGraph", "add_reciprocals"]


def add_reciprocals(triples: torch.Tensor, num_relations: int) -> torch.Tensor:
    """Append inverse triples.

    :param triples: shape ``(n, 3)``, columns head, relation, tail.
    :param num_relations: number of original relations ``R``.
    :return: shape ``(2n, 3)``: the input followed by ``(t, r + R, h)`` for each input row.
    """
    inverse = torch.stack([triples[:, 2], triples[:, 1] + num_relations, triples[:, 0]], dim=1)
    return torch.cat([triples, inverse], dim=0)


@dataclass(eq=False)
class KnowledgeGraph:
    """A knowledge graph with its published train/valid/test split.

    :param name: dataset name (``DB15K``, ``MKG-W``, ``MKG-Y``, ``synthetic`` or a folder name).
    :param entity_to_id: entity name -> id in ``0..num_entities-1``.
    :param relation_to_id: relation name -> id in ``0..num_relations-1`` (original relations only).
    :param train: shape ``(n_train, 3)`` long tensor of (head, relation, tail) ids, duplicates kept as published.
    :param valid: shape ``(n_valid, 3)``.
    :param test: shape ``(n_test, 3)``.
    :param entity_names: readable name per entity id, or ``None``.
    :param relation_names: readable name per relation id, or ``None``.
    :param published_valid: shape ``(n, 3)``: the published validation triples when ``valid`` is a held-out share
        of the training triples instead (:func:`~imvia_core.data.selection.carve_selection_split`); ``None``
        otherwise. They are filtered like every other split and still reported.
    """

    name: str
    entity_to_id: dict[str, int]
    relation_to_id: dict[str, int]
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    entity_names: list[str] | None = None
    relation_names: list[str] | None = None
    extra: dict = field(default_factory=dict)
    published_valid: torch.Tensor | None = None

    @property
    def num_entities(self) -> int:
        return len(self.entity_to_id)

    @property
    def num_relations(self) -> int:
        """Number of original relations (without reciprocals)."""
        return len(self.relation_to_id)

    @property
    def num_relations_with_reciprocals(self) -> int:
        return 2 * self.num_relations

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits this graph has: ``train``, ``valid``, ``test``, and ``published_valid`` when it is set."""
        return ("train", "valid", "test") + (("published_valid",) if self.published_valid is not None else ())

    def split(self, name: str) -> torch.Tensor:
        """Return the triples of split ``train``, ``valid``, ``test`` (or ``published_valid`` when it is set)."""
        if name not in self.splits:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(map(repr, self.splits))}")
        return getattr(self, name)

    def split_source(self, name: str) -> str:
        """Where split ``name`` was read from (its file), or a description for a generated graph."""
        files = self.extra.get("split_files", {})
        return files.get(name) or f"{self.name}: the {name} split"

    def empty_splits(self) -> list[str]:
        """Names of the splits without any triple."""
        return [s for s in ("train", "valid", "test") if self.split(s).shape[0] == 0]

    def with_reciprocals(self, split: str) -> torch.Tensor:
        """Triples of ``split`` followed by their inverses, shape ``(2n, 3)``."""
        return add_reciprocals(self.split(split), self.num_relations)

    @cached_property
    def all_known_triples(self) -> torch.Tensor:
        """Unique triples of every split with reciprocals, shape ``(m, 3)``: what filtering removes."""
        both = torch.cat([self.with_reciprocals(s) for s in self.splits], dim=0)
        return torch.unique(both, dim=0)

    @cached_property
    def filter_index(self) -> FilterIndex:
        """Filter index over all known triples (train, valid, test, with reciprocals)."""
        return FilterIndex.from_triples(
            self.all_known_triples,
            num_entities=self.num_entities,
            num_relations_with_reciprocals=self.num_relations_with_reciprocals,
        )

    def statistics(self) -> dict[str, int]:
        """Counts as in Table I of the paper: entities, relations, train, valid, test (lines as published)."""
        return {
            "entities": self.num_entities,
            "relations": self.num_relations,
            "train": int(self.train.shape[0]),
            "valid": int(self.valid.shape[0]),
            "test": int(self.test.shape[0]),
        }
