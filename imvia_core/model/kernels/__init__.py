"""The hand-written autograd functions behind the equations, each beside its plain-autograd reference.

The equation modules (:mod:`~imvia_core.model.fusion`, :mod:`~imvia_core.model.imvia`, ...) call these; the tests
compare each kernel with its reference (values and gradients). Which of them a model uses is an execution choice,
not a hyperparameter: see :class:`~imvia_core.model.execution.ExecutionOptions`.

* :mod:`~imvia_core.model.kernels.bce`: the 1-N binary cross-entropy of several score branches and of their fused
  probability (Eq. 7), in row chunks, optionally fused with the scoring matmuls (:func:`one_to_n_bce_linear`);
  :func:`one_to_n_bce_reference`.
* :mod:`~imvia_core.model.kernels.distances`: the 1-N distances of RotatE and PairRE without a ``(B, E, d)``
  tensor (blocked with closed-form backward passes; PairRE's compiled on a CPU); :func:`pair_distance_reference`.
* :mod:`~imvia_core.model.kernels.view_cosines`: ``cos(g * f_k, f_k)`` of Eq. 2 with a closed-form backward pass;
  :func:`view_cosines_reference`.
"""

from imvia_core.model.kernels.bce import (
    one_to_n_bce,
    one_to_n_bce_linear,
    one_to_n_bce_reference,
    resolve_chunk_rows,
)
from imvia_core.model.kernels.distances import pair_distance, pair_distance_reference, rotate_distance
from imvia_core.model.kernels.view_cosines import view_cosines, view_cosines_reference

__all__ = [
    "one_to_n_bce",
    "one_to_n_bce_linear",
    "one_to_n_bce_reference",
    "pair_distance",
    "pair_distance_reference",
    "resolve_chunk_rows",
    "rotate_distance",
    "view_cosines",
    "view_cosines_reference",
]
