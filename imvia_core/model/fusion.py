"""Intra-modality multi-view fusion (paper Eq. 1-3) for one modality.

For entity ``i`` with views ``f_1..f_K`` (valid ones marked by a mask) and a query relation ``r``:

* Eq. 1, gate: ``g = sigmoid(W_g [e_i ; e_r] + b_g)`` in ``R^{d_x}`` from the entity's structural embedding and the
  relation embedding.
* Eq. 2, view weights: ``alpha_k = softmax_k(cos(g * f_k, f_k) / temperature)`` over the VALID views only.
* Eq. 3, fused view: ``e_hat = sum_k alpha_k f_k``, followed by a learned linear projection to the model dim.

Two kinds of input go through the same code (method.md section A):

* true multi-view features ``(E, K, d_m)`` with a mask: the views are the features themselves, ``d_x = d_m``;
* one vector per entity ``(E, 1, d_m)``: the views are ``K`` learned "expert" linear projections of that vector
  (what the upstream code does with its mixture of experts), ``d_x = expert_dim``.

Deviations from the paper, and why:

* A temperature divides the cosines before the softmax (default 0.1). ``cos(g * f, f)`` lies in ``(0, 1]`` because
  ``g`` is a sigmoid, so the paper's plain softmax can at most weight views ``e : 1``; ``temperature=1.0`` gives the
  paper's literal form.
* Entities with no valid view get an all-zero embedding and ``has_view = False`` (no fake view enters the softmax).
* In expert mode, a vector wider than ``input_pool_dim`` is average-pooled to that width once, at construction,
  as the upstream code does (DB15K: 4096-d image and 768-d text vectors pooled to 256). This keeps the per-step
  cost of the expert projections over all entities small; ``input_pool_dim=None`` keeps the full width.
* Candidate entities in 1-N scoring have no query relation of their own: :meth:`MultiViewFusion.forward` with
  ``relation_emb=None`` uses a learned "null relation" embedding (relation-neutral gate), so the candidate table
  does not depend on the query and is computed once per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from imvia_core.errors import ConfigError
from imvia_core.model._utils import check_positive, check_probability, float32_region, masked_softmax, upcast
from imvia_core.model.kernels.view_cosines import view_cosines
from imvia_core.types import ModalityFeatures

__all__ = ["FusionOutput", "MultiViewFusion", "VIEW_MODES"]

#: how a modality's views are fused (:class:`MultiViewFusion`'s ``view_mode``)
VIEW_MODES: tuple[str, ...] = ("auto", "experts", "views")


@dataclass
class FusionOutput:
    """Result of Eq. 1-3 for ``N`` entities.

    :param embedding: shape ``(N, out_dim)``; all-zero rows for entities without a valid view.
    :param view_weights: shape ``(N, K)``; ``alpha`` of Eq. 2, zero on invalid views, rows sum to 1 (or 0).
    :param has_view: shape ``(N,)`` bool; whether the entity has at least one valid view.
    """

    embedding: torch.Tensor
    view_weights: torch.Tensor
    has_view: torch.Tensor


class MultiViewFusion(nn.Module):
    """Relation-gated fusion of the views of one modality (Eq. 1-3).

    :param features: the modality's features; kept on the module as a non-persistent buffer (not saved in
        checkpoints: the model is rebuilt with its features), or as a parameter if ``trainable_features``.
    :param entity_dim: dim of the structural entity embedding fed to the gate.
    :param relation_dim: dim of the relation embedding fed to the gate.
    :param out_dim: model dim of the projected result.
    :param num_experts: ``K`` in expert mode.
    :param expert_dim: output dim of each expert (default ``out_dim``).
    :param view_mode: ``"auto"`` (experts when the features have one view per entity, true views otherwise),
        ``"experts"`` (experts on the mean of the valid views) or ``"views"`` (the given views as they are).
    :param input_pool_dim: expert mode only: average-pool wider input vectors to this width once.
    :param temperature: divides the cosines of Eq. 2.
    :param trainable_features: make the (pooled) feature table a parameter, as the upstream code does.
    :param feature_dropout: dropout on the input features (expert mode: on the vector before the experts).
    """

    def __init__(
        self,
        *,
        features: ModalityFeatures,
        entity_dim: int,
        relation_dim: int,
        out_dim: int,
        num_experts: int = 3,
        expert_dim: int | None = None,
        view_mode: str = "auto",
        input_pool_dim: int | None = 256,
        temperature: float = 0.1,
        trainable_features: bool = False,
        feature_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if view_mode not in VIEW_MODES:
            raise ConfigError(f"view_mode: found {view_mode!r}; expected one of {', '.join(VIEW_MODES)}")
        check_positive("view temperature", temperature)
        check_positive("num_experts", num_experts)
        check_probability("feature_dropout", feature_dropout)
        if input_pool_dim is not None:
            check_positive("input_pool_dim", input_pool_dim)
        self.modality = features.modality
        self.temperature = float(temperature)
        self.uses_experts = view_mode == "experts" or (view_mode == "auto" and features.max_views == 1)
        has_view = features.has_modality
        if self.uses_experts:
            vectors = features.mean_vectors() if features.max_views > 1 else features.views[:, 0]
            vectors = vectors.float()
            if input_pool_dim is not None and vectors.shape[1] > input_pool_dim:
                vectors = F.adaptive_avg_pool1d(vectors.unsqueeze(1), input_pool_dim).squeeze(1)
            table = vectors.unsqueeze(1)  # (E, 1, d_in)
            mask = has_view.unsqueeze(1)
            self.num_views = int(num_experts)
            self.view_dim = int(expert_dim or out_dim)
            self.experts = nn.Linear(table.shape[-1], self.num_views * self.view_dim)
        else:
            table = features.views.float()
            mask = features.mask
            self.num_views = features.max_views
            self.view_dim = features.dim
            self.experts = None
        if trainable_features:
            self.feature_table = nn.Parameter(table.clone())
        else:
            self.register_buffer("feature_table", table.clone(), persistent=False)
        self.register_buffer("feature_mask", mask.clone(), persistent=False)
        #: no entity lacks this modality (known once here, so batches need not test the mask: no host sync on a GPU)
        self.every_entity_has_view = bool(mask.any(dim=1).all())
        self.feature_dropout = nn.Dropout(feature_dropout)
        self.gate_entity = nn.Linear(entity_dim, self.view_dim, bias=True)
        self.gate_relation = nn.Linear(relation_dim, self.view_dim, bias=False)
        self.null_relation = nn.Parameter(torch.zeros(relation_dim))
        self.projection = nn.Linear(self.view_dim, out_dim)
        self.out_dim = int(out_dim)

    @property
    def num_entities(self) -> int:
        return int(self.feature_table.shape[0])

    @property
    def has_view(self) -> torch.Tensor:
        """Shape ``(E,)`` bool: entities with at least one valid view."""
        return self.feature_mask.any(dim=1)

    def views(self, entity_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The views ``f_k`` of Eq. 2 (expert outputs in expert mode).

        :param entity_ids: shape ``(N,)``, or ``None`` for every entity.
        :return: views ``(N, K, d_x)`` and mask ``(N, K)`` bool.
        """
        table = self.feature_table if entity_ids is None else self.feature_table[entity_ids]
        mask = self.feature_mask if entity_ids is None else self.feature_mask[entity_ids]
        table = self.feature_dropout(table)
        if self.experts is None:
            return table, mask
        n = table.shape[0]
        views = self.experts(table[:, 0]).view(n, self.num_views, self.view_dim)
        return views, mask.expand(n, self.num_views)

    def gate(self, entity_emb: torch.Tensor, relation_emb: torch.Tensor | None) -> torch.Tensor:
        """Eq. 1: ``sigmoid(W_g [e ; r] + b_g)``.

        :param entity_emb: shape ``(N, entity_dim)``.
        :param relation_emb: shape ``(N, relation_dim)``, ``(relation_dim,)`` (shared by all rows), or ``None`` for
            the learned null relation.
        :return: shape ``(N, d_x)``.
        """
        rel = self.null_relation if relation_emb is None else relation_emb
        return torch.sigmoid(self.gate_entity(entity_emb) + self.gate_relation(rel))

    def fuse(self, views: torch.Tensor, mask: torch.Tensor, gate: torch.Tensor) -> FusionOutput:
        """Eq. 2-3 and the output projection for given views and gates (computed in float32).

        :param views: shape ``(N, K, d_x)``.
        :param mask: shape ``(N, K)`` bool.
        :param gate: shape ``(N, d_x)``.
        """
        with float32_region(views.device):
            f = upcast(views)
            cos = view_cosines(f, upcast(gate).to(f.dtype))
            alpha = masked_softmax(cos / self.temperature, mask, dim=-1)
            fused = torch.bmm(alpha.unsqueeze(1), f).squeeze(1)
        has = mask.any(dim=1)
        out = self.projection(fused) * has.unsqueeze(-1).to(fused.dtype)
        return FusionOutput(embedding=out, view_weights=alpha, has_view=has)

    def forward(
        self,
        entity_emb: torch.Tensor,
        relation_emb: torch.Tensor | None = None,
        *,
        entity_ids: torch.Tensor | None = None,
        views: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> FusionOutput:
        """Fuse the views of ``N`` entities under their gates.

        :param entity_emb: shape ``(N, entity_dim)``: structural embeddings of the entities.
        :param relation_emb: shape ``(N, relation_dim)`` or ``(relation_dim,)``; ``None``: the null relation.
        :param entity_ids: shape ``(N,)``; ``None`` means all entities in id order (then ``N = E``).
        :param views: precomputed ``(views, mask)`` for exactly these entities (e.g. rows of the full table), to
            avoid recomputing the expert projections.
        """
        if views is None:
            views = self.views(entity_ids)
        view_tensor, mask = views
        return self.fuse(view_tensor, mask, self.gate(entity_emb, relation_emb))
