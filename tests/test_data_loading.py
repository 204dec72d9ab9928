"""Loading graphs: users' folders, known datasets (fetch on first use, checksums), names, the CLI."""

from __future__ import annotations

import re
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch
from conftest import TINY_ENTITIES, TINY_RELATIONS, TINY_SPLITS

from imvia_core.cli import main
from imvia_core.data import registry
from imvia_core.data.graph import KnowledgeGraph
from imvia_core.data.loading import load_folder, load_graph
from imvia_core.errors import ChecksumError, DataFormatError, InputError

# ---------------------------------------------------------------------------------------------------- own folders


def test_load_folder_ids_splits_and_names(tiny_dataset_dir):
    graph = load_graph(str(tiny_dataset_dir))
    assert graph.name == "TINY"
    assert graph.entity_to_id == {n: i for i, n in enumerate(TINY_ENTITIES)}
    assert graph.relation_to_id == {n: i for i, n in enumerate(TINY_RELATIONS)}
    for split, rows in TINY_SPLITS.items():
        assert graph.split(split).tolist() == [list(r) for r in rows]  # order and duplicates as written
    assert graph.statistics() == {"entities": 5, "relations": 2, "train": 5, "valid": 2, "test": 1}
    # names table where it has a name, decoded from the vocabulary name elsewhere
    assert graph.entity_names == ["New York City", "Ada Lovelace", "Café", "London", "Paris"]
    assert graph.extra["entity_descriptions"] == ["city in the US", "", "", "capital of England", ""]
    # no relation table: decoded
    assert graph.relation_names == ["lives in", "birth place"]
    assert graph.extra["name_source"] == {"entities": "derived", "relations": "decoded"}
    assert graph.extra["dropped_triples"] == {"train": 0, "valid": 0, "test": 0}


def test_load_folder_without_names_table_decodes_names(tiny_dataset_dir):
    shutil.rmtree(tiny_dataset_dir / "derived")
    graph = load_folder(tiny_dataset_dir, name="mine")
    assert graph.name == "mine"
    assert graph.entity_names == ["New York", "Ada Lovelace", "Café", "London", "Paris"]
    assert "entity_descriptions" not in graph.extra


def test_unknown_names_in_valid_error_by_default_or_are_dropped(tiny_dataset_dir):
    with (tiny_dataset_dir / "valid.txt").open("a", encoding="utf-8") as handle:
        handle.write("Berlin livesIn London .\n")
    with pytest.raises(DataFormatError) as info:
        load_graph(tiny_dataset_dir)
    assert info.value.line == 3 and "valid.txt" in str(info.value) and "'Berlin'" in str(info.value)
    graph = load_graph(tiny_dataset_dir, unknown="drop")
    assert graph.extra["dropped_triples"] == {"train": 0, "valid": 1, "test": 0}
    assert graph.valid.shape == (2, 3)


def test_unknown_names_in_train_always_error(tiny_dataset_dir):
    with (tiny_dataset_dir / "train.txt").open("a", encoding="utf-8") as handle:
        handle.write("London worksIn Paris .\n")
    with pytest.raises(DataFormatError) as info:
        load_graph(tiny_dataset_dir, unknown="drop")
    assert info.value.line == 6 and "train.txt" in str(info.value) and "'worksIn'" in str(info.value)


def test_names_table_with_an_id_outside_the_vocabulary(tiny_dataset_dir):
    with (tiny_dataset_dir / "derived" / "entity_names.tsv").open("a", encoding="utf-8") as handle:
        handle.write("9\tNowhere\t\n")
    with pytest.raises(DataFormatError) as info:
        load_graph(tiny_dataset_dir)
    assert info.value.line == 5 and "ids 0..4" in str(info.value)


def test_bad_names_and_incomplete_folders(tmp_path, tiny_dataset_dir):
    with pytest.raises(InputError, match="neither a known dataset"):
        load_graph("no-such-dataset")
    with pytest.raises(InputError, match="not a folder"):
        load_graph(tmp_path / "missing")
    (tiny_dataset_dir / "test.txt").unlink()
    with pytest.raises(InputError, match="lacks test.txt"):
        load_graph(tiny_dataset_dir)


def test_synthetic_name_dispatches_to_the_synthetic_module(monkeypatch):
    graph = KnowledgeGraph(
        name="synthetic",
        entity_to_id={"a": 0},
        relation_to_id={"r": 0},
        train=torch.zeros((1, 3), dtype=torch.long),
        valid=torch.zeros((0, 3), dtype=torch.long),
        test=torch.zeros((0, 3), dtype=torch.long),
    )
    fake = types.ModuleType("imvia_core.data.synthetic")
    fake.load_synthetic_graph = lambda: graph
    monkeypatch.setitem(sys.modules, "imvia_core.data.synthetic", fake)
    assert load_graph("Synthetic") is graph
    del fake.load_synthetic_graph
    with pytest.raises(InputError, match="synthetic"):
        load_graph("synthetic")


# ---------------------------------------------------------------------------------------------------- known datasets


