"""Filtered link-prediction evaluation in both directions (protocol of ``docs/method.md``, section D).

Every test triple ``(h, r, t)`` gives two queries, both answered by tail prediction over all entities:

* tail prediction: query ``(h, r)``, target ``t``;
* head prediction: query ``(t, r + R)`` (the reciprocal relation), target ``h``.

Queries are scored in batches (memory ``O(batch_size * E)`` on the device), ranked by comparison counts
(:func:`~imvia_core.evaluation.ranks.compute_ranks`) against the filter set of known tails, and only the ranks travel
back to the CPU.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from tqdm.auto import tqdm

from imvia_core.data.filtering import FilterIndex, check_triples
from imvia_core.errors import ConfigError, InputError
from imvia_core.evaluation.categories import CATEGORY_NAMES
from imvia_core.evaluation.metrics import DEFAULT_KS, EvaluationResult
from imvia_core.evaluation.ranks import RANK_TYPES, compute_ranks
from imvia_core.model.base import KGCModel
from imvia_core.progress import bars_disabled

__all__ = ["Scorer", "ModelScorer", "model_scorer", "evaluate", "DEFAULT_RANK_TYPES"]

#: ``scorer(heads (B,), relations (B,)) -> scores (B, E)``; relations include reciprocals
Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: rank types computed when none are asked for; ``"random"`` is added by a random tie-break seed
DEFAULT_RANK_TYPES: tuple[str, ...] = ("optimistic", "pessimistic", "realistic")


class ModelScorer:
    """Adapter from a :class:`~imvia_core.model.base.KGCModel` to a :data:`Scorer`.

    Each call puts the model in eval mode (dropout off, batch-norm statistics frozen) and scores under
    :func:`torch.no_grad`. :func:`evaluate` restores the model's previous training mode when it is done.

    :param model: the model.
    :param branch: which of ``model.branches`` to score (``"final"`` is the ranking score).
    """

    def __init__(self, model: KGCModel, branch: str = "final") -> None:
        branches = tuple(getattr(model, "branches", ("final",)))
        if branch not in branches:
            raise ConfigError(f"branch: found {branch!r}; expected one of the model's branches {', '.join(branches)}")
        self.model = model
        self.branch = branch

    def __call__(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        if self.model.training:
            self.model.eval()
        with torch.no_grad():
            return self.model.score_all(heads, relations, branch=self.branch)


def model_scorer(model: KGCModel, branch: str = "final") -> ModelScorer:
    """Wrap ``model`` as a scorer of branch ``branch`` (eval mode, no gradients)."""
    return ModelScorer(model, branch)


def _full_precision(device: torch.device):
    """A context that turns autocast off on ``device`` (and on the CPU) while a batch is scored.

    Training may run under bf16 autocast; scores rounded to bf16 (8 significant bits) tie many candidates, and the
    realistic rank then averages over those ties. Scoring with autocast off keeps every GEMM in float32.
    """
    stack = contextlib.ExitStack()
    for kind in dict.fromkeys((device.type, "cpu")):
        if kind in ("cpu", "cuda", "xpu", "mps"):
            stack.enter_context(torch.autocast(device_type=kind, enabled=False))
    return stack


def _resolve_rank_types(rank_types: Iterable[str], seed: int | None) -> tuple[str, ...]:
    wanted = list(dict.fromkeys(rank_types))
    unknown = [t for t in wanted if t not in RANK_TYPES]
    if unknown:
        raise ConfigError(f"rank_types: found {unknown}; expected among {', '.join(RANK_TYPES)}")
    if seed is not None and "random" not in wanted:
        wanted.append("random")
    if "random" in wanted and seed is None:
        raise ConfigError("rank_types: found 'random' without random_tie_break_seed; expected a seed (an integer)")
    if not wanted:
        raise ConfigError("rank_types: found none; expected at least one of " + ", ".join(RANK_TYPES))
    return tuple(t for t in RANK_TYPES if t in wanted)


def _checked_inputs(
    triples: torch.Tensor,
    *,
    num_entities: int,
    num_relations: int,
    filter_index: FilterIndex | None,
    relation_categories: torch.Tensor | None,
    batch_size: int,
    ks: tuple[int, ...],
    device: torch.device,
) -> tuple[torch.Tensor, FilterIndex | None, torch.Tensor | None]:
    """The checked triples (CPU), the filter index on ``device`` and the category codes ``(R,)`` (or ``None``)."""
    if batch_size <= 0:
        raise ConfigError(f"batch_size: found {batch_size}; expected a positive integer")
    if num_entities <= 0 or num_relations <= 0:
        raise ConfigError(f"found num_entities={num_entities}, num_relations={num_relations}; expected both > 0")
    if any(k <= 0 for k in ks):
        raise ConfigError(f"ks: found {ks}; expected positive cut-offs")
    triples = check_triples(
        triples.cpu(),
        num_entities=num_entities,
        num_relations=num_relations,
        name="evaluation triples",
        relation_note="original relations: the evaluator adds head prediction itself",
    )
    if filter_index is not None:
        if (
            filter_index.num_entities != num_entities
            or filter_index.num_relations_with_reciprocals != 2 * num_relations
        ):
            raise InputError(
                f"filter_index: found {filter_index.num_entities} entities and "
                f"{filter_index.num_relations_with_reciprocals} relation ids; expected {num_entities} entities and "
                f"{2 * num_relations} relation ids (with reciprocals)"
            )
        filter_index = filter_index.to(device)
    categories = None
    if relation_categories is not None:
        codes = relation_categories.detach().long().cpu().reshape(-1)
        if codes.numel() != num_relations or (codes.numel() and (codes.min() < 0 or codes.max() >= 4)):
            raise InputError(
                f"relation_categories: found shape {tuple(relation_categories.shape)} with codes "
                f"{sorted(set(codes.tolist()))[:8]}; expected ({num_relations},) codes in 0..{len(CATEGORY_NAMES) - 1}"
            )
        categories = codes
    return triples, filter_index, categories


def _rank_in_batches(
    score_fn: Scorer,
    heads: torch.Tensor,
    relations: torch.Tensor,
    targets: torch.Tensor,
    *,
    num_entities: int,
    filter_index: FilterIndex | None,
    batch_size: int,
    device: torch.device,
    kinds: tuple[str, ...],
    random_tie_break_seed: int | None,
    progress: bool,
) -> dict[str, list[torch.Tensor]]:
    """Score and rank the queries ``(heads, relations)`` against ``targets`` ``batch_size`` at a time, in the order
    given; ``{rank type: [float64 ranks of each batch, on the CPU]}``."""
    generator = None
    if random_tie_break_seed is not None:
        generator = torch.Generator(device="cpu").manual_seed(int(random_tie_break_seed))
    tie_break = "random" if "random" in kinds else "realistic"
    collected: dict[str, list[torch.Tensor]] = {kind: [] for kind in kinds}
    num_queries = heads.numel()
    starts = range(0, num_queries, batch_size)
    bar = tqdm(
        starts,
        total=math.ceil(num_queries / batch_size),
        desc="evaluating",
        unit="batch",
        disable=bars_disabled(progress),
    )
    with torch.no_grad():
        for start in bar:
            stop = min(start + batch_size, num_queries)
            batch_heads = heads[start:stop].to(device)
            batch_relations = relations[start:stop].to(device)
            batch_targets = targets[start:stop].to(device)
            rows = cols = None
            if filter_index is not None:  # before scoring: its host synchronisation then costs nothing
                rows, cols = filter_index.known_tails(batch_heads, batch_relations)
            with _full_precision(device):  # ranks come from float32 scores whatever the caller's autocast
                scores = score_fn(batch_heads, batch_relations)
            if scores.is_floating_point() and scores.dtype not in (torch.float32, torch.float64):
                scores = scores.float()
            if scores.dim() != 2 or scores.shape != (stop - start, num_entities):
                raise InputError(
                    f"scorer output: found shape {tuple(scores.shape)}; expected ({stop - start}, {num_entities})"
                )
            ranks = compute_ranks(
                scores,
                batch_targets,
                filter_rows=rows,
                filter_cols=cols,
                tie_break=tie_break,
                generator=generator,
                filter_unique=True,
            )
            for kind in kinds:
                collected[kind].append(ranks.get(kind).detach().to("cpu", torch.float64))
    return collected


def _queries(triples: torch.Tensor, num_relations: int) -> tuple[torch.Tensor, ...]:
    """Tail queries ``(h, r, ?)`` then head queries ``(t, r + R, ?)``: heads, relation ids, targets, directions
    (0 tail, 1 head) and original relation ids, each ``(2n,)``."""
    h, r, t = triples.unbind(dim=1)
    heads = torch.cat([h, t])
    relations = torch.cat([r, r + num_relations])
    targets = torch.cat([t, h])
    directions = torch.cat([torch.zeros_like(h), torch.ones_like(h)])
    return heads, relations, targets, directions, torch.cat([r, r])


def _result(
    collected: dict[str, list[torch.Tensor]],
    *,
    order: torch.Tensor,
    directions: torch.Tensor,
    original: torch.Tensor,
    targets: torch.Tensor,
    categories: torch.Tensor | None,
    ks: tuple[int, ...],
    filtered: bool,
    info: dict[str, Any],
    keep_ranks: bool,
) -> EvaluationResult:
    """The metrics of the ranks of every batch, put back in query order (``order``: batch position -> query)."""
    empty = torch.zeros(0, dtype=torch.float64)
    all_ranks = {
        kind: torch.empty_like(ranks).index_copy_(0, order, ranks)
        for kind, ranks in ((kind, torch.cat(parts) if parts else empty) for kind, parts in collected.items())
    }
    result = EvaluationResult.from_ranks(
        all_ranks,
        directions=directions,
        categories=categories[original] if categories is not None else None,
        ks=ks,
        filtered=filtered,
        metadata=info,
    )
    if keep_ranks:
        result.ranks = {**all_ranks, "direction": directions, "relation": original, "target": targets}
    return result


def evaluate(
    scorer: Scorer | KGCModel,
    triples: torch.Tensor,
    *,
    num_entities: int,
    num_relations: int,
    filter_index: FilterIndex | None,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    rank_types: Iterable[str] = DEFAULT_RANK_TYPES,
    random_tie_break_seed: int | None = None,
    relation_categories: torch.Tensor | None = None,
    ks: Iterable[int] = DEFAULT_KS,
    progress: bool = True,
    keep_ranks: bool = False,
    branch: str = "final",
    metadata: Mapping[str, Any] | None = None,
) -> EvaluationResult:
    """Rank every triple of ``triples`` in both directions and aggregate the metrics.

    :param scorer: a :data:`Scorer` or a :class:`~imvia_core.model.base.KGCModel` (wrapped by :func:`model_scorer`
        with ``branch``; its training mode is restored afterwards).
    :param triples: shape ``(n, 3)`` test (or validation) triples with original relation ids ``0..R-1``.
    :param num_entities: ``E``.
    :param num_relations: number of original relations ``R`` (the scorer sees ids ``0..2R-1``).
    :param filter_index: known triples with reciprocals (usually ``KnowledgeGraph.filter_index``: train, valid and
        test) for the filtered setting; ``None`` for raw ranks.
    :param batch_size: queries scored at once; memory is ``O(batch_size * E)``. Results do not depend on it.
    :param device: where queries are scored and ranked.
    :param rank_types: among ``optimistic``, ``pessimistic``, ``realistic``, ``random``.
    :param random_tie_break_seed: seed of the random tie-break (adds ``"random"``); the draw is on a CPU generator,
        so it is the same on every device for the same batch size.
    :param relation_categories: shape ``(R,)`` category codes (:func:`~imvia_core.evaluation.categories.
        relation_categories`) to report per category, or ``None``.
    :param ks: Hits@k cut-offs.
    :param progress: show a progress bar over batches.
    :param keep_ranks: keep per-query ranks in ``result.ranks`` (rank types plus ``direction``, ``relation``,
        ``target``, in query order: all tail queries, then all head queries).
    :param branch: the model branch when ``scorer`` is a model.
    :param metadata: extra JSON-ready information stored in the result.
    :return: an :class:`~imvia_core.evaluation.metrics.EvaluationResult`.
    """
    ks = tuple(int(k) for k in ks)
    kinds = _resolve_rank_types(rank_types, random_tie_break_seed)
    device = torch.device(device)
    triples, filter_index, categories = _checked_inputs(
        triples,
        num_entities=num_entities,
        num_relations=num_relations,
        filter_index=filter_index,
        relation_categories=relation_categories,
        batch_size=batch_size,
        ks=ks,
        device=device,
    )
    model: KGCModel | None = scorer if isinstance(scorer, KGCModel) else None
    was_training = model.training if model is not None else False
    score_fn: Scorer = model_scorer(model, branch) if model is not None else scorer

    heads, relations, targets, directions, original = _queries(triples, num_relations)
    num_queries = heads.numel()
    # batches of one or few relations: a Tucker-style scorer then contracts its core about once per relation;
    # ranks are put back in query order at the end
    order = torch.argsort(relations, stable=True)
    try:
        collected = _rank_in_batches(
            score_fn,
            heads[order],
            relations[order],
            targets[order],
            num_entities=num_entities,
            filter_index=filter_index,
            batch_size=batch_size,
            device=device,
            kinds=kinds,
            random_tie_break_seed=random_tie_break_seed,
            progress=progress,
        )
    finally:
        if model is not None:
            model.train(was_training)

    return _result(
        collected,
        order=order,
        directions=directions,
        original=original,
        targets=targets,
        categories=categories,
        ks=ks,
        filtered=filter_index is not None,
        info={
            "num_triples": int(triples.shape[0]),
            "num_queries": int(num_queries),
            "num_entities": int(num_entities),
            "random_tie_break_seed": random_tie_break_seed,
            **(metadata or {}),
        },
        keep_ranks=keep_ranks,
    )
