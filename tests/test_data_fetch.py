"""Fetching: loopback HTTP mirror, mirror folders, checksum refusal, missing files, skipping verified files."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest
from conftest import write_tiny_dataset

from imvia_core.data import registry
from imvia_core.data.fetch import dataset_status, fetch_dataset, resolve_mirror, sha256_of
from imvia_core.data.registry import DatasetFile, DatasetInfo
from imvia_core.errors import ChecksumError, InputError

TINY_FILES = (
    "entity2id.txt",
    "relation2id.txt",
    "train.txt",
    "valid.txt",
    "test.txt",
    "derived/entity_names.tsv",
)


class _Server:
    """A static file server on 127.0.0.1 that counts requests per path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: Counter[str] = Counter()
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                requests[self.path] += 1
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def tiny_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A mirror folder ``<mirror>/TINY/...`` and a registry entry ``TINY`` with the checksums of its files."""
    mirror = tmp_path / "mirror"
    write_tiny_dataset(mirror / "TINY")
    files = tuple(
        DatasetFile(p, sha256_of(mirror / "TINY" / p), public=not p.startswith("derived/")) for p in TINY_FILES
    )
    info = DatasetInfo(
        name="TINY",
        files=files,
        expected_statistics={"entities": 5, "relations": 2, "train": 5, "valid": 2, "test": 1},
        public_url_pattern="http://127.0.0.1:9/unused/{name}/{file}",
    )
    monkeypatch.setitem(registry.DATASETS, "TINY", info)
    return mirror


@pytest.fixture
def server(tiny_mirror: Path):
    srv = _Server(tiny_mirror)
    yield srv
    srv.close()


def _assert_complete(dest: Path) -> None:
    info = registry.get_dataset("TINY")
    for entry in info.files:
        target = dest / "TINY" / entry.path
        assert target.is_file(), entry.path
        assert hashlib.sha256(target.read_bytes()).hexdigest() == entry.sha256
    assert not list(dest.rglob("*.part"))


def test_fetch_over_http_mirror_then_skip_verified_files(tmp_path, server):
    dest = tmp_path / "data"
    root = fetch_dataset("tiny", dest_root=dest, mirror=server.url, backoff=0)
    assert root == dest / "TINY"
    _assert_complete(dest)
    assert server.requests["/TINY/train.txt"] == 1
    assert server.requests["/TINY/derived/entity_names.tsv"] == 1
    assert dataset_status("TINY", data_dir=dest) == "complete"

    before = sum(server.requests.values())
    fetch_dataset("TINY", dest_root=dest, mirror=server.url, backoff=0)
    assert sum(server.requests.values()) == before  # everything verified locally, nothing downloaded


def test_corrupted_file_is_refused_and_not_left_in_place(tmp_path, tiny_mirror, server):
    (tiny_mirror / "TINY" / "valid.txt").write_text("tampered\n", encoding="utf-8")
    dest = tmp_path / "data"
    with pytest.raises(ChecksumError) as info:
        fetch_dataset("TINY", dest_root=dest, mirror=server.url, retries=2, backoff=0)
    message = str(info.value)
    expected = registry.get_dataset("TINY").file("valid.txt").sha256
    got = hashlib.sha256(b"tampered\n").hexdigest()
    assert "TINY/valid.txt" in message and expected in message and got in message
    assert server.requests["/TINY/valid.txt"] == 2  # retried
    assert not (dest / "TINY" / "valid.txt").exists()
    assert not list(dest.rglob("*.part"))
    assert dataset_status("TINY", data_dir=dest) == "incomplete"


def test_missing_file_gives_a_clear_error_naming_the_url(tmp_path, tiny_mirror, server):
    (tiny_mirror / "TINY" / "test.txt").unlink()
    with pytest.raises(InputError) as info:
        fetch_dataset("TINY", dest_root=tmp_path / "data", mirror=server.url, backoff=0)
    assert f"{server.url}/TINY/test.txt" in str(info.value)
    assert server.requests["/TINY/test.txt"] == 1  # a 404 is not retried
    assert not list((tmp_path / "data").rglob("*.part"))


def test_missing_derived_file_is_skipped(tmp_path, tiny_mirror, server):
    shutil.rmtree(tiny_mirror / "TINY" / "derived")
    dest = tmp_path / "data"
    fetch_dataset("TINY", dest_root=dest, mirror=server.url, backoff=0)
    assert (dest / "TINY" / "train.txt").is_file()
    assert not (dest / "TINY" / "derived" / "entity_names.tsv").exists()
    assert dataset_status("TINY", data_dir=dest) == "ready"


def test_public_source_skips_files_it_does_not_publish(tmp_path, server, monkeypatch):
    info = registry.get_dataset("TINY")
    public = DatasetInfo(
        name=info.name,
        files=info.files,
        expected_statistics=info.expected_statistics,
        public_url_pattern=server.url + "/{name}/{file}",
    )
    monkeypatch.setitem(registry.DATASETS, "TINY", public)
    dest = tmp_path / "data"
    fetch_dataset("TINY", dest_root=dest, backoff=0)  # no mirror: the public URL pattern
    assert (dest / "TINY" / "test.txt").is_file()
    assert not (dest / "TINY" / "derived" / "entity_names.tsv").exists()
    assert server.requests["/TINY/derived/entity_names.tsv"] == 0


def test_mirror_folder_and_environment_variable(tmp_path, tiny_mirror, monkeypatch):
    dest = tmp_path / "a"
    fetch_dataset("TINY", dest_root=dest, mirror=str(tiny_mirror), backoff=0)
    _assert_complete(dest)

    monkeypatch.setenv("IMVIA_DATA_MIRROR", tiny_mirror.as_uri())  # file:// URL through the environment
    dest = tmp_path / "b"
    fetch_dataset("TINY", dest_root=dest, backoff=0)
    _assert_complete(dest)


def test_mirror_folder_missing_file_and_missing_folder(tmp_path, tiny_mirror):
    (tiny_mirror / "TINY" / "entity2id.txt").unlink()
    with pytest.raises(InputError, match="entity2id.txt"):
        fetch_dataset("TINY", dest_root=tmp_path / "data", mirror=str(tiny_mirror), backoff=0)
    with pytest.raises(InputError, match="does not exist"):
        resolve_mirror(str(tmp_path / "nowhere"))
    assert resolve_mirror(None) is None
    assert resolve_mirror("https://example.org/kg/") == "https://example.org/kg"


def test_corrupt_local_file_is_replaced(tmp_path, tiny_mirror):
    dest = tmp_path / "data"
    fetch_dataset("TINY", dest_root=dest, mirror=str(tiny_mirror), backoff=0)
    (dest / "TINY" / "train.txt").write_text("partial", encoding="utf-8")
    assert dataset_status("TINY", data_dir=dest) == "incomplete"
    fetch_dataset("TINY", dest_root=dest, mirror=str(tiny_mirror), backoff=0)
    _assert_complete(dest)


def test_unknown_dataset_name():
    with pytest.raises(InputError, match="DB15K, MKG-W, MKG-Y"):
        fetch_dataset("FB15K-237")


def test_registry_matches_the_published_layout():
    assert set(registry.DATASETS) == {"DB15K", "MKG-W", "MKG-Y"}
    for info in registry.DATASETS.values():
        paths = [f.path for f in info.files]
        assert paths[:5] == ["entity2id.txt", "relation2id.txt", "train.txt", "valid.txt", "test.txt"]
        assert all(len(f.sha256) == 64 and int(f.sha256, 16) >= 0 for f in info.files)
        assert all(f.public == (not f.path.startswith("derived/")) for f in info.files)
        assert info.public_url("train.txt") == (
            "https://raw.githubusercontent.com/zjukg/MoMoK/99c2df114d48c79708ea0608644b685183d81bd9/datasets/"
            f"{info.name}/train.txt"
        )


def test_registry_checksums_match_the_mirror_readme(mirror_dir):
    listed = {}
    for line in (mirror_dir / "README.md").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 64:
            listed[parts[1]] = parts[0]
    ours = {f"{info.name}/{f.path}": f.sha256 for info in registry.DATASETS.values() for f in info.files}
    assert ours == listed


def test_fetch_real_dataset_end_to_end_over_http(tmp_path, mirror_dir):
    srv = _Server(mirror_dir)
    try:
        dest = tmp_path / "data"
        fetch_dataset("MKG-Y", dest_root=dest, mirror=srv.url + "/", backoff=0)
    finally:
        srv.close()
    assert dataset_status("MKG-Y", data_dir=dest) == "complete"
    for entry in registry.get_dataset("MKG-Y").files:
        assert (dest / "MKG-Y" / entry.path).read_bytes() == (mirror_dir / "MKG-Y" / entry.path).read_bytes()
