"""The run-cache digest of every committed configuration and of every named experiment stays what it was.

A run under ``runs/<profile>/<dataset>/<variant>-<digest>`` is found again only while the digest of its
configuration (:func:`imvia_core.training.experiments._digest`) is unchanged; the long real-data runs behind
``results/cpu`` must not be retrained because the code around the configuration changed. The digests below were
computed before the configuration was restructured.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imvia_core.training.config import PROFILES, TrainConfig
from imvia_core.training.experiments import VARIANTS, _digest, variant_config

ROOT = Path(__file__).resolve().parent.parent

#: the configuration of every run committed under results/ when the digests were recorded (a run's config, its
#: published copy, a sweep's best configuration), with its digest; the files themselves are replaced by later runs
RECORDED = json.loads((Path(__file__).resolve().parent / "data" / "run_config_digests.json").read_text())

#: ``profile/dataset/variant`` -> digest of :func:`variant_config` with no overrides
VARIANT_DIGESTS = {
    "paper/DB15K/imvia": "673a6eb8",
    "paper/DB15K/imvia-no-structure": "3e0796bc",
    "paper/DB15K/imvia-no-visual": "e19f1d87",
    "paper/DB15K/imvia-no-text": "901f2720",
    "paper/DB15K/imvia-no-joint": "be88119a",
    "paper/DB15K/imvia-gated": "673a6eb8",
    "paper/DB15K/tucker": "71b65bcd",
    "paper/DB15K/tucker-as-imvia": "71b65bcd",
    "paper/DB15K/transe": "282724f2",
    "paper/DB15K/distmult": "b6e5a3ba",
    "paper/DB15K/complex": "ef940dd8",
    "paper/DB15K/rotate": "5629b68f",
    "paper/DB15K/pairre": "3100a5df",
    "paper/MKG-W/imvia": "5f011fff",
    "paper/MKG-W/imvia-no-structure": "d2986f3d",
    "paper/MKG-W/imvia-no-visual": "75be64be",
    "paper/MKG-W/imvia-no-text": "faf44c26",
    "paper/MKG-W/imvia-no-joint": "58a18fc8",
    "paper/MKG-W/imvia-gated": "5f011fff",
    "paper/MKG-W/tucker": "b5806e14",
    "paper/MKG-W/tucker-as-imvia": "b5806e14",
    "paper/MKG-W/transe": "02a1a078",
    "paper/MKG-W/distmult": "9c643d69",
    "paper/MKG-W/complex": "f6ff82ce",
    "paper/MKG-W/rotate": "60d8aa67",
    "paper/MKG-W/pairre": "8175b901",
    "paper/MKG-Y/imvia": "e2886fe9",
    "paper/MKG-Y/imvia-no-structure": "8beb7965",
    "paper/MKG-Y/imvia-no-visual": "1462e916",
    "paper/MKG-Y/imvia-no-text": "6a2ccb2f",
    "paper/MKG-Y/imvia-no-joint": "930c0bde",
    "paper/MKG-Y/imvia-gated": "e2886fe9",
    "paper/MKG-Y/tucker": "0a1e37f7",
    "paper/MKG-Y/tucker-as-imvia": "0a1e37f7",
    "paper/MKG-Y/transe": "b496714b",
    "paper/MKG-Y/distmult": "f39b2ccb",
    "paper/MKG-Y/complex": "2f605d71",
    "paper/MKG-Y/rotate": "9c8a421b",
    "paper/MKG-Y/pairre": "05f93762",
    "paper/synthetic/imvia": "2edd6ef6",
    "paper/synthetic/imvia-no-structure": "7c2aeafe",
    "paper/synthetic/imvia-no-visual": "20de946d",
    "paper/synthetic/imvia-no-text": "8a18d63e",
    "paper/synthetic/imvia-no-joint": "1a105be8",
    "paper/synthetic/imvia-gated": "2edd6ef6",
    "paper/synthetic/tucker": "d622b08f",
    "paper/synthetic/tucker-as-imvia": "d622b08f",
    "paper/synthetic/transe": "fe235461",
    "paper/synthetic/distmult": "7c728c40",
    "paper/synthetic/complex": "62be9412",
    "paper/synthetic/rotate": "a1cca80c",
    "paper/synthetic/pairre": "64085c3d",
    "cpu/DB15K/imvia": "b194f1f9",
    "cpu/DB15K/imvia-no-structure": "82abd2a8",
    "cpu/DB15K/imvia-no-visual": "8eb50101",
    "cpu/DB15K/imvia-no-text": "5a869e50",
    "cpu/DB15K/imvia-no-joint": "788e4481",
    "cpu/DB15K/imvia-gated": "b194f1f9",
    "cpu/DB15K/tucker": "4b900757",
    "cpu/DB15K/tucker-as-imvia": "199d95ba",
    "cpu/DB15K/transe": "bdf232cd",
    "cpu/DB15K/distmult": "6e23041b",
    "cpu/DB15K/complex": "340960a0",
    "cpu/DB15K/rotate": "b2e5da1f",
    "cpu/DB15K/pairre": "0f633aa7",
    "cpu/MKG-W/imvia": "c78f5244",
    "cpu/MKG-W/imvia-no-structure": "0588e9bc",
    "cpu/MKG-W/imvia-no-visual": "632a7233",
    "cpu/MKG-W/imvia-no-text": "2285fe92",
    "cpu/MKG-W/imvia-no-joint": "ef863bc9",
    "cpu/MKG-W/imvia-gated": "c78f5244",
    "cpu/MKG-W/tucker": "59ca03f2",
    "cpu/MKG-W/tucker-as-imvia": "b79d1fda",
    "cpu/MKG-W/transe": "10cf2130",
    "cpu/MKG-W/distmult": "f8c02bda",
    "cpu/MKG-W/complex": "3988b44f",
    "cpu/MKG-W/rotate": "19fabeff",
    "cpu/MKG-W/pairre": "6514e760",
    "cpu/MKG-Y/imvia": "a15f8e62",
    "cpu/MKG-Y/imvia-no-structure": "578a38e8",
    "cpu/MKG-Y/imvia-no-visual": "dc370a6b",
    "cpu/MKG-Y/imvia-no-text": "fc57dd3f",
    "cpu/MKG-Y/imvia-no-joint": "d82a7ecd",
    "cpu/MKG-Y/imvia-gated": "a15f8e62",
    "cpu/MKG-Y/tucker": "3d176ca9",
    "cpu/MKG-Y/tucker-as-imvia": "b63a4ba9",
    "cpu/MKG-Y/transe": "f5390316",
    "cpu/MKG-Y/distmult": "61ca13d3",
    "cpu/MKG-Y/complex": "a16774c6",
    "cpu/MKG-Y/rotate": "10641e7b",
    "cpu/MKG-Y/pairre": "438708b0",
    "cpu/synthetic/imvia": "5a2f4eb3",
    "cpu/synthetic/imvia-no-structure": "c5813079",
    "cpu/synthetic/imvia-no-visual": "569d7370",
    "cpu/synthetic/imvia-no-text": "7374fb98",
    "cpu/synthetic/imvia-no-joint": "4ca0e81d",
    "cpu/synthetic/imvia-gated": "eeacde48",
    "cpu/synthetic/tucker": "9b98222d",
    "cpu/synthetic/tucker-as-imvia": "9b98222d",
    "cpu/synthetic/transe": "7f7b10bd",
    "cpu/synthetic/distmult": "b5f5b11a",
    "cpu/synthetic/complex": "84f3531f",
    "cpu/synthetic/rotate": "3f082c60",
    "cpu/synthetic/pairre": "d15486cb",
    "ci/synthetic/imvia": "5264b367",
    "ci/synthetic/imvia-no-structure": "a84d7d91",
    "ci/synthetic/imvia-no-visual": "ee3968ea",
    "ci/synthetic/imvia-no-text": "62bcfb29",
    "ci/synthetic/imvia-no-joint": "7c1c4c71",
    "ci/synthetic/imvia-gated": "84107e67",
    "ci/synthetic/tucker": "c7da456f",
    "ci/synthetic/tucker-as-imvia": "c7da456f",
    "ci/synthetic/transe": "2c77760c",
    "ci/synthetic/distmult": "e2c801aa",
    "ci/synthetic/complex": "65a33388",
    "ci/synthetic/rotate": "671ed47e",
    "ci/synthetic/pairre": "73a69bef",
}


def _config_of(path: Path) -> TrainConfig:
    return TrainConfig.from_dict(TrainConfig.read_file(path), source=str(path))


@pytest.mark.parametrize("entry", RECORDED, ids=lambda e: e["source"])
def test_committed_configuration_keeps_its_digest(entry: dict) -> None:
    """The configuration as committed then, loaded as ``imvia train --config`` loads it, has the same digest."""
    config = TrainConfig.from_dict(entry["config"], source=entry["source"])
    assert _digest(config) == entry["digest"]


def _committed_run_files() -> list[Path]:
    """Every committed JSON file under ``results/`` that holds a run configuration (runs land there all the time)."""
    found = []
    for path in sorted((ROOT / "results").rglob("*.json")):
        values = json.loads(path.read_text(encoding="utf-8"))
        if (isinstance(values.get("config"), dict) and "best_epoch" in values) or {"model", "dataset", "dim"} <= set(
            values
        ):
            found.append(path)
    return found


def test_every_committed_configuration_loads() -> None:
    """Files committed after the table was written load too (and so rerun with ``imvia train --config``)."""
    files = _committed_run_files()
    assert len(files) >= len(RECORDED) - 2  # runs are replaced, not removed
    for path in files:
        config = _config_of(path)
        assert config.dataset and config.model


@pytest.mark.parametrize("name", sorted(VARIANT_DIGESTS))
def test_named_experiment_keeps_its_digest(name: str) -> None:
    profile, dataset, variant = name.split("/")
    assert _digest(variant_config(variant, dataset=dataset, profile=profile)) == VARIANT_DIGESTS[name]


def test_every_named_experiment_is_listed() -> None:
    names = {f"{p}/{d}/{v}" for p, datasets in PROFILES.items() for d in datasets for v in VARIANTS}
    assert set(VARIANT_DIGESTS) <= names


def test_a_committed_run_file_reruns(tmp_path: Path) -> None:
    """``imvia train --config results/ci/synthetic/tucker.json`` trains (one epoch here) with today's code."""
    from dataclasses import replace

    from imvia_core.training.trainer import train

    config = TrainConfig.from_file(ROOT / "results" / "ci" / "synthetic" / "tucker.json")
    small = replace(config, epochs=1, eval_every=1, dim=8, batch_size=1024)
    results = train(small, tmp_path / "run", progress=False, skip_splits=("valid",))
    assert results["config"]["model"] == "tucker" and results["epochs_trained"] == 1
    assert results["test"]["metrics"]["realistic"]["overall"]["mrr"] > 0
