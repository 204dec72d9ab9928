"""Nothing is lost on interruption, and training never diverges silently.

* a real ``imvia train`` process killed with SIGKILL (once from outside after its first checkpoint, once from inside
  while a checkpoint is being written) resumes and ends with exactly the metrics of an uninterrupted run (CPU);
* a truncated, altered or unsigned checkpoint is reported and the previous good one is used;
* a NaN loss or a non-finite gradient stops the run with a message and leaves the last good checkpoint intact;
* every epoch logs its gradient norm.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from imvia_core.cli import main
from imvia_core.errors import ImviaError, InputError
from imvia_core.training.checkpoint import (
    CorruptCheckpointError,
    atomic_write_bytes,
    atomic_write_text,
    latest_good_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    read_verified_text,
    save_checkpoint,
)
from imvia_core.training.config import profile_config
from imvia_core.training.trainer import TrainingDiverged, train

#: a run small enough for seconds on a CPU: 6 epochs, a checkpoint every 2 (the dataset options come from
#: :func:`small_dataset`)
TRAIN_ARGS = [
    "train", "--profile", "ci", "--dim", "8", "--epochs", "6", "--eval-every", "2", "--batch-size", "256",
    "--patience", "0",
]  # fmt: skip

#: the same thread count in every process, so that floating-point sums are identical
ENV = {
    **os.environ,
    "TQDM_DISABLE": "1",
    "HF_HUB_OFFLINE": "1",
    "MPLBACKEND": "Agg",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONWARNINGS": "default",
    "PYTHONUNBUFFERED": "1",  # what a killed process printed is in its log
}

#: ``python -c`` program: the CLI, killed with SIGKILL by itself when it is about to write the checksum of its first
#: checkpoint, i.e. with the checkpoint file complete on disk and its sidecar missing (a kill during the write)
DIE_DURING_CHECKPOINT_WRITE = """
import os, signal, sys
from imvia_core.training import checkpoint
_write = checkpoint.atomic_write_text
def _write_or_die(path, text, *args, **kwargs):
    name = os.path.basename(str(path))
    if name.startswith("ckpt-") and name.endswith(".pt.sha256"):
        os.kill(os.getpid(), signal.SIGKILL)
    return _write(path, text, *args, **kwargs)