@pytest.fixture
def tiny_known(tmp_path, tiny_dataset_dir, monkeypatch):
    """``TINY`` as a known dataset whose public URL is unreachable; its mirror folder is returned."""
    from imvia_core.data.fetch import sha256_of

    mirror = tmp_path / "mirror"
    shutil.copytree(tiny_dataset_dir, mirror / "TINY")
    files = tuple(
        registry.DatasetFile(p, sha256_of(mirror / "TINY" / p), public=not p.startswith("derived/"))
        for p in (*registry.REQUIRED_FILES, "derived/entity_names.tsv")
    )
    info = registry.DatasetInfo(
        name="TINY",
        files=files,
        expected_statistics={"entities": 5, "relations": 2, "train": 5, "valid": 2, "test": 1},
        entity_names=registry.NameColumns("derived/entity_names.tsv", key_column=None, name_columns=("name",)),
        public_url_pattern="http://127.0.0.1:9/{name}/{file}",
    )
    monkeypatch.setitem(registry.DATASETS, "TINY", info)
    monkeypatch.setenv("IMVIA_DATA_DIR", str(tmp_path / "data"))
    return mirror


def test_known_dataset_fetched_on_first_use_then_loaded_offline(tmp_path, tiny_known):
    with pytest.raises(InputError, match="imvia data fetch TINY"):
        load_graph("TINY", fetch=False)
    graph = load_graph("tiny", mirror=str(tiny_known), progress=False)
    assert graph.name == "TINY"
    assert (tmp_path / "data" / "TINY" / "derived" / "entity_names.tsv").is_file()
    assert graph.statistics() == registry.get_dataset("TINY").expected_statistics
    assert graph.entity_names[0] == "New York City"
    again = load_graph("TINY", fetch=False)
    assert torch.equal(again.train, graph.train)


def test_known_dataset_with_a_modified_file_is_refused(tmp_path, tiny_known):
    load_graph("TINY", mirror=str(tiny_known), progress=False)
    with (tmp_path / "data" / "TINY" / "test.txt").open("a", encoding="utf-8") as handle:
        handle.write("London livesIn Paris .\n")
    with pytest.raises(ChecksumError, match="test.txt"):
        load_graph("TINY", fetch=False)


def test_cli_fetch_list_and_stats_of_a_folder(tmp_path, tiny_known, tiny_dataset_dir, capsys):
    assert main(["data", "list"]) == 0
    assert re.search(r"^TINY\s+absent\b", capsys.readouterr().out, re.M)
    assert main(["data", "fetch", "TINY", "--mirror", str(tiny_known), "--data-dir", str(tmp_path / "d2")]) == 0
    assert "TINY: complete" in capsys.readouterr().out
    assert main(["data", "list", "--data-dir", str(tmp_path / "d2")]) == 0
    assert re.search(r"^TINY\s+complete\b", capsys.readouterr().out, re.M)
    assert main(["data", "stats", str(tiny_dataset_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["dataset", "entities", "relations", "train", "valid", "test"]
    assert lines[1].split() == ["TINY", "5", "2", "5", "2", "1"]
    assert main(["data", "stats", "nothing-here"]) == 1
    assert "neither a known dataset" in capsys.readouterr().err


def test_cli_help_mentions_the_mirror_variable(capsys):
    with pytest.raises(SystemExit):
        main(["data", "fetch", "--help"])
    assert "IMVIA_DATA_MIRROR" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------- real datasets


def _readme_counts(readme: Path) -> dict[str, list[str]]:
    rows = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] in registry.DATASETS:
            rows[cells[0]] = cells[1:]
    return rows


def test_stats_of_the_real_datasets_equal_the_published_table(tmp_path, mirror_dir, capsys):
    code = main(["data", "stats", "DB15K", "MKG-W", "MKG-Y", "--mirror", str(mirror_dir), "--data-dir", str(tmp_path)])
    assert code == 0
    printed = {cells[0]: cells[1:] for cells in (line.split() for line in capsys.readouterr().out.splitlines()[1:])}
    expected = _readme_counts(mirror_dir / "README.md")
    assert set(expected) == {"DB15K", "MKG-W", "MKG-Y"}
    assert printed == expected
    for name, info in registry.DATASETS.items():
        assert [str(info.expected_statistics[k]) for k in ("entities", "relations", "train", "valid", "test")] == (
            expected[name]
        )


def test_real_name_tables(mirror_dir):
    graph = load_folder(mirror_dir / "MKG-W")
    assert len(graph.entity_names) == graph.num_entities == 15000
    assert all(graph.entity_names)
    descriptions = graph.extra["entity_descriptions"]
    assert len(descriptions) == 15000
    assert 0.15 < sum(1 for d in descriptions if d) / len(descriptions) < 0.3  # "about 21%"
    assert not any(d.startswith('"') and d.endswith('"') for d in descriptions)  # quoting undone
    labelled = [n for n in graph.relation_names if not re.fullmatch(r"P[0-9]+", n)]
    assert len(labelled) == 167
    mkgy = load_folder(mirror_dir / "MKG-Y")
    assert mkgy.relation_names[mkgy.relation_to_id["wasBornIn"]] == "was born in"
    assert mkgy.entity_names[mkgy.entity_to_id["Gilles_Mbang_Ondo"]] == "Gilles Mbang Ondo"
