"""Structure-only baselines with the same 1-N training interface as IMVIA.

Every model scores all entities as tails of ``(head, relation)`` queries (reciprocal relations give head
prediction) and trains with the 1-N binary cross-entropy with TuckER's label smoothing over all entities (all
non-positive entities are negatives):

* :class:`TransE`: ``gamma - ||h + r - t||_p``; L2 through ``||a - t||^2 = |a|^2 + |t|^2 - 2 a.t`` (one matmul),
  L1 through :func:`torch.cdist` (no ``(B, E, d)`` tensor).
* :class:`DistMult`: ``<h, r, t>`` (one matmul).
* :class:`ComplEx`: ``Re(<h, r, conj(t)>)`` (one matmul against ``[t_re ; t_im]``).
* :class:`RotatE`: ``gamma - sum_i |h_i r_i - t_i|`` in complex space with ``|r_i| = 1``; the modulus distance
  cannot be a matmul: :func:`~.kernels.distances.rotate_distance` computes it without a ``(B, E, k)`` tensor.
* :class:`PairRE`: ``gamma - ||h o r_H - t o r_T||_1`` with unit-norm entities and two vectors per relation; its
  distance is :func:`~.kernels.distances.pair_distance` (compiled on a CPU, else blocked like RotatE's).
* :class:`TuckER`: the Tucker scorer of :mod:`.tucker` on structural embeddings.

For ComplEx and RotatE ``dim`` counts real numbers (``dim / 2`` complex components).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from imvia_core.errors import ConfigError, InputError
from imvia_core.model._utils import check_positive, check_probability, float32_region, upcast
from imvia_core.model.base import KGCModel
from imvia_core.model.kernels.bce import one_to_n_bce, one_to_n_bce_linear
from imvia_core.model.kernels.distances import pair_distance, rotate_distance
from imvia_core.model.tucker import RelationGroups, TuckerScorer

__all__ = [
    "BASELINES",
    "BaselineConfig",
    "ComplEx",
    "DistMult",
    "PairRE",
    "RotatE",
    "TransE",
    "TuckER",
    "StructuralModel",
]


@dataclass
class BaselineConfig:
    """Hyperparameters of the structural baselines (each model uses the fields that apply to it).

    :param dim: embedding dim (real numbers; even for ComplEx and RotatE).
    :param relation_dim: TuckER relation dim (default ``dim``).
    :param gamma: margin of TransE, RotatE and PairRE scores ``gamma - distance``.
    :param p_norm: TransE distance norm, 1 (default: it trained markedly faster than L2 with the 1-N BCE in our
        checks) or 2 (one matmul).
    :param label_smoothing: TuckER label smoothing of the 1-N targets.
    :param embedding_dropout: dropout on the query's head and relation embeddings (TransE, DistMult, ComplEx; RotatE:
        on the head only, the rotation keeps unit modulus).
    :param input_dropout: TuckER input dropout.
    :param hidden_dropout1: TuckER hidden dropout after the contraction.
    :param hidden_dropout2: TuckER dropout after the second batch norm.
    :param chunk_elements: RotatE and PairRE: elements ``rows * entities * k`` per block of the distance computation
        (``k`` = dim/2 for RotatE, dim for PairRE; small enough to stay in cache: 2^18 ran 11x faster than 2^24 for
        RotatE on the development CPU).
    """

    dim: int = 256
    relation_dim: int | None = None
    gamma: float = 12.0
    p_norm: int = 1
    label_smoothing: float = 0.1
    embedding_dropout: float = 0.0
    input_dropout: float = 0.3
    hidden_dropout1: float = 0.4
    hidden_dropout2: float = 0.5
    chunk_elements: int = 1 << 18

    def __post_init__(self) -> None:
        check_positive("dim", self.dim)
        check_positive("chunk_elements", self.chunk_elements)
        if self.relation_dim is not None:
            check_positive("relation_dim", self.relation_dim)
        if self.p_norm not in (1, 2):
            raise ConfigError(f"model config p_norm: found {self.p_norm!r}; expected 1 or 2")
        for name in ("label_smoothing", "embedding_dropout", "input_dropout", "hidden_dropout1", "hidden_dropout2"):
            check_probability(name, getattr(self, name))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BaselineConfig:
        """Build from a mapping; unknown keys raise :class:`~imvia_core.errors.ConfigError` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"baseline model config: found unknown key(s) {unknown}; expected keys among {sorted(known)}"
            )
        return cls(**dict(values))


