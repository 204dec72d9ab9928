"""``imvia data``: fetch the benchmark datasets, list them, print their statistics."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from imvia_core import paths
from imvia_core.data.fetch import MIRROR_ENV, dataset_status, fetch_dataset
from imvia_core.data.loading import load_graph
from imvia_core.data.registry import DATASETS, PUBLIC_COMMIT, PUBLIC_REPOSITORY, get_dataset
from imvia_core.data.selection import carve_selection_split, split_overlaps

__all__ = ["register", "format_table"]

_MIRROR_HELP = (
    "folder or base URL (http://, https://, file://) laid out as <NAME>/<FILE> to download from instead of the "
    f"public source; default: ${MIRROR_ENV} when set"
)
_DATA_DIR_HELP = "data directory holding <NAME>/ folders (default: data/ of the checkout, or $IMVIA_DATA_DIR)"
_STAT_COLUMNS = ("entities", "relations", "train", "valid", "test")


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Align columns: numeric columns (digits and ``/``) right-aligned, the others left-aligned."""
    table = [[str(v) for v in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    numeric = [bool(rows) and all(re.fullmatch(r"[0-9/.,]+", row[i]) for row in table[1:]) for i in range(len(header))]

    def line(values: list[str]) -> str:
        cells = [v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]) for i, v in enumerate(values)]
        return "  ".join(cells).rstrip()

    return "\n".join(line(row) for row in table)


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).expanduser() if args.data_dir else paths.data_dir()


def _cmd_fetch(args: argparse.Namespace) -> int:
    infos = [get_dataset(name) for name in args.names]  # validate every name before downloading anything
    for info in infos:
        root = fetch_dataset(info.name, dest_root=_data_dir(args), mirror=args.mirror, retries=args.retries)
        print(f"{info.name}: {dataset_status(info.name, data_dir=_data_dir(args))} in {root}")
    return 0


_OVERLAP_COLUMNS = {
    "valid_distinct": "valid distinct",
    "valid_lines_in_train": "valid lines in train",
    "valid_in_train": "valid in train",
    "valid_in_test": "valid in test",
    "test_distinct": "test distinct",
    "test_in_train": "test in train",
    "heldout": "held out (5%)",
    "kept": "train lines kept",
}


def _cmd_stats(args: argparse.Namespace) -> int:
    rows, overlaps = [], []
    warnings: list[str] = []
    for name in args.datasets:
        graph = load_graph(name, data_dir=_data_dir(args), mirror=args.mirror, fetch=not args.no_fetch)
        stats = graph.statistics()
        rows.append([graph.name, *(str(stats[c]) for c in _STAT_COLUMNS)])
        warnings += [f"warning: {graph.split_source(split)}: no triples" for split in graph.empty_splits()]
        if args.overlaps:
            counts = split_overlaps(graph)
            carved = carve_selection_split(graph).extra["selection_split"]
            counts.update(heldout=carved["heldout_triples"], kept=carved["train_lines_kept"])
            overlaps.append([graph.name, *(str(counts[c]) for c in _OVERLAP_COLUMNS)])
    print(format_table(["dataset", *_STAT_COLUMNS], rows))
    if args.overlaps:
        print(
            "\noverlaps between the published splits (distinct triples, except 'valid lines in train'), and the "
            "held-out selection split (--selection-split heldout, default fraction and seed):"
        )
        print(format_table(["dataset", *_OVERLAP_COLUMNS.values()], overlaps))
    for line in warnings:
        print(line, file=sys.stderr)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    rows = []
    for info in DATASETS.values():
        expected = info.expected_statistics
        rows.append(
            [
                info.name,
                dataset_status(info.name, data_dir=data_dir),
                str(expected["entities"]),
                str(expected["relations"]),
                f"{expected['train']}/{expected['valid']}/{expected['test']}",
                info.description,
            ]
        )
    print(format_table(["dataset", "local", "entities", "relations", "train/valid/test", "content"], rows))
    print(f"\ndata directory: {data_dir}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``imvia data {fetch,stats,list}``."""
    data = subparsers.add_parser(
        "data",
        help="fetch and inspect the benchmark datasets (DB15K, MKG-W, MKG-Y) or your own graph",
        description=(
            "Fetch and inspect datasets. Known datasets (DB15K, MKG-W, MKG-Y) are downloaded from the GitHub "
            f"repository {PUBLIC_REPOSITORY} at commit {PUBLIC_COMMIT[:12]} and verified with pinned SHA-256 sums. "
            f"A mirror (--mirror or ${MIRROR_ENV}) is a folder or base URL laid out as <NAME>/<FILE>; it also "
            "provides the derived/ name tables, which have no public source."
        ),
    )
    data.set_defaults(func=lambda args: data.print_help() or 2)
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    fetch = sub.add_parser(
        "fetch",
        help="download a dataset into the data directory and verify it",
        description=(
            "Download every file of a known dataset into <data dir>/<NAME>/ and check its SHA-256. Files already "
            "present with the right checksum are skipped; a file that fails its checksum is never left in place. "
            f"Without --mirror, ${MIRROR_ENV} is used when set, else the public source."
        ),
    )
    fetch.add_argument("names", nargs="+", metavar="NAME", help=f"dataset name: {', '.join(DATASETS)}")
    fetch.add_argument("--mirror", metavar="DIR_OR_URL", default=None, help=_MIRROR_HELP)
    fetch.add_argument("--data-dir", metavar="DIR", default=None, help=_DATA_DIR_HELP)
    fetch.add_argument("--retries", type=int, default=3, help="attempts per file (default: 3)")
    fetch.set_defaults(func=_cmd_fetch)

    stats = sub.add_parser(
        "stats",
        help="print entity, relation and triple counts",
        description=(
            "Load datasets and print the number of entities, relations and train/valid/test lines (duplicates "
            "counted as published). A known name is fetched on first use; any other argument is a folder holding "
            "entity2id.txt, relation2id.txt, train.txt, valid.txt and test.txt."
        ),
    )
    stats.add_argument("datasets", nargs="+", metavar="NAME_OR_FOLDER", help="known dataset name or dataset folder")
    stats.add_argument("--mirror", metavar="DIR_OR_URL", default=None, help=_MIRROR_HELP)
    stats.add_argument("--data-dir", metavar="DIR", default=None, help=_DATA_DIR_HELP)
    stats.add_argument("--no-fetch", action="store_true", help="do not download; fail if a file is missing")
    stats.add_argument(
        "--overlaps",
        action="store_true",
        help="also count the triples the published splits share (distinct valid triples, how many of them are in "
        "train and in test, test triples in train) and the size of the held-out selection split",
    )
    stats.set_defaults(func=_cmd_stats)

    listing = sub.add_parser(
        "list",
        help="list the known datasets and whether they are present locally",
        description=(
            "List the known datasets with their published counts and local state: complete (all files "
            "verified), ready (required files verified, derived/ name tables missing), incomplete or absent."
        ),
    )
    listing.add_argument("--data-dir", metavar="DIR", default=None, help=_DATA_DIR_HELP)
    listing.set_defaults(func=_cmd_list)
