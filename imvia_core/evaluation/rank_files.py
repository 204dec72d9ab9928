"""Per-query rank files: the realistic rank of every evaluation query of a run, compact and compressed.

A run writes ``ranks.npz`` beside its ``results.json`` (numpy's compressed ``.npz``). For each evaluated split
``S`` (``test``, ``valid``, and ``published_valid`` where the run selected on a held-out split) it holds:

* ``S/triples``: ``(n, 3)`` int32, the split's triples (head, relation, tail) in file order;
* ``S/rank2``: ``(2, n)`` int32, twice the realistic filtered rank of the tail query ``(h, r, ?)`` (row 0) and of
  the head query ``(?, r, t)`` (row 1). Realistic ranks are halves of integers, so doubling stores them exactly.

A query is then identified by its direction, relation and the triple's entities, which is what a paired test
between two runs on the same split needs (:func:`~imvia_core.reporting.significance.paired_reciprocal_ranks`).
At DB15K's size (9902 test, 9904 published and 3961 held-out validation triples) a file is about 0.2 MB.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from imvia_core.errors import InputError

__all__ = ["RANK_FILE_NAME", "SplitRanks", "split_ranks", "save_rank_file", "load_rank_file"]

RANK_FILE_NAME = "ranks.npz"
_FORMAT = "imvia-ranks/1"


@dataclass(frozen=True)
class SplitRanks:
    """The realistic ranks of one split's queries.

    :param triples: ``(n, 3)`` int64 (head, relation, tail).
    :param ranks: ``(2, n)`` float64 realistic ranks, row 0 the tail queries, row 1 the head queries.
    """

    triples: np.ndarray
    ranks: np.ndarray

    def queries(self) -> dict[str, np.ndarray]:
        """One entry per query, ``2n`` of them (tail queries, then head queries), as flat arrays.

        :return: ``direction`` (0 tail, 1 head), ``relation``, ``head``, ``tail``, ``rank``.
        """
        n = self.triples.shape[0]
        return {
            "direction": np.repeat(np.array([0, 1], dtype=np.int64), n),
            "relation": np.tile(self.triples[:, 1], 2),
            "head": np.tile(self.triples[:, 0], 2),
            "tail": np.tile(self.triples[:, 2], 2),
            "rank": self.ranks.reshape(-1),
        }

    def reciprocal_ranks(self) -> np.ndarray:
        """``(2n,)`` reciprocal ranks in the order of :meth:`queries`."""
        return 1.0 / self.ranks.reshape(-1)


def split_ranks(triples: torch.Tensor, result) -> SplitRanks:
    """The :class:`SplitRanks` of an evaluation run with ``keep_ranks=True`` on ``triples`` (shape ``(n, 3)``)."""
    if result.ranks is None or "realistic" not in result.ranks:
        raise InputError("evaluation result: no per-query realistic ranks kept; evaluate with keep_ranks=True")
    ranks = result.ranks["realistic"].double().cpu().numpy()
    n = int(triples.shape[0])
    if ranks.shape != (2 * n,):
        raise InputError(f"evaluation result: found {ranks.shape[0]} ranks for {n} triples; expected {2 * n}")
    return SplitRanks(triples=triples.cpu().numpy().astype(np.int64), ranks=ranks.reshape(2, n))


def save_rank_file(path: str | Path, splits: Mapping[str, SplitRanks]) -> Path:
    """Write ``splits`` to ``path`` (compressed ``.npz``, written to a temporary name and renamed)."""
    arrays: dict[str, np.ndarray] = {"format": np.array(_FORMAT)}
    for name, split in splits.items():
        doubled = np.rint(2.0 * split.ranks)
        if not np.array_equal(doubled, 2.0 * split.ranks) or doubled.max(initial=2) > np.iinfo(np.int32).max:
            raise InputError(f"split {name}: ranks must be halves of integers below 2^30 to be stored exactly")
        arrays[f"{name}/triples"] = split.triples.astype(np.int32)
        arrays[f"{name}/rank2"] = doubled.astype(np.int32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path = Path(path)
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(buffer.getvalue())
    os.replace(partial, path)  # never a half-written rank file under the final name
    return path


def load_rank_file(path: str | Path) -> dict[str, SplitRanks]:
    """Read a file written by :func:`save_rank_file`: ``{split: SplitRanks}``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable rank file ({err})") from err
    if str(arrays.get("format", "")) != _FORMAT:
        raise InputError(f"{path}: not a rank file of format {_FORMAT}")
    out: dict[str, SplitRanks] = {}
    for key in arrays:
        if key.endswith("/triples"):
            name = key.removesuffix("/triples")
            if f"{name}/rank2" not in arrays:
                raise InputError(f"{path}: split {name} has triples but no ranks")
            out[name] = SplitRanks(
                triples=arrays[key].astype(np.int64), ranks=arrays[f"{name}/rank2"].astype(np.float64) / 2.0
            )
    return out
