"""Shared fixtures: the local dataset mirror (when present) and a tiny dataset folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# tests use every core of the machine, and no download or progress bar
torch.set_num_threads(os.cpu_count() or 1)
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny runs are faster so, and do not compete with the subprocesses they start.

    A module asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: a local copy of the benchmark datasets laid out as <NAME>/<FILE>, next to the checkout (absent in most CI runs)
MIRROR_DIR = Path(__file__).resolve().parent.parent / ".." / "shared" / "datasets"

TINY_ENTITIES = [
    "<http://dbpedia.org/resource/New_York>",
    "Ada_Lovelace",
    "<http://dbpedia.org/resource/Caf%C3%A9>",
    "London",
    "Paris",
]
TINY_RELATIONS = ["livesIn", "<http://dbpedia.org/ontology/birthPlace>"]
#: (head, relation, tail) as ids, per split; train has a duplicate on purpose
TINY_SPLITS = {
    "train": [(1, 0, 3), (0, 1, 4), (2, 0, 3), (1, 0, 3), (4, 1, 0)],
    "valid": [(3, 1, 4), (1, 1, 0)],
    "test": [(2, 1, 4)],
}


def write_tiny_dataset(root: Path) -> Path:
    """Write the tiny dataset (``TINY_*``) into ``root`` with a ``derived/entity_names.tsv`` table."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "entity2id.txt").write_text("".join(f"{n} {i}\n" for i, n in enumerate(TINY_ENTITIES)), encoding="utf-8")
    (root / "relation2id.txt").write_text("".join(f"{n} {i}\n" for i, n in enumerate(TINY_RELATIONS)), encoding="utf-8")
    for split, rows in TINY_SPLITS.items():
        lines = (f"{TINY_ENTITIES[h]} {TINY_RELATIONS[r]} {TINY_ENTITIES[t]} .\n" for h, r, t in rows)
        (root / f"{split}.txt").write_text("".join(lines), encoding="utf-8")
    (root / "derived").mkdir(exist_ok=True)
    (root / "derived" / "entity_names.tsv").write_text(
        "id\tname\tdescription\n0\tNew York City\tcity in the US\n1\tAda Lovelace\t\n3\t\tcapital of England\n",
        encoding="utf-8",
    )
    return root


@pytest.fixture
def mirror_dir() -> Path:
    """The local dataset mirror; skips the test when it is not there."""
    if not (MIRROR_DIR / "DB15K" / "train.txt").is_file():
        pytest.skip(f"dataset mirror {MIRROR_DIR.resolve()} not available")
    return MIRROR_DIR.resolve()


@pytest.fixture
def tiny_dataset_dir(tmp_path: Path) -> Path:
    """A folder ``TINY`` holding the tiny dataset in the benchmark layout."""
    return write_tiny_dataset(tmp_path / "TINY")


@pytest.fixture(autouse=True)
def _no_data_mirror_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit a mirror from the environment."""
    monkeypatch.delenv("IMVIA_DATA_MIRROR", raising=False)
