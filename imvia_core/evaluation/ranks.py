"""Filtered ranks of target entities from 1-N scores, by comparison counts (no sorting).

For a query with scores ``s`` over the ``E`` candidate entities, target ``t`` and the set ``F`` of filtered entities
(known true tails other than ``t``), over the candidates ``C = {0..E-1} \\ F``:

* optimistic rank  ``1 + |{e in C : s_e > s_t}|``  (the target placed before every tie),
* pessimistic rank ``|{e in C : s_e >= s_t}|``      (after every tie; counts the target itself),
* realistic rank   ``(optimistic + pessimistic) / 2`` (the expected rank under a uniform tie order, as PyKEEN),
* random rank      ``optimistic + U``, ``U`` uniform on the integers ``0..pessimistic - optimistic`` (the target
  placed uniformly at random among its ties: the tie-break of the upstream IMVIA/MoMoK code).

Filtering is the usual "filtered setting" (Bordes et al., 2013): it is equivalent to setting the score of every
filtered entity to ``-inf``, except that a filtered entity never counts even when the target itself scores ``-inf``.
The target's own score is always kept, whether or not it is in the filter set. The cost is two comparisons per
score plus ``O(K)`` work for the ``K`` filter coordinates: the caller's score tensor is read, never copied or
written.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from imvia_core.errors import ConfigError, InputError
from imvia_core.layout import is_entity_major

__all__ = ["RankBatch", "compute_ranks", "RANK_TYPES", "TIE_BREAKS"]

#: every rank type this module computes, in report order
RANK_TYPES: tuple[str, ...] = ("optimistic", "pessimistic", "realistic", "random")
#: accepted values of ``compute_ranks(tie_break=...)``
TIE_BREAKS: tuple[str, ...] = ("realistic", "random")


@dataclass(frozen=True)
class RankBatch:
    """1-based ranks of a batch of queries, each a float tensor of shape ``(B,)``.

    :param optimistic: target before all ties.
    :param pessimistic: target after all ties.
    :param realistic: mean of the two.
    :param random: target at a uniformly random place among its ties, or ``None`` when not computed.
    """

    optimistic: torch.Tensor
    pessimistic: torch.Tensor
    realistic: torch.Tensor
    random: torch.Tensor | None = None

    def get(self, rank_type: str) -> torch.Tensor:
        """The ranks of one type; :class:`ConfigError` for an unknown or missing type."""
        if rank_type not in RANK_TYPES:
            raise ConfigError(f"rank type: found {rank_type!r}; expected one of {', '.join(RANK_TYPES)}")
        value = getattr(self, rank_type)
        if value is None:
            raise ConfigError(f"rank type {rank_type!r} was not computed; pass tie_break='random' to compute it")
        return value

    def to(self, device: torch.device | str) -> RankBatch:
        """Copy with every tensor on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return RankBatch(**{k: (v.to(device) if v is not None else None) for k, v in moved.items()})

    def __len__(self) -> int:
        return int(self.optimistic.numel())


def _rank_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


#: elements per block of the CPU comparison counts (a 2 MB float32 block stays in cache)
_COUNT_BLOCK_ELEMENTS = 1 << 19


