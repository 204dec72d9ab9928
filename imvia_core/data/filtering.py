"""Index of known tails per query, for filtered ranking and for 1-N training targets.

A query is a pair ``(head, relation)`` with relation ids including reciprocals (``0..2R-1``). The index is stored in
compressed sparse row (CSR) form: the distinct query keys ``head * num_relations_with_reciprocals + relation``
sorted ascending, an offsets array, and the sorted tails of every query laid end to end. Looking up a batch of
queries is a ``torch.searchsorted`` on the keys followed by one ``repeat_interleave``: no Python loop per query, and
everything stays on the index's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from imvia_core.errors import InputError

__all__ = ["FilterIndex"]


def check_triples(
    triples: torch.Tensor,
    *,
    num_entities: int,
    num_relations: int,
    name: str = "triples",
    relation_note: str = "reciprocals included",
) -> torch.Tensor:
    """Validate a ``(n, 3)`` tensor of integer ids and return it as ``long``.

    :raises InputError: naming the first row whose ids are out of range, or the wrong shape or dtype.
    """
    if triples.dim() != 2 or triples.shape[1] != 3:
        raise InputError(f"{name}: found shape {tuple(triples.shape)}; expected (n, 3) (head, relation, tail)")
    if triples.dtype.is_floating_point or triples.dtype.is_complex or triples.dtype == torch.bool:
        raise InputError(f"{name}: found dtype {triples.dtype}; expected an integer tensor of ids")
    triples = triples.detach().long()
    if triples.shape[0] == 0:
        return triples
    limits = torch.tensor([num_entities, num_relations, num_entities], device=triples.device)
    bad = ((triples < 0) | (triples >= limits)).any(dim=1)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        h, r, t = (int(v) for v in triples[row].tolist())
        raise InputError(
            f"{name} row {row}: found (head={h}, relation={r}, tail={t}); expected entity ids in "
            f"0..{num_entities - 1} and relation ids in 0..{num_relations - 1} ({relation_note})"
        )
    return triples


@dataclass(eq=False)
class FilterIndex:
    """CSR map from a query ``(head, relation)`` to the set of its known tails.

    Build it with :meth:`from_triples`. Tensors:

    :param num_entities: number of entities ``E``.
    :param num_relations_with_reciprocals: number of relation ids **including reciprocals** (``2R``).
    :param query_keys: shape ``(Q,)`` sorted distinct keys ``head * num_relations_with_reciprocals + relation``.
    :param offsets: shape ``(Q + 1,)``; the tails of query ``q`` are ``tails[offsets[q]:offsets[q + 1]]``.
    :param tails: shape ``(nnz,)`` tail ids, sorted within each query, without duplicates.
    """

    num_entities: int
    num_relations_with_reciprocals: int
    query_keys: torch.Tensor
    offsets: torch.Tensor
    tails: torch.Tensor

    @classmethod
    def from_triples(
        cls, triples: torch.Tensor, *, num_entities: int, num_relations_with_reciprocals: int
    ) -> FilterIndex:
        """Index ``triples``.

        :param triples: shape ``(m, 3)`` integer ids (head, relation, tail); the caller adds reciprocal triples
            (``(t, r + R, h)``) itself when it wants head prediction filtered. Duplicates are allowed.
        :param num_entities: ``E``.
        :param num_relations_with_reciprocals: number of relation ids including reciprocals (``2R``).
        """
        if num_entities <= 0 or num_relations_with_reciprocals <= 0:
            raise InputError(
                f"FilterIndex: found num_entities={num_entities}, "
                f"num_relations_with_reciprocals={num_relations_with_reciprocals}; expected both > 0"
            )
        triples = check_triples(triples, num_entities=num_entities, num_relations=num_relations_with_reciprocals)
        keys = triples[:, 0] * num_relations_with_reciprocals + triples[:, 1]
        # One int64 code per triple; E * 2R * E stays far below 2**63 for any realistic graph.
        codes = torch.unique(keys * num_entities + triples[:, 2], sorted=True)
        keys = torch.div(codes, num_entities, rounding_mode="floor")
        tails = codes - keys * num_entities
        query_keys, counts = torch.unique_consecutive(keys, return_counts=True)
        offsets = torch.zeros(query_keys.numel() + 1, dtype=torch.long, device=codes.device)
        torch.cumsum(counts, dim=0, out=offsets[1:])
        return cls(
            num_entities=num_entities,
            num_relations_with_reciprocals=num_relations_with_reciprocals,
            query_keys=query_keys,
            offsets=offsets,
            tails=tails,
        )

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.tails.device

    @property
    def num_queries(self) -> int:
        """Number of distinct queries ``Q`` with at least one known tail."""
        return int(self.query_keys.numel())

    @property
    def num_triples(self) -> int:
        """Number of distinct indexed triples ``nnz``."""
        return int(self.tails.numel())

    def __len__(self) -> int:
        return self.num_triples

    def to(self, device: torch.device | str) -> FilterIndex:
        """Copy of the index on ``device`` (``self`` if it is already there)."""
        device = torch.device(device)
        if self.device == device:
            return self
        return FilterIndex(
            num_entities=self.num_entities,
            num_relations_with_reciprocals=self.num_relations_with_reciprocals,
            query_keys=self.query_keys.to(device),
            offsets=self.offsets.to(device),
            tails=self.tails.to(device),
        )

    # ------------------------------------------------------------------ lookups
    def unique_queries(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All distinct indexed queries, in key order.

        :return: ``heads`` and ``relations``, each shape ``(Q,)``.
        """
        heads = torch.div(self.query_keys, self.num_relations_with_reciprocals, rounding_mode="floor")
        return heads, self.query_keys - heads * self.num_relations_with_reciprocals

    def counts(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """Number of known tails of each query, shape ``(B,)`` (0 for an unknown query)."""
        return self._locate(heads, relations)[2]

    def _locate(self, heads: torch.Tensor, relations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if heads.shape != relations.shape or heads.dim() != 1:
            raise InputError(
                f"FilterIndex lookup: found heads {tuple(heads.shape)} and relations {tuple(relations.shape)}; "
                "expected two 1-d tensors of the same length"
            )
        heads = heads.to(self.device, torch.long)
        relations = relations.to(self.device, torch.long)
        keys = heads * self.num_relations_with_reciprocals + relations
        num_queries = self.query_keys.numel()
        if num_queries == 0:
            zeros = torch.zeros_like(keys)
            return keys, zeros, zeros
        position = torch.searchsorted(self.query_keys, keys).clamp_(max=num_queries - 1)
        found = self.query_keys[position] == keys
        starts = self.offsets[position]
        counts = torch.where(found, self.offsets[position + 1] - starts, torch.zeros_like(starts))
        return keys, starts, counts

    def known_tails(self, heads: torch.Tensor, relations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinates of the known tails of a batch of queries.

        Ids are not range-checked here (this runs once per batch); out-of-range ids give wrong lookups, not errors.

        :param heads: shape ``(B,)`` head ids.
        :param relations: shape ``(B,)`` relation ids including reciprocals.
        :return: ``(row_index, entity_index)``, each shape ``(K,)`` long on the index's device: every pair
            ``(b, e)`` such that ``(heads[b], relations[b], e)`` is indexed, rows ascending, entities ascending
            within a row, no duplicates.
        """
        _, starts, counts = self._locate(heads, relations)
        batch = counts.numel()
        total = int(counts.sum())  # the one host synchronisation of a lookup
        rows = torch.repeat_interleave(torch.arange(batch, device=self.device), counts, output_size=total)
        first_out = torch.cumsum(counts, dim=0) - counts  # where each row's block starts in the output
        source = torch.arange(total, device=self.device) + (starts - first_out)[rows]
        return rows, self.tails[source]

    def dense_mask(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """Known tails as a dense mask, shape ``(B, num_entities)`` bool on the index's device."""
        rows, cols = self.known_tails(heads, relations)
        mask = torch.zeros((heads.shape[0], self.num_entities), dtype=torch.bool, device=self.device)
        mask[rows, cols] = True
        return mask
