"""Cross-modality alignment (paper Eq. 5): a symmetric, CLIP-style contrastive loss between modality pairs.

For two modalities ``m, n`` and the ``N`` entities of a batch, with L2-normalised embeddings ``a_i = e_m(i)`` and
``b_i = e_n(i)``, logits ``l_ij = a_i . b_j / tau`` and cross-entropy against the diagonal::

    L(m, n) = ( CE_rows(l, diag) + CE_cols(l, diag) ) / 2

``tau`` is learnable, parametrised by its logarithm (initial value 0.07) and clamped to ``[tau_min, tau_max]``.

Choices, and why:

* Repeated entities in a batch (the same head with several relations) are masked, not deduplicated: row ``i``'s
  softmax leaves out every column ``j != i`` that holds the same entity (they are not negatives of themselves). The
  embeddings aligned here are query-conditioned (Eq. 1 gates them with the query relation), so two rows of one
  entity can differ and deduplication would have to pick one arbitrarily.
* Rows where either modality is missing (entity without images or text) are left out of the pair's loss.
* Scale: the loss is summed over unordered pairs, each pair symmetric as above (the upstream code's scale, for which
  ``lambda_align = 0.01`` was tuned). Eq. 5's ``1/|M| sum_{m != n}`` is a constant multiple of this.
* Computed in float32 (safe under autocast).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from imvia_core.errors import ConfigError
from imvia_core.model._utils import check_positive, float32_region, rows_present, upcast

__all__ = ["ContrastiveAlignment", "symmetric_contrastive_loss"]


def symmetric_contrastive_loss(
    a: torch.Tensor, b: torch.Tensor, temperature: torch.Tensor | float, *, entity_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE between matching rows of ``a`` and ``b`` (float32).

    :param a: shape ``(N, d)``; normalised here.
    :param b: shape ``(N, d)``; normalised here.
    :param temperature: scalar ``tau``.
    :param entity_ids: shape ``(N,)``; off-diagonal pairs with equal ids are masked out of both softmaxes.
    :return: scalar; zero (attached) when ``N == 0``.
    """
    if a.shape[0] == 0:
        return (a.sum() + b.sum()).float() * 0.0
    with float32_region(a.device):
        a = F.normalize(upcast(a), dim=-1)
        b = F.normalize(upcast(b), dim=-1).to(a.dtype)
        logits = a @ b.t() / temperature
        n = logits.shape[0]
        if entity_ids is not None:
            same = entity_ids.unsqueeze(0) == entity_ids.unsqueeze(1)
            same.fill_diagonal_(False)
            logits = logits.masked_fill(same, float("-inf"))
        target = torch.arange(n, device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


class ContrastiveAlignment(nn.Module):
    """Eq. 5 over every unordered pair of the given modalities, with a learnable clamped temperature.

    :param modalities: names of the modalities present.
    :param temperature_init: initial ``tau``.
    :param temperature_min: lower clamp of ``tau``.
    :param temperature_max: upper clamp of ``tau``.
    :param learnable: learn ``tau`` (otherwise it stays at ``temperature_init``).
    """

    def __init__(
        self,
        *,
        modalities: Sequence[str],
        temperature_init: float = 0.07,
        temperature_min: float = 0.01,
        temperature_max: float = 1.0,
        learnable: bool = True,
    ) -> None:
        super().__init__()
        check_positive("align temperature_init", temperature_init)
        check_positive("align temperature_min", temperature_min)
        if not temperature_min <= temperature_init <= temperature_max:
            raise ConfigError(
                f"align temperature: found init {temperature_init} outside [{temperature_min}, {temperature_max}]; "
                "expected temperature_min <= temperature_init <= temperature_max"
            )
        self.pairs: list[tuple[str, str]] = list(itertools.combinations(modalities, 2))
        self.temperature_min = float(temperature_min)
        self.temperature_max = float(temperature_max)
        log_tau = torch.tensor(math.log(temperature_init))
        if learnable:
            self.log_temperature = nn.Parameter(log_tau)
        else:
            self.register_buffer("log_temperature", log_tau)

    @property
    def temperature(self) -> torch.Tensor:
        """Current ``tau`` (scalar tensor), clamped."""
        return self.log_temperature.float().exp().clamp(self.temperature_min, self.temperature_max)

    def forward(
        self,
        embeddings: Mapping[str, torch.Tensor],
        *,
        present: Mapping[str, torch.Tensor] | None = None,
        entity_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sum of the pair losses.

        :param embeddings: name -> ``(N, d)``; every pair of :attr:`pairs` must be there.
        :param present: name -> ``(N,)`` bool; rows where either modality of a pair is missing are left out.
        :param entity_ids: shape ``(N,)``; for masking repeated entities.
        """
        total = self.log_temperature.new_zeros((), dtype=torch.float32)
        tau = self.temperature
        for m, n in self.pairs:
            a, b, ids = embeddings[m], embeddings[n], entity_ids
            keep = rows_present(present, (m, n))
            if keep is not None and not bool(keep.all()):
                a, b = a[keep], b[keep]
                ids = None if ids is None else ids[keep]
            total = total + symmetric_contrastive_loss(a, b, tau, entity_ids=ids)
        return total
