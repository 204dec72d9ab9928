"""The held-out selection split, split overlaps, per-query rank files and the run-cache digest."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from imvia_core.cli import main
from imvia_core.data.graph import KnowledgeGraph
from imvia_core.data.loading import load_graph
from imvia_core.data.selection import carve_selection_split, selection_graph, split_overlaps
from imvia_core.errors import ConfigError, InputError
from imvia_core.evaluation.rank_files import SplitRanks, load_rank_file, save_rank_file
from imvia_core.training.config import LATER_FIELDS, TrainConfig, profile_config
from imvia_core.training.experiments import _digest, variant_config


def _rows(t: torch.Tensor) -> list[tuple[int, int, int]]:
    return [tuple(x) for x in t.tolist()]


def _graph_with_leaks() -> KnowledgeGraph:
    """The synthetic graph with a few training triples copied into valid and test (as DB15K's split has)."""
    g = load_graph("synthetic")
    leaked = g.train[:40]
    return KnowledgeGraph(
        name="leaky",
        entity_to_id=g.entity_to_id,
        relation_to_id=g.relation_to_id,
        train=torch.cat([g.train, g.train[:5]]),  # duplicates, as published files have
        valid=torch.cat([g.valid, leaked[:20]]),
        test=torch.cat([g.test, leaked[20:]]),
    )


def test_carving_keeps_coverage_and_has_no_overlap() -> None:
    graph = _graph_with_leaks()
    carved = carve_selection_split(graph, fraction=0.05, seed=3)
    held, kept = _rows(carved.valid), _rows(carved.train)
    distinct = len(set(_rows(graph.train)))
    assert len(held) == len(set(held)) == round(0.05 * distinct)
    # every held-out triple leaves training, every copy of it, and nothing else does
    assert not set(held) & set(kept)
    assert Counter(kept) + Counter(r for r in _rows(graph.train) if r in set(held)) == Counter(_rows(graph.train))
    # coverage: every entity and relation of a held-out triple is still in the remaining training triples
    entities = {h for h, _, _ in kept} | {t for _, _, t in kept}
    relations = {r for _, r, _ in kept}
    assert all(h in entities and t in entities and r in relations for h, r, t in held)
    # never a triple of the published valid or test split
    assert not set(held) & (set(_rows(graph.valid)) | set(_rows(graph.test)))
    # the published validation split is kept and filtered; the filter set is unchanged
    assert torch.equal(carved.published_valid, graph.valid) and torch.equal(carved.test, graph.test)
    assert torch.equal(carved.all_known_triples, graph.all_known_triples)
    assert carved.splits == ("train", "valid", "test", "published_valid")
    info = carved.extra["selection_split"]
    assert info["heldout_triples"] == len(held) and info["train_lines_kept"] == len(kept)


def test_carving_is_deterministic_and_seeded() -> None:
    graph = load_graph("synthetic")
    a = carve_selection_split(graph, seed=0)
    b = carve_selection_split(graph, seed=0)
    c = carve_selection_split(graph, seed=1)
    assert torch.equal(a.valid, b.valid) and torch.equal(a.train, b.train)
    assert not torch.equal(a.valid, c.valid)
    # the order of train.txt does not change the held-out set
    shuffled = KnowledgeGraph(
        name="s",
        entity_to_id=graph.entity_to_id,
        relation_to_id=graph.relation_to_id,
        train=graph.train[torch.randperm(graph.train.shape[0], generator=torch.Generator().manual_seed(5))],
        valid=graph.valid,
        test=graph.test,
    )
    assert torch.equal(carve_selection_split(shuffled, seed=0).valid, a.valid)


def test_coverage_limits_what_can_be_held_out() -> None:
    """A chain where every entity has one triple: nothing can be held out without losing an entity."""
    triples = torch.tensor([[0, 0, 1], [2, 0, 3], [4, 0, 5], [6, 0, 7]])
    graph = KnowledgeGraph("chain", {str(i): i for i in range(8)}, {"r": 0}, triples, triples[:0], triples[:0])
    assert carve_selection_split(graph, fraction=0.5).valid.shape == (0, 3)
    with pytest.raises(ConfigError):
        carve_selection_split(graph, fraction=0.9)
    assert selection_graph(graph, split="published") is graph
    with pytest.raises(ConfigError):
        carve_selection_split(carve_selection_split(graph), fraction=0.1)


def test_overlap_counts_and_cli(tmp_path, tiny_dataset_dir, capsys) -> None:
    graph = _graph_with_leaks()
    counts = split_overlaps(graph)
    assert counts["valid_in_train"] == 20 and counts["valid_in_test"] == 0 and counts["test_in_train"] == 20
    assert counts["valid_distinct"] == len(set(_rows(graph.valid)))
    assert main(["data", "stats", str(tiny_dataset_dir), "--overlaps"]) == 0
    out = capsys.readouterr().out
    assert "valid in train" in out and "valid in test" in out


def test_new_fields_at_their_defaults_keep_the_run_digest() -> None:
    """The run cache stays valid: configurations that leave the later fields at their defaults keep their digest."""
    base = variant_config("imvia", dataset="synthetic", profile="ci")
    assert _digest(base) == "5264b367"  # the committed CI-profile runs (notebooks/0*_*.ipynb name this directory)
    assert _digest(variant_config("tucker", dataset="synthetic", profile="ci")) == "c7da456f"
    for name in LATER_FIELDS:
        assert getattr(base, name) == getattr(TrainConfig(), name)
    assert _digest(variant_config("imvia", dataset="synthetic", profile="ci", selection_split="heldout")) != "5264b367"
    assert _digest(variant_config("imvia", dataset="synthetic", profile="ci", selection_seed=1)) != "5264b367"


def test_profiles_choose_the_selection_split() -> None:
    assert profile_config("cpu", "DB15K").selection_split == "heldout"
    assert profile_config("cpu", "DB15K", model="imvia").selection_split == "heldout"
    assert profile_config("paper", "DB15K").selection_split == "published"
    assert profile_config("cpu", "MKG-W").selection_split == "published"
    assert profile_config("cpu", "MKG-Y").selection_split == "published"
    with pytest.raises(ConfigError):
        profile_config("ci", "synthetic", selection_split="test")


def test_rank_file_round_trip(tmp_path) -> None:
    gen = np.random.default_rng(0)
    splits = {
        "test": SplitRanks(gen.integers(0, 50, (7, 3)), gen.integers(2, 200, (2, 7)) / 2.0),
        "valid": SplitRanks(gen.integers(0, 50, (3, 3)), np.array([[1.0, 1.5, 40.0], [2.5, 3.0, 1.0]])),
    }
    path = save_rank_file(tmp_path / "ranks.npz", splits)
    loaded = load_rank_file(path)
    assert set(loaded) == set(splits)
    for name, split in splits.items():
        assert np.array_equal(loaded[name].triples, split.triples)
        assert np.array_equal(loaded[name].ranks, split.ranks)
    q = loaded["valid"].queries()
    assert q["direction"].tolist() == [0, 0, 0, 1, 1, 1] and q["rank"].tolist() == [1.0, 1.5, 40.0, 2.5, 3.0, 1.0]
    with pytest.raises(InputError):
        save_rank_file(tmp_path / "bad.npz", {"x": SplitRanks(np.zeros((1, 3)), np.array([[1.25], [1.0]]))})
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError):
        load_rank_file(tmp_path / "junk.npz")


