"""Text views of the benchmark datasets built from what is available offline: entity names and descriptions.

The images and the text features of DB15K, MKG-W and MKG-Y are not redistributable, but every entity has a readable
name (decoded from its URI, or from the ``derived/entity_names.tsv`` tables) and about a fifth of the MKG-W entities
have a short Wikidata description. Each entity gets one text view from its name and, when asked and present, a
second from its description; these go through the same text encoders and the same extraction as any user's texts
(``imvia features text-from-names``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from imvia_core.data.graph import KnowledgeGraph
from imvia_core.data.names import readable_entity_name
from imvia_core.features.inputs import ViewSource

__all__ = ["vocabulary_in_id_order", "entity_descriptions", "name_text_sources"]


def vocabulary_in_id_order(graph: KnowledgeGraph) -> list[str]:
    """Entity vocabulary names (as in ``entity2id.txt``) in id order: the row order of feature files."""
    names = [""] * graph.num_entities
    for name, index in graph.entity_to_id.items():
        names[index] = name
    return names


def _readable_names(graph: KnowledgeGraph, vocabulary: list[str]) -> list[str]:
    given = graph.entity_names or []
    return [
        (given[i].strip() if i < len(given) and given[i] and given[i].strip() else readable_entity_name(name))
        for i, name in enumerate(vocabulary)
    ]


def entity_descriptions(graph: KnowledgeGraph, vocabulary: list[str] | None = None) -> list[str]:
    """Description per entity id (``""`` where there is none), from ``graph.extra["entity_descriptions"]``.

    Accepts a sequence indexed by id, or a mapping keyed by id or by vocabulary name.
    """
    vocabulary = vocabulary or vocabulary_in_id_order(graph)
    raw = graph.extra.get("entity_descriptions")
    out = [""] * len(vocabulary)
    if raw is None:
        return out
    if isinstance(raw, Mapping):
        for i, name in enumerate(vocabulary):
            value = raw.get(i, raw.get(name))
            out[i] = str(value).strip() if value else ""
    elif isinstance(raw, Sequence) and not isinstance(raw, str):
        for i, value in enumerate(raw[: len(vocabulary)]):
            out[i] = str(value).strip() if value else ""
    return out


def name_text_sources(graph: KnowledgeGraph, *, descriptions: bool = True) -> list[ViewSource]:
    """One text view per entity from its readable name, plus one from its description when ``descriptions`` and
    the dataset has one for it (MKG-W). Entities are named by their vocabulary names, in id order."""
    vocabulary = vocabulary_in_id_order(graph)
    readable = _readable_names(graph, vocabulary)
    described = entity_descriptions(graph, vocabulary) if descriptions else [""] * len(vocabulary)
    sources: list[ViewSource] = []
    for i, (name, text, description) in enumerate(zip(vocabulary, readable, described)):
        sources.append(ViewSource(name, "text", text, f"{graph.name}: name of entity {i}"))
        if description:
            sources.append(ViewSource(name, "text", description, f"{graph.name}: description of entity {i}"))
    return sources
