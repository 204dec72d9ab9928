"""End-to-end training on the synthetic graph: the claims of the method, checked on data built to show them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from imvia_core.errors import ConfigError
from imvia_core.training.config import TrainConfig, profile_config
from imvia_core.training.experiments import ABLATION_VARIANTS, run_variant
from imvia_core.training.trainer import train


def _cfg(**overrides) -> TrainConfig:
    return profile_config("ci", "synthetic", **overrides)


@pytest.fixture(scope="session")
def full_run():
    """The CI-profile IMVIA run on the synthetic graph (shared with the notebooks through runs/)."""
    results = run_variant("imvia", progress=False)
    return Path(results["run_dir"]), results


@pytest.fixture(scope="session")
def ablation_runs():
    return {v: run_variant(v, progress=False) for v in ABLATION_VARIANTS[1:]}


def _mrr(result: dict, part: str = "valid") -> float:
    from imvia_core.evaluation import EvaluationResult

    return EvaluationResult.from_dict(result[part]).metric("mrr")


def test_run_directory_layout(full_run) -> None:
    run_dir, results = full_run
    for name in ("config.json", "metrics.jsonl", "best.pt", "best.pt.sha256", "results.json"):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("ckpt-*.pt"))
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    valid = [x for x in lines if x["kind"] == "valid"]
    best_valid = results["valid"]["metrics"]["realistic"]["overall"]["mrr"]
    assert valid and max(v["mrr"] for v in valid) == pytest.approx(best_valid)
    assert results["best_epoch"] == max(valid, key=lambda v: v["mrr"])["epoch"]
    assert set(results["test_branches"]) >= {"S", "V", "T", "J"}


def test_imvia_beats_its_structure_branch(full_run) -> None:
    """The fused score against the same model's structure branch, on test: a clear margin (0.05 MRR), which comes
    from the sparse entities that only their views can place (module docstring of imvia_core.data.synthetic)."""
    from imvia_core.evaluation import EvaluationResult

    _, results = full_run
    final = _mrr(results, "test")
    structure = EvaluationResult.from_dict(results["test_branches"]["S"]).metric("mrr")
    assert final > structure + 0.05, (final, structure)


def test_each_ablation_lowers_validation_mrr(full_run, ablation_runs) -> None:
    _, results = full_run
    full = _mrr(results)
    for switch, ablated in ablation_runs.items():
        assert _mrr(ablated) < full, (switch, _mrr(ablated), full)


def test_resume_reaches_the_same_result(tmp_path) -> None:
    cfg = _cfg(epochs=4, eval_every=2, dim=16)
    straight = train(cfg, tmp_path / "straight", progress=False)
    # interrupted after 2 epochs: a run configured for 2 epochs leaves the checkpoint of epoch 2
    first = _cfg(epochs=4, eval_every=2, dim=16)
    first.epochs = 2
    train(first, tmp_path / "cut", progress=False)
    (tmp_path / "cut" / "config.json").write_text(json.dumps(cfg.to_dict()))
    (tmp_path / "cut" / "results.json").unlink()
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed["best_epoch"] == straight["best_epoch"]
    assert resumed["test"]["metrics"] == straight["test"]["metrics"]
    # the decision gate's mean weight per scoring branch over the test queries (Eq. 7), recorded with the results
    weights = straight["decision_weights"]
    assert set(weights) == set(straight["test_branches"]) and sum(weights.values()) == pytest.approx(1.0)
    assert resumed["decision_weights"] == pytest.approx(weights)


def test_baseline_trains() -> None:
    results = run_variant("tucker", progress=False)
    assert results["modalities"]["visual"] is False
    assert "decision_weights" not in results  # no gate in a structure-only model
    assert _mrr(results) > 0.05  # far above random (about 0.005 for 1000 entities)


@pytest.mark.parametrize(
    "bad", [{"dim": 0}, {"lr": -1.0}, {"model": "nope"}, {"label_smoothing": 1.5}, {"decision_fusion": "x"}]
)
def test_impossible_values_are_refused(bad) -> None:
    with pytest.raises(ConfigError):
        _cfg(**bad)


def test_unknown_key_is_refused(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"dimm": 3}))
    with pytest.raises(ConfigError, match="dimm"):
        TrainConfig.from_file(path)


def test_deterministic_on_cpu(tmp_path) -> None:
    cfg = _cfg(epochs=1, eval_every=1, dim=16)
    a = train(cfg, tmp_path / "a", progress=False)
    b = train(cfg, tmp_path / "b", progress=False)
    assert a["test"]["metrics"] == b["test"]["metrics"]
    sa = torch.load(tmp_path / "a" / "best.pt", weights_only=False)["model"]
    sb = torch.load(tmp_path / "b" / "best.pt", weights_only=False)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_gate_prefers_relevant_views(full_run) -> None:
    """Eq. 1-3 on the synthetic graph: relevant views get more weight than distractors, on average."""
    from imvia_core.data.synthetic import load_synthetic
    from imvia_core.training.checkpoint import load_checkpoint
    from imvia_core.training.trainer import prepare_run

    run_dir, _ = full_run
    ctx = prepare_run(TrainConfig.from_file(run_dir / "config.json"))
    ctx.model.load_state_dict(load_checkpoint(run_dir / "best.pt")["model"])
    ctx.model.eval()
    kg = load_synthetic()
    queries = ctx.graph.with_reciprocals("train")
    with torch.no_grad():
        info = ctx.model.inspect(queries[:, 0], queries[:, 1])
    for name, key in (("visual", "V"), ("text", "T")):
        weights, mask = info.view_weights[key], info.view_mask[key]
        relevant = kg.view_relevance[name][queries[:, 0]]
        mixed = (relevant.any(1)) & ((mask & ~relevant).any(1))  # entities with both kinds of view
        w_rel = weights[mixed][relevant[mixed]].mean()
        w_dis = weights[mixed][(mask & ~relevant)[mixed]].mean()
        assert w_rel > w_dis, (name, float(w_rel), float(w_dis))


def test_a_results_file_is_a_config(tmp_path) -> None:
    """``imvia train --config results/<profile>/<dataset>/<variant>.json`` reruns the committed run's configuration."""
    cfg = _cfg(epochs=3, lambda_align=0.5)
    path = tmp_path / "imvia.json"
    path.write_text(json.dumps({"best_epoch": 2, "config": cfg.to_dict(), "test": {}}))
    assert TrainConfig.from_file(path) == cfg
    committed = Path(__file__).resolve().parents[1] / "results" / "ci" / "synthetic" / "imvia.json"
    assert TrainConfig.from_file(committed) == profile_config("ci", "synthetic", model="imvia")