def _comparison_counts(scores: torch.Tensor, target_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``|{e : s_e > s_t}|`` and ``|{e : s_e >= s_t}|`` of each row, as int64 ``(B,)``.

    Off a CPU: two comparisons and two sums. On a CPU, summing a bool tensor first converts all of it to int64
    (8 bytes per score, a fresh ``(B, E)`` temporary twice per batch); here the scores are read block by block
    over the memory's outer dimension (so entity-major scores, :func:`~imvia_core.model.tucker.is_entity_major`,
    are read in their own order), and both comparisons write 0/1 into one reused float block that is summed while
    in cache (exact: counts stay below ``2**24``, else float64).
    """
    if scores.device.type != "cpu":
        return (scores > target_scores).sum(dim=1), (scores >= target_scores).sum(dim=1)
    num_entities = scores.shape[1]
    count_dtype = torch.float32 if num_entities < 2**24 else torch.float64
    entity_major = is_entity_major(scores)
    view, pivot = (scores.t(), target_scores.t()) if entity_major else (scores, target_scores)  # blocks of rows
    rows, cols = view.shape
    step = max(1, _COUNT_BLOCK_ELEMENTS // max(1, cols))
    block = torch.empty(min(step, rows), cols, dtype=count_dtype)
    if entity_major:  # rows are entities: the column sums of every block add up
        greater, not_less = torch.zeros(cols, dtype=torch.float64), torch.zeros(cols, dtype=torch.float64)
    else:  # rows are queries: one row sum per row
        greater, not_less = torch.empty(rows, dtype=count_dtype), torch.empty(rows, dtype=count_dtype)
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        b = block[: r1 - r0]
        part, piv = view[r0:r1], (pivot if entity_major else pivot[r0:r1])
        for op, total in ((torch.gt, greater), (torch.ge, not_less)):
            op(part, piv, out=b)
            if entity_major:
                total += b.sum(dim=0)
            else:
                torch.sum(b, dim=1, out=total[r0:r1])
    return greater.long(), not_less.long()


def _without_filtered(
    scores: torch.Tensor,
    target_scores: torch.Tensor,
    safe_targets: torch.Tensor,
    greater: torch.Tensor,
    not_less: torch.Tensor,
    filter_rows: torch.Tensor,
    filter_cols: torch.Tensor,
    filter_unique: bool,
    checks: list[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The counts ``greater`` and ``not_less`` ``(B,)`` less the filtered entities (never the target itself); queues
    the range check of the coordinates on ``checks``."""
    batch, num_entities = scores.shape
    device = scores.device
    filter_rows = filter_rows.to(device=device, dtype=torch.long)
    filter_cols = filter_cols.to(device=device, dtype=torch.long)
    checks.append(
        ((filter_rows < 0) | (filter_rows >= batch) | (filter_cols < 0) | (filter_cols >= num_entities)).any()
    )
    if filter_rows.numel() == 0:
        return greater, not_less
    if not filter_unique:
        codes = torch.unique(filter_rows * num_entities + filter_cols)
        filter_rows = torch.div(codes, num_entities, rounding_mode="floor")
        filter_cols = codes - filter_rows * num_entities
    rows = filter_rows.clamp(0, batch - 1)
    cols = filter_cols.clamp(0, num_entities - 1)
    is_other = cols != safe_targets[rows]  # the target itself is never filtered
    filtered_scores = scores[rows, cols]
    row_target = target_scores[rows, 0]
    above = ((filtered_scores > row_target) & is_other).long()
    tied_or_above = ((filtered_scores >= row_target) & is_other).long()
    greater = greater - torch.zeros_like(greater).index_add_(0, rows, above)
    not_less = not_less - torch.zeros_like(not_less).index_add_(0, rows, tied_or_above)
    return greater, not_less


def _raise_queued_checks(
    flags: list[bool], *, scores: torch.Tensor, targets: torch.Tensor, bad_targets: torch.Tensor
) -> None:
    """Raise for the first failed check: a target id out of range, a NaN score, a filter coordinate out of range."""
    batch, num_entities = scores.shape
    if flags[0]:
        bad = int(bad_targets.nonzero()[0, 0])
        raise InputError(
            f"targets[{bad}]: found entity id {int(targets[bad])}; expected an id in 0..{num_entities - 1}"
        )
    if flags[1]:
        nan_rows = torch.isnan(scores).any(dim=1).nonzero()[:, 0]
        raise InputError(
            f"scores: found NaN in {nan_rows.numel()} of {batch} queries (first: batch row {int(nan_rows[0])}); "
            "expected finite or infinite scores. A NaN score usually means the model diverged (check the learning "
            "rate)."
        )
    if len(flags) > 2 and flags[2]:
        raise InputError(
            f"filter coordinates: found a row outside 0..{batch - 1} or an entity outside 0..{num_entities - 1}"
        )


