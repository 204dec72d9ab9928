"""Bad input gets a clear error through the public entry points, never a traceback from deep inside torch.

Every case goes through what a user calls (``load_graph`` on a folder, ``load_features``, ``TrainConfig``, the
``imvia`` command) and checks the message: ``<file>:<line>: found <what was read>; expected <what should be there>``
for data files, ``<file>: found ...; expected ...`` for feature files (naming the entity for bad values), and
``invalid training configuration: <option> must be ..., got <value>`` for options.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import logging
import os
import socketserver
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_ENTITIES, write_tiny_dataset
from PIL import Image

from imvia_core.cli import main
from imvia_core.data import registry
from imvia_core.data.fetch import dataset_status, fetch_dataset, file_status, sha256_of
from imvia_core.data.loading import load_graph
from imvia_core.errors import ConfigError, DataFormatError, ImviaError, InputError
from imvia_core.features.extract import extract_text_views
from imvia_core.features.image_encoder import read_image
from imvia_core.features.inputs import read_text_sources
from imvia_core.features.io import load_features, save_momok_features, save_view_features
from imvia_core.training.config import TrainConfig, profile_config
from imvia_core.types import ModalityFeatures

ENV = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
TRIPLE_FORM = "'<head> <relation> <tail> .' (3 names separated by spaces or tabs, then an optional '.')"


def _dataset(root: Path, files: dict[str, str | bytes]) -> Path:
    """The tiny dataset of ``conftest`` with some files replaced."""
    write_tiny_dataset(root)
    for name, content in files.items():
        (root / name).write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return root


# ------------------------------------------------------------------------------------------------ dataset files

DATASET_CASES = [
    # (file, content, line, found, expected)
    ("train.txt", "Ada_Lovelace livesIn London .\nAda_Lovelace livesIn\n", 2,
     "2 fields ('Ada_Lovelace livesIn')", TRIPLE_FORM),
    ("train.txt", "Ada_Lovelace livesIn London Paris .\n", 1,
     "5 fields ('Ada_Lovelace livesIn London Paris .')", TRIPLE_FORM),
    ("train.txt", "Ada_Lovelace livesIn .\n", 1, "3 fields ('Ada_Lovelace livesIn .')", TRIPLE_FORM),
    ("train.txt", "Ada_Lovelace livesIn London ;\n", 1, "4 fields ('Ada_Lovelace livesIn London ;')", TRIPLE_FORM),
    ("train.txt", b"Ada_Lovelace livesIn London .\nAda\xff livesIn London .\n", 2,
     "bytes that are not UTF-8 (b'\\xff')", "UTF-8 text"),
    ("train.txt", "Ada_Lovelace livesIn Rome .\n", 1, "tail entity 'Rome'",
     "an entity listed in the entity vocabulary"),
    ("valid.txt", "London livesIn Paris .\n\nBerlin livesIn Paris .\n", 3, "head entity 'Berlin'",
     "an entity listed in the entity vocabulary"),
    ("test.txt", "London worksIn Paris .\nParis worksIn London .\n", 1,
     "relation 'worksIn' (the first of 2 lines with names outside the vocabulary)",
     "a relation listed in the relation vocabulary"),
    ("entity2id.txt", "London 0\nParis 0\n", 2, "id 0 again (first on line 1)", "each id once"),
    ("entity2id.txt", "London 0\nLondon 1\n", 2, "entity 'London' again (first on line 1)", "each entity name once"),
    ("entity2id.txt", "London 0\nParis 1\nRome 5\n", 3, "id 5 in a file of 3 entries", "contiguous ids 0..2"),
    ("entity2id.txt", "London zero\n", 1, "id 'zero'", "a non-negative integer id"),
    ("entity2id.txt", "\ufeff\r\n\r\n", None, "no entries", "at least one '<entity name> <id>' line"),
    ("relation2id.txt", "livesIn 0 extra\n", 1, "3 fields ('livesIn 0 extra')",
     "2 fields '<relation name> <integer id>'"),
    ("derived/entity_names.tsv", "id\tname\tdescription\n0\tx\ty\tz\n", 2, "4 tab-separated fields",
     "3 fields (id, name, description)"),
]  # fmt: skip


@pytest.mark.parametrize(("file", "content", "line", "found", "expected"), DATASET_CASES)
def test_bad_dataset_files_name_file_line_found_and_expected(tmp_path, file, content, line, found, expected) -> None:
    root = _dataset(tmp_path / "TINY", {file: content})
    with pytest.raises(DataFormatError) as info:
        load_graph(root)
    where = f"{root / file}:{line}" if line is not None else str(root / file)
    assert str(info.value) == f"{where}: found {found}; expected {expected}"
    assert (info.value.path, info.value.line) == (str(root / file), line)


def test_tolerated_variations_give_the_same_graph(tmp_path) -> None:
    """BOM, CRLF, blank lines, tabs and a missing trailing dot are read as the plain files."""
    plain = load_graph(write_tiny_dataset(tmp_path / "plain"))
    messy = write_tiny_dataset(tmp_path / "messy")
    for name in ("entity2id.txt", "relation2id.txt", "train.txt", "valid.txt", "test.txt"):
        lines = (messy / name).read_text(encoding="utf-8").splitlines()
        if name.endswith("2id.txt"):
            lines = [ln.replace(" ", "\t", 1) for ln in lines]
        else:
            lines = [ln.removesuffix(" .") if i % 2 else ln for i, ln in enumerate(lines)]
        (messy / name).write_bytes(("\ufeff" + "\r\n\r\n".join(lines) + "\r\n").encode("utf-8"))
    graph = load_graph(messy)
    assert graph.entity_to_id == plain.entity_to_id and graph.relation_to_id == plain.relation_to_id
    for split in ("train", "valid", "test"):
        assert torch.equal(graph.split(split), plain.split(split)), split


def test_unknown_names_policy_errors_by_default_and_drops_with_counts(tmp_path, caplog) -> None:
    root = write_tiny_dataset(tmp_path / "TINY")
    with (root / "valid.txt").open("a", encoding="utf-8") as handle:
        handle.write("Berlin livesIn London .\nLondon livesIn Rome .\n")
    with (root / "test.txt").open("a", encoding="utf-8") as handle:
        handle.write("London worksIn Paris .\n")
    with pytest.raises(DataFormatError) as info:
        load_graph(root)
    assert str(info.value) == (
        f"{root / 'valid.txt'}:3: found head entity 'Berlin' (the first of 2 lines with names outside the "
        "vocabulary); expected an entity listed in the entity vocabulary"
    )
    with caplog.at_level(logging.WARNING, logger="imvia_core.data.parsing"):
        graph = load_graph(root, unknown="drop")
    assert graph.extra["dropped_triples"] == {"train": 0, "valid": 2, "test": 1}
    assert graph.statistics()["valid"] == 2 and graph.statistics()["test"] == 1
    assert f"{root / 'valid.txt'}: dropped 2 of 4 triples with names missing from the vocabulary (first on line 3)" in (
        caplog.text
    )
    with (root / "train.txt").open("a", encoding="utf-8") as handle:
        handle.write("Rome livesIn London .\n")
    with pytest.raises(DataFormatError, match=r"train\.txt:6: found head entity 'Rome'"):
        load_graph(root, unknown="drop")  # train never drops: a graph with holes would train silently wrong


# ------------------------------------------------------------------------------------------------ feature files


def _views(rows: int = 5, dim: int = 4) -> ModalityFeatures:
    views = torch.randn(rows, 2, dim, generator=torch.Generator().manual_seed(rows))
    return ModalityFeatures(views, torch.ones(rows, 2, dtype=torch.bool), "visual")


def _write_wrong_count(path: Path) -> None:
    save_view_features(path, _views(rows=4))


def _write_nan(path: Path) -> None:
    features = _views()
    features.views[3, 1, 2] = float("nan")
    save_view_features(path, features, entity_names=TINY_ENTITIES)


def _write_inf_momok(path: Path) -> None:
    matrix = torch.ones(5, 3)
    matrix[1, 0] = float("inf")
    matrix[4, 2] = -float("inf")
    save_momok_features(path, matrix)


def _write_other_dataset(path: Path) -> None:
    save_view_features(path, _views(), entity_names=[f"Q{i}" for i in range(5)])


def _write_text_modality(path: Path) -> None:
    features = _views()
    features.modality = "text"
    save_view_features(path, features, entity_names=TINY_ENTITIES)


def _write_3d_tensor(path: Path) -> None:
    torch.save(torch.zeros(5, 2, 3), path)


def _write_bytes(data: bytes):
    return lambda path: path.write_bytes(data)


FEATURE_CASES = [
    # (file name, writer, extra arguments, error type, message after "<file>: ")
    ("few.safetensors", _write_wrong_count, {}, DataFormatError,
     "found features for 4 entities; expected 5 entities (the dataset's entity count)"),
    ("v.safetensors", lambda p: save_view_features(p, _views(), entity_names=TINY_ENTITIES), {"expected_dim": 8},
     DataFormatError, "found 4-dimensional features; expected dimension 8"),
    ("nan.safetensors", _write_nan, {}, DataFormatError,
     f"found NaN or infinite values for entity 3 ({TINY_ENTITIES[3]}) (1 entities in all); expected finite numbers"),
    ("img_features.pth", _write_inf_momok, {}, DataFormatError,
     f"found NaN or infinite values for entity 1 ({TINY_ENTITIES[1]}) (2 entities in all); expected finite numbers"),
    ("other.safetensors", _write_other_dataset, {}, InputError, "was extracted for another entity list"),
    ("text.safetensors", _write_text_modality, {}, InputError, "holds text features; expected visual features"),
    ("cube.pth", _write_3d_tensor, {}, DataFormatError,
     "found an array of shape (5, 2, 3); expected shape (entities, dim)"),
    ("notes.safetensors", _write_bytes(b"these are notes, not tensors\n"), {}, InputError, "as safetensors"),
    ("damaged.pth", _write_bytes(b"\x80\x02]q\x00(K\x01K\x02e" * 3), {}, InputError, "cannot read"),
    ("empty.pkl", _write_bytes(b""), {}, InputError, "cannot read"),
    ("f.npy", _write_bytes(b"\x93NUMPY"), {}, InputError, "unknown feature file type"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "write", "extra", "error", "message"), FEATURE_CASES)
def test_bad_feature_files_name_file_entity_found_and_expected(tmp_path, name, write, extra, error, message) -> None:
    path = tmp_path / name
    write(path)
    with pytest.raises(error) as info:
        load_features(path, entity_names=TINY_ENTITIES, modality="visual", **extra)
    assert str(path) in str(info.value) and message in str(info.value)
    if error is DataFormatError:
        assert str(info.value) == f"{path}: {message}"


def test_missing_feature_file(tmp_path) -> None:
    with pytest.raises(InputError, match=r"feature file .*missing\.safetensors does not exist"):
        load_features(tmp_path / "missing.safetensors", entity_names=TINY_ENTITIES)


# ------------------------------------------------------------------------------------------------ raw views


def _png_bytes() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("random.png", bytes(range(256)) * 2, "not an image file (format not recognised)"),
        ("notes.jpg", b"a text file with an image name\n", "not an image file (format not recognised)"),
        ("empty.png", b"", "not an image file (format not recognised)"),
        ("cut.png", _png_bytes()[:200], "corrupt image: "),
        ("folder.png", None, "is a directory"),
        ("missing.png", ..., "file not found"),
    ],
    ids=["random-bytes", "text", "empty", "truncated", "directory", "missing"],
)
def test_files_that_are_not_images_are_skipped_with_a_reason(tmp_path, name, content, reason) -> None:
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif content is not ...:
        path.write_bytes(content)
    image, why = read_image(path)
    assert image is None and why.startswith(reason)
    ok, none = read_image(_write_png(tmp_path / "ok.png"))
    assert ok is not None and none is None and ok.mode == "RGB"


def _write_png(path: Path) -> Path:
    path.write_bytes(_png_bytes())
    return path


class _LengthEncoder:
    """A stand-in text encoder (length and vowel count), so that the test needs no model."""

    name, dim, weights_id, random_init = "length", 2, "none", False

    def settings(self) -> dict:
        return {"name": self.name}

    def encode(self, texts, batch_size: int = 64) -> torch.Tensor:
        return torch.tensor([[len(t), sum(c in "aeiou" for c in t)] for t in texts], dtype=torch.float32)


def test_empty_texts_are_skipped_and_reported_with_their_line(tmp_path) -> None:
    table = tmp_path / "texts.tsv"
    table.write_text("entity\ttext\nLondon\tcapital\nParis\t   \nLondon\t\t\nParis\tcity of light\n", encoding="utf-8")
    result = extract_text_views(
        read_text_sources(table), encoder=_LengthEncoder(), entity_names=TINY_ENTITIES, progress=False
    )
    skipped = [(s.entity, s.reason, s.where) for s in result.skipped]
    assert skipped == [("Paris", "empty text", f"{table}:3"), ("London", "empty text", f"{table}:4")]
    assert result.features.view_counts.tolist() == [0, 0, 0, 1, 1]
    bad = tmp_path / "bad.tsv"
    bad.write_text("entity\ttext\nLondon capital\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        read_text_sources(bad)
    assert str(info.value) == f"{bad}:2: found 'London capital'; expected 'entity<TAB>text'"


# ------------------------------------------------------------------------------------------------ configuration

CONFIG_CASES = [
    ({"dim": 0}, "dim must be a positive integer, got 0"),
    ({"lr": -1.0}, "lr must be positive, got -1.0"),
    ({"lr": float("nan")}, "lr must be a finite number, got nan (float)"),
    ({"dim": "64"}, "dim must be an integer, got '64' (str)"),
    ({"epochs": 2.5}, "epochs must be an integer, got 2.5 (float)"),
    ({"use_text": "no"}, "use_text must be true or false, got 'no' (str)"),
    ({"device": "gpu0"}, "device 'gpu0' is not a device name such as cpu, cuda, cuda:0 or mps"),
    ({"batch_size": -5, "label_smoothing": 1.5}, "batch_size must be a positive integer, got -5; label_smoothing"),
    ({"dimm": 3}, "unknown key(s) dimm; known keys: "),
]


@pytest.mark.parametrize(("values", "message"), CONFIG_CASES)
def test_impossible_configurations_are_refused_before_anything_runs(tmp_path, values, message) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(values)
    assert message in str(info.value)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_file(path)
    assert str(info.value).startswith(f"{path}: ") and message.split(";")[0] in str(info.value)  # names the file


def test_config_errors_on_the_command_line(tmp_path, capsys) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"dim": "64"}', encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text("dim: [1, 2\n", encoding="utf-8")
    cases = [
        (["--dim", "0"], "imvia: error: invalid training configuration: dim must be a positive integer, got 0\n"),
        (["--lr", "-0.1"], "imvia: error: invalid training configuration: lr must be positive, got -0.1\n"),
        (["--config", str(bad_json)], "dim must be an integer, got '64' (str)"),
        (["--config", str(broken)], f"imvia: error: {broken}: not valid yaml: "),
        (["--device", "gpu0"], "device 'gpu0' is not a device name"),
    ]
    for args, message in cases:
        code = main(["train", "--profile", "ci", "--run-dir", str(tmp_path / "run"), *args])
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("imvia: error: ") and message in err, (args, err)
        assert not (tmp_path / "run" / "config.json").exists()  # refused before the run started


def test_command_line_flags_reach_the_config() -> None:
    from imvia_core.cli import build_parser
    from imvia_core.training.cli import config_from_args

    args = build_parser().parse_args(
        ["train", "--profile", "ci", "--eval-batch-size", "4096", "--cuda", "1", "--no-amp", "--lr", "0.01"]
    )
    cfg = config_from_args(args)
    assert (cfg.eval_batch_size, cfg.device, cfg.amp, cfg.lr) == (4096, "cuda:1", False, 0.01)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_a_gpu_is_a_config_error(tmp_path) -> None:
    from imvia_core.training.trainer import prepare_run

    with pytest.raises(ConfigError, match="device 'cuda:0': CUDA is not available on this machine; use --device cpu"):
        prepare_run(profile_config("ci", str(write_tiny_dataset(tmp_path / "TINY")), device="cuda:0"))


# ------------------------------------------------------------------------------------------------ the command line


def _imvia(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imvia_core", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=300
    )


def test_cli_reports_a_bad_triple_line_without_traceback(tmp_path) -> None:
    root = _dataset(tmp_path / "TINY", {"train.txt": "Ada_Lovelace livesIn London .\nAda_Lovelace livesIn\n"})
    done = _imvia("data", "stats", str(root), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        f"imvia: error: {root / 'train.txt'}:2: found 2 fields ('Ada_Lovelace livesIn'); expected {TRIPLE_FORM}\n"
    )
    assert "Traceback" not in done.stdout + done.stderr


def test_cli_reports_features_of_the_wrong_size_without_traceback(tmp_path) -> None:
    root = write_tiny_dataset(tmp_path / "TINY")
    features = tmp_path / "visual.safetensors"
    save_view_features(features, _views(rows=4))
    done = _imvia(
        "train", "--profile", "ci", "--dataset", str(root), "--visual-features", str(features),
        "--text-features", "none", "--epochs", "1", "--run-dir", str(tmp_path / "run"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"imvia: error: {features}: found features for 4 entities; expected 5 entities (the dataset's entity count)"
    )
    assert "Traceback" not in done.stdout + done.stderr
    assert not list((tmp_path / "run").glob("ckpt-*"))


# ------------------------------------------------------------------------------------------------ downloads


@pytest.fixture
def tiny_registry(tmp_path, monkeypatch) -> Path:
    """A mirror folder ``<mirror>/TINY`` and a registry entry ``TINY`` with the checksums of its files."""
    mirror = tmp_path / "mirror"
    write_tiny_dataset(mirror / "TINY")
    files = tuple(registry.DatasetFile(p, sha256_of(mirror / "TINY" / p)) for p in registry.REQUIRED_FILES)
    info = registry.DatasetInfo(
        name="TINY",
        files=files,
        expected_statistics={"entities": 5, "relations": 2, "train": 5, "valid": 2, "test": 1},
        public_url_pattern="http://127.0.0.1:9/unused/{name}/{file}",
    )
    monkeypatch.setitem(registry.DATASETS, "TINY", info)
    return mirror


class _FlakyServer:
    """Serves the mirror, but cuts the first ``cut`` responses of every file short (a dropped connection)."""

    def __init__(self, root: Path, *, cut: int) -> None:
        self.requests: dict[str, int] = {}
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                requests[self.path] = requests.get(self.path, 0) + 1
                if requests[self.path] > cut:
                    return super().do_GET()
                data = Path(root, self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_cut_short_is_detected_and_retried(tmp_path, tiny_registry) -> None:
    server = _FlakyServer(tiny_registry, cut=1)
    try:
        fetch_dataset("TINY", dest_root=tmp_path / "data", mirror=server.url, retries=2, backoff=0, progress=False)
    finally:
        server.close()
    assert server.requests["/TINY/train.txt"] == 2  # the half file was refused, the second attempt kept
    assert dataset_status("TINY", data_dir=tmp_path / "data") == "complete"
    assert not list((tmp_path / "data").rglob("*.part"))


def test_download_always_cut_short_is_refused_and_leaves_nothing(tmp_path, tiny_registry) -> None:
    server = _FlakyServer(tiny_registry, cut=99)
    try:
        with pytest.raises(InputError) as info:  # ChecksumError is an InputError
            fetch_dataset("TINY", dest_root=tmp_path / "data", mirror=server.url, retries=2, backoff=0, progress=False)
    finally:
        server.close()
    expected = registry.get_dataset("TINY").file("entity2id.txt").sha256
    assert f"TINY/entity2id.txt from {server.url}/TINY/entity2id.txt: expected SHA-256 {expected}" in str(info.value)
    assert "(after 2 attempts)" in str(info.value)
    assert not list((tmp_path / "data").rglob("*.txt*"))  # neither the half file nor a .part


def test_a_server_that_does_not_speak_http_is_reported(tmp_path, tiny_registry) -> None:
    class Garbage(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(4096)
            self.request.sendall(b"this is not an HTTP response\r\n\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(InputError, match=r"could not download TINY/entity2id\.txt from .* after 2 attempts: "):
            fetch_dataset("TINY", dest_root=tmp_path / "data", mirror=url, retries=2, backoff=0, progress=False)
    finally:
        server.shutdown()
        server.server_close()
    assert not list((tmp_path / "data").rglob("*.part"))


def test_partial_file_of_a_killed_download_never_passes_for_complete(tmp_path, tiny_registry) -> None:
    dest = tmp_path / "data"
    fetch_dataset("TINY", dest_root=dest, mirror=str(tiny_registry), backoff=0, progress=False)
    train = dest / "TINY" / "train.txt"
    full = train.read_bytes()
    train.unlink()
    (dest / "TINY" / "train.txt.part").write_bytes(full[: len(full) // 2])  # what a killed download leaves
    info = registry.get_dataset("TINY")
    assert {s.path.name: s.state for s in file_status(info, root=dest / "TINY")}["train.txt"] == "missing"
    assert dataset_status("TINY", data_dir=dest) == "incomplete"
    with pytest.raises(InputError, match=r"train\.txt is missing; run 'imvia data fetch TINY'"):
        load_graph("TINY", data_dir=dest, fetch=False)
    train.write_bytes(full[: len(full) // 2])  # a half file moved into place by hand
    with pytest.raises(ImviaError, match=r"train\.txt: SHA-256 differs from the published"):
        load_graph("TINY", data_dir=dest, fetch=False)
    fetch_dataset("TINY", dest_root=dest, mirror=str(tiny_registry), backoff=0, progress=False)
    assert train.read_bytes() == full and hashlib.sha256(full).hexdigest() == info.file("train.txt").sha256
    assert dataset_status("TINY", data_dir=dest) == "complete"
    assert not (dest / "TINY" / "train.txt.part").exists()
