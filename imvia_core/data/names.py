"""Readable names decoded from vocabulary names, for graphs without a names table.

* URIs (``<http://dbpedia.org/resource/New_York>``, ``http://www.wikidata.org/entity/Q42``): the local name after the
  last ``/`` or ``#`` (after ``/resource/`` for DBpedia resources), percent-decoded.
* Underscores become spaces (``Gilles_Mbang_Ondo`` -> ``Gilles Mbang Ondo``).
* Relations written in camelCase are split into lower-case words (``wasBornIn`` -> ``was born in``,
  ``<http://dbpedia.org/ontology/influencedBy>`` -> ``influenced by``); all-capital runs stay as they are
  (``hasISBN`` -> ``has ISBN``).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["uri_local_name", "split_camel_case", "readable_entity_name", "readable_relation_name"]

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_URI_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_RESOURCE_MARKER = "/resource/"


def uri_local_name(name: str) -> str:
    """The part of a URI after its last ``/`` or ``#``, percent-decoded; other names are returned unchanged.

    ``<...>`` brackets are removed first. A URI ending in ``/`` keeps its last non-empty segment. For DBpedia
    resources everything after ``/resource/`` is kept (``<http://dbpedia.org/resource/AC/DC>`` -> ``AC/DC``).
    """
    text = name.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if not _URI_PREFIX.match(text):
        return text
    rest = _URI_PREFIX.sub("", text).rstrip("/#")
    if _RESOURCE_MARKER in rest:  # DBpedia resource names may themselves hold slashes (AC/DC, Face/Off)
        local = rest.split(_RESOURCE_MARKER, 1)[1]
    else:
        local = re.split(r"[/#]", rest)[-1] if rest else ""
    return unquote(local) if local else text


def split_camel_case(text: str) -> str:
    """Split a camelCase identifier into space-separated words, lower-casing words that are not acronyms.

    ``wasBornIn`` -> ``was born in``; ``seeAlso`` -> ``see also``; ``hasISBN`` -> ``has ISBN``. Text that already
    holds spaces is returned unchanged.
    """
    if " " in text or not text:
        return text
    words = _CAMEL_BOUNDARY.sub(" ", text).split(" ")
    return " ".join(word if word.isupper() and len(word) > 1 else word.lower() for word in words)


def readable_entity_name(name: str) -> str:
    """Readable form of an entity vocabulary name (URI local name, underscores as spaces)."""
    readable = uri_local_name(name).replace("_", " ").strip()
    return readable or name


def readable_relation_name(name: str) -> str:
    """Readable form of a relation vocabulary name (URI local name, underscores as spaces, camelCase split)."""
    local = uri_local_name(name)
    readable = " ".join(split_camel_case(part) for part in local.replace("_", " ").split())
    return readable or name
