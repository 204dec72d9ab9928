"""Readers for the plain-text dataset files, with errors that name the file and line.

Formats (shared by DB15K, MKG-W, MKG-Y and users' own graphs):

* ``entity2id.txt`` / ``relation2id.txt``: one ``name id`` pair per line; ids are the integers ``0..N-1``, each
  exactly once, in any order; names are unique.
* ``train.txt`` / ``valid.txt`` / ``test.txt``: one ``head relation tail .`` triple per line, by name.
* ``derived/*.tsv``: tab-separated tables with a header row and an ``id`` column.

Tolerated: a UTF-8 byte-order mark, Windows line ends (CRLF), blank lines, tabs or runs of spaces between fields,
and a triple line without its trailing ``.`` (``head relation tail``). Fields are separated by spaces and tabs only,
so a name may hold any other character (including other Unicode whitespace) but never a space or a tab.
Duplicate triples and the order of lines are kept exactly as published.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from imvia_core.errors import DataFormatError, InputError

__all__ = [
    "UnknownPolicy",
    "TripleFile",
    "NameTable",
    "iter_lines",
    "split_fields",
    "read_id_map",
    "read_triples",
    "read_name_table",
]

logger = logging.getLogger(__name__)

#: what to do with a triple whose head, relation or tail is not in the vocabulary.
UnknownPolicy = Literal["error", "drop"]

_FIELD_SEPARATOR = re.compile(r"[ \t]+")
_BOM = "\ufeff"


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for every non-blank line of ``path``.

    Line numbers are 1-based and count blank lines. A UTF-8 byte-order mark at the start, a trailing ``\\r`` and
    surrounding spaces and tabs are removed. Each line is decoded on its own, so an invalid UTF-8 byte is reported
    with its line.

    :raises InputError: when the file cannot be opened.
    :raises DataFormatError: when a line is not valid UTF-8.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from err
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFormatError(
                    path, number, f"bytes that are not UTF-8 ({raw[err.start : err.end]!r})", "UTF-8 text"
                ) from err
            if number == 1 and text.startswith(_BOM):
                text = text[1:]
            text = text.rstrip("\n").rstrip("\r").strip(" \t")
            if text:
                yield number, text


def split_fields(text: str) -> list[str]:
    """Split a stripped line on runs of spaces and tabs (not on other whitespace)."""
    return _FIELD_SEPARATOR.split(text)


def read_id_map(path: str | Path, *, kind: str = "entity") -> dict[str, int]:
    """Read a ``name id`` file (``entity2id.txt`` or ``relation2id.txt``).

    :param path: the file.
    :param kind: ``"entity"`` or ``"relation"``, used in messages.
    :return: name -> id, in file order; ids are exactly ``0..N-1``.
    :raises DataFormatError: on a line without exactly two fields, a non-integer or negative id, a duplicate name,
        a duplicate id, an id outside ``0..N-1`` (non-contiguous ids), or an empty file.
    """
    path = Path(path)
    mapping: dict[str, int] = {}
    name_line: dict[str, int] = {}
    id_line: dict[int, int] = {}
    for number, text in iter_lines(path):
        fields = split_fields(text)
        if len(fields) != 2:
            raise DataFormatError(
                path, number, f"{len(fields)} fields ({text!r})", f"2 fields '<{kind} name> <integer id>'"
            )
        name, raw_id = fields
        if not re.fullmatch(r"[0-9]+", raw_id):
            raise DataFormatError(path, number, f"id {raw_id!r}", "a non-negative integer id")
        index = int(raw_id)
        if name in name_line:
            raise DataFormatError(
                path, number, f"{kind} {name!r} again (first on line {name_line[name]})", f"each {kind} name once"
            )
        if index in id_line:
            raise DataFormatError(path, number, f"id {index} again (first on line {id_line[index]})", "each id once")
        mapping[name] = index
        name_line[name] = number
        id_line[index] = number
    if not mapping:
        raise DataFormatError(path, None, "no entries", f"at least one '<{kind} name> <id>' line")
    count = len(mapping)
    for index, number in sorted(id_line.items()):
        if index >= count:
            raise DataFormatError(
                path, number, f"id {index} in a file of {count} entries", f"contiguous ids 0..{count - 1}"
            )
    return mapping


@dataclass
class TripleFile:
    """Triples read from one split file.

    :param triples: shape ``(n, 3)`` long tensor of (head, relation, tail) ids, in file order, duplicates kept.
    :param num_dropped: lines dropped because a name was not in the vocabulary (``unknown="drop"``).
    :param dropped_lines: 1-based line numbers of the dropped lines.
    """

    triples: torch.Tensor
    num_dropped: int = 0
    dropped_lines: list[int] = field(default_factory=list)


def read_triples(
    path: str | Path,
    *,
    entity_to_id: Mapping[str, int],
    relation_to_id: Mapping[str, int],
    unknown: UnknownPolicy = "error",
) -> TripleFile:
    """Read a ``head relation tail .`` file and map names to ids.

    A line of three fields (no trailing ``.``) is accepted as the same triple.

    :param path: the file.
    :param entity_to_id: entity vocabulary.
    :param relation_to_id: relation vocabulary.
    :param unknown: ``"error"`` raises on a name missing from the vocabulary; ``"drop"`` skips that line and
        counts it in :attr:`TripleFile.num_dropped`.
    :raises DataFormatError: on a line that is not 3 names plus an optional ``.``, or an unknown name with
        ``unknown="error"``.
    """
    if unknown not in ("error", "drop"):
        raise ValueError(f"unknown must be 'error' or 'drop', got {unknown!r}")
    path = Path(path)
    rows: list[tuple[int, int, int]] = []
    dropped: list[int] = []
    expected_form = "'<head> <relation> <tail> .' (3 names separated by spaces or tabs, then an optional '.')"
    #: with unknown="error": the first line naming something outside the vocabulary, and how many lines do
    first_unknown: tuple[int, str, str] | None = None
    num_unknown = 0
    try:
        for number, text in iter_lines(path):
            fields = split_fields(text)
            if len(fields) == 4 and fields[3] == ".":
                fields = fields[:3]
            elif len(fields) != 3 or fields[2] == ".":
                if first_unknown is not None:  # reported after the earlier unknown name
                    continue
                raise DataFormatError(path, number, f"{len(fields)} fields ({text!r})", expected_form)
            head, relation, tail = fields
            h = entity_to_id.get(head)
            r = relation_to_id.get(relation)
            t = entity_to_id.get(tail)
            if h is None or r is None or t is None:
                if unknown == "drop":
                    dropped.append(number)
                    continue
                num_unknown += 1
                if first_unknown is None:
                    if r is None:
                        first_unknown = (
                            number,
                            f"relation {relation!r}",
                            "a relation listed in the relation vocabulary",
                        )
                    else:
                        role, missing = ("head", head) if h is None else ("tail", tail)
                        first_unknown = (
                            number,
                            f"{role} entity {missing!r}",
                            "an entity listed in the entity vocabulary",
                        )
                continue
            rows.append((h, r, t))
    except DataFormatError:
        if first_unknown is None:
            raise  # an undecodable line after an unknown name ends the count; the unknown name is reported
    if first_unknown is not None:  # the first such line is reported, with the count of all of them
        number, found, expected = first_unknown
        if num_unknown > 1:
            found += f" (the first of {num_unknown} lines with names outside the vocabulary)"
        raise DataFormatError(path, number, found, expected)
    if dropped:
        logger.warning(
            "%s: dropped %d of %d triples with names missing from the vocabulary (first on line %d)",
            path,
            len(dropped),
            len(dropped) + len(rows),
            dropped[0],
        )
    triples = torch.tensor(rows, dtype=torch.long) if rows else torch.empty((0, 3), dtype=torch.long)
    return TripleFile(triples=triples, num_dropped=len(dropped), dropped_lines=dropped)


@dataclass
class NameTable:
    """A tab-separated side-information table.

    :param path: the file.
    :param columns: header names.
    :param rows: id -> {column: value}; values are ``""`` where the table has none.
    :param lines: id -> 1-based line number of its row.
    """

    path: Path
    columns: list[str]
    rows: dict[int, dict[str, str]]
    lines: dict[int, int] = field(default_factory=dict)


def _unquote(value: str) -> str:
    """Undo spreadsheet-style quoting of one field, but only where a writer must have added it.

    A field is taken as quoted when it starts and ends with ``"``, every inner ``"`` is doubled, and it holds a
    doubled quote, a tab or a line break (the only reasons to quote a tab-separated field). Names that simply
    contain quotes (``"Heroes" (David Bowie song)``, ``"female illusionist"``) are kept as they are.
    """
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner = value[1:-1]
        if '"' not in inner.replace('""', "") and ('""' in inner or "\t" in inner):
            return inner.replace('""', '"')
    return value


def read_name_table(path: str | Path, *, required_columns: tuple[str, ...] = ("id",)) -> NameTable:
    """Read a ``derived/*.tsv`` table: a header row, then one row per id.

    :param path: the file.
    :param required_columns: columns the header must contain (``id`` always).
    :raises DataFormatError: on a missing column, a row with a different number of fields than the header, a
        non-integer or repeated id.
    """
    path = Path(path)
    lines = iter_lines(path)
    header_line = next(lines, None)
    if header_line is None:
        raise DataFormatError(
            path, None, "an empty file", "a header row with the columns " + ", ".join(required_columns)
        )
    header_number, header_text = header_line
    columns = header_text.split("\t")
    for column in ("id", *required_columns):
        if column not in columns:
            raise DataFormatError(path, header_number, f"columns {columns}", f"a column named {column!r}")
    id_position = columns.index("id")
    rows: dict[int, dict[str, str]] = {}
    row_line: dict[int, int] = {}
    for number, text in lines:
        values = text.split("\t")
        if len(values) < len(columns):  # trailing empty fields may have lost their tabs to stripping
            values += [""] * (len(columns) - len(values))
        if len(values) != len(columns):
            raise DataFormatError(
                path, number, f"{len(values)} tab-separated fields", f"{len(columns)} fields ({', '.join(columns)})"
            )
        raw_id = values[id_position].strip()
        if not re.fullmatch(r"[0-9]+", raw_id):
            raise DataFormatError(path, number, f"id {raw_id!r}", "a non-negative integer id")
        index = int(raw_id)
        if index in row_line:
            raise DataFormatError(path, number, f"id {index} again (first on line {row_line[index]})", "each id once")
        rows[index] = {column: _unquote(value.strip()) for column, value in zip(columns, values)}
        row_line[index] = number
    return NameTable(path=path, columns=columns, rows=rows, lines=row_line)
