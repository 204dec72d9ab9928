"""End-to-end training on the synthetic graph: the claims of the method, checked on data built to show them."""

from __future__ import annotations

import json

import pytest
import torch

from imvia_core.errors import ConfigError
from imvia_core.training.config import TrainConfig, profile_config
from imvia_core.training.trainer import train


def _cfg(**overrides) -> TrainConfig:
    return profile_config("ci", "synthetic", **overrides)


@pytest.fixture(scope="session")
def full_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("imvia-full")
    return run_dir, train(_cfg(), run_dir, progress=False)


@pytest.fixture(scope="session")
def ablation_runs(tmp_path_factory):
    out = {}
    for switch in ("use_structure", "use_visual", "use_text", "use_joint"):
        run_dir = tmp_path_factory.mktemp(f"imvia-{switch}")
        out[switch] = train(_cfg(**{switch: False}), run_dir, progress=False)
    return out


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
    assert valid and max(v["mrr"] for v in valid) == pytest.approx(results["valid"]["metrics"]["realistic"]["overall"]["mrr"])
    assert results["best_epoch"] == max(valid, key=lambda v: v["mrr"])["epoch"]
    assert set(results["test_branches"]) >= {"S", "V", "T", "J"}


def test_imvia_beats_its_structure_branch(full_run) -> None:
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
    cfg = _cfg(epochs=10, eval_every=5, dim=16)
    straight = train(cfg, tmp_path / "straight", progress=False)
    # interrupted after 5 epochs: a run configured for 5 epochs leaves the checkpoint of epoch 5
    first = _cfg(epochs=10, eval_every=5, dim=16)
    first.epochs = 5
    train(first, tmp_path / "cut", progress=False)
    (tmp_path / "cut" / "config.json").write_text(json.dumps(cfg.to_dict()))
    (tmp_path / "cut" / "results.json").unlink()
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed["best_epoch"] == straight["best_epoch"]
    assert resumed["test"]["metrics"] == straight["test"]["metrics"]


def test_baseline_trains(tmp_path) -> None:
    results = train(_cfg(model="tucker", epochs=10), tmp_path, progress=False)
    assert results["modalities"]["visual"] is False
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
    cfg = _cfg(epochs=2, eval_every=2, dim=16)
    a = train(cfg, tmp_path / "a", progress=False)
    b = train(cfg, tmp_path / "b", progress=False)
    assert a["test"]["metrics"] == b["test"]["metrics"]
    sa = torch.load(tmp_path / "a" / "best.pt", weights_only=False)["model"]
    sb = torch.load(tmp_path / "b" / "best.pt", weights_only=False)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