class StructuralModel(KGCModel):
    """Shared parts: entity and relation tables, the 1-N BCE loss, input checks.

    :param num_entities: ``E``.
    :param num_relations_with_reciprocals: relation ids including reciprocals.
    :param config: hyperparameters.
    :param relation_dim: width of the relation table (default ``config.dim``).
    """

    #: the model's name in tables and reports (``TransE``, ...)
    label = "?"

    def __init__(
        self,
        *,
        num_entities: int,
        num_relations_with_reciprocals: int,
        config: BaselineConfig | None = None,
        relation_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config or BaselineConfig()
        self.num_entities = int(num_entities)
        self.num_relations_with_reciprocals = int(num_relations_with_reciprocals)
        self.entity_embeddings = nn.Embedding(num_entities, self.config.dim)
        self.relation_embeddings = nn.Embedding(num_relations_with_reciprocals, relation_dim or self.config.dim)
        self.embedding_dropout = nn.Dropout(self.config.embedding_dropout)

    def _check(self, heads: torch.Tensor, relations: torch.Tensor) -> None:
        if heads.dim() != 1 or heads.shape != relations.shape:
            raise InputError(
                f"{type(self).__name__} batch: found heads {tuple(heads.shape)} and relations "
                f"{tuple(relations.shape)}; expected two 1-d tensors of equal length"
            )

    def _scores(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score_all(self, heads: torch.Tensor, relations: torch.Tensor, *, branch: str = "final") -> torch.Tensor:
        """``(B, E)`` logits of every entity as tail."""
        if branch != "final":
            raise InputError(f"{type(self).__name__} branch: found {branch!r}; expected 'final'")
        self._check(heads, relations)
        return self._scores(heads, relations)

    def training_loss(
        self, heads: torch.Tensor, relations: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """1-N BCE with label smoothing (mean over ``B * E``)."""
        self._check(heads, relations)
        if targets.shape != (heads.shape[0], self.num_entities):
            raise InputError(
                f"{type(self).__name__} targets: found shape {tuple(targets.shape)}; expected "
                f"({heads.shape[0]}, {self.num_entities})"
            )
        loss = self._kgc_loss(heads, relations, targets)
        return loss, {"kgc": loss.detach(), "loss": loss.detach()}

    def _kgc_loss(self, heads: torch.Tensor, relations: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The BCE of checked inputs: ``(B, E)`` logits first, then the loss (models override when they can fuse)."""
        loss, _ = one_to_n_bce([self._scores(heads, relations)], targets, label_smoothing=self.config.label_smoothing)
        return loss


class TransE(StructuralModel):
    """``gamma - ||h + r - t||_p`` (Bordes et al., 2013) scored 1-N."""

    label = "TransE"

    def __init__(
        self, *, num_entities: int, num_relations_with_reciprocals: int, config: BaselineConfig | None = None
    ) -> None:
        super().__init__(
            num_entities=num_entities, num_relations_with_reciprocals=num_relations_with_reciprocals, config=config
        )
        bound = (self.config.gamma + 2.0) / self.config.dim
        nn.init.uniform_(self.entity_embeddings.weight, -bound, bound)
        nn.init.uniform_(self.relation_embeddings.weight, -bound, bound)

    def _scores(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        a = self.embedding_dropout(self.entity_embeddings(heads) + self.relation_embeddings(relations))
        t = self.entity_embeddings.weight
        if self.config.p_norm == 1:
            dist = torch.cdist(upcast(a), upcast(t), p=1.0)
        else:
            with float32_region(a.device):
                a32, t32 = upcast(a), upcast(t)
                sq = (a32 * a32).sum(-1, keepdim=True) + (t32 * t32).sum(-1) - 2.0 * (a32 @ t32.t())
                dist = torch.sqrt(sq.clamp_min(1e-12))
        return self.config.gamma - dist


class DistMult(StructuralModel):
    """``<h, r, t>`` (Yang et al., 2015) scored 1-N."""

    label = "DistMult"

    def __init__(
        self, *, num_entities: int, num_relations_with_reciprocals: int, config: BaselineConfig | None = None
    ) -> None:
        super().__init__(
            num_entities=num_entities, num_relations_with_reciprocals=num_relations_with_reciprocals, config=config
        )
        nn.init.xavier_normal_(self.entity_embeddings.weight)
        nn.init.xavier_normal_(self.relation_embeddings.weight)

    def _scores(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        a = self.embedding_dropout(self.entity_embeddings(heads) * self.relation_embeddings(relations))
        return a @ self.entity_embeddings.weight.t()


def _check_even(name: str, dim: int) -> None:
    if dim % 2:
        raise ConfigError(f"{name} dim: found {dim}; expected an even number (real and imaginary halves)")


class ComplEx(StructuralModel):
    """``Re(<h, r, conj(t)>)`` (Trouillon et al., 2016) scored 1-N."""

    label = "ComplEx"

    def __init__(
        self, *, num_entities: int, num_relations_with_reciprocals: int, config: BaselineConfig | None = None
    ) -> None:
        super().__init__(
            num_entities=num_entities, num_relations_with_reciprocals=num_relations_with_reciprocals, config=config
        )
        _check_even("ComplEx", self.config.dim)
        nn.init.xavier_normal_(self.entity_embeddings.weight)
        nn.init.xavier_normal_(self.relation_embeddings.weight)

    def _scores(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        h_re, h_im = self.embedding_dropout(self.entity_embeddings(heads)).chunk(2, dim=-1)
        r_re, r_im = self.embedding_dropout(self.relation_embeddings(relations)).chunk(2, dim=-1)
        a = torch.cat([h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re], dim=-1)
        return a @ self.entity_embeddings.weight.t()


class RotatE(StructuralModel):
    """``gamma - sum_i |h_i r_i - t_i|`` with ``r_i = exp(i theta_i)`` (Sun et al., 2019), scored 1-N in chunks.

    Logits are ``gamma + b - distance`` with PairRE's learned scalar ``b`` (started at ``-gamma - log E``).
    """

    label = "RotatE"

    def __init__(
        self, *, num_entities: int, num_relations_with_reciprocals: int, config: BaselineConfig | None = None
    ) -> None:
        cfg = config or BaselineConfig()
        _check_even("RotatE", cfg.dim)
        super().__init__(
            num_entities=num_entities,
            num_relations_with_reciprocals=num_relations_with_reciprocals,
            config=cfg,
            relation_dim=cfg.dim // 2,
        )
        self.embedding_range = (cfg.gamma + 2.0) / cfg.dim
        nn.init.uniform_(self.entity_embeddings.weight, -self.embedding_range, self.embedding_range)
        nn.init.uniform_(self.relation_embeddings.weight, -self.embedding_range, self.embedding_range)
        # the learned logit offset of PairRE, for the same reason: with ``gamma`` alone every 1-N logit starts near
        # ``gamma - d`` (about 6 at dim 128), far above the label prior's logit, and on MKG-Y four epochs at lr 1e-3
        # stayed at random MRR. A scalar added to every score changes no ranking.
        self.bias = nn.Parameter(torch.tensor(-math.log(num_entities) - cfg.gamma))

    def _scores(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        with float32_region(heads.device):
            h_re, h_im = upcast(self.embedding_dropout(self.entity_embeddings(heads))).chunk(2, dim=-1)
            phase = upcast(self.relation_embeddings(relations)) * (math.pi / self.embedding_range)
            r_re, r_im = torch.cos(phase), torch.sin(phase)  # no dropout here: it would break |r_i| = 1
            a_re = h_re * r_re - h_im * r_im
            a_im = h_re * r_im + h_im * r_re
            t_re, t_im = upcast(self.entity_embeddings.weight).chunk(2, dim=-1)
            distance = rotate_distance(a_re, a_im, t_re, t_im, block_elements=self.config.chunk_elements)
            return (self.config.gamma + self.bias) - distance


class PairRE(StructuralModel):
    """``gamma - ||h o r_H - t o r_T||_1`` (Chao et al., 2021) scored 1-N, entities projected to unit L2 norm.

    Each relation has two vectors ``r_H`` and ``r_T`` (one table of width ``2 * dim``); the distance is
    :func:`~.kernels.distances.pair_distance`, which keeps no ``(B, E, d)`` tensor. Logits are
    ``gamma + b - distance`` with a learned scalar ``b`` started at ``-gamma - log E`` (see ``__init__``).
    """

    label = "PairRE"

    def __init__(
        self, *, num_entities: int, num_relations_with_reciprocals: int, config: BaselineConfig | None = None
    ) -> None:
        cfg = config or BaselineConfig()
        super().__init__(
            num_entities=num_entities,
            num_relations_with_reciprocals=num_relations_with_reciprocals,
            config=cfg,
            relation_dim=2 * cfg.dim,
        )
        bound = (abs(cfg.gamma) + 2.0) / cfg.dim
        nn.init.uniform_(self.entity_embeddings.weight, -bound, bound)
        nn.init.uniform_(self.relation_embeddings.weight, -bound, bound)
        # a learned scalar added to every logit, started so that the logits start near the label prior's logit
        # (-log E), as the Tucker scorers have: with ``gamma`` alone every 1-N logit starts near ``gamma`` and the
        # first epochs only push them all down (on the synthetic graph 5 epochs stayed below random MRR). A scalar
        # added to all scores changes no ranking.
        self.bias = nn.Parameter(torch.tensor(-math.log(num_entities) - cfg.gamma))

    def _scores(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        with float32_region(heads.device):
            h = nn.functional.normalize(upcast(self.embedding_dropout(self.entity_embeddings(heads))), dim=-1)
            r_head, r_tail = upcast(self.relation_embeddings(relations)).chunk(2, dim=-1)
            t = nn.functional.normalize(upcast(self.entity_embeddings.weight), dim=-1)
            distance = pair_distance(h * r_head, r_tail, t, block_elements=self.config.chunk_elements)
            return (self.config.gamma + self.bias) - distance


class TuckER(StructuralModel):
    """TuckER (Balazevic et al., 2019) on structural embeddings, with the fast per-relation contraction."""

    label = "TuckER"

    def __init__(
        self, *, num_entities: int, num_relations_with_reciprocals: int, config: BaselineConfig | None = None
    ) -> None:
        cfg = config or BaselineConfig()
        rel_dim = cfg.relation_dim or cfg.dim
        super().__init__(
            num_entities=num_entities,
            num_relations_with_reciprocals=num_relations_with_reciprocals,
            config=cfg,
            relation_dim=rel_dim,
        )
        nn.init.xavier_normal_(self.entity_embeddings.weight)
        nn.init.xavier_normal_(self.relation_embeddings.weight)
        self.scorer = TuckerScorer(
            entity_dim=cfg.dim,
            relation_dim=rel_dim,
            input_dropout=cfg.input_dropout,
            hidden_dropout1=cfg.hidden_dropout1,
            hidden_dropout2=cfg.hidden_dropout2,
            num_candidates=num_entities,
        )

    def _query(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        groups = RelationGroups.from_ids(relations)
        return self.scorer.query(self.entity_embeddings(heads), self.relation_embeddings(groups.unique), groups=groups)

    def _scores(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        return self.scorer.logits(self._query(heads, relations), self.entity_embeddings.weight)

    def _kgc_loss(self, heads: torch.Tensor, relations: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Scored block by block inside the loss (:func:`~.kernels.bce.one_to_n_bce_linear`)."""
        loss, _ = one_to_n_bce_linear(
            [self._query(heads, relations)],
            [self.entity_embeddings.weight],
            [self.scorer.bias],
            targets,
            label_smoothing=self.config.label_smoothing,
        )
        return loss


#: every structural baseline by the name :func:`~imvia_core.model.build_model` and ``--model`` accept; a new
#: baseline is a class above plus its entry here
BASELINES: dict[str, type[StructuralModel]] = {
    "transe": TransE,
    "distmult": DistMult,
    "complex": ComplEx,
    "rotate": RotatE,
    "pairre": PairRE,
    "tucker": TuckER,
}
