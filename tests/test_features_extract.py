"""End-to-end multi-view extraction with a randomly initialised TinyCLIP on generated images and texts."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("open_clip")

from imvia_core.cli import main  # noqa: E402
from imvia_core.errors import DataFormatError, InputError  # noqa: E402
from imvia_core.features.clip_model import RandomWeightsWarning, load_clip  # noqa: E402
from imvia_core.features.extract import extract_image_views, extract_text_views, write_extraction  # noqa: E402
from imvia_core.features.image_encoder import OpenClipImageEncoder, read_image  # noqa: E402
from imvia_core.features.inputs import (  # noqa: E402
    entity_order_from_file,
    entity_order_sha256,
    read_image_sources,
    read_text_sources,
)
from imvia_core.features.io import load_features, manifest_path  # noqa: E402
from imvia_core.features.text_encoders import OpenClipTextEncoder  # noqa: E402

torch.set_num_threads(2)

#: entity order of the toy graph (deliberately not sorted)
ORDER = ["Q5", "Q3", "Q1", "Q4", "Q2"]
#: good images per entity folder
GOOD = {"Q1": 2, "Q2": 1, "Q3": 3}


def _png(path, seed: int, size=(24, 32)) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("views")
    images = root / "images"
    seed = 0
    for entity, count in GOOD.items():
        (images / entity).mkdir(parents=True)
        for k in range(count):
            _png(images / entity / f"{k}.png", seed)
            seed += 1
    (images / "Q2" / "broken.png").write_bytes(np.random.default_rng(9).bytes(300))  # random bytes, .png name
    (images / "Q3" / "readme.txt").write_text("not an image\n")
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(buffer, format="PNG")
    (images / "Q4").mkdir()
    (images / "Q4" / "truncated.png").write_bytes(buffer.getvalue()[:60])  # valid header, cut short
    (images / "stray.png").write_bytes(b"")  # outside any entity folder
    texts = root / "texts.tsv"
    texts.write_text(
        "entity\ttext\nQ1\tfirst entity\nQ3\ta third one\nQ1\tanother view of\tQ1\nQ2\t   \nQ9\tunknown entity\n",
        encoding="utf-8",
    )
    entities = root / "entity2id.txt"
    entities.write_text("".join(f"{name} {i}\n" for i, name in enumerate(ORDER)))
    return root


@pytest.fixture(scope="module")
def clip():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return load_clip("TinyCLIP-ViT-8M-16-Text-3M", seed=0)


@pytest.fixture(scope="module")
def image_run(data, clip):
    sources, pre_skipped = read_image_sources(data / "images")
    result = extract_image_views(
        sources,
        encoder=OpenClipImageEncoder(clip),
        entity_names=ORDER,
        batch_size=2,
        chunk_size=3,
        cache_dir=data / "cache-full",
        progress=False,
        pre_skipped=pre_skipped,
    )
    return sources, pre_skipped, result


def test_image_views_shapes_masks_and_order(data, clip, image_run) -> None:
    _, _, result = image_run
    features = result.features
    assert features.modality == "visual"
    assert features.views.shape == (5, 3, 512) and features.mask.shape == (5, 3)
    counts = dict(zip(ORDER, features.view_counts.tolist()))
    assert counts == {"Q5": 0, "Q3": 3, "Q1": 2, "Q4": 0, "Q2": 1}
    assert (features.views[~features.mask] == 0).all()
    assert torch.allclose(features.views[features.mask].norm(dim=-1), torch.ones(6), atol=1e-5)
    assert result.entity_names == ORDER
    assert features.metadata["entity_order_sha256"] == entity_order_sha256(ORDER)
    assert features.metadata["weights"] == "random" and features.metadata["random_init"] is True

    # row Q3 holds Q3's images in file-name order, each equal to encoding that file directly
    encoder = OpenClipImageEncoder(clip)
    row = ORDER.index("Q3")
    images = [read_image(data / "images" / "Q3" / f"{k}.png") for k in range(3)]
    assert all(reason is None for _, reason in images)
    direct = encoder.encode_pixels(torch.stack([encoder.preprocess(image) for image, _ in images]))
    assert torch.allclose(features.views[row], direct, atol=1e-5)
    assert not torch.allclose(features.views[row, 0], features.views[row, 1])


def test_bad_image_files_are_skipped_and_listed(data, image_run) -> None:
    _, pre_skipped, result = image_run
    reasons = {item.source.rsplit("/", 1)[-1]: item.reason for item in result.skipped}
    assert set(reasons) == {"broken.png", "readme.txt", "truncated.png", "stray.png"}
    assert reasons["broken.png"].startswith("not an image file")
    assert reasons["readme.txt"].startswith("not an image file")
    assert reasons["truncated.png"].startswith("corrupt image")
    assert reasons["stray.png"] == "file outside an entity folder"
    assert result.num_inputs == 6 + 4 and result.num_encoded == 6
    assert not result.features.mask[ORDER.index("Q4")].any(), "an entity with only a corrupt file has no view"

    out = data / "out" / "feat.visual.safetensors"
    manifest_file = write_extraction(result, out, extra={"inputs": "images"})
    manifest = json.loads(manifest_file.read_text())
    assert manifest_file == manifest_path(out)
    assert manifest["skipped_count"] == 4 and len(manifest["skipped"]) == 4
    assert manifest["skipped_by_reason"]["not an image file (format not recognised)"] == 2
    assert manifest["num_views"] == 6 and manifest["entities_without_views"] == 2
    assert manifest["views_per_entity"] == {"0": 2, "1": 1, "2": 1, "3": 1}
    assert manifest["weights"] == "random" and manifest["random_init"] is True
    assert manifest["entities"] == ORDER and manifest["inputs"] == "images"
    loaded = load_features(out, entity_names=ORDER, modality="visual", expected_dim=512)
    assert torch.equal(loaded.views, result.features.views) and torch.equal(loaded.mask, result.features.mask)


def test_worker_processes_give_the_same_views(data, clip, image_run) -> None:
    sources, _, full = image_run
    subset = [source for source in sources if source.entity in ("Q1", "Q2")]
    result = extract_image_views(
        subset, encoder=OpenClipImageEncoder(clip), entity_names=ORDER, batch_size=2, workers=2, progress=False
    )
    for entity in ("Q1", "Q2"):
        row = ORDER.index(entity)
        assert torch.equal(result.features.mask[row], full.features.mask[row, : result.features.max_views])
        assert torch.allclose(
            result.features.views[row], full.features.views[row, : result.features.max_views], atol=1e-5
        )
    assert [item.reason for item in result.skipped] == ["not an image file (format not recognised)"]


class _Stop(RuntimeError):
    pass


def test_interrupted_image_run_resumes_to_the_same_output(data, clip, image_run) -> None:
    sources, pre_skipped, full = image_run
    assert full.chunks_total == 3 and full.chunks_from_cache == 0
    assert not (data / "cache-full").exists(), "the cache is removed after a successful run"
    cache = data / "cache-resume"
    encoder = OpenClipImageEncoder(clip)
    kwargs = dict(encoder=encoder, entity_names=ORDER, batch_size=2, chunk_size=3, cache_dir=cache, progress=False)

    def stop_after_two(index: int, total: int) -> None:
        if index == 1:
            raise _Stop("simulated interruption")

    with pytest.raises(_Stop):
        extract_image_views(sources, on_chunk_done=stop_after_two, pre_skipped=pre_skipped, **kwargs)
    assert len(list(cache.glob("visual-*.safetensors"))) == 2

    encoded: list[int] = []
    resumed = extract_image_views(
        sources, on_chunk_done=lambda i, n: encoded.append(i), pre_skipped=pre_skipped, **kwargs
    )
    assert encoded == [2] and resumed.chunks_from_cache == 2
    assert torch.equal(resumed.features.views, full.features.views)
    assert torch.equal(resumed.features.mask, full.features.mask)
    assert [s.as_dict() for s in resumed.skipped] == [s.as_dict() for s in full.skipped]
    assert not cache.exists()


def test_text_views_and_resume(data, clip) -> None:
    sources = read_text_sources(data / "texts.tsv")
    assert [s.value for s in sources][:3] == ["first entity", "a third one", "another view of\tQ1"]
    encoder = OpenClipTextEncoder(clip)
    kwargs = dict(encoder=encoder, entity_names=ORDER, batch_size=1, chunk_size=1, progress=False)
    full = extract_text_views(sources, **kwargs)
    features = full.features
    assert features.modality == "text" and features.views.shape == (5, 2, 512)
    assert dict(zip(ORDER, features.view_counts.tolist())) == {"Q5": 0, "Q3": 1, "Q1": 2, "Q4": 0, "Q2": 0}
    direct = encoder.encode(["first entity", "another view of\tQ1"])
    assert torch.allclose(features.views[ORDER.index("Q1")], direct, atol=1e-5)
    assert sorted(item.reason for item in full.skipped) == ["empty text", "entity not in the entity order"]

    capped = extract_text_views(sources, max_views=1, **kwargs)
    assert capped.features.views.shape == (5, 1, 512) and capped.dropped_over_max_views == 1
    assert torch.equal(capped.features.views[:, 0], features.views[:, 0])

    def stop(index: int, total: int) -> None:
        if index == 1:
            raise _Stop

    with pytest.raises(_Stop):
        extract_text_views(sources, cache_dir=data / "text-cache", on_chunk_done=stop, **kwargs)
    resumed = extract_text_views(sources, cache_dir=data / "text-cache", **kwargs)
    assert resumed.chunks_from_cache == 2 and torch.equal(resumed.features.views, features.views)


def test_inputs_that_match_no_entity_or_are_malformed_fail_clearly(data, clip, tmp_path) -> None:
    sources = read_text_sources(data / "texts.tsv")
    with pytest.raises(InputError, match="none of the 5 text inputs names an entity"):
        extract_text_views(sources, encoder=OpenClipTextEncoder(clip), entity_names=["X", "Y"], progress=False)
    bad = tmp_path / "bad.tsv"
    bad.write_text("Q1\tfine\nQ2 no tab here\n")
    with pytest.raises(DataFormatError, match=r"bad.tsv:2: found 'Q2 no tab here'"):
        read_text_sources(bad)
    with pytest.raises(InputError, match="does not exist"):
        read_image_sources(tmp_path / "nowhere")


def test_extract_command_end_to_end(data, tmp_path, capsys) -> None:
    rows = [("Q3", "../images/Q3/0.png"), ("Q1", str(data / "images" / "Q1" / "1.png")), ("Q3", "missing.png")]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "images.tsv").write_text("entity\tpath\n" + "".join(f"{e}\t{p}\n" for e, p in rows))
    (tmp_path / "images").symlink_to(data / "images")
    out = tmp_path / "out" / "toy.safetensors"
    args = ["features", "extract", "--images", str(tmp_path / "sub" / "images.tsv"), "--texts", str(data / "texts.tsv")]
    args += ["--entities", str(data / "entity2id.txt"), "--out", str(out), "--batch-size", "2", "--quiet"]
    assert main([*args, "--threads", "2"]) == 0
    captured = capsys.readouterr()
    assert "RANDOM" in captured.err
    order = entity_order_from_file(data / "entity2id.txt")
    assert order == ORDER
    visual = load_features(tmp_path / "out" / "toy.visual.safetensors", entity_names=order)
    text = load_features(tmp_path / "out" / "toy.text.safetensors", entity_names=ORDER, modality="text")
    assert visual.views.shape == (5, 1, 512) and text.views.shape == (5, 2, 512)
    assert visual.view_counts.tolist() == [0, 1, 1, 0, 0]
    visual_manifest = json.loads(manifest_path(tmp_path / "out" / "toy.visual.safetensors").read_text())
    assert visual_manifest["skipped"][0]["reason"] == "file not found"
    assert visual_manifest["skipped"][0]["where"].endswith("images.tsv:4")
    assert visual_manifest["entity_order"].startswith("entity2id file")
    assert not (tmp_path / "out" / "toy.safetensors.cache").exists()
    assert "wrote" in captured.out and "toy.text.safetensors" in captured.out
