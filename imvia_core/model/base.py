"""The interface every link-prediction model of this project implements (IMVIA and the structural baselines).

Scoring is always tail prediction with reciprocal relations: a query is ``(head, relation)`` with relation ids in
``0..2R-1`` and the model scores every entity as the tail, in one matmul (1-N scoring, as in TuckER).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["KGCModel"]


class KGCModel(nn.Module):
    """Base class: subclasses implement :meth:`score_all` and :meth:`training_loss`."""

    #: names of the score branches a model exposes to :meth:`score_all` (``"final"`` is the ranking score)
    branches: tuple[str, ...] = ("final",)

    def score_all(self, heads: torch.Tensor, relations: torch.Tensor, *, branch: str = "final") -> torch.Tensor:
        """Score every entity as tail of each query.

        :param heads: shape ``(B,)`` entity ids.
        :param relations: shape ``(B,)`` relation ids including reciprocals (``0..2R-1``).
        :param branch: which branch's score; ``"final"`` is what ranking uses.
        :return: shape ``(B, num_entities)``; higher means more plausible.
        """
        raise NotImplementedError

    def training_loss(
        self, heads: torch.Tensor, relations: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one 1-N batch.

        :param heads: shape ``(B,)``.
        :param relations: shape ``(B,)``.
        :param targets: shape ``(B, num_entities)`` in {0, 1}: the known tails of each query in the training set.
        :return: the scalar loss to minimise and a dict of named, detached loss terms for logging.
        """
        raise NotImplementedError

    def auxiliary_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by their own optimizer in an alternating step (IMVIA's CLUB estimators); may be empty."""
        return []

    def main_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by the main optimizer: all parameters not in :meth:`auxiliary_parameters`."""
        aux = {id(p) for p in self.auxiliary_parameters()}
        return [p for p in self.parameters() if id(p) not in aux]

    def auxiliary_loss(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor | None:
        """Loss of the alternating step, run before each main step on the same batch; ``None`` if the model has none.

        Only :meth:`auxiliary_parameters` receive its gradient: the trainer steps their optimizer alone.
        """
        return None