@pytest.mark.parametrize("by_relation", [False, True])
def test_epoch_order_is_a_permutation_that_keeps_batches(by_relation: bool) -> None:
    from imvia_core.training.trainer import epoch_order

    relations = torch.randint(0, 30, (1000,), generator=torch.Generator().manual_seed(1))
    order = epoch_order(relations, 64, torch.Generator().manual_seed(0), by_relation=by_relation)
    assert torch.equal(torch.sort(order).values, torch.arange(1000))
    distinct = [relations[order[i : i + 64]].unique().numel() for i in range(0, 1000, 64)]
    if by_relation:  # 30 relations of about 33 queries each: a batch of 64 spans at most 4 of them
        assert max(distinct) <= 4
        # the last, partial batch holds the queries of the last relations in sorted order
        assert relations[order[-(1000 % 64) :]].min() >= relations.median()
    else:
        assert min(distinct) > 15


def test_training_with_relation_batches(tmp_path) -> None:
    cfg = _cfg(epochs=2, eval_every=2, dim=16, batch_order="relation")
    result = train(cfg, tmp_path / "run", progress=False)
    assert result["config"]["batch_order"] == "relation" and _mrr(result) > 0.02


@pytest.mark.filterwarnings("ignore:profile 'ci' has no settings")
def test_a_published_run_of_the_same_configuration_is_reused_not_retrained(tmp_path, monkeypatch) -> None:
    """A fresh clone has results/ but not runs/: asking for a committed run again reads it (same digest only)."""
    from imvia_core.data.synthetic import SyntheticConfig, generate_synthetic
    from imvia_core.features.synthetic import write_synthetic
    from imvia_core.training.publish import publish_variant

    monkeypatch.setenv("IMVIA_RESULTS_DIR", str(tmp_path / "results"))
    folder = write_synthetic(tmp_path / "tiny", generate_synthetic(SyntheticConfig(num_entities=120, num_clusters=6)))
    common = dict(dataset=str(folder), profile="ci", progress=False, epochs=1, eval_every=1, dim=16)
    first = run_variant("distmult", runs_root=tmp_path / "a", **common)
    published = publish_variant(first)
    assert published == tmp_path / "results" / "ci" / "tiny" / "distmult.json"

    again = run_variant("distmult", runs_root=tmp_path / "b", **common)  # another machine: no runs/ folder
    run_dir = Path(again["run_dir"])
    assert not (run_dir / "config.json").exists() and not list(run_dir.glob("*.pt"))  # nothing trained
    assert again["test"] == first["test"] and (run_dir / "ranks.npz").is_file()

    other = run_variant("distmult", runs_root=tmp_path / "c", **{**common, "lr": 0.05})  # another configuration
    assert (Path(other["run_dir"]) / "config.json").is_file() and other["config"]["lr"] == 0.05
    forced = run_variant("distmult", runs_root=tmp_path / "d", reuse_published=False, **common)
    assert (Path(forced["run_dir"]) / "config.json").is_file()
    assert forced["test"]["metrics"] == first["test"]["metrics"]  # the same run, trained again
