"""Feature files: imvia-views/1 safetensors, MoMoK/IMVIA single-vector files, converters and validation."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from imvia_core.cli import main
from imvia_core.errors import DataFormatError, InputError
from imvia_core.features.inputs import entity_order_sha256
from imvia_core.features.io import (
    FORMAT,
    load_features,
    read_file_metadata,
    save_momok_features,
    save_view_features,
    single_to_views,
    views_to_single,
)
from imvia_core.types import ModalityFeatures

NAMES = ["<http://dbpedia.org/resource/A>", "<http://dbpedia.org/resource/B>", "<http://dbpedia.org/resource/C>"]


def _features(modality: str = "visual") -> ModalityFeatures:
    generator = torch.Generator().manual_seed(0)
    views = torch.randn(3, 4, 6, generator=generator)
    mask = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    views = views * mask.unsqueeze(-1)
    return ModalityFeatures(
        views=views, mask=mask, modality=modality, metadata={"encoder": "test", "weights": "random"}
    )


def test_views_round_trip_with_metadata(tmp_path) -> None:
    path = tmp_path / "f.safetensors"
    save_view_features(path, _features(), entity_names=NAMES, metadata={"seed": 3})
    meta = read_file_metadata(path)
    assert meta["format"] == FORMAT and meta["modality"] == "visual"
    assert meta["num_entities"] == "3" and meta["dim"] == "6" and meta["max_views"] == "4"
    assert meta["entity_order_sha256"] == entity_order_sha256(NAMES)
    assert meta["encoder"] == "test" and meta["weights"] == "random" and meta["seed"] == "3"
    assert "created" in meta
    loaded = load_features(path, entity_names=NAMES, modality="visual", expected_dim=6)
    assert torch.equal(loaded.views, _features().views)
    assert torch.equal(loaded.mask, _features().mask)
    assert loaded.mask.dtype == torch.bool and loaded.views.dtype == torch.float32
    assert loaded.view_counts.tolist() == [3, 0, 1]
    assert loaded.metadata["source"] == str(path)
    assert not list(tmp_path.glob("*.tmp")), "atomic write leaves no temporary file"


def test_float16_storage_halves_the_file(tmp_path) -> None:
    big = ModalityFeatures(views=torch.randn(50, 2, 64), mask=torch.ones(50, 2, dtype=torch.bool), modality="text")
    save_view_features(tmp_path / "a.safetensors", big)
    save_view_features(tmp_path / "b.safetensors", big, dtype=torch.float16)
    small, full = (tmp_path / "b.safetensors").stat().st_size, (tmp_path / "a.safetensors").stat().st_size
    assert small < 0.6 * full
    loaded = load_features(tmp_path / "b.safetensors")
    assert loaded.views.dtype == torch.float32
    assert torch.allclose(loaded.views, big.views, atol=1e-2)
    assert read_file_metadata(tmp_path / "b.safetensors")["dtype"] == "float16"


def test_validation_errors_name_the_problem(tmp_path) -> None:
    path = tmp_path / "f.safetensors"
    save_view_features(path, _features(), entity_names=NAMES)
    with pytest.raises(DataFormatError, match="features for 3 entities.*expected 4 entities"):
        load_features(path, num_entities=4)
    with pytest.raises(DataFormatError, match="6-dimensional.*dimension 512"):
        load_features(path, expected_dim=512)
    with pytest.raises(InputError, match="holds visual features; expected text"):
        load_features(path, modality="text")
    with pytest.raises(InputError, match="another entity list"):
        load_features(path, entity_names=list(reversed(NAMES)))
    with pytest.raises(InputError, match="does not exist"):
        load_features(tmp_path / "missing.safetensors")
    with pytest.raises(InputError, match="4 entity names for 3 feature rows"):
        save_view_features(tmp_path / "x.safetensors", _features(), entity_names=NAMES + ["D"])

    bad = _features()
    bad.views[2, 0, 1] = float("nan")
    save_view_features(tmp_path / "nan.safetensors", bad)
    with pytest.raises(
        DataFormatError, match=r"NaN or infinite values for entity 2 \(<http://dbpedia.org/resource/C>\)"
    ):
        load_features(tmp_path / "nan.safetensors", entity_names=NAMES)

    save_file({"something": torch.zeros(2, 3), "else": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(DataFormatError, match="tensors 'views' and 'mask'"):
        load_features(tmp_path / "foreign.safetensors")


def test_momok_tensor_file_becomes_single_views(tmp_path) -> None:
    matrix = torch.randn(3, 5)
    matrix[1] = 0.0  # MoMoK files have no row for entities without the modality only when a user zeroes them
    torch.save(matrix, tmp_path / "img_features.pth")
    loaded = load_features(tmp_path / "img_features.pth", num_entities=3)
    assert loaded.modality == "visual" and loaded.views.shape == (3, 1, 5)
    assert loaded.mask[:, 0].tolist() == [True, False, True]
    assert torch.equal(loaded.views[:, 0], matrix)
    assert loaded.metadata["source_format"] == "momok-pth"

    np.save(tmp_path / "unused.npy", matrix.numpy())
    torch.save(matrix.numpy().astype(np.float64), tmp_path / "text_features.pth")  # a numpy array saved by torch.save
    text = load_features(tmp_path / "text_features.pth", expected_dim=5)
    assert text.modality == "text" and torch.allclose(text.views[:, 0], matrix)


def test_momok_pickle_and_dict_forms(tmp_path) -> None:
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    with open(tmp_path / "img_features.pkl", "wb") as handle:
        pickle.dump(matrix, handle)
    loaded = load_features(tmp_path / "img_features.pkl")
    assert torch.equal(loaded.views[:, 0], torch.from_numpy(matrix)) and loaded.mask.all()

    by_name = {NAMES[2]: torch.ones(4), NAMES[0]: torch.full((4,), 2.0), "<unknown>": torch.zeros(4)}
    torch.save(by_name, tmp_path / "dict.pth")
    loaded = load_features(tmp_path / "dict.pth", entity_names=NAMES, modality="text")
    assert loaded.mask[:, 0].tolist() == [True, False, True]
    assert loaded.views[0, 0].tolist() == [2.0] * 4 and loaded.views[2, 0].tolist() == [1.0] * 4
    with pytest.raises(InputError, match="pass the dataset's entity names"):
        load_features(tmp_path / "dict.pth")

    by_id = {0: np.ones(4), 2: np.ones(4) * 3}
    with open(tmp_path / "ids.pkl", "wb") as handle:
        pickle.dump(by_id, handle)
    loaded = load_features(tmp_path / "ids.pkl", num_entities=4)
    assert loaded.views.shape == (4, 1, 4) and loaded.mask[:, 0].tolist() == [True, False, True, False]


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_with_code_are_refused_unless_allowed(tmp_path, capsys) -> None:
    with open(tmp_path / "evil.pkl", "wb") as handle:
        pickle.dump({"a": _Payload()}, handle)
    with pytest.raises(DataFormatError, match="allow_pickle"):
        load_features(tmp_path / "evil.pkl")
    torch.save({"a": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(DataFormatError, match="allow_pickle"):
        load_features(tmp_path / "evil.pth")
    assert "must never run" not in capsys.readouterr().out


def test_converters_both_ways(tmp_path) -> None:
    features = _features()
    single = views_to_single(features)
    assert single.shape == (3, 6)
    assert torch.allclose(single[0], features.views[0, :3].mean(0))
    assert torch.equal(single[1], torch.zeros(6))
    assert torch.allclose(single[2], features.views[2, 0])

    save_momok_features(tmp_path / "img_features.pth", single)
    reread = torch.load(tmp_path / "img_features.pth", weights_only=True)
    assert torch.equal(reread, single)
    save_momok_features(tmp_path / "img_features.pkl", single)
    with open(tmp_path / "img_features.pkl", "rb") as handle:
        assert np.array_equal(pickle.load(handle), single.numpy())
    with pytest.raises(InputError, match=r"\.pth, \.pt or \.pkl"):
        save_momok_features(tmp_path / "x.npy", single)

    back = single_to_views(single, modality="visual")
    assert back.views.shape == (3, 1, 6) and back.mask[:, 0].tolist() == [True, False, True]
    assert torch.allclose(views_to_single(back), single)


def test_convert_and_info_commands(tmp_path, capsys) -> None:
    (tmp_path / "entity2id.txt").write_text("".join(f"{name} {i}\n" for i, name in enumerate(NAMES)))
    views_file = tmp_path / "v.safetensors"
    save_view_features(views_file, _features(), entity_names=NAMES)

    assert main(["features", "convert", str(views_file), str(tmp_path / "img_features.pth")]) == 0
    single = torch.load(tmp_path / "img_features.pth", weights_only=True)
    assert torch.allclose(single, views_to_single(_features()))

    out = tmp_path / "back.safetensors"
    args = ["features", "convert", str(tmp_path / "img_features.pth"), str(out), "--entities"]
    assert main([*args, str(tmp_path / "entity2id.txt"), "--modality", "visual"]) == 0
    meta = read_file_metadata(out)
    assert meta["entity_order_sha256"] == entity_order_sha256(NAMES) and meta["converted_from"] == "img_features.pth"
    assert load_features(out, entity_names=NAMES).mask[:, 0].tolist() == [True, False, True]

    capsys.readouterr()
    assert main(["features", "info", str(views_file)]) == 0
    printed = capsys.readouterr().out
    assert "views: (3, 4, 6)" in printed and "entities with views: 2 of 3" in printed
    assert "0: 1, 1: 1, 3: 1" in printed and "RANDOM" in printed

    assert main(["features", "convert", str(views_file), str(tmp_path / "x.bin")]) == 1
    assert "--to momok" in capsys.readouterr().err
    assert json.loads(json.dumps(meta))  # metadata is plain strings
