"""Load a dataset into a :class:`~imvia_core.data.graph.KnowledgeGraph`.

``load_graph("DB15K")`` loads ``<data dir>/DB15K`` (fetching and verifying it on first use);
``load_graph("path/to/folder")`` loads a user's own graph laid out the same way (``entity2id.txt``,
``relation2id.txt``, ``train.txt``, ``valid.txt``, ``test.txt``, optional ``derived/entity_names.tsv`` and
``derived/relation_names.tsv`` with ``id`` and ``name`` columns); ``load_graph("synthetic")`` builds the small
synthetic graph of :mod:`imvia_core.data.synthetic`.

Readable names: from the ``derived/`` tables when present (first non-empty name column per row), otherwise
decoded from the vocabulary names (:mod:`imvia_core.data.names`). MKG-W also gives short entity descriptions,
stored as ``graph.extra["entity_descriptions"]`` (one string per entity id, ``""`` where there is none).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from pathlib import Path

import torch

from imvia_core import paths
from imvia_core.data.fetch import dataset_status, fetch_dataset, file_status, resolve_mirror
from imvia_core.data.graph import KnowledgeGraph
from imvia_core.data.names import readable_entity_name, readable_relation_name, split_camel_case
from imvia_core.data.parsing import UnknownPolicy, read_id_map, read_name_table, read_triples
from imvia_core.data.registry import REQUIRED_FILES, SPLIT_FILES, NameColumns, get_dataset, is_known_dataset
from imvia_core.errors import ChecksumError, DataFormatError, InputError

__all__ = ["SYNTHETIC_NAME", "load_graph", "load_folder", "load_known_dataset"]

#: name that selects the synthetic graph.
SYNTHETIC_NAME = "synthetic"

#: names tables of a user's own folder: ``id`` and ``name`` columns, optional ``description``.
_USER_ENTITY_NAMES = NameColumns(
    "derived/entity_names.tsv", key_column=None, name_columns=("name",), description_column="description"
)
_USER_RELATION_NAMES = NameColumns("derived/relation_names.tsv", key_column=None, name_columns=("name",))


def _readable_names(
    root: Path, spec: NameColumns | None, vocabulary: dict[str, int], *, relation: bool
) -> tuple[list[str], list[str] | None, str]:
    """Readable names (and descriptions when the table has them) per id, and where the names came from."""
    decode = readable_relation_name if relation else readable_entity_name
    by_id = sorted(vocabulary, key=vocabulary.__getitem__)
    names = [decode(name) for name in by_id]
    table_path = root.joinpath(*spec.path.split("/")) if spec is not None else None
    if table_path is None or not table_path.is_file():
        return names, None, "decoded"
    required = tuple(c for c in (spec.key_column, *spec.name_columns) if c is not None)
    table = read_name_table(table_path, required_columns=required)
    descriptions: list[str] | None = None
    if spec.description_column is not None and spec.description_column in table.columns:
        descriptions = [""] * len(by_id)
    for index, row in table.rows.items():
        if index >= len(by_id):
            raise DataFormatError(
                table_path, table.lines[index], f"id {index}", f"ids 0..{len(by_id) - 1} of the vocabulary"
            )
        if spec.key_column is not None and row[spec.key_column] != by_id[index]:
            raise DataFormatError(
                table_path,
                table.lines[index],
                f"{spec.key_column} {row[spec.key_column]!r} for id {index}",
                f"{by_id[index]!r}, the name of id {index} in the vocabulary",
            )
        for column in spec.name_columns:
            value = row.get(column, "").strip()
            if value:
                names[index] = split_camel_case(value) if spec.split_camel_case else value
                break
        if descriptions is not None:
            descriptions[index] = row.get(spec.description_column, "").strip()
    return names, descriptions, "derived"


def _build_graph(
    name: str,
    root: Path,
    *,
    entity_names: NameColumns | None,
    relation_names: NameColumns | None,
    unknown: UnknownPolicy,
    include_test: bool = True,
) -> KnowledgeGraph:
    entity_to_id = read_id_map(root / "entity2id.txt", kind="entity")
    relation_to_id = read_id_map(root / "relation2id.txt", kind="relation")
    splits = {"test": torch.zeros(0, 3, dtype=torch.long)}
    dropped = {"test": 0}
    for file_name in SPLIT_FILES:
        split = file_name.removesuffix(".txt")
        if split == "test" and not include_test:
            continue
        policy: UnknownPolicy = "error" if split == "train" else unknown
        result = read_triples(
            root / file_name, entity_to_id=entity_to_id, relation_to_id=relation_to_id, unknown=policy
        )
        splits[split] = result.triples
        dropped[split] = result.num_dropped
    entity_readable, descriptions, entity_source = _readable_names(root, entity_names, entity_to_id, relation=False)
    relation_readable, _, relation_source = _readable_names(root, relation_names, relation_to_id, relation=True)
    extra: dict = {
        "source_dir": str(root),
        "name_source": {"entities": entity_source, "relations": relation_source},
        "dropped_triples": dropped,
        "split_files": {f.removesuffix(".txt"): str(root / f) for f in SPLIT_FILES},
    }
    if not include_test:
        extra["test_split"] = "not loaded"
    if descriptions is not None:
        extra["entity_descriptions"] = descriptions
    return KnowledgeGraph(
        name=name,
        entity_to_id=entity_to_id,
        relation_to_id=relation_to_id,
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        entity_names=entity_readable,
        relation_names=relation_readable,
        extra=extra,
    )


def load_known_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    mirror: str | os.PathLike | None = None,
    fetch: bool = True,
    unknown: UnknownPolicy = "error",
    progress: bool = True,
    include_test: bool = True,
) -> KnowledgeGraph:
    """Load DB15K, MKG-W or MKG-Y from ``<data_dir>/<NAME>``, fetching missing files first when ``fetch``.

    Every file present is checked against its SHA-256 before it is read (``test.txt`` only with
    ``include_test``: without it the file is neither hashed nor read).

    :raises InputError: a required file is missing and ``fetch`` is false.
    :raises ChecksumError: a file differs from the published one.
    """
    info = get_dataset(name)
    base = Path(data_dir) if data_dir is not None else paths.data_dir()
    root = base / info.name
    skip = () if include_test else ("test.txt",)
    statuses = file_status(info, root=root, skip=skip)
    lacking = [s for s in statuses if s.state != "ok"]
    # optional files (derived/ names) only come from a mirror: look for one only when that is all that is lacking
    if fetch and lacking and (any(s.file.required for s in lacking) or resolve_mirror(mirror) is not None):
        fetch_dataset(info.name, dest_root=base, mirror=mirror, progress=progress)
        statuses = file_status(info, root=root, skip=skip)
    for status in statuses:
        if status.state == "corrupt":
            raise ChecksumError(
                f"{status.path}: SHA-256 differs from the published {status.file.sha256}; delete it and run "
                f"'imvia data fetch {info.name}'"
            )
        if status.state == "missing" and status.file.required:
            raise InputError(
                f"{status.path} is missing; run 'imvia data fetch {info.name}' (status: "
                f"{dataset_status(info.name, data_dir=base)})"
            )
    return _build_graph(
        info.name,
        root,
        entity_names=info.entity_names,
        relation_names=info.relation_names,
        unknown=unknown,
        include_test=include_test,
    )


def load_folder(
    folder: str | Path, *, unknown: UnknownPolicy = "error", name: str | None = None, include_test: bool = True
) -> KnowledgeGraph:
    """Load a user's own graph from ``folder`` (same layout as the benchmark datasets).

    :param folder: holds ``entity2id.txt``, ``relation2id.txt``, ``train.txt``, ``valid.txt``, ``test.txt`` and
        optionally ``derived/entity_names.tsv`` / ``derived/relation_names.tsv`` (columns ``id``, ``name``, and
        ``description`` for entities).
    :param unknown: policy for valid/test triples whose names are not in the vocabulary (train always errors).
    :param name: graph name; default the folder name.

    A folder named like a known dataset (``DB15K``, ``MKG-W``, ``MKG-Y``) reads its ``derived/`` tables with that
    dataset's columns; its files are not checked against the published checksums.
    :raises InputError: when the folder or one of its required files is missing.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; expected a dataset folder holding {', '.join(REQUIRED_FILES)}")
    missing = [f for f in REQUIRED_FILES if not (root / f).is_file() and (include_test or f != "test.txt")]
    if missing:
        raise InputError(f"{root} lacks {', '.join(missing)}; a dataset folder holds {', '.join(REQUIRED_FILES)}")
    folder_name = root.resolve().name
    entity_spec, relation_spec = _USER_ENTITY_NAMES, _USER_RELATION_NAMES
    if is_known_dataset(folder_name):  # a copy of a known dataset: its names tables have that dataset's columns
        info = get_dataset(folder_name)
        entity_spec, relation_spec = info.entity_names, info.relation_names
    return _build_graph(
        name or folder_name,
        root,
        entity_names=entity_spec,
        relation_names=relation_spec,
        unknown=unknown,
        include_test=include_test,
    )


