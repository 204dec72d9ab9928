"""Names and types shared across the package: the feature modalities and the per-entity views of one modality.

One name for one thing throughout:

* ``num_relations`` is ``R``, the relations of the graph as published (``KnowledgeGraph.num_relations``, the
  evaluator, the trivial scorers); ``num_relations_with_reciprocals`` is ``2R``, the relation ids a model and a
  :class:`~imvia_core.data.filtering.FilterIndex` see (id ``r + R`` is the reciprocal of ``r``);
* a feature modality is ``"visual"`` or ``"text"`` (:data:`MODALITIES`) everywhere outside the model; inside it,
  the branch of a modality is its letter (:data:`BRANCH_OF_MODALITY`), beside ``S`` (structure) and ``J`` (joint).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["BRANCH_OF_MODALITY", "MODALITIES", "ModalityFeatures"]

#: the feature modalities, as feature files, configurations and :class:`ModalityFeatures` name them
MODALITIES: tuple[str, ...] = ("visual", "text")
#: each feature modality's branch inside the model; ``S`` is the structure branch, ``J`` the joint one
BRANCH_OF_MODALITY: dict[str, str] = {"visual": "V", "text": "T"}


@dataclass(eq=False)
class ModalityFeatures:
    """Every view of every entity for one modality (visual or text).

    :param views: shape ``(num_entities, max_views, dim)`` float tensor; rows past an entity's view count are zero.
    :param mask: shape ``(num_entities, max_views)`` bool tensor; ``True`` marks a real view. An entity with no view
        of this modality has an all-``False`` row.
    :param modality: ``"visual"`` or ``"text"``.
    :param metadata: free-form provenance (encoder, weights checksum or ``"random"``, source file, ...).
    """

    views: torch.Tensor
    mask: torch.Tensor
    modality: str
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.views.dim() != 3:
            raise ValueError(
                f"{self.modality} views must have shape (entities, views, dim), got {tuple(self.views.shape)}"
            )
        if self.mask.shape != self.views.shape[:2]:
            raise ValueError(
                f"{self.modality} mask shape {tuple(self.mask.shape)} does not match views "
                f"{tuple(self.views.shape[:2])}"
            )
        self.mask = self.mask.bool()

    @property
    def num_entities(self) -> int:
        return int(self.views.shape[0])

    @property
    def max_views(self) -> int:
        return int(self.views.shape[1])

    @property
    def dim(self) -> int:
        return int(self.views.shape[2])

    @property
    def view_counts(self) -> torch.Tensor:
        """Shape ``(num_entities,)``: number of real views per entity."""
        return self.mask.sum(dim=1)

    @property
    def has_modality(self) -> torch.Tensor:
        """Shape ``(num_entities,)`` bool: whether the entity has at least one view."""
        return self.mask.any(dim=1)

    def mean_vectors(self) -> torch.Tensor:
        """Mean over real views, shape ``(num_entities, dim)``; zero for entities without a view."""
        m = self.mask.to(self.views.dtype).unsqueeze(-1)
        return (self.views * m).sum(1) / m.sum(1).clamp_min(1.0)
