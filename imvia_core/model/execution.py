"""How a model computes, as opposed to what it computes: the switches between fast kernels and their references.

Every switch gives the same function (equal up to float rounding, checked by the tests); none is a hyperparameter,
so none is part of a run's configuration or of its cache digest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ExecutionOptions"]


@dataclass
class ExecutionOptions:
    """Execution choices of :class:`~imvia_core.model.imvia.IMVIA`.

    :param fast_tucker: contract the Tucker core once per distinct relation of a batch
        (:func:`~imvia_core.model.tucker.contract_by_relation`); ``False``: the per-example reference path. Read
        when the model is built.
    :param fused_scoring_loss: in training, score and take the 1-N BCE block by block
        (:func:`~imvia_core.model.kernels.bce.one_to_n_bce_linear`, no ``(B, E)`` logits kept); ``False``: logits
        first, then the loss. Read at every training step.
    """

    fast_tucker: bool = True
    fused_scoring_loss: bool = True

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls))

    @classmethod
    def split(cls, values: Mapping[str, Any]) -> tuple[ExecutionOptions, dict[str, Any]]:
        """``(execution options, the other keys)`` of a mapping that may mix both (a model's options dict)."""
        names = cls.names()
        return cls(**{k: v for k, v in values.items() if k in names}), {
            k: v for k, v in values.items() if k not in names
        }
