"""IMVIA: the full model (paper Eq. 1-8), assembled from the modules of this package.

Branches and what each scores with (all TuckER heads, Eq. 6, 1-N against every entity):

* ``S``: structural entity embedding ``e`` (d) and relation embedding ``r_S``;
* ``V`` / ``T``: relation-gated multi-view fusion of the visual / text views (Eq. 1-3, :mod:`.fusion`), relation
  embeddings ``r_V`` / ``r_T``;
* ``J``: joint embedding over the modalities present (:mod:`.joint`), its own relation embedding ``r_J``;
* ``final``: relation-aware gated decision fusion ``p = sum_m beta_m(r) sigmoid(S_m)``; :meth:`IMVIA.score_all`
  returns ``logit(p) = log p - log(1 - p)`` for it (same ranking as ``p``, no float32 saturation at 1).

Training loss (Eq. 8): ``L = mu * L_MI + lambda_align * L_align + lambda_kgc * L_kgc`` where

* ``L_kgc`` (Eq. 7) = sum over branches of the 1-N binary cross-entropy with label smoothing (all non-positive
  entities are negatives; the joint branch is trained) + the BCE of the fused probability ``p`` (the decision-fusion
  term; ``train_fused_score=False`` drops it);
* ``L_align`` (Eq. 5) over the pairs of {S, V, T} on the batch's head embeddings (:mod:`.alignment`);
* ``L_MI`` (Eq. 4) the frozen CLUB bound on the same embeddings (:mod:`.disentangle`); its estimators are the
  :meth:`IMVIA.auxiliary_parameters`, fitted by :meth:`IMVIA.auxiliary_loss` in the alternating step.

Reading of the method where the paper is loose (method.md):

* Heads are encoded with the query relation in the gate (Eq. 1); candidate entities with a learned null relation,
  so each modality's candidate table for all ``E`` entities is computed once per step and shared by the branch
  scorers and the joint embedding. ``condition_candidates_on_relation=True`` gates candidates with the query
  relation instead: one candidate table per distinct relation of the batch, i.e. ``U`` times the fusion cost
  (``U * E`` gates and view softmaxes per modality, and ``U`` ``(E, d)`` tables alive for the backward pass): only
  affordable on small graphs or with batches grouped by relation.
* Ablations (Fig. 2): ``use_visual`` / ``use_text`` drop a modality everywhere (also when its features are
  ``None``). ``use_structure=False`` drops the S branch from scoring and decision fusion and S from the joint
  embedding, alignment and MI, but the structural entity and relation embeddings remain as the gate's input
  (Eq. 1 needs ``e_h`` and ``e_r``) and the relation embedding ``r_S`` still feeds the decision gate.
  ``use_joint=False`` drops the J branch. ``decision_fusion="uniform"`` averages the branch probabilities.
* ``mi_between="views"`` applies CLUB between the expert views of each modality (upstream placement; modalities
  with true multi-view features are skipped because no parameter shapes their fixed views).
* Losses and similarity computations run in float32 under autocast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from imvia_core.errors import ConfigError, InputError
from imvia_core.model._utils import check_positive, check_probability, float32_region
from imvia_core.model.alignment import ContrastiveAlignment
from imvia_core.model.base import KGCModel
from imvia_core.model.disentangle import ModalityCLUB, ViewCLUB
from imvia_core.model.execution import ExecutionOptions
from imvia_core.model.fusion import VIEW_MODES, MultiViewFusion
from imvia_core.model.joint import DECISION_FUSION_MODES, JointEmbedding, RelationAwareDecisionFusion, fused_logit
from imvia_core.model.kernels.bce import one_to_n_bce, one_to_n_bce_linear
from imvia_core.model.tucker import RelationGroups, TuckerScorer
from imvia_core.types import BRANCH_OF_MODALITY, ModalityFeatures

__all__ = ["IMVIA", "IMVIAConfig", "IMVIAInspection", "MI_PLACEMENTS"]

#: values of ``mi_between``: the CLUB bound between the modalities (Eq. 4) or between the views of one modality
MI_PLACEMENTS: tuple[str, ...] = ("modalities", "views")

_MODALITY_OF_FEATURE = {branch: modality for modality, branch in BRANCH_OF_MODALITY.items()}


@dataclass
class IMVIAConfig:
    """Every hyperparameter of :class:`IMVIA` (defaults: the DB15K reference setting of method.md).

    :param dim: model dim ``d`` of every entity and relation embedding and Tucker core side.
    :param num_experts: ``K`` expert views for one-vector-per-entity features.
    :param expert_dim: output dim of each expert (default ``dim``).
    :param view_mode: ``"auto"``, ``"experts"`` or ``"views"`` (see :class:`~.fusion.MultiViewFusion`).
    :param input_pool_dim: in expert mode, average-pool wider feature vectors to this width once (upstream: 256);
        ``None`` keeps the full width (4096-d DB15K image vectors then cost 16x more per step in the experts).
    :param trainable_features: fine-tune the (pooled) feature table, as the upstream code does.
    :param feature_dropout: dropout on the input feature vectors.
    :param view_temperature: temperature of the view softmax (Eq. 2); 1.0 is the paper's literal form.
    :param condition_candidates_on_relation: gate candidate entities with the query relation (costly, see module).
    :param input_dropout: TuckER input dropout.
    :param hidden_dropout1: TuckER hidden dropout after the relation contraction.
    :param hidden_dropout2: TuckER dropout after the second batch norm.
    :param label_smoothing: TuckER label smoothing ``eps``: targets ``(1 - eps) y + eps / E``.
    :param align_temperature_init: initial ``tau`` of Eq. 5.
    :param align_temperature_min: lower clamp of ``tau``.
    :param align_temperature_max: upper clamp of ``tau``.
    :param mu: weight of the CLUB term (Eq. 8's ``w1``; upstream ``--mu``).
    :param lambda_align: weight of the alignment term.
    :param lambda_kgc: weight of the KGC term.
    :param use_structure: keep the S branch (ablation switch).
    :param use_visual: keep the V modality/branch.
    :param use_text: keep the T modality/branch.
    :param use_joint: keep the J branch.
    :param decision_fusion: ``"gated"`` (``beta(r)``) or ``"uniform"``.
    :param train_fused_score: add the BCE of the fused probability to ``L_kgc``.
    :param mi_between: ``"modalities"`` (Eq. 4) or ``"views"`` (upstream placement, on the expert dimension).
    :param mi_ordered_pairs: one CLUB estimator per ordered pair instead of per unordered pair.
    :param club_hidden_dim: hidden width of the CLUB estimators.
    """

    dim: int = 256
    num_experts: int = 3
    expert_dim: int | None = None
    view_mode: str = field(default="auto", metadata={"choices": VIEW_MODES})
    input_pool_dim: int | None = 256
    trainable_features: bool = False
    feature_dropout: float = 0.0
    view_temperature: float = 0.1
    condition_candidates_on_relation: bool = False
    input_dropout: float = 0.3
    hidden_dropout1: float = 0.4
    hidden_dropout2: float = 0.5
    label_smoothing: float = 0.1
    align_temperature_init: float = 0.07
    align_temperature_min: float = 0.01
    align_temperature_max: float = 1.0
    mu: float = 1e-4
    lambda_align: float = 0.01
    lambda_kgc: float = 1.0
    use_structure: bool = True
    use_visual: bool = True
    use_text: bool = True
    use_joint: bool = True
    decision_fusion: str = "gated"
    train_fused_score: bool = True
    mi_between: str = "modalities"
    mi_ordered_pairs: bool = False
    club_hidden_dim: int = 256

    def __post_init__(self) -> None:
        for name in ("dim", "num_experts", "club_hidden_dim", "view_temperature", "lambda_kgc"):
            check_positive(name, getattr(self, name))
        for name in ("expert_dim", "input_pool_dim"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        for name in ("feature_dropout", "input_dropout", "hidden_dropout1", "hidden_dropout2", "label_smoothing"):
            check_probability(name, getattr(self, name))
        for name in ("mu", "lambda_align"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model config {name}: found {getattr(self, name)!r}; expected a number >= 0")
        choices = {
            "view_mode": VIEW_MODES,
            "decision_fusion": DECISION_FUSION_MODES,
            "mi_between": MI_PLACEMENTS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"model config {name}: found {getattr(self, name)!r}; expected one of {allowed}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> IMVIAConfig:
        """Build from a mapping; unknown keys raise :class:`~imvia_core.errors.ConfigError` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"IMVIA model config: found unknown key(s) {unknown}; expected keys among {sorted(known)}"
            )
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class IMVIAInspection:
    """Interpretable weights of a batch of queries (for the notebooks' plots).

    :param view_weights: modality (``"V"``, ``"T"``) -> ``(B, K)`` Eq. 2 weights of the heads' views.
    :param view_mask: modality -> ``(B, K)`` bool valid views.
    :param joint_weights: ``(B, M)`` attention of the heads' joint embedding, or ``None`` without J.
    :param joint_modalities: column names of ``joint_weights``.
    :param decision_weights: ``(B, n_branches)`` ``beta(r)``.
    :param decision_branches: column names of ``decision_weights``.
    """

    view_weights: dict[str, torch.Tensor]
    view_mask: dict[str, torch.Tensor]
    joint_weights: torch.Tensor | None
    joint_modalities: tuple[str, ...]
    decision_weights: torch.Tensor
    decision_branches: tuple[str, ...]


