"""Paired significance tests against brute-force references, and the Table II builder with seeds and p-values."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from imvia_core.errors import InputError
from imvia_core.evaluation.rank_files import SplitRanks, save_rank_file
from imvia_core.reporting.paper import TABLE_II
from imvia_core.reporting.results import collect_results, publish_name, split_publish_name
from imvia_core.reporting.significance import (
    compare_runs,
    paired_bootstrap,
    paired_reciprocal_ranks,
    wilcoxon_signed_rank,
)
from imvia_core.reporting.tables import export_long_table, seed_table, table_ii_long


def _brute_wilcoxon(d: np.ndarray) -> float:
    """Exact two-sided p-value by enumerating every sign assignment of the ranks of |d| (no ties, no zeros)."""
    ranks = np.argsort(np.argsort(np.abs(d))) + 1
    observed = ranks[d > 0].sum()
    totals = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product((0, 1), repeat=d.size)]
    totals = np.array(totals)
    return min(1.0, 2 * min(np.mean(totals <= observed), np.mean(totals >= observed)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wilcoxon_equals_the_exact_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, 9)
    y = x - rng.normal(0.1 * seed, 0.2, 9)
    assert wilcoxon_signed_rank(x, y) == pytest.approx(_brute_wilcoxon(x - y), abs=1e-12)
    assert wilcoxon_signed_rank(x, x) == 1.0


def test_bootstrap_approaches_the_exact_bootstrap_distribution() -> None:
    d = np.array([0.3, -0.1, 0.05, 0.2])
    means = np.array([d[list(idx)].mean() for idx in itertools.product(range(d.size), repeat=d.size)])
    exact = min(1.0, 2 * min(np.mean(means <= 0), np.mean(means >= 0)))
    estimate = paired_bootstrap(d, np.zeros_like(d), resamples=200_000, seed=1)
    assert estimate == pytest.approx(exact, abs=0.01)
    assert paired_bootstrap(d, np.zeros_like(d), resamples=1000, seed=3) == paired_bootstrap(
        d, np.zeros_like(d), resamples=1000, seed=3
    )


def _split(triples: np.ndarray, ranks: np.ndarray) -> SplitRanks:
    return SplitRanks(triples=triples, ranks=ranks)


def test_pairing_averages_seeds_and_refuses_other_queries() -> None:
    triples = np.array([[0, 0, 1], [1, 0, 2]])
    a = [_split(triples, np.array([[1.0, 2.0], [4.0, 1.0]])), _split(triples, np.array([[1.0, 1.0], [2.0, 1.0]]))]
    b = [_split(triples, np.array([[2.0, 2.0], [1.0, 1.0]]))]
    x, y = paired_reciprocal_ranks(a, b)
    assert x.tolist() == [1.0, 0.75, 0.375, 1.0] and y.tolist() == [0.5, 0.5, 1.0, 1.0]
    with pytest.raises(InputError):
        paired_reciprocal_ranks(a, [_split(triples[::-1], np.ones((2, 2)))])
    assert compare_runs(a, b).queries == 4


def test_publish_names() -> None:
    assert publish_name("imvia", 0) == "imvia" and publish_name("tucker", 2) == "tucker-seed2"
    assert split_publish_name("tucker-seed2") == ("tucker", 2)
    assert split_publish_name("imvia-no-text") == ("imvia-no-text", None)


def _fake_run(root, dataset, variant, model, seed, ranks, triples):
    """A published results file (test metrics from ``ranks``) and its rank file."""
    rr = 1.0 / ranks.reshape(-1)
    metrics = {"count": int(rr.size), "mrr": float(rr.mean()), "mr": float(ranks.mean())}
    metrics.update({f"hits@{k}": float(np.mean(ranks.reshape(-1) <= k)) for k in (1, 3, 10, 100)})
    result = {"filtered": True, "ks": [1, 3, 10, 100], "metrics": {"realistic": {"overall": metrics}}}
    config = {"model": model, "seed": seed}
    folder = root / "cpu" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    stem = publish_name(variant, seed)
    data = {"dataset": dataset, "config": config, "test": result, "modalities": {"structure": True, "text": True}}
    (folder / f"{stem}.json").write_text(json.dumps(data))
    save_rank_file(folder / f"{stem}.ranks.npz", {"test": SplitRanks(triples, ranks)})
    return metrics


def test_seed_table_means_stds_and_p_values(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 40
    triples = rng.integers(0, 30, (n, 3))
    imvia = [rng.integers(1, 8, (2, n)).astype(float) for _ in range(3)]
    tucker = [rng.integers(2, 12, (2, n)).astype(float) for _ in range(2)]
    m_imvia = [_fake_run(tmp_path, "MKG-Y", "imvia", "imvia", s, r, triples) for s, r in enumerate(imvia)]
    m_tucker = [_fake_run(tmp_path, "MKG-Y", "tucker", "tucker", s, r, triples) for s, r in enumerate(tucker)]
    _fake_run(tmp_path, "MKG-Y", "tucker-as-imvia", "tucker", 0, tucker[1], triples)
    runs = collect_results(tmp_path)
    assert sorted(runs["variant"]) == ["imvia"] * 3 + ["tucker"] * 2 + ["tucker-as-imvia"]
    table = seed_table(runs, resamples=2000).set_index("variant")
    assert table.loc["imvia", "seeds"] == 3 and table.loc["tucker", "seeds"] == 2
    assert table.loc["imvia", "seed_list"] == "0 1 2"
    mrr = [100 * m["mrr"] for m in m_imvia]
    assert table.loc["imvia", "MRR"] == pytest.approx(np.mean(mrr))
    assert table.loc["imvia", "MRR std"] == pytest.approx(np.std(mrr, ddof=1))
    assert table.loc["tucker", "MRR"] == pytest.approx(np.mean([100 * m["mrr"] for m in m_tucker]))
    assert math.isnan(table.loc["imvia", "p wilcoxon"])  # the reference row
    x = np.mean([1 / r.reshape(-1) for r in imvia], axis=0)
    y = np.mean([1 / r.reshape(-1) for r in tucker], axis=0)
    assert table.loc["tucker", "p wilcoxon"] == pytest.approx(wilcoxon_signed_rank(x, y))
    assert table.loc["tucker", "delta MRR"] == pytest.approx(100 * np.mean(x - y))
    assert 0 <= table.loc["tucker", "p bootstrap"] <= 1

    long = table_ii_long(seed_table(runs, resamples=500))
    reproduced = long[long["status"] == "reproduced"].set_index("model")
    assert len(long[long["status"] == "reported"]) == sum(len(v) for v in TABLE_II.values())
    assert reproduced.loc["IMVIA (S+T) [cpu]", "seeds"] == "3"
    assert " ± " in reproduced.loc["IMVIA (S+T) [cpu]", "MRR"] and reproduced.loc["IMVIA (S+T) [cpu]", "p"] == "–"
    assert reproduced.loc["TuckER (S+T) [cpu]", "p"] != "–"
    assert reproduced.loc["TuckER at IMVIA's budget (S+T) [cpu]", "seeds"] == "1"  # its own row, not a second TuckER
    paths = export_long_table(long, seed_table(runs, resamples=500), tmp_path / "fig")
    md = paths["md"].read_text()
    assert "### MKG-Y" in md and "| reproduced | IMVIA (S+T) [cpu] | 3 |" in md
    assert r"\pm" in paths["tex"].read_text() and paths["csv"].read_text().count("\n") == 4


def test_p_values_that_underflow_are_written_as_a_bound() -> None:
    from imvia_core.reporting.tables import _p

    assert _p(0.0) == "< 1e-300"  # scipy's normal tail for ~10^4 paired queries with a large difference
    assert _p(3.2e-29) == "3.2e-29"
    assert _p(0.3649) == "0.365"
    assert _p(float("nan")) == "–"


def test_a_row_without_rank_files_has_no_p_value(tmp_path) -> None:
    triples = np.array([[0, 0, 1]])
    _fake_run(tmp_path, "DB15K", "imvia", "imvia", 0, np.array([[1.0], [2.0]]), triples)
    _fake_run(tmp_path, "DB15K", "tucker", "tucker", 0, np.array([[1.0], [3.0]]), triples)
    (tmp_path / "cpu" / "DB15K" / "tucker.ranks.npz").unlink()
    table = seed_table(collect_results(tmp_path)).set_index("variant")
    assert math.isnan(table.loc["tucker", "p wilcoxon"]) and math.isnan(table.loc["tucker", "MRR std"])


def test_seeds_are_published_apart_with_their_rank_files(tmp_path) -> None:
    from imvia_core.training.experiments import run_seeds
    from imvia_core.training.publish import publish_variant

    out = run_seeds(
        "tucker", [1], dataset="synthetic", profile="ci", runs_root=tmp_path / "runs", progress=False, epochs=1, dim=8,
    )  # fmt: skip
    assert [r["config"]["seed"] for r in out.values()] == [1]
    assert not (tmp_path / "results").exists()  # the runner trains; its caller publishes
    for run in out.values():
        publish_variant(run, tmp_path / "results")
    names = sorted(p.name for p in (tmp_path / "results" / "synthetic").iterdir())
    assert names == ["tucker-seed1.json", "tucker-seed1.ranks.npz"]  # seed 0 would be tucker.json
    runs = collect_results(tmp_path / "results")
    assert list(runs["variant"]) == ["tucker"] and list(runs["seed"]) == [1]


def test_imvia_experiment_publishes_what_the_runner_finished(tmp_path, monkeypatch, capsys) -> None:
    """``imvia experiment`` reuses a finished run of the runner and publishes it (seed 0 as ``<variant>.json``)."""
    import shutil

    from imvia_core.cli import main
    from imvia_core.training.experiments import _digest, variant_config

    monkeypatch.setenv("IMVIA_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("IMVIA_RESULTS_DIR", str(tmp_path / "results"))
    config = variant_config("tucker", dataset="synthetic", profile="ci", device="cpu")
    run_dir = tmp_path / "runs" / "ci" / "synthetic" / f"tucker-{_digest(config)}"
    run_dir.mkdir(parents=True)
    committed = Path(__file__).resolve().parent.parent / "results" / "ci" / "synthetic" / "tucker.json"
    shutil.copyfile(committed, run_dir / "results.json")
    args = ["experiment", "--dataset", "synthetic", "--profile", "ci", "--variants", "tucker", "--device", "cpu"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["run_dir"] == str(run_dir)
    assert sorted(p.name for p in (tmp_path / "results" / "ci" / "synthetic").iterdir()) == ["tucker.json"]


def test_tucker_as_imvia_takes_imvias_settings() -> None:
    from imvia_core.training.experiments import variant_config

    borrowed = variant_config("tucker-as-imvia", dataset="MKG-Y", profile="cpu").to_dict()
    imvia = variant_config("imvia", dataset="MKG-Y", profile="cpu").to_dict()
    assert borrowed["model"] == "tucker"
    assert {k: v for k, v in borrowed.items() if k != "model"} == {k: v for k, v in imvia.items() if k != "model"}
    assert variant_config("tucker", dataset="MKG-Y", profile="cpu").batch_size != borrowed["batch_size"]


def test_only_runs_with_rank_files_enter_the_paired_test(tmp_path) -> None:
    rng = np.random.default_rng(1)
    triples = rng.integers(0, 30, (20, 3))
    ranks = [rng.integers(1, 9, (2, 20)).astype(float) for _ in range(3)]
    _fake_run(tmp_path, "MKG-Y", "imvia", "imvia", 0, ranks[0], triples)
    _fake_run(tmp_path, "MKG-Y", "imvia", "imvia", 1, ranks[1], triples)
    _fake_run(tmp_path, "MKG-Y", "tucker", "tucker", 0, ranks[2], triples)
    (tmp_path / "cpu" / "MKG-Y" / "imvia.ranks.npz").unlink()  # an older run without a rank file
    table = seed_table(collect_results(tmp_path), resamples=200).set_index("variant")
    assert table.loc["imvia", "seeds"] == 2 and table.loc["tucker", "paired seeds"] == "1 / 1"
    expected = wilcoxon_signed_rank(1 / ranks[1].reshape(-1), 1 / ranks[2].reshape(-1))
    assert table.loc["tucker", "p wilcoxon"] == pytest.approx(expected)