checkpoint.atomic_write_text = _write_or_die
from imvia_core.cli import main
sys.exit(main(sys.argv[1:]))
"""


#: the runs here are tiny: one thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


class _Run:
    """One ``imvia train`` subprocess on ``dataset`` (a list of options) with its output in a file."""

    def __init__(self, dataset: list[str], run_dir: Path, *extra: str, program: str | None = None) -> None:
        self.run_dir = run_dir
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log = run_dir.parent / f"{run_dir.name}-{time.monotonic_ns()}.log"
        head = [sys.executable, "-c", program] if program else [sys.executable, "-m", "imvia_core"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*head, *TRAIN_ARGS, *dataset, "--run-dir", str(run_dir), *extra],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=ENV,
                cwd=run_dir.parent,
            )

    def wait(self, timeout: float = 420) -> int:
        return self.proc.wait(timeout=timeout)

    @property
    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def kill_after_first_checkpoint(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not list(self.run_dir.glob("ckpt-*.pt.sha256")):
            assert self.proc.poll() is None, f"the run ended before its first checkpoint:\n{self.output}"
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.02)
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.wait() == -signal.SIGKILL


def _records(run_dir: Path) -> list[dict]:
    """``metrics.jsonl`` without the wall-clock field."""
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines if line.strip()]


def _assert_same_outcome(run_dir: Path, reference: Path) -> None:
    got = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    want = json.loads((reference / "results.json").read_text(encoding="utf-8"))
    for key in ("best_epoch", "epochs_trained", "valid", "test", "test_branches"):
        assert got[key] == want[key], key
    assert _records(run_dir) == _records(reference)  # the log neither lost nor repeated an epoch
    best, best_ref = (torch.load(d / "best.pt", weights_only=False)["model"] for d in (run_dir, reference))
    assert best.keys() == best_ref.keys() and all(torch.equal(best[k], best_ref[k]) for k in best)


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory) -> Path:
    """A 200-entity synthetic graph written as a dataset folder, with its two feature files in ``features/``."""
    from imvia_core.data.synthetic import SyntheticConfig, generate_synthetic
    from imvia_core.features.synthetic import write_synthetic

    return write_synthetic(
        tmp_path_factory.mktemp("data") / "small",
        generate_synthetic(SyntheticConfig(num_entities=200, num_clusters=10)),
    )


@pytest.fixture(scope="module")
def small_dataset(small_folder) -> list[str]:
    """The options of ``imvia train`` that select :func:`small_folder` and its features."""
    return [
        "--dataset", str(small_folder),
        "--visual-features", str(small_folder / "features" / "visual.safetensors"),
        "--text-features", str(small_folder / "features" / "text.safetensors"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, small_dataset):
    """The reference run; started at once so that it trains while a test interrupts another run."""
    run = _Run(small_dataset, tmp_path_factory.mktemp("reference") / "run")

    def finished() -> Path:
        if run.proc.returncode is None:
            assert run.wait() == 0, run.output
        return run.run_dir

    yield finished
    if run.proc.poll() is None:
        run.proc.kill()
        run.proc.wait()


# ------------------------------------------------------------------------------------------- real interruptions


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_same_metrics(tmp_path, small_dataset, uninterrupted) -> None:
    run_dir = tmp_path / "run"

    # 1. kill -9 from outside as soon as the first checkpoint is on disk
    first = _Run(small_dataset, run_dir)
    first.kill_after_first_checkpoint()
    assert not (run_dir / "results.json").exists()
    kept = sorted(p.name for p in run_dir.glob("ckpt-*.pt"))
    assert kept, "the checkpoint that was on disk survives the kill"

    # 2. resume, and kill -9 again in the middle of writing the next checkpoint (file written, checksum not)
    second = _Run(small_dataset, run_dir, "--resume", program=DIE_DURING_CHECKPOINT_WRITE)
    assert second.wait() == -signal.SIGKILL, second.output
    assert "resuming" in second.output
    unsigned = [p for p in run_dir.glob("ckpt-*.pt") if not p.with_name(p.name + ".sha256").exists()]
    assert len(unsigned) == 1 and unsigned[0].name not in kept
    assert not (run_dir / "results.json").exists()

    # 3. resume again: the unsigned checkpoint is reported and skipped, the run finishes
    third = _Run(small_dataset, run_dir, "--resume")
    assert third.wait() == 0, third.output
    assert "skipping damaged checkpoint" in third.output and unsigned[0].name in third.output
    assert "the write did not finish" in third.output
    assert "Traceback" not in first.output + second.output + third.output

    _assert_same_outcome(run_dir, uninterrupted())
    records = _records(run_dir)
    train_records = [r for r in records if r["kind"] == "train"]
    assert [r["epoch"] for r in train_records] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in train_records)  # logged every epoch
    assert not list(run_dir.glob(".*.tmp")), "no temporary file is left behind by a finished run"


@pytest.mark.slow
def test_truncated_newest_checkpoint_and_torn_log_line_fall_back(tmp_path, small_dataset, uninterrupted) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted(), run_dir)
    (run_dir / "results.json").unlink()
    newest = max(run_dir.glob("ckpt-*.pt"))
    previous = sorted(run_dir.glob("ckpt-*.pt"))[-2]
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # truncated copy: its checksum no longer matches
    with (run_dir / "metrics.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"kind": "train", "epoch": 7, "lo')  # a line cut short by a kill

    resumed = _Run(small_dataset, run_dir, "--resume")
    assert resumed.wait() == 0, resumed.output
    out = resumed.output
    assert f"skipping damaged checkpoint: {newest}: SHA-256" in out
    assert f"from {previous.name}" in out
    assert "Traceback" not in out
    _assert_same_outcome(run_dir, uninterrupted())


# ------------------------------------------------------------------------------------------- checkpoint files


def _state(value: float) -> dict:
    return {"model": {"w": torch.full((3,), value)}, "state": {"epoch": int(value)}}


def test_checkpoint_without_sidecar_is_ignored(tmp_path) -> None:
    save_checkpoint(_state(2), tmp_path / "ckpt-000002.pt")
    save_checkpoint(_state(4), tmp_path / "ckpt-000004.pt")
    (tmp_path / "ckpt-000004.pt.sha256").unlink()  # killed between the file and its checksum
    with pytest.warns(UserWarning, match=r"ckpt-000004\.pt: no checksum file ckpt-000004\.pt\.sha256"):
        path, state = latest_good_checkpoint(tmp_path)
    assert path.name == "ckpt-000002.pt" and state["state"]["epoch"] == 2
    with pytest.raises(CorruptCheckpointError, match="the write did not finish"):
        load_checkpoint(tmp_path / "ckpt-000004.pt")


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage-with-matching-sidecar"])
def test_damaged_checkpoint_is_reported_and_previous_used(tmp_path, damage) -> None:
    save_checkpoint(_state(2), tmp_path / "ckpt-000002.pt")
    newest = save_checkpoint(_state(4), tmp_path / "ckpt-000004.pt")
    data = bytearray(newest.read_bytes())
    if damage == "truncate":
        newest.write_bytes(bytes(data[: len(data) // 3]))
        needle = "SHA-256 .* does not match ckpt-000004.pt.sha256"
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF
        newest.write_bytes(bytes(data))
        needle = "does not match"
    elif damage == "empty":
        newest.write_bytes(b"")
        needle = "does not match"
    else:  # a checksum that agrees does not make a file loadable
        atomic_write_bytes(newest, b"not a torch file")
        atomic_write_text(
            newest.with_name(newest.name + ".sha256"), __import__("hashlib").sha256(b"not a torch file").hexdigest()
        )
        needle = "cannot be read"
    with pytest.raises(CorruptCheckpointError, match=needle) as info:
        load_checkpoint(newest)
    assert str(newest) in str(info.value)
    with pytest.warns(UserWarning, match="skipping damaged checkpoint"):
        path, state = latest_good_checkpoint(tmp_path)
    assert path.name == "ckpt-000002.pt" and torch.equal(state["model"]["w"], torch.full((3,), 2.0))


def test_no_good_checkpoint_means_a_fresh_start(tmp_path) -> None:
    assert latest_good_checkpoint(tmp_path) == (None, None)
    (tmp_path / "ckpt-000001.pt").write_bytes(b"partial")
    (tmp_path / ".ckpt-000002.pt.abc123.tmp").write_bytes(b"temporary file of a killed write")
    with pytest.warns(UserWarning, match="ckpt-000001.pt"):
        assert latest_good_checkpoint(tmp_path) == (None, None)


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch) -> None:
    target = tmp_path / "results.json"
    atomic_write_text(target, '{"old": true}\n')

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(target, '{"new": true, "padding": "' + "x" * 10_000 + '"}\n')
    monkeypatch.undo()
    assert target.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temporary file left


def test_result_files_carry_a_checksum(tmp_path) -> None:
    target = tmp_path / "results.json"
    atomic_write_text(target, '{"mrr": 0.5}\n', checksum=True)
    assert (tmp_path / "results.json.sha256").is_file()
    assert read_verified_text(target) == '{"mrr": 0.5}\n'
    target.write_text('{"mrr": 0.9}\n')  # altered after the fact
    with pytest.raises(CorruptCheckpointError, match=r"results\.json: SHA-256 .* does not match"):
        read_verified_text(target)
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    assert read_verified_text(plain) == "{}"  # files written before checksums existed are read as they are


def test_pruning_keeps_the_newest_pairs(tmp_path) -> None:
    for epoch in (2, 4, 6, 8):
        save_checkpoint(_state(epoch), tmp_path / f"ckpt-{epoch:06d}.pt")
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-000006.pt",
        "ckpt-000006.pt.sha256",
        "ckpt-000008.pt",
        "ckpt-000008.pt.sha256",
    ]


# ------------------------------------------------------------------------------------------- resume edge cases


def _tiny(folder: Path, **overrides):
    """An in-process run on :func:`small_folder`: 3 epochs, a checkpoint after each."""
    values = dict(dim=8, batch_size=256, epochs=3, eval_every=1, patience=0)
    values["visual_features"] = str(folder / "features" / "visual.safetensors")
    values["text_features"] = str(folder / "features" / "text.safetensors")
    values.update(overrides)
    return profile_config("ci", str(folder), **values)


def test_resume_refuses_another_configuration(tmp_path, small_folder) -> None:
    _tiny(small_folder).save(tmp_path / "config.json")
    with pytest.raises(ImviaError, match="config.json: the run was started with another configuration"):
        train(_tiny(small_folder, lr=0.5), tmp_path, resume=True, progress=False)


def test_resume_without_checkpoint_starts_over_with_a_clean_log(tmp_path, small_folder) -> None:
    cfg = _tiny(small_folder, epochs=1)
    cfg.save(tmp_path / "config.json")
    stale = [{"kind": "train", "epoch": e, "loss": 1.0, "grad_norm": 1.0} for e in (1, 2)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stale) + '{"kind": "tr')
    train(cfg, tmp_path, resume=True, progress=False)  # killed before its first checkpoint: nothing to resume
    records = _records(tmp_path)
    assert [(r["kind"], r["epoch"]) for r in records] == [("train", 1), ("valid", 1)]
    assert records[0]["loss"] != 1.0


def test_resume_with_features_that_no_longer_fit_is_a_clear_error(tmp_path, small_folder) -> None:
    from imvia_core.features.io import load_features, save_view_features
    from imvia_core.types import ModalityFeatures

    features = tmp_path / "visual.safetensors"
    shutil.copyfile(small_folder / "features" / "visual.safetensors", features)
    cfg = _tiny(small_folder, epochs=1, visual_features=str(features), text_features="none")
    train(cfg, tmp_path / "run", progress=False)
    visual = load_features(features)
    smaller = ModalityFeatures(views=visual.views[..., :5].clone(), mask=visual.mask, modality="visual")
    save_view_features(features, smaller, metadata=visual.metadata)  # the file was replaced since the run started
    with pytest.raises(InputError, match=r"ckpt-000001\.pt: does not fit the model") as info:
        train(cfg, tmp_path / "run", resume=True, progress=False)
    assert "feature files" in str(info.value)


# ------------------------------------------------------------------------------------------- divergence


def _train_lines(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return 0
    return sum('"kind": "train"' in line for line in path.read_text(encoding="utf-8").splitlines())


def _break_from_epoch(monkeypatch, run_dir: Path, epoch: int, how: str) -> None:
    """From ``epoch`` on, the model's loss is NaN (``how="loss"``) or finite with NaN gradients (``"grad"``)."""
    from imvia_core.model.imvia import IMVIA

    real = IMVIA.training_loss

    def broken(self, heads, relations, targets):
        loss, terms = real(self, heads, relations, targets)
        if _train_lines(run_dir) + 1 >= epoch:
            if how == "loss":
                loss = loss * float("nan")
            else:  # sqrt at 0: the value stays finite, its gradient is inf * 0 = NaN
                first = next(iter(self.main_parameters()))
                loss = loss + torch.sqrt(first.sum() * 0.0)
        return loss, terms

    monkeypatch.setattr(IMVIA, "training_loss", broken)


