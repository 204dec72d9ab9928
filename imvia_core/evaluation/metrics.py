"""Rank-based metrics (MRR, MR, Hits@k) and the result of a full link-prediction evaluation.

MRR and Hits@k are stored as fractions in ``[0, 1]``; reports multiply by 100. Sums use :func:`math.fsum` so that a
metric is the correctly rounded value of its ranks, independent of batching and summation order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from imvia_core.errors import ConfigError, InputError
from imvia_core.evaluation.categories import CATEGORY_NAMES
from imvia_core.evaluation.ranks import RANK_TYPES

__all__ = [
    "DEFAULT_KS",
    "DIRECTIONS",
    "HEADLINE_METRICS",
    "HEADLINE_RANK_TYPE",
    "RankMetrics",
    "EvaluationResult",
    "result_parts",
]

#: the Hits@k cut-offs reported by default (the paper plots Hits@100 in Fig. 2)
DEFAULT_KS: tuple[int, ...] = (1, 3, 10, 100)
#: the metrics a run reports first (tables, ``imvia evaluate``): MRR and Hits@k at :data:`DEFAULT_KS`
HEADLINE_METRICS: tuple[str, ...] = ("mrr", *(f"hits@{k}" for k in DEFAULT_KS))
#: prediction directions: ``"tail"`` answers ``(h, r, ?)``, ``"head"`` answers ``(?, r, t)`` via ``(t, r^-1, ?)``
DIRECTIONS: tuple[str, ...] = ("tail", "head")
#: the rank type of headline numbers
HEADLINE_RANK_TYPE = "realistic"


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _none_to_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class RankMetrics:
    """Metrics of one set of 1-based ranks.

    :param count: number of ranks (queries).
    :param mrr: mean reciprocal rank in ``(0, 1]`` (NaN when ``count == 0``).
    :param mr: mean rank in ``[1, E]`` (NaN when ``count == 0``).
    :param hits: ``k -> `` fraction of ranks ``<= k`` (NaN when ``count == 0``).
    """

    count: int
    mrr: float
    mr: float
    hits: dict[int, float]

    @classmethod
    def from_ranks(cls, ranks: torch.Tensor, *, ks: Iterable[int] = DEFAULT_KS) -> RankMetrics:
        """Metrics of ``ranks``, shape ``(n,)`` (any device, any real dtype; values must be >= 1)."""
        ks = tuple(int(k) for k in ks)
        values = ranks.detach().reshape(-1).double().cpu()
        if values.numel() and float(values.min()) < 1:
            raise InputError(f"ranks: found a rank {float(values.min())}; expected 1-based ranks >= 1")
        listed = values.tolist()
        count = len(listed)
        if count == 0:
            return cls(count=0, mrr=math.nan, mr=math.nan, hits={k: math.nan for k in ks})
        mrr = math.fsum(1.0 / r for r in listed) / count
        mr = math.fsum(listed) / count
        hits = {k: int((values <= k).sum()) / count for k in ks}
        return cls(count=count, mrr=mrr, mr=mr, hits=hits)

    def get(self, name: str) -> float:
        """One metric by name: ``"mrr"``, ``"mr"``, ``"count"`` or ``"hits@k"`` (``k`` among the computed ks)."""
        key = name.lower().replace("_", "@")
        if key in ("mrr", "mr"):
            return getattr(self, key)
        if key == "count":
            return float(self.count)
        if key.startswith("hits@") and key[5:].isdigit() and int(key[5:]) in self.hits:
            return self.hits[int(key[5:])]
        options = ", ".join(["mrr", "mr", "count"] + [f"hits@{k}" for k in self.hits])
        raise ConfigError(f"metric: found {name!r}; expected one of {options}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``count``, ``mrr``, ``mr``, ``hits@k`` ...; NaN becomes ``None``."""
        out: dict[str, Any] = {"count": self.count, "mrr": _nan_to_none(self.mrr), "mr": _nan_to_none(self.mr)}
        out.update({f"hits@{k}": _nan_to_none(v) for k, v in self.hits.items()})
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RankMetrics:
        """Inverse of :meth:`to_dict`."""
        hits = {int(key[5:]): _none_to_nan(value) for key, value in data.items() if key.startswith("hits@")}
        return cls(
            count=int(data["count"]),
            mrr=_none_to_nan(data["mrr"]),
            mr=_none_to_nan(data["mr"]),
            hits=dict(sorted(hits.items())),
        )


def result_parts(*, with_categories: bool) -> tuple[str, ...]:
    """Names of the parts an evaluation reports, in order.

    ``"overall"``, the directions ``"tail"`` and ``"head"``, and with categories each of ``"1-1"`` ... ``"N-N"``
    followed by the direction-wise ``"tail/1-1"`` ... ``"head/N-N"``.
    """
    parts = ["overall", *DIRECTIONS]
    if with_categories:
        parts += list(CATEGORY_NAMES)
        parts += [f"{d}/{c}" for d in DIRECTIONS for c in CATEGORY_NAMES]
    return tuple(parts)