def _load_synthetic() -> KnowledgeGraph:
    try:
        module = importlib.import_module("imvia_core.data.synthetic")
    except ModuleNotFoundError as err:
        if err.name != "imvia_core.data.synthetic":
            raise
        module = None
    loader = getattr(module, "load_synthetic_graph", None)
    if loader is None:
        raise InputError("the synthetic graph is not available in this installation (imvia_core.data.synthetic)")
    return loader()


def load_graph(
    name_or_path: str | os.PathLike,
    *,
    data_dir: str | Path | None = None,
    mirror: str | os.PathLike | None = None,
    fetch: bool = True,
    unknown: UnknownPolicy = "error",
    progress: bool = True,
    include_test: bool = True,
) -> KnowledgeGraph:
    """Load a known dataset by name, the synthetic graph, or a user's own dataset folder.

    :param name_or_path: ``DB15K``, ``MKG-W``, ``MKG-Y`` (case-insensitive), ``synthetic``, or a folder path.
        A :class:`~pathlib.Path` or a string with a path separator is always taken as a folder.
    :param data_dir: where known datasets live; default ``data/`` of the checkout or ``$IMVIA_DATA_DIR``.
    :param mirror: folder or base URL to fetch known datasets from (default ``$IMVIA_DATA_MIRROR``, else the public
        source).
    :param fetch: download a known dataset's missing files (otherwise a missing file is an error).
    :param unknown: ``"error"`` or ``"drop"`` for valid/test triples with names outside the vocabulary; dropped
        counts are in ``graph.extra["dropped_triples"]``. Unknown names in train are always an error.
    :param progress: show download progress.
    :param include_test: ``False``: the test split is not read at all (``test.txt`` is neither hashed nor
        parsed, and need not exist in a folder); ``graph.test`` is empty, so the filter index holds the train and
        valid triples only. Hyperparameter sweeps load graphs this way.
    :raises InputError: for a name that is neither a known dataset nor an existing folder.
    """
    text = os.fspath(name_or_path)
    looks_like_path = isinstance(name_or_path, os.PathLike) or os.sep in text or "/" in text
    if not looks_like_path:
        if text.strip().casefold() == SYNTHETIC_NAME:
            graph = _load_synthetic()
            if include_test:
                return graph
            return dataclasses.replace(
                graph, test=torch.zeros(0, 3, dtype=torch.long), extra={**graph.extra, "test_split": "not loaded"}
            )
        if is_known_dataset(text):
            return load_known_dataset(
                text,
                data_dir=data_dir,
                mirror=mirror,
                fetch=fetch,
                unknown=unknown,
                progress=progress,
                include_test=include_test,
            )
    if looks_like_path or Path(text).expanduser().is_dir():
        return load_folder(text, unknown=unknown, include_test=include_test)
    raise InputError(
        f"{text!r} is neither a known dataset (DB15K, MKG-W, MKG-Y, {SYNTHETIC_NAME}) nor an existing folder"
    )