def _assert_last_good_checkpoint(run_dir: Path, epoch: int) -> None:
    assert not (run_dir / f"ckpt-{epoch + 1:06d}.pt").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the last good checkpoint verifies: no warning
        path, state = latest_good_checkpoint(run_dir)
    assert path.name == f"ckpt-{epoch:06d}.pt" and state["state"]["epoch"] == epoch
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert load_checkpoint(run_dir / "best.pt")["epoch"] <= epoch
    train_records = [r for r in _records(run_dir) if r["kind"] == "train"]
    assert [r["epoch"] for r in train_records] == list(range(1, epoch + 1))
    assert all(math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in train_records)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch, capsys, small_dataset
) -> None:
    run_dir = tmp_path / "run"
    _break_from_epoch(monkeypatch, run_dir, 2, "loss")
    args = ["train", "--profile", "ci", *small_dataset, "--dim", "8", "--batch-size", "256"]
    args += ["--epochs", "3", "--eval-every", "1", "--patience", "0", "--run-dir", str(run_dir)]
    assert main(args) == 1
    err = "\n".join(ln for ln in capsys.readouterr().err.splitlines() if not ln.startswith("imvia: warning: "))
    assert err.startswith("imvia: error: loss became nan at epoch 2, batch 1 (terms: ")
    assert f"the last good checkpoint in {run_dir} is kept" in err
    _assert_last_good_checkpoint(run_dir, 1)


def test_non_finite_gradient_stops_the_run_before_the_weights_change(tmp_path, monkeypatch, small_folder) -> None:
    run_dir = tmp_path / "run"
    _break_from_epoch(monkeypatch, run_dir, 2, "grad")
    with pytest.raises(TrainingDiverged, match=r"gradient norm became nan at epoch 2, batch 1 \(loss ") as info:
        train(_tiny(small_folder), run_dir, progress=False)
    assert "last good checkpoint" in str(info.value)
    _assert_last_good_checkpoint(run_dir, 1)


def test_auto_features_of_a_dataset_folder_come_from_that_folder(small_folder, tmp_path, monkeypatch) -> None:
    """``auto`` looks in the folder a dataset was loaded from, not in ``data/<folder name>``."""
    from imvia_core.data.loading import load_graph
    from imvia_core.training.inputs import find_features

    monkeypatch.setenv("IMVIA_DATA_DIR", str(tmp_path / "elsewhere"))
    graph = load_graph(small_folder)
    visual = find_features(graph, "visual", "auto")
    assert visual is not None and visual.views.shape[0] == graph.num_entities
    assert not (tmp_path / "elsewhere").exists()  # nothing looked up or written there