@dataclass
class _Encoded:
    """Embeddings of ``N`` entities per branch input (``S``, ``V``, ``T``, ``J``) and what produced them."""

    emb: dict[str, torch.Tensor] = field(default_factory=dict)
    present: dict[str, torch.Tensor] = field(default_factory=dict)
    view_weights: dict[str, torch.Tensor] = field(default_factory=dict)
    views: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    joint_weights: torch.Tensor | None = None


class IMVIA(KGCModel):
    """Intra-modality multi-view fusion and inter-modality alignment model.

    :param num_entities: ``E``.
    :param num_relations_with_reciprocals: number of relation ids including reciprocals (``2R``).
    :param visual: visual features, or ``None`` (modality absent).
    :param text: text features, or ``None``.
    :param config: hyperparameters (defaults if ``None``).
    :param execution: which kernels compute them (fast ones by default; the same function either way).
    """

    def __init__(
        self,
        *,
        num_entities: int,
        num_relations_with_reciprocals: int,
        visual: ModalityFeatures | None = None,
        text: ModalityFeatures | None = None,
        config: IMVIAConfig | None = None,
        execution: ExecutionOptions | None = None,
    ) -> None:
        super().__init__()
        cfg = config or IMVIAConfig()
        self.config = cfg
        self.execution = execution or ExecutionOptions()
        self.num_entities = int(num_entities)
        self.num_relations_with_reciprocals = int(num_relations_with_reciprocals)
        d = cfg.dim
        for name, feats in (("visual", visual), ("text", text)):
            if feats is not None and feats.num_entities != num_entities:
                raise InputError(
                    f"{name} features: found {feats.num_entities} entity rows; expected {num_entities} (the graph's "
                    "entity count)"
                )

        self.entity_embeddings = nn.Embedding(num_entities, d)
        nn.init.xavier_normal_(self.entity_embeddings.weight)
        self.relation_embeddings = nn.ModuleDict()

        self.fusion = nn.ModuleDict()
        inputs = {"visual": (visual, cfg.use_visual), "text": (text, cfg.use_text)}
        for modality, (feats, use) in inputs.items():
            m = BRANCH_OF_MODALITY[modality]
            if feats is None or not use:
                continue
            self.fusion[m] = MultiViewFusion(
                features=feats,
                entity_dim=d,
                relation_dim=d,
                out_dim=d,
                num_experts=cfg.num_experts,
                expert_dim=cfg.expert_dim,
                view_mode=cfg.view_mode,
                input_pool_dim=cfg.input_pool_dim,
                temperature=cfg.view_temperature,
                trainable_features=cfg.trainable_features,
                feature_dropout=cfg.feature_dropout,
            )
        # an entity without any view of a modality gets this learned vector in that branch: a zero vector would
        # score 0 against every query (sigmoid 0.5), which the BCE cannot push down and which ranks such
        # entities above all others
        self.missing_embeddings = nn.ParameterDict(
            {m: nn.Parameter(torch.randn(d) * d**-0.5) for m in self.fusion.keys()}
        )
        self.modalities: tuple[str, ...] = (("S",) if cfg.use_structure else ()) + tuple(self.fusion.keys())
        if not self.modalities:
            raise ConfigError(
                "IMVIA: found no modality (use_structure is off and no visual/text features are used); expected "
                "at least one of S, V, T"
            )
        self.score_branches: tuple[str, ...] = self.modalities + (("J",) if cfg.use_joint else ())
        self.branches = ("final",) + self.score_branches

        for name in ("S",) + tuple(b for b in self.score_branches if b != "S"):
            emb = nn.Embedding(num_relations_with_reciprocals, d)
            nn.init.xavier_normal_(emb.weight)
            self.relation_embeddings[name] = emb
        self.joint = JointEmbedding(modalities=self.modalities, dim=d) if cfg.use_joint else None
        self.scorers = nn.ModuleDict(
            {
                b: TuckerScorer(
                    entity_dim=d,
                    relation_dim=d,
                    input_dropout=cfg.input_dropout,
                    hidden_dropout1=cfg.hidden_dropout1,
                    hidden_dropout2=cfg.hidden_dropout2,
                    fast=self.execution.fast_tucker,
                    num_candidates=num_entities,
                )
                for b in self.score_branches
            }
        )
        self.decision = RelationAwareDecisionFusion(
            branches=self.score_branches, relation_dim=d, mode=cfg.decision_fusion
        )
        self.alignment = (
            ContrastiveAlignment(
                modalities=self.modalities,
                temperature_init=cfg.align_temperature_init,
                temperature_min=cfg.align_temperature_min,
                temperature_max=cfg.align_temperature_max,
            )
            if len(self.modalities) >= 2
            else None
        )
        self._build_club_estimators(cfg)
        self._cache_key: tuple | None = None
        self._cache_value: _Encoded | None = None

    def _build_club_estimators(self, cfg: IMVIAConfig) -> None:
        """The CLUB estimators of Eq. 4 (none when ``mu == 0``): between modalities, or between the views of each
        modality with at least two learned expert views (``mi_between="views"``)."""
        self.club_modalities: ModalityCLUB | None = None
        self.club_views = nn.ModuleDict()
        if cfg.mu > 0:
            if cfg.mi_between == "modalities":
                if len(self.modalities) >= 2:
                    self.club_modalities = ModalityCLUB(
                        modalities=self.modalities,
                        dim=cfg.dim,
                        hidden_dim=cfg.club_hidden_dim,
                        ordered=cfg.mi_ordered_pairs,
                    )
            else:
                for m, fusion in self.fusion.items():
                    if fusion.uses_experts and fusion.num_views >= 2:
                        self.club_views[m] = ViewCLUB(
                            num_views=fusion.num_views,
                            dim=fusion.view_dim,
                            hidden_dim=cfg.club_hidden_dim,
                            ordered=cfg.mi_ordered_pairs,
                        )
                if len(self.fusion) and not len(self.club_views):
                    raise ConfigError(
                        "mi_between='views': found no modality with at least two learned expert views; expected "
                        "one-vector-per-entity features (or view_mode='experts') and num_experts >= 2"
                    )

    # ------------------------------------------------------------------ encoding
    def _needed_modalities(self, branches: Iterable[str]) -> set[str]:
        need = set()
        for b in branches:
            if b == "J":
                need |= set(self.modalities)
                need.add("J")
            else:
                need.add(b)
        return need

    def _encode(
        self,
        entity_ids: torch.Tensor | None,
        relation_emb: torch.Tensor | None,
        need: set[str],
        *,
        views: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> _Encoded:
        """Embeddings of entities (all if ``entity_ids`` is None) for the branch inputs in ``need``.

        :param relation_emb: ``(N, d)`` or ``(d,)`` gate relation; ``None``: null relation (candidates).
        :param views: precomputed ``(views, mask)`` rows for these entities, per modality.
        """
        out = _Encoded()
        e = self.entity_embeddings.weight if entity_ids is None else self.entity_embeddings(entity_ids)
        out.emb["S"] = e
        for m, fusion in self.fusion.items():
            if m not in need:
                continue
            v = views[m] if views is not None and m in views else fusion.views(entity_ids)
            res = fusion(e, relation_emb, views=v)
            missing = self.missing_embeddings[m].to(res.embedding.dtype)
            out.emb[m] = torch.where(res.has_view.unsqueeze(-1), res.embedding, missing)
            if not fusion.every_entity_has_view:  # else nothing to mask (views come from the fusion's own table)
                out.present[m] = res.has_view
            out.view_weights[m] = res.view_weights
            out.views[m] = v
        if "J" in need and self.joint is not None:
            joint = self.joint({m: out.emb[m] for m in self.modalities}, out.present)
            out.emb["J"] = joint.embedding
            out.joint_weights = joint.weights
        return out

    def _all_views(self, need: set[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {m: fusion.views() for m, fusion in self.fusion.items() if m in need}

    def _candidate_key(self) -> tuple:
        dev = self.entity_embeddings.weight.device
        autocast = torch.is_autocast_enabled(dev.type)
        dtype = torch.get_autocast_dtype(dev.type) if autocast else None
        params = tuple((p.data_ptr(), p._version) for p in self.parameters())
        return (params, autocast, dtype)

    def _candidates(self, need: set[str]) -> _Encoded:
        """Relation-neutral candidate tables; cached in eval mode without autograd until a parameter changes."""
        use_cache = not self.training and not torch.is_grad_enabled()
        if use_cache:
            key = (self._candidate_key(), frozenset(need))
            if self._cache_key == key and self._cache_value is not None:
                return self._cache_value
        enc = self._encode(None, None, need)
        if use_cache:
            self._cache_key, self._cache_value = key, enc
        else:
            self._cache_key, self._cache_value = None, None
        return enc

    def clear_cache(self) -> None:
        """Drop the cached evaluation-time candidate tables."""
        self._cache_key, self._cache_value = None, None

    def train(self, mode: bool = True) -> IMVIA:
        self.clear_cache()
        return super().train(mode)

    # ------------------------------------------------------------------ scoring
    def _branch_queries(
        self,
        heads: torch.Tensor,
        relations: torch.Tensor,
        branches: tuple[str, ...],
        *,
        head_views: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> tuple[dict[str, torch.Tensor], _Encoded, RelationGroups]:
        """Tucker query vectors ``(B, d)`` of the given branches (``logits = q @ table.T + bias``)."""
        need = self._needed_modalities(branches)
        rel_s = self.relation_embeddings["S"](relations)
        head_enc = self._encode(heads, rel_s, need, views=head_views)
        groups = RelationGroups.from_ids(relations)
        queries = {}
        for b in branches:
            r_unique = self.relation_embeddings[b](groups.unique)
            queries[b] = self.scorers[b].query(head_enc.emb[b], r_unique, groups=groups)
        return queries, head_enc, groups

    def _branch_logits(
        self,
        heads: torch.Tensor,
        relations: torch.Tensor,
        branches: tuple[str, ...],
        *,
        head_views: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        candidates: _Encoded | None = None,
        all_views: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> tuple[dict[str, torch.Tensor], _Encoded]:
        """Logits ``(B, E)`` of the given branches and the heads' encodings."""
        need = self._needed_modalities(branches)
        queries, head_enc, groups = self._branch_queries(heads, relations, branches, head_views=head_views)
        if not self.config.condition_candidates_on_relation:
            cand = candidates if candidates is not None else self._candidates(need)
            return {b: self.scorers[b].logits(queries[b], cand.emb[b]) for b in branches}, head_enc
        # one candidate table per distinct relation of the batch
        if all_views is None:
            all_views = self._all_views(need)
        pieces: dict[str, list[torch.Tensor]] = {b: [] for b in branches}
        rows_all = []
        rel_table = self.relation_embeddings["S"].weight
        for g, rel_id in enumerate(groups.unique.tolist()):
            rows = torch.nonzero(groups.inverse == g).squeeze(1)
            cand = self._encode(None, rel_table[rel_id], need, views=all_views)
            for b in branches:
                pieces[b].append(self.scorers[b].logits(queries[b][rows], cand.emb[b], entity_major=False))
            rows_all.append(rows)
        rows = torch.cat(rows_all)
        out = {}
        for b in branches:
            values = torch.cat(pieces[b])
            out[b] = values.new_zeros(heads.shape[0], self.num_entities).index_copy(0, rows, values)
        return out, head_enc

    def _check_batch(self, heads: torch.Tensor, relations: torch.Tensor) -> None:
        if heads.dim() != 1 or heads.shape != relations.shape:
            raise InputError(
                f"IMVIA batch: found heads {tuple(heads.shape)} and relations {tuple(relations.shape)}; expected two "
                "1-d tensors of equal length"
            )

    def branch_scores(
        self, heads: torch.Tensor, relations: torch.Tensor, *, branches: Iterable[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Scores of several branches in one pass: name -> ``(B, E)``; ``"final"`` is ``logit(p)``.

        :param branches: subset of :attr:`branches` (default: all).
        """
        self._check_batch(heads, relations)
        wanted = tuple(self.branches if branches is None else branches)
        for b in wanted:
            if b not in self.branches:
                raise InputError(f"IMVIA branch: found {b!r}; expected one of {self.branches}")
        score_set = self._branches_to_compute(wanted)
        logits, _ = self._branch_logits(heads, relations, score_set)
        out = {b: logits[b] for b in wanted if b != "final"}
        if "final" in wanted:
            log_w = self.decision.log_weights(self.relation_embeddings["S"](relations))
            out["final"] = fused_logit([logits[b] for b in self.score_branches], log_w)
        return out

    def _branches_to_compute(self, wanted: Iterable[str]) -> tuple[str, ...]:
        """The score branches to compute for the requested names (``final`` needs all of them)."""
        wanted = set(wanted)
        if "final" in wanted:
            return self.score_branches
        return tuple(b for b in self.score_branches if b in wanted)

    def score_all(self, heads: torch.Tensor, relations: torch.Tensor, *, branch: str = "final") -> torch.Tensor:
        """``(B, E)`` scores of one branch; ``"final"`` is the logit of the fused probability (ranking score)."""
        return self.branch_scores(heads, relations, branches=(branch,))[branch]

    # ------------------------------------------------------------------ losses
    def training_loss(
        self, heads: torch.Tensor, relations: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 8 on one 1-N batch; see the module docstring for the terms.

        :param heads: ``(B,)``. :param relations: ``(B,)``. :param targets: ``(B, E)`` in {0, 1}.
        :return: scalar loss and detached terms ``kgc``, ``align``, ``mi``, ``bce_<branch>``, ``bce_final``,
            ``align_temperature``.
        """
        self._check_batch(heads, relations)
        if targets.shape != (heads.shape[0], self.num_entities):
            raise InputError(
                f"IMVIA targets: found shape {tuple(targets.shape)}; expected ({heads.shape[0]}, {self.num_entities})"
            )
        cfg = self.config
        branches = self.score_branches
        need = self._needed_modalities(branches) | set(self.modalities)
        all_views = self._all_views(need)
        head_views = {m: (v[heads], mask[heads]) for m, (v, mask) in all_views.items()}
        logs: dict[str, torch.Tensor] = {}
        log_w = self.decision.log_weights(self.relation_embeddings["S"](relations)) if cfg.train_fused_score else None
        candidates = None
        if not cfg.condition_candidates_on_relation:
            candidates = self._encode(None, None, need, views=all_views)
        if candidates is not None and self.execution.fused_scoring_loss:
            queries, head_enc, _ = self._branch_queries(heads, relations, branches, head_views=head_views)
            kgc, terms = one_to_n_bce_linear(
                [queries[b] for b in branches],
                [candidates.emb[b] for b in branches],
                [self.scorers[b].bias for b in branches],
                targets,
                label_smoothing=cfg.label_smoothing,
                log_weights=log_w,
            )
        else:
            logits, head_enc = self._branch_logits(
                heads, relations, branches, head_views=head_views, candidates=candidates, all_views=all_views
            )
            kgc, terms = one_to_n_bce(
                [logits[b] for b in branches], targets, label_smoothing=cfg.label_smoothing, log_weights=log_w
            )
        for i, b in enumerate(branches):
            logs[f"bce_{b}"] = terms[i]
        if cfg.train_fused_score:
            logs["bce_final"] = terms[-1]
        with float32_region(heads.device):
            loss = cfg.lambda_kgc * kgc
            align = torch.zeros((), device=heads.device)
            if self.alignment is not None and cfg.lambda_align > 0:
                align = self.alignment(
                    {m: head_enc.emb[m] for m in self.modalities}, present=head_enc.present, entity_ids=heads
                )
                loss = loss + cfg.lambda_align * align
                logs["align_temperature"] = self.alignment.temperature.detach()
            mi = self._mi_bound(head_enc)
            if mi is not None:
                loss = loss + cfg.mu * mi
            else:
                mi = torch.zeros((), device=heads.device)
        logs.update(kgc=kgc.detach(), align=align.detach(), mi=mi.detach(), loss=loss.detach())
        return loss, logs

    def _mi_bound(self, head_enc: _Encoded) -> torch.Tensor | None:
        if self.club_modalities is not None:
            return self.club_modalities.mi_upper_bound({m: head_enc.emb[m] for m in self.modalities}, head_enc.present)
        if len(self.club_views):
            total = None
            for m, club in self.club_views.items():
                v, mask = head_enc.views[m]
                term = club.mi_upper_bound(v, mask)
                total = term if total is None else total + term
            return total
        return None

    def auxiliary_parameters(self) -> list[nn.Parameter]:
        """The CLUB estimators' parameters (empty when ``mu == 0`` or fewer than two modalities/views)."""
        params: list[nn.Parameter] = []
        if self.club_modalities is not None:
            params += list(self.club_modalities.parameters())
        params += list(self.club_views.parameters())
        return params

    def auxiliary_loss(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor | None:
        """CLUB estimators' negative log-likelihood on the batch's head embeddings (encoders under no_grad)."""
        if self.club_modalities is None and not len(self.club_views):
            return None
        self._check_batch(heads, relations)
        need = set(self.modalities)
        with torch.no_grad():
            rel_s = self.relation_embeddings["S"](relations)
            enc = self._encode(heads, rel_s, need)
        if self.club_modalities is not None:
            return self.club_modalities.learning_loss({m: enc.emb[m] for m in self.modalities}, enc.present)
        total = None
        for m, club in self.club_views.items():
            v, mask = enc.views[m]
            term = club.learning_loss(v, mask)
            total = term if total is None else total + term
        return total

    # ------------------------------------------------------------------ inspection
    @torch.no_grad()
    def inspect(self, heads: torch.Tensor, relations: torch.Tensor) -> IMVIAInspection:
        """View weights (Eq. 2), joint attention and decision weights ``beta(r)`` of a batch of queries."""
        self._check_batch(heads, relations)
        need = self._needed_modalities(self.score_branches) | set(self.modalities)
        rel_s = self.relation_embeddings["S"](relations)
        enc = self._encode(heads, rel_s, need)
        return IMVIAInspection(
            view_weights=dict(enc.view_weights),
            view_mask={m: v[1] for m, v in enc.views.items()},
            joint_weights=enc.joint_weights,
            joint_modalities=self.joint.modalities if self.joint is not None else (),
            decision_weights=self.decision.weights(rel_s),
            decision_branches=self.score_branches,
        )