@dataclass(eq=False)
class EvaluationResult:
    """Metrics of a link-prediction evaluation, per rank type and per part of the query set.

    :param metrics: ``rank_type -> part -> RankMetrics``; rank types among optimistic, pessimistic, realistic,
        random; parts as in :func:`result_parts`.
    :param ks: the Hits@k cut-offs.
    :param filtered: whether ranks are filtered (``False``: raw).
    :param metadata: free-form JSON-ready information (split name, checkpoint, seed of the random tie-break, ...).
    :param ranks: optional per-query tensors kept by the evaluator (rank types plus ``"direction"``, ``"relation"``,
        ``"target"``); not serialised.
    """

    metrics: dict[str, dict[str, RankMetrics]]
    ks: tuple[int, ...] = DEFAULT_KS
    filtered: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)
    ranks: dict[str, torch.Tensor] | None = None

    @classmethod
    def from_ranks(
        cls,
        ranks: Mapping[str, torch.Tensor],
        *,
        directions: torch.Tensor,
        categories: torch.Tensor | None = None,
        ks: Iterable[int] = DEFAULT_KS,
        filtered: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> EvaluationResult:
        """Aggregate per-query ranks into every part.

        :param ranks: ``rank_type -> `` shape ``(n,)`` ranks.
        :param directions: shape ``(n,)``: 0 for tail prediction, 1 for head prediction.
        :param categories: shape ``(n,)`` category code (index into ``CATEGORY_NAMES``) of each query's original
            relation, or ``None`` to skip the per-category parts.
        """
        ks = tuple(int(k) for k in ks)
        directions = directions.reshape(-1).cpu()
        selections: dict[str, torch.Tensor | None] = {"overall": None}
        for code, name in enumerate(DIRECTIONS):
            selections[name] = directions == code
        if categories is not None:
            categories = categories.reshape(-1).cpu()
            for code, name in enumerate(CATEGORY_NAMES):
                selections[name] = categories == code
            for d_code, d_name in enumerate(DIRECTIONS):
                for c_code, c_name in enumerate(CATEGORY_NAMES):
                    selections[f"{d_name}/{c_name}"] = (directions == d_code) & (categories == c_code)
        metrics: dict[str, dict[str, RankMetrics]] = {}
        for rank_type in RANK_TYPES:
            if rank_type not in ranks:
                continue
            values = ranks[rank_type].reshape(-1).cpu()
            if values.shape != directions.shape:
                raise InputError(
                    f"ranks[{rank_type!r}]: found shape {tuple(values.shape)}; expected {tuple(directions.shape)}"
                )
            metrics[rank_type] = {
                part: RankMetrics.from_ranks(values if mask is None else values[mask], ks=ks)
                for part, mask in selections.items()
            }
        unknown = set(ranks) - set(RANK_TYPES)
        if unknown:
            raise ConfigError(f"rank types: found {sorted(unknown)}; expected among {', '.join(RANK_TYPES)}")
        return cls(metrics=metrics, ks=ks, filtered=filtered, metadata=dict(metadata or {}))

    # ------------------------------------------------------------------ access
    @property
    def rank_types(self) -> tuple[str, ...]:
        return tuple(self.metrics)

    @property
    def parts(self) -> tuple[str, ...]:
        first = next(iter(self.metrics.values()), {})
        return tuple(first)

    def part(self, part: str = "overall", rank_type: str = HEADLINE_RANK_TYPE) -> RankMetrics:
        """The :class:`RankMetrics` of one part and rank type."""
        if rank_type not in self.metrics:
            raise ConfigError(
                f"rank type: found {rank_type!r}; expected one of the computed types {', '.join(self.metrics)}"
            )
        by_part = self.metrics[rank_type]
        if part not in by_part:
            raise ConfigError(f"part: found {part!r}; expected one of {', '.join(by_part)}")
        return by_part[part]

    def metric(self, name: str = "mrr", rank_type: str = HEADLINE_RANK_TYPE, part: str = "overall") -> float:
        """One number, e.g. ``result.metric("hits@10")``; MRR and Hits as fractions."""
        return self.part(part, rank_type).get(name)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (per-query ranks are left out)."""
        return {
            "filtered": self.filtered,
            "ks": list(self.ks),
            "headline_rank_type": HEADLINE_RANK_TYPE,
            "metadata": dict(self.metadata),
            "metrics": {
                rank_type: {part: m.to_dict() for part, m in by_part.items()}
                for rank_type, by_part in self.metrics.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        """Inverse of :meth:`to_dict`."""
        try:
            metrics = {
                rank_type: {part: RankMetrics.from_dict(m) for part, m in by_part.items()}
                for rank_type, by_part in data["metrics"].items()
            }
            return cls(
                metrics=metrics,
                ks=tuple(int(k) for k in data["ks"]),
                filtered=bool(data["filtered"]),
                metadata=dict(data.get("metadata", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(
                f"evaluation result: found a dict without valid {err}; expected the output of EvaluationResult.to_dict"
            ) from err

    # ------------------------------------------------------------------ report
    def summary(self, rank_type: str = HEADLINE_RANK_TYPE) -> str:
        """Plain-text table: one row per part for ``rank_type``, then the overall row of every other rank type.

        MRR and Hits@k are shown in percent.
        """
        header = f"{'part':<12}{'count':>8}{'MRR':>8}{'MR':>10}" + "".join(f"{'H@' + str(k):>8}" for k in self.ks)

        def row(label: str, m: RankMetrics) -> str:
            def pct(x: float) -> str:
                return f"{'-':>8}" if math.isnan(x) else f"{100 * x:8.2f}"

            mr = f"{'-':>10}" if math.isnan(m.mr) else f"{m.mr:10.1f}"
            return f"{label:<12}{m.count:>8}{pct(m.mrr)}{mr}" + "".join(pct(m.hits[k]) for k in self.ks)

        setting = "filtered" if self.filtered else "raw"
        lines = [f"{setting} ranks, {rank_type} tie handling (MRR and Hits@k in %)", header, "-" * len(header)]
        self.part("overall", rank_type)  # validates rank_type
        lines += [row(part, m) for part, m in self.metrics[rank_type].items()]
        others = [t for t in self.metrics if t != rank_type]
        if others:
            lines += ["", "overall, other tie handling", header.replace("part", "ties", 1), "-" * len(header)]
            lines += [row(t, self.metrics[t]["overall"]) for t in others]
        return "\n".join(lines)
