"""Where the views of each entity come from: image folders or manifests, text tables, and the entity order.

Input formats (UTF-8; ``#`` does not start a comment; blank lines are ignored):

* images, a folder: one sub-folder per entity, named exactly as the entity; every regular file directly inside it
  (sorted by name, hidden files skipped) is one view. Files directly in the top folder are reported and skipped.
* images, a manifest: a tab-separated file of ``entity<TAB>path`` rows, several rows per entity allowed, an optional
  header ``entity<TAB>path``; relative paths are relative to the manifest's folder. Views keep the row order.
* texts: a tab-separated file of ``entity<TAB>text`` rows, several rows per entity allowed, an optional header
  ``entity<TAB>text``. Everything after the first tab is the text (tabs inside it are kept); surrounding white space
  is removed and an empty text is reported and skipped.

A row without a tab is a format error (the file is not what it should be); bad files and empty texts are not.

Entity order: the rows of the output are the entities in id order of the dataset's ``entity2id.txt`` (``--entities
FILE`` or ``--dataset NAME``), so that feature row ``i`` is entity id ``i``. Without either, the entities are those
named by the inputs, sorted by name. Views of entities outside the order are reported and skipped.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from imvia_core.data.parsing import read_id_map
from imvia_core.errors import DataFormatError, InputError

__all__ = [
    "ViewSource",
    "SkippedView",
    "read_image_sources",
    "read_text_sources",
    "entity_order_sha256",
    "entity_order_from_file",
    "entity_order_from_sources",
]


@dataclass(frozen=True)
class ViewSource:
    """One view to encode.

    :param entity: entity name.
    :param kind: ``"image"`` (``value`` is a file path) or ``"text"`` (``value`` is the text).
    :param value: the path or the text.
    :param where: where it was listed (``manifest.tsv:12``, ``images/Q42/``), for reports.
    """

    entity: str
    kind: str
    value: str
    where: str


@dataclass(frozen=True)
class SkippedView:
    """A view that was not encoded, and why."""

    entity: str
    source: str
    reason: str
    where: str

    def as_dict(self) -> dict[str, str]:
        return {"entity": self.entity, "source": self.source, "reason": self.reason, "where": self.where}


def entity_order_sha256(entity_names: list[str]) -> str:
    """SHA-256 of the entity names joined by ``\\n`` in id order: identifies which graph a feature file belongs to."""
    return hashlib.sha256("\n".join(entity_names).encode("utf-8")).hexdigest()


def _tsv_rows(path: Path, header: tuple[str, str]) -> list[tuple[int, str, str]]:
    """``(line, first field, rest)`` of every non-blank line; a header row equal to ``header`` is skipped."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from err
    rows: list[tuple[int, str, str]] = []
    first_content = True
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataFormatError(
                path, number, f"bytes that are not UTF-8 ({line[err.start : err.end]!r})", "UTF-8"
            ) from err
        if number == 1:
            text = text.removeprefix("\ufeff")
        text = text.rstrip("\r")
        if not text.strip():
            continue
        if "\t" not in text:
            raise DataFormatError(path, number, repr(text), f"'{header[0]}<TAB>{header[1]}'")
        first, rest = text.split("\t", 1)
        first = first.strip()
        is_header = first_content and (first.lower(), rest.strip().lower()) == header
        first_content = False
        if is_header:
            continue
        if not first:
            raise DataFormatError(
                path, number, repr(text), f"an entity name before the tab ('{header[0]}<TAB>{header[1]}')"
            )
        rows.append((number, first, rest))
    return rows


def read_image_sources(path: str | Path) -> tuple[list[ViewSource], list[SkippedView]]:
    """Image views listed by a folder of entity folders or by a manifest (see the module docstring).

    :return: the views in order, and files that are skipped before reading (outside any entity folder).
    :raises InputError: when ``path`` does not exist.
    :raises DataFormatError: on a manifest row without a tab or without an entity.
    """
    path = Path(path)
    if path.is_dir():
        sources: list[ViewSource] = []
        skipped: list[SkippedView] = []
        for child in sorted(path.iterdir(), key=lambda p: p.name):
            if child.name.startswith("."):
                continue
            if child.is_dir():
                for file in sorted(child.iterdir(), key=lambda p: p.name):
                    if file.name.startswith(".") or file.is_dir():
                        continue
                    sources.append(ViewSource(child.name, "image", str(file), f"{child}{os.sep}"))
            else:
                skipped.append(SkippedView("", str(child), "file outside an entity folder", str(path)))
        return sources, skipped
    if not path.is_file():
        raise InputError(f"image input {path} does not exist; expected a folder of entity folders or a TSV manifest")
    base = path.resolve().parent
    sources = []
    for number, entity, rest in _tsv_rows(path, ("entity", "path")):
        file = Path(rest.strip()).expanduser()
        sources.append(
            ViewSource(entity, "image", str(file if file.is_absolute() else base / file), f"{path}:{number}")
        )
    return sources, []


def read_text_sources(path: str | Path) -> list[ViewSource]:
    """Text views of an ``entity<TAB>text`` table (see the module docstring); empty texts are kept here and
    reported by the extraction.

    :raises InputError: when the file does not exist.
    :raises DataFormatError: on a row without a tab or without an entity.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"text input {path} does not exist; expected a TSV file of 'entity<TAB>text' rows")
    return [
        ViewSource(entity, "text", rest.strip(), f"{path}:{number}")
        for number, entity, rest in _tsv_rows(path, ("entity", "text"))
    ]


def entity_order_from_file(path: str | Path) -> list[str]:
    """Entity names in id order from an ``entity2id.txt`` file (``name id`` per line)."""
    mapping = read_id_map(path, kind="entity")
    names = [""] * len(mapping)
    for name, index in mapping.items():
        names[index] = name
    return names


def entity_order_from_sources(*source_lists: list[ViewSource]) -> list[str]:
    """The entities named by the inputs, sorted by name (used when no entity order is given)."""
    return sorted({source.entity for sources in source_lists for source in sources if source.entity})