def test_heldout_run_reports_both_validation_splits_and_writes_ranks(tmp_path) -> None:
    from imvia_core.evaluation import EvaluationResult
    from imvia_core.reporting.results import publish_run, rank_file_of
    from imvia_core.training.trainer import train

    cfg = profile_config("ci", "synthetic", model="tucker", epochs=2, eval_every=1, dim=16, selection_split="heldout")
    results = train(cfg, tmp_path / "run", progress=False)
    graph = selection_graph(load_graph("synthetic"), split="heldout")
    assert results["selection_split"]["kind"] == "heldout"
    assert results["config"]["selection_split"] == "heldout"
    assert results["valid"]["metadata"]["num_triples"] == graph.valid.shape[0]
    assert results["valid_published"]["metadata"]["num_triples"] == graph.published_valid.shape[0]
    ranks = load_rank_file(tmp_path / "run" / "ranks.npz")
    assert set(ranks) == {"valid", "test", "published_valid"}
    assert np.array_equal(ranks["test"].triples, graph.test.numpy())
    # the rank file gives the reported metrics back
    for split, key in (("test", "test"), ("valid", "valid"), ("published_valid", "valid_published")):
        mrr = EvaluationResult.from_dict(results[key]).metric("mrr")
        assert float(np.mean(ranks[split].reciprocal_ranks())) == pytest.approx(mrr, abs=1e-12)
    published = publish_run(tmp_path / "run", tmp_path / "results", name="tucker")
    assert rank_file_of(published) is not None and rank_file_of(published).stat().st_size < 100_000
    assert json.loads(published.read_text())["rank_file"] == "ranks.npz"
