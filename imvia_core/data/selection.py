"""Model-selection splits: a held-out part of ``train.txt`` in place of a published validation split, and overlaps.

DB15K's published ``valid.txt`` mostly repeats training triples and shares triples with ``test.txt``
(:func:`split_overlaps` counts them), so early stopping on it rewards memorisation and partly selects on the test
set. :func:`carve_selection_split` takes a deterministic, seeded share of the distinct training triples instead:

* a triple is held out only if every entity and the relation of it still occur in the remaining training triples
  (checked against the counts left after every earlier choice), so no held-out query asks about an untrained
  embedding;
* triples that also occur in the published valid or test split are never held out, so selection never sees a
  test triple;
* every copy of a held-out triple leaves training (``train.txt`` keeps duplicates as published);
* the published validation triples stay in the graph as :attr:`~imvia_core.data.graph.KnowledgeGraph.
  published_valid`: filtered like the other splits and still reported.

The filter set of the carved graph is the same as the original one (every triple it held is in one of the splits).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import torch

from imvia_core.data.graph import KnowledgeGraph
from imvia_core.errors import ConfigError

__all__ = ["SELECTION_SPLITS", "carve_selection_split", "selection_graph", "split_overlaps"]

#: values of ``TrainConfig.selection_split``: ``"published"`` selects on ``valid.txt``, ``"heldout"`` on a carved part
#: of ``train.txt``
SELECTION_SPLITS = ("published", "heldout")


def _triple_set(triples: torch.Tensor) -> set[tuple[int, int, int]]:
    return {tuple(row) for row in triples.tolist()}


def carve_selection_split(graph: KnowledgeGraph, *, fraction: float = 0.05, seed: int = 0) -> KnowledgeGraph:
    """A copy of ``graph`` whose ``valid`` is a held-out share of its distinct training triples.

    :param graph: the graph with its published split (``graph.published_valid`` must be unset).
    :param fraction: share of the distinct training triples to hold out, in ``(0, 0.5]``; fewer are held out when
        the coverage rule (module docstring) leaves too few candidates.
    :param seed: seed of the candidate order (a CPU generator: the same split on every machine).
    :return: a graph with ``train`` shape ``(n_train - removed lines, 3)`` in the published order, ``valid`` shape
        ``(k, 3)`` (the held-out triples, sorted), ``test`` unchanged, ``published_valid`` the published
        ``valid``, and ``extra["selection_split"]`` describing the carving.
    """
    if graph.published_valid is not None:
        raise ConfigError(f"{graph.name}: the selection split is already carved")
    if not 0 < fraction <= 0.5:
        raise ConfigError(f"selection_fraction must be in (0, 0.5], got {fraction}")
    train = graph.train.long().cpu()
    distinct = torch.unique(train, dim=0)  # sorted rows: the order does not depend on the file's order
    target = int(round(fraction * distinct.shape[0]))
    excluded = _triple_set(graph.valid) | _triple_set(graph.test)

    entity_count: Counter[int] = Counter()
    relation_count: Counter[int] = Counter()
    for h, r, t in distinct.tolist():
        entity_count[h] += 1
        entity_count[t] += 1
        relation_count[r] += 1

    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(distinct.shape[0], generator=generator).tolist()
    rows = distinct.tolist()
    chosen: list[int] = []
    for i in order:
        if len(chosen) >= target:
            break
        h, r, t = rows[i]
        if (h, r, t) in excluded:
            continue
        need = Counter((h, t))  # a self-loop counts twice for its entity
        if relation_count[r] <= 1 or any(entity_count[e] <= n for e, n in need.items()):
            continue
        chosen.append(i)
        relation_count[r] -= 1
        for e, n in need.items():
            entity_count[e] -= n

    held = distinct[sorted(chosen)] if chosen else distinct[:0]
    held_set = _triple_set(held)
    keep = torch.tensor([tuple(row) not in held_set for row in train.tolist()], dtype=torch.bool)
    info: dict[str, Any] = {
        "kind": "heldout",
        "fraction": fraction,
        "seed": int(seed),
        "distinct_train_triples": int(distinct.shape[0]),
        "heldout_triples": int(held.shape[0]),
        "train_lines_removed": int((~keep).sum()),
        "train_lines_kept": int(keep.sum()),
    }
    files = dict(graph.extra.get("split_files", {}))
    files["published_valid"] = files.get("valid") or f"{graph.name}: the published valid split"
    files["valid"] = f"{graph.name}: the held-out selection split of the training triples"
    return replace(
        graph,
        train=train[keep],
        valid=held,
        published_valid=graph.valid,
        extra={**graph.extra, "selection_split": info, "split_files": files},
    )


def selection_graph(graph: KnowledgeGraph, *, split: str, fraction: float = 0.05, seed: int = 0) -> KnowledgeGraph:
    """``graph`` itself for ``split="published"``, :func:`carve_selection_split` for ``split="heldout"``."""
    if split == "published":
        return graph
    if split == "heldout":
        return carve_selection_split(graph, fraction=fraction, seed=seed)
    raise ConfigError(f"selection_split must be one of {', '.join(SELECTION_SPLITS)}, got {split!r}")


def split_overlaps(graph: KnowledgeGraph) -> dict[str, int]:
    """How the published splits overlap, counted on distinct triples (and on valid lines).

    :return: ``valid_distinct``, ``valid_lines_in_train`` (lines of ``valid.txt`` that are training triples),
        ``valid_in_train``, ``valid_in_test``, ``test_distinct``, ``test_in_train`` (distinct triples).
    """
    valid = graph.published_valid if graph.published_valid is not None else graph.valid
    train, test = _triple_set(graph.train), _triple_set(graph.test)
    valid_rows = [tuple(row) for row in valid.tolist()]
    valid_set = set(valid_rows)
    return {
        "valid_distinct": len(valid_set),
        "valid_lines_in_train": sum(row in train for row in valid_rows),
        "valid_in_train": len(valid_set & train),
        "valid_in_test": len(valid_set & test),
        "test_distinct": len(test),
        "test_in_train": len(test & train),
    }
