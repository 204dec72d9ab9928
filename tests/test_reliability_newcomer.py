"""What a careless first user does: empty split files, broken configuration files, the wrong kind of feature file,
runs that fail while starting, a resume with changed settings, non-finite results. Each gets one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_tiny_dataset

from imvia_core.cli import main
from imvia_core.errors import DataFormatError, ImviaError
from imvia_core.features.io import load_features, save_view_features
from imvia_core.training import trainer
from imvia_core.training.config import differences, profile_config
from imvia_core.training.trainer import TrainingDiverged, non_finite_paths, portable_path, train
from imvia_core.types import ModalityFeatures

#: a run of seconds on the tiny dataset (structure only)
TRAIN = ["train", "--profile", "ci", "--model", "tucker", "--dim", "4", "--epochs", "2", "--eval-every", "1"]


#: the runs here are tiny: one thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


def _emptied(tmp_path: Path, *splits: str) -> Path:
    root = write_tiny_dataset(tmp_path / "TINY")
    for split in splits:
        (root / f"{split}.txt").write_text("", encoding="utf-8")
    return root


def test_stats_warns_about_an_empty_split_and_names_the_file(tmp_path, capsys) -> None:
    root = _emptied(tmp_path, "test")
    assert main(["data", "stats", str(root)]) == 0
    captured = capsys.readouterr()
    assert f"warning: {root / 'test.txt'}: no triples" in captured.err
    assert "valid.txt" not in captured.err


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_training_refuses_an_empty_split_before_any_work(tmp_path, capsys, split) -> None:
    root = _emptied(tmp_path, split)
    run_dir = tmp_path / "run"
    assert main([*TRAIN, "--dataset", str(root), "--run-dir", str(run_dir)]) == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if not ln.startswith("imvia: warning: ")]
    assert len(lines) == 1 and lines[0].startswith(f"imvia: error: {root / (split + '.txt')}: no triples"), lines
    assert not run_dir.exists()  # nothing was started


def test_an_empty_train_split_cannot_be_skipped(capsys) -> None:
    with pytest.raises(SystemExit):
        main([*TRAIN, "--skip-split", "train"])
    assert "invalid choice: 'train'" in capsys.readouterr().err


def test_skipping_an_empty_test_split_trains_and_reports_no_test_metrics(tmp_path, capsys) -> None:
    root = _emptied(tmp_path, "test")
    run_dir = tmp_path / "run"
    assert main([*TRAIN, "--dataset", str(root), "--run-dir", str(run_dir), "--skip-split", "test"]) == 0
    assert '"test": "skipped"' in capsys.readouterr().out
    text = (run_dir / "results.json").read_text(encoding="utf-8")
    results = json.loads(text)
    assert results["test"] is None and results["skipped_splits"] == ["test"] and results["valid"] is not None
    assert "NaN" not in text and "Infinity" not in text


def test_skipping_an_empty_valid_split_selects_the_last_epoch(tmp_path) -> None:
    root = _emptied(tmp_path, "valid")
    run_dir = tmp_path / "run"
    assert main([*TRAIN, "--dataset", str(root), "--run-dir", str(run_dir), "--skip-split", "valid"]) == 0
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert results["valid"] is None and results["best_epoch"] == 2 and results["test"]["metrics"]["realistic"]
    assert results["selection"].startswith("last epoch")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in records} == {"train"}


class _NaNResult:
    def metric(self, name: str) -> float:
        return float("nan")


def test_a_nan_validation_mrr_stops_the_run(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(trainer, "evaluate_model", lambda *a, **k: _NaNResult())
    cfg = profile_config(
        "ci", str(write_tiny_dataset(tmp_path / "TINY")), model="tucker", dim=4, epochs=2, eval_every=1
    )
    with pytest.raises(TrainingDiverged, match="validation MRR became nan at epoch 1"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "results.json").exists()


def test_no_results_file_with_a_non_finite_number(tmp_path, monkeypatch) -> None:
    real = trainer.evaluate_model

    class Poisoned:
        def __init__(self, result) -> None:
            self.result = result

        def __getattr__(self, name):  # ranks, metric(), ...: the real result's
            return getattr(self.result, name)

        def to_dict(self):
            data = self.result.to_dict()
            data["metrics"]["realistic"]["overall"]["mrr"] = float("nan")
            return data

    def evaluate(ctx, split, **kwargs):
        result = real(ctx, split, **kwargs)
        return Poisoned(result) if split == "test" else result

    monkeypatch.setattr(trainer, "evaluate_model", evaluate)
    cfg = profile_config("ci", str(write_tiny_dataset(tmp_path / "TINY")), model="tucker", dim=4, epochs=1)
    with pytest.raises(ImviaError, match=r"not finite numbers \(test\.metrics\.realistic\.overall\.mrr"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "results.json").exists()


def test_non_finite_paths_finds_nested_values() -> None:
    data = {"a": 1.0, "b": {"c": [0.5, float("inf")], "d": float("nan")}, "e": "nan"}
    assert non_finite_paths(data) == ["b.c[1]", "b.d"]
    assert non_finite_paths({"a": [1, 2.0]}) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs: -3\n", "epochs must be a positive integer, got -3"),
        ("dim: big\n", "dim must be an integer, got 'big' (str)"),
    ],
)
def test_a_bad_value_in_a_yaml_file_names_the_file_and_the_key(tmp_path, capsys, text, message) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["train", "--profile", "ci", "--config", str(path), "--run-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert f"{path}: {message}" in err, err


def test_a_flag_overrides_a_bad_file_value_without_blaming_the_file(tmp_path, capsys) -> None:
    from imvia_core.cli import build_parser
    from imvia_core.training.cli import config_from_args

    path = tmp_path / "run.yaml"
    path.write_text("epochs: -3\nlr: -1\n", encoding="utf-8")
    args = build_parser().parse_args(["train", "--profile", "ci", "--config", str(path), "--epochs", "0"])
    with pytest.raises(ImviaError) as info:
        config_from_args(args)
    message = str(info.value)
    assert f"{path}: lr must be positive" in message
    assert "epochs must be a positive integer, got 0" in message and f"{path}: epochs" not in message


def test_a_refused_resume_says_which_keys_differ(tmp_path) -> None:
    root = write_tiny_dataset(tmp_path / "TINY")
    profile_config("ci", str(root), model="tucker", dim=4, lr=0.01).save(tmp_path / "config.json")
    changed = profile_config("ci", str(root), model="tucker", dim=8, lr=0.5)
    with pytest.raises(ImviaError) as info:
        train(changed, tmp_path, resume=True, progress=False)
    assert "dim: 4 -> 8" in str(info.value) and "lr: 0.01 -> 0.5" in str(info.value)
    assert differences({"a": 1, "device": "cpu"}, {"a": 1, "device": "cuda"}, ignore=("device",)) == []


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"id\tvector\n0\t0.1 0.2\n", "text starting with 'id\\tvector'"),
        (b"", "an empty file"),
        (b"\x93NUMPY\x01\x00", "a numpy .npy file"),
        (b"\x00\x01\x02\x03garbage", "binary data starting with bytes 00 01 02 03"),
    ],
)
def test_a_pth_file_that_is_not_a_tensor_file_says_what_it_is(tmp_path, content, found) -> None:
    path = tmp_path / "img_features.pth"
    path.write_bytes(content)
    with pytest.raises(DataFormatError) as info:
        load_features(path, modality="visual")
    message = str(info.value)
    assert found in message and "torch.save file" in message
    assert "allow_pickle" not in message


def test_a_run_that_fails_while_starting_leaves_no_run_directory(tmp_path) -> None:
    root = write_tiny_dataset(tmp_path / "TINY")
    features = tmp_path / "visual.safetensors"
    views = torch.randn(4, 2, 8)
    save_view_features(features, ModalityFeatures(views, torch.ones(4, 2, dtype=torch.bool), "visual"))
    cfg = profile_config("ci", str(root), visual_features=str(features), text_features="none", epochs=1)
    with pytest.raises(ImviaError, match="found features for 4 entities; expected 5"):
        train(cfg, tmp_path / "runs" / "imvia-0000", progress=False)
    assert not (tmp_path / "runs" / "imvia-0000").exists()


def test_results_paths_are_portable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("IMVIA_DATA_DIR", str(tmp_path / "somewhere" / "data"))
    inside = tmp_path / "somewhere" / "data" / "MKG-Y" / "features" / "text.safetensors"
    assert portable_path(inside) == "data/MKG-Y/features/text.safetensors"
    assert portable_path(Path("/elsewhere/feat.pth")) == "feat.pth"


def test_committed_results_hold_no_absolute_path_and_no_nan() -> None:
    root = Path(__file__).resolve().parent.parent / "results"
    for path in root.rglob("*.json"):
        text = path.read_text(encoding="utf-8")
        assert "NaN" not in text and "Infinity" not in text, path
        for marker in ('"/work/', '"/home/', '"/tmp/', '"/root/', '"/Users/'):
            assert marker not in text, (path, marker)


def test_tinyclip_configurations_are_registered_on_import_without_importing_open_clip() -> None:
    program = (
        "import sys, imvia_core.features\n"
        "assert 'open_clip' not in sys.modules, 'imported open_clip'\n"
        "import open_clip\n"
        "assert 'TinyCLIP-ViT-8M-16-Text-3M' in open_clip.list_models()\n"
        "assert open_clip.get_model_config('TinyCLIP-ViT-39M-16-Text-19M')['embed_dim'] == 512\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode == 0, done.stderr


def test_evaluate_names_what_a_run_directory_lacks(tmp_path, capsys) -> None:
    assert main(["evaluate", str(tmp_path / "nothing")]) == 1
    assert "not a run directory (no config.json)" in capsys.readouterr().err
    root = write_tiny_dataset(tmp_path / "TINY")
    profile_config("ci", str(root), model="tucker", dim=4).save(tmp_path / "run" / "config.json")
    assert main(["evaluate", str(tmp_path / "run")]) == 1
    assert "best.pt: no such checkpoint; this run has none yet" in capsys.readouterr().err


@pytest.mark.filterwarnings("always")
def test_warnings_on_the_command_line_are_one_line(tmp_path, capsys) -> None:
    main(["train", "--dataset", str(tmp_path / "absent")])
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("imvia: warning: profile 'cpu' has no settings for dataset")
    assert err[1].startswith("imvia: error: ") and len(err) == 2


def test_writing_results_to_a_pipe_or_device_never_replaces_it(tmp_path) -> None:
    """``--out /dev/null`` must not turn /dev/null into a file: a path that is not a regular file is written into."""
    import threading

    from imvia_core.training.checkpoint import atomic_write_text

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    atomic_write_text(fifo, "hello\n", checksum=True)
    reader.join(timeout=10)
    assert received == [b"hello\n"]
    assert not fifo.is_file() and fifo.exists()
    assert not (tmp_path / "pipe.sha256").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]