def compute_ranks(
    scores: torch.Tensor,
    targets: torch.Tensor,
    *,
    filter_rows: torch.Tensor | None = None,
    filter_cols: torch.Tensor | None = None,
    tie_break: str = "realistic",
    generator: torch.Generator | None = None,
    filter_unique: bool = False,
) -> RankBatch:
    """Ranks of the targets among all entities, optionally filtered.

    :param scores: shape ``(B, E)``, any real dtype on any device; higher is more plausible. Not modified.
    :param targets: shape ``(B,)`` target entity ids.
    :param filter_rows: shape ``(K,)`` row (query) index of each filtered coordinate, or ``None`` for raw ranks.
    :param filter_cols: shape ``(K,)`` entity index of each filtered coordinate. A coordinate equal to the row's
        target is ignored (the target is never filtered).
    :param tie_break: ``"realistic"`` computes optimistic, pessimistic and realistic ranks; ``"random"`` also
        computes the random tie-break rank.
    :param generator: random source of the random tie-break (uniforms are drawn on its device, then moved); ``None``
        uses the global CPU generator.
    :param filter_unique: promise that the filter coordinates hold no duplicate pair (true for
        :meth:`~imvia_core.data.filtering.FilterIndex.known_tails`); skips a deduplication sort.
    :return: a :class:`RankBatch` of 1-based ranks, float64 (float32 on MPS), on the scores' device.
    :raises InputError: wrong shapes, target ids out of range, NaN scores, mismatched filter coordinates.
    :raises ConfigError: unknown ``tie_break``.
    """
    if tie_break not in TIE_BREAKS:
        raise ConfigError(f"tie_break: found {tie_break!r}; expected one of {', '.join(TIE_BREAKS)}")
    if scores.dim() != 2:
        raise InputError(f"scores: found shape {tuple(scores.shape)}; expected (batch, num_entities)")
    if scores.dtype == torch.bool or scores.dtype.is_complex:
        raise InputError(f"scores: found dtype {scores.dtype}; expected a real (floating point) tensor")
    batch, num_entities = scores.shape
    if targets.dim() != 1 or targets.shape[0] != batch:
        raise InputError(f"targets: found shape {tuple(targets.shape)}; expected ({batch},) to match the scores")
    if (filter_rows is None) != (filter_cols is None):
        raise InputError("filter_rows and filter_cols: found only one of them; expected both or neither")
    if num_entities == 0:
        raise InputError("scores: found 0 candidate entities; expected at least one column")
    device = scores.device
    targets = targets.to(device=device, dtype=torch.long)

    if filter_rows is not None and (filter_rows.shape != filter_cols.shape or filter_rows.dim() != 1):
        raise InputError(
            f"filter coordinates: found rows {tuple(filter_rows.shape)} and cols {tuple(filter_cols.shape)}; "
            "expected two 1-d tensors of the same length"
        )
    dtype = _rank_dtype(device)
    if batch == 0:
        if filter_rows is not None and filter_rows.numel() > 0:
            raise InputError("filter coordinates: found coordinates for an empty batch; expected none")
        empty = torch.zeros(0, dtype=dtype, device=device)
        return RankBatch(empty, empty.clone(), empty.clone(), empty.clone() if tie_break == "random" else None)

    # Input checks are queued now and read once at the end: a single host synchronisation, after all the work is
    # queued. Until then, ids are clamped so that an invalid id cannot trigger a device-side indexing error.
    bad_targets = (targets < 0) | (targets >= num_entities)
    checks = [bad_targets.any()]
    # a max propagates NaN: one reduction over the scores, without a (B, E) temporary
    checks.append(torch.isnan(scores.amax()) if scores.dtype.is_floating_point else bad_targets.new_zeros(()))
    safe_targets = targets.clamp(0, num_entities - 1)
    target_scores = scores.gather(1, safe_targets.unsqueeze(1))  # (B, 1)
    greater, not_less = _comparison_counts(scores, target_scores)  # not_less counts the target itself

    if filter_rows is not None:
        greater, not_less = _without_filtered(
            scores, target_scores, safe_targets, greater, not_less, filter_rows, filter_cols, filter_unique, checks
        )

    optimistic = (greater + 1).to(dtype)
    pessimistic = not_less.to(dtype)
    realistic = 0.5 * (optimistic + pessimistic)
    random = None
    if tie_break == "random":
        gen_device = generator.device if generator is not None else torch.device("cpu")
        uniform = torch.rand(batch, generator=generator, device=gen_device, dtype=torch.float64).to(device, dtype)
        ties_plus_one = pessimistic - optimistic + 1
        offset = torch.minimum(torch.floor(uniform * ties_plus_one), ties_plus_one - 1)
        random = optimistic + offset

    _raise_queued_checks(torch.stack(checks).tolist(), scores=scores, targets=targets, bad_targets=bad_targets)
    return RankBatch(optimistic=optimistic, pessimistic=pessimistic, realistic=realistic, random=random)
