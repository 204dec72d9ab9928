"""Hyperparameter sweeps: exact grids with two workers, kill safety, a real PostgreSQL server, validation only,
pruning, clear errors. Every trial trains a 200-entity synthetic graph for 1-3 epochs."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from imvia_core.cli import main

SECRET = "s3cret-Pg-pw-4711"
#: the grid of most tests: 2 x 2 points
GRID = {"lr": {"choices": [0.01, 0.02]}, "hidden_dropout2": {"low": 0.1, "high": 0.3, "step": 0.2}}


#: the runs here are tiny: one thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory) -> Path:
    from imvia_core.data.synthetic import SyntheticConfig, generate_synthetic
    from imvia_core.features.synthetic import write_synthetic

    return write_synthetic(
        tmp_path_factory.mktemp("data") / "small",
        generate_synthetic(SyntheticConfig(num_entities=200, num_clusters=10)),
    )


@pytest.fixture
def dirs(tmp_path, monkeypatch) -> dict[str, Path]:
    """Runs and results of the test in its own folders (for this process and its subprocesses)."""
    out = {"runs": tmp_path / "runs", "results": tmp_path / "results", "root": tmp_path}
    monkeypatch.setenv("IMVIA_RUNS_DIR", str(out["runs"]))
    monkeypatch.setenv("IMVIA_RESULTS_DIR", str(out["results"]))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("IMVIA_SWEEP_STORAGE", raising=False)
    return out


def _study(path: Path, folder: Path, **keys) -> Path:
    values = {
        "name": path.stem,
        "dataset": str(folder),
        "profile": "ci",
        "epochs": 2,
        "fixed": {
            "eval_every": 1,
            "dim": 16,
            "visual_features": str(folder / "features" / "visual.safetensors"),
            "text_features": str(folder / "features" / "text.safetensors"),
        },
        "space": GRID,
        "sampler": "grid",
        "heartbeat_interval": 0.5,
        "grace_period": 2,
        **keys,
    }
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "IMVIA_DATA_MIRROR", "IMVIA_SWEEP_STORAGE")}
    return {**env, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", **extra}


def _sweep(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imvia_core", "sweep", *args],
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _summary(dirs, name: str) -> dict:
    return json.loads((dirs["results"] / "sweeps" / name / "summary.json").read_text(encoding="utf-8"))


def _grid_points() -> set[tuple]:
    return {(lr, d) for lr in (0.01, 0.02) for d in (0.1, 0.3)}


def _assert_grid_done_once(summary: dict, run_root: Path) -> None:
    complete = [t for t in summary["trials"] if t["state"] == "COMPLETE"]
    points = [(t["params"]["lr"], round(t["params"]["hidden_dropout2"], 6)) for t in complete]
    assert sorted(points) == sorted(_grid_points())  # every point once, none twice
    for t in complete:
        run_dir = run_root / f"trial-{t['number']}"
        trains = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
        assert [r["epoch"] for r in trains] == [1, 2]  # trained once, no epoch repeated
        results = json.loads((run_dir / "results.json").read_text())
        assert results["test"] is None and results["test_branches"] == {}
        assert t["value"] == pytest.approx(results["valid"]["metrics"]["realistic"]["overall"]["mrr"])


# ------------------------------------------------------------------------------------------------ workers


def test_two_workers_complete_a_grid_exactly_once(tmp_path, dirs, small_folder) -> None:
    study = _study(tmp_path / "grid2.yaml", small_folder)
    done = _sweep(str(study), "--workers", "2", "--threads", "1")
    assert done.returncode == 0, done.stderr
    summary = _summary(dirs, "grid2")
    assert summary["counts"] == {"COMPLETE": 4}
    _assert_grid_done_once(summary, dirs["runs"] / "sweeps" / "grid2")
    assert len((dirs["results"] / "sweeps" / "grid2" / "summary.csv").read_text().splitlines()) == 5
    best = summary["best"]
    assert best["value"] == max(t["value"] for t in summary["trials"])
    assert (
        json.loads((dirs["results"] / "sweeps" / "grid2" / "best-config.json").read_text())["lr"]
        == best["params"]["lr"]
    )
    # the same command again has nothing left to do
    again = _sweep(str(study))
    assert again.returncode == 0, again.stderr
    assert _summary(dirs, "grid2")["counts"] == {"COMPLETE": 4}


def _trial_worker_pid(journal: Path, name: str, number: int) -> int | None:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    for t in study.get_trials(deepcopy=False):
        if t.number == number and "worker" in t.user_attrs:
            return int(t.user_attrs["worker"].rsplit(":", 1)[1])
    return None


def test_sigkilled_worker_loses_only_its_trial_and_the_restarted_command_completes(
    tmp_path, dirs, small_folder
) -> None:
    study = _study(tmp_path / "killed.yaml", small_folder, epochs=3, space=GRID)
    sweep_dir = dirs["runs"] / "sweeps" / "killed"
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(
        [sys.executable, "-m", "imvia_core", "sweep", str(study), "--workers", "2", "--threads", "1"],
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    pid = None
    while pid is None:  # trial 0 has written its first checkpoint: mid-trial
        assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
        if list((sweep_dir / "trial-0").glob("ckpt-000001.pt.sha256")):
            pid = _trial_worker_pid(sweep_dir / "study.journal", "killed", 0)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    assert first.wait(timeout=120) == 1  # the parent says a worker died; the other finished the study
    log.close()
    restarted = _sweep(str(study))  # the command again (one worker is enough for what is left)
    assert restarted.returncode == 0, restarted.stderr
    summary = _summary(dirs, "killed")
    states = {t["number"]: t for t in summary["trials"]}
    assert states[0]["state"] == "FAIL" and "interrupted" in states[0]["error"]
    retry = [t for t in summary["trials"] if t["retry_of"] == 0]
    assert len(retry) == 1 and retry[0]["state"] == "COMPLETE" and retry[0]["params"] == states[0]["params"]
    # the retry took over trial 0's folder and resumed after its checkpoint: no epoch trained twice
    assert retry[0]["resumed_from"] == "trial-0" and not (sweep_dir / "trial-0").exists()
    lines = (sweep_dir / f"trial-{retry[0]['number']}" / "metrics.jsonl").read_text().splitlines()
    trains = [json.loads(x) for x in lines if '"train"' in x]
    assert [r["epoch"] for r in trains] == [1, 2, 3]
    assert all(t["resumed_from"] is None for t in summary["trials"] if t["retry_of"] is None)
    complete = [t for t in summary["trials"] if t["state"] == "COMPLETE"]
    assert sorted((t["params"]["lr"], round(t["params"]["hidden_dropout2"], 6)) for t in complete) == sorted(
        _grid_points()
    )


# ------------------------------------------------------------------------------------------------ PostgreSQL


def _pg_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).parent))
    for c in candidates:
        if (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on loopback in a temporary data folder (as the postgres user when run as root)."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH")
    root = Path(tempfile.mkdtemp(prefix="imvia-pg-", dir="/tmp"))
    os.chmod(root, 0o755)
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    pwfile = root / "pwfile"
    pwfile.write_text(SECRET + "\n")
    if as_root:
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
    pwfile.chmod(0o600)

    def pg(*cmd: str) -> None:
        done = subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{cmd[0]}: {done.stdout}\n{done.stderr}"

    data, port = root / "data", _free_port()
    pg(str(bindir / "initdb"), "-D", str(data), "-U", "imvia", f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
       "--auth-local=trust", "-E", "UTF8", "--no-sync")  # fmt: skip
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(root / "server.log"),
        "-w",
        "-t",
        "60",
        "-o",
        options,
        "start",
    )
    try:
        pg(str(bindir / "createdb"), "-h", str(root), "-p", str(port), "-U", "imvia", "sweeps")
        yield {"url": f"postgresql://imvia:{SECRET}@127.0.0.1:{port}/sweeps", "port": port}
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        status = subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "status"], capture_output=True)
        assert status.returncode == 3  # no server running
        shutil.rmtree(root, ignore_errors=True)


def _files_containing(root: Path, text: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_two_workers_share_a_study_through_postgresql_and_no_password_is_written(
    tmp_path, dirs, small_folder, postgres
) -> None:
    study = _study(tmp_path / "pg.yaml", small_folder)
    done = _sweep(str(study), "--workers", "2", "--threads", "1", "--storage", postgres["url"])
    assert done.returncode == 0, done.stderr
    summary = _summary(dirs, "pg")
    assert summary["counts"] == {"COMPLETE": 4}
    _assert_grid_done_once(summary, dirs["runs"] / "sweeps" / "pg")
    assert summary["storage"] == f"postgresql://imvia:***@127.0.0.1:{postgres['port']}/sweeps"
    assert not (dirs["runs"] / "sweeps" / "pg" / "study.journal").exists()  # the study lives in the database
    # --finish with the password from PGPASSWORD instead of the URL: test once, results under results/sweeps/
    finish = _sweep(
        str(study),
        "--finish",
        "--storage",
        f"postgresql://imvia@127.0.0.1:{postgres['port']}/sweeps",
        env=_env(PGPASSWORD=SECRET),
    )
    assert finish.returncode == 0, finish.stderr
    results = json.loads((dirs["results"] / "sweeps" / "pg" / "results.json").read_text())
    assert results["sweep"]["study"] == "pg" and results["sweep"]["trial"] == summary["best"]["number"]
    assert set(results["sweep"]["search_space"]) == set(GRID) and results["test"] is not None
    for output in (done.stdout, done.stderr, finish.stdout, finish.stderr):
        assert SECRET not in output
    assert _files_containing(dirs["root"], SECRET) == []


def test_finish_with_epochs_retrains_the_best_configuration_then_tests_once(tmp_path, dirs, small_folder) -> None:
    """``--finish --epochs N``: the best trial's configuration trained again for N epochs, then one test evaluation."""
    from imvia_core.training import sweep

    study = _study(tmp_path / "longer.yaml", small_folder, epochs=1, space={"lr": {"choices": [0.02]}})
    sweep.run_sweep(study, threads=1, progress=False)
    results = sweep.finish_sweep(study, epochs=2, progress=False)
    assert results["sweep"]["retrained_epochs"] == 2 and results["sweep"]["epochs_per_trial"] == 1
    assert results["epochs_trained"] == 2 and results["config"]["epochs"] == 2 and results["test"] is not None
    assert results["config"]["lr"] == 0.02  # the trial's configuration, not the profile's
    final = dirs["runs"] / "sweeps" / "longer" / "final-trial-0-2ep"
    trains = [json.loads(x) for x in (final / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
    assert [r["epoch"] for r in trains] == [1, 2]
    written = dirs["results"] / "sweeps" / "longer" / "results.json"
    assert json.loads(written.read_text())["sweep"]["retrained_epochs"] == 2
    stamp, log = written.stat().st_mtime_ns, (final / "metrics.jsonl").read_text()
    again = sweep.finish_sweep(study, epochs=2, progress=False)  # the same request: no second test evaluation
    assert again["test"] == results["test"] and written.stat().st_mtime_ns == stamp
    assert (final / "metrics.jsonl").read_text() == log  # nothing trained again


def test_finish_publish_makes_the_selected_setting_a_table_row(tmp_path, dirs, small_folder) -> None:
    """``--finish --publish``: the validation-selected trial, tested once, lands where Table II reads its rows, with
    its per-query rank file; a second call publishes the same result without testing again."""
    from imvia_core.evaluation.rank_files import load_rank_file
    from imvia_core.reporting.results import collect_results, rank_file_of
    from imvia_core.training import sweep

    study = _study(tmp_path / "rowgrid.yaml", small_folder, epochs=1, model="distmult", fixed={"eval_every": 1})
    summary = sweep.run_sweep(study, threads=1, progress=False)
    results = sweep.finish_sweep(study, publish="", progress=False)
    row = dirs["results"] / "ci" / small_folder.name / "distmult.json"
    published = json.loads(row.read_text())
    assert published["sweep"]["trial"] == summary["best"]["number"] == results["sweep"]["trial"]
    assert published["test"] == results["test"] and published["config"]["lr"] == summary["best"]["params"]["lr"]
    ranks = rank_file_of(row)
    assert ranks is not None and load_rank_file(ranks)["test"].ranks.shape[0] == 2  # both directions of each triple
    frame = collect_results(dirs["results"], variants=["distmult"])
    assert list(frame["variant"]) == ["distmult"] and list(frame["profile"]) == ["ci"]
    stamp = (dirs["results"] / "sweeps" / "rowgrid" / "results.json").stat().st_mtime_ns
    row.unlink()
    again = sweep.finish_sweep(study, publish="grid-distmult", progress=False)  # already tested: only published
    assert again["test"] == results["test"]
    assert (dirs["results"] / "sweeps" / "rowgrid" / "results.json").stat().st_mtime_ns == stamp
    assert json.loads((row.parent / "grid-distmult.json").read_text())["test"] == results["test"]
    with pytest.raises(Exception, match="file stem"):
        sweep.finish_sweep(study, publish="../escape", progress=False)


def test_finish_after_the_storage_is_lost_rebuilds_the_best_trial(tmp_path, dirs, small_folder) -> None:
    """The sweep folder under ``runs/`` is gone (another machine), the committed summary is not: ``--finish`` trains the
    recorded best trial again as its worker did, finds the same validation MRR (one thread, CPU), then tests once."""
    from imvia_core.training import sweep

    study = _study(tmp_path / "lost.yaml", small_folder, epochs=1, model="distmult", fixed={"eval_every": 1})
    summary = sweep.run_sweep(study, threads=1, progress=False)
    committed = (dirs["results"] / "sweeps" / "lost" / "summary.json").read_text()
    shutil.rmtree(dirs["runs"] / "sweeps" / "lost")
    results = sweep.finish_sweep(study, publish="", progress=False)
    best = summary["best"]
    assert results["sweep"]["trial"] == best["number"] and results["test"] is not None
    assert results["sweep"]["rebuilt_trial_valid_mrr"] == pytest.approx(best["value"], abs=1e-6)
    assert results["config"]["lr"] == best["params"]["lr"]
    after = json.loads((dirs["results"] / "sweeps" / "lost" / "summary.json").read_text())
    before = json.loads(committed)
    assert [(t["params"], t["value"]) for t in after["trials"]] == [(t["params"], t["value"]) for t in before["trials"]]
    assert all(t["restored_from"].endswith(f"summary.json, trial {t['number']}") for t in after["trials"])
    assert (dirs["results"] / "ci" / small_folder.name / "distmult.json").is_file()
    # a committed summary of another search space is not taken for this study's
    shutil.rmtree(dirs["runs"] / "sweeps" / "lost")
    (dirs["results"] / "sweeps" / "lost" / "results.json").unlink()
    _study(tmp_path / "lost.yaml", small_folder, epochs=1, model="distmult", space={"lr": {"choices": [0.05]}})
    with pytest.raises(Exception, match="another search space"):
        sweep.finish_sweep(study, progress=False)


def test_a_grid_cut_off_on_one_machine_continues_on_another_from_its_committed_summary(
    tmp_path, dirs, small_folder
) -> None:
    """Each finished trial updates results/sweeps/<study>/summary.json; a new machine (runs/ gone) restores those
    trials with their values and curves and runs only the grid points still missing."""
    from imvia_core.training import sweep

    study = _study(tmp_path / "moved.yaml", small_folder, epochs=1)
    summary = sweep.run_sweep(study, threads=1, progress=False)
    path = dirs["results"] / "sweeps" / "moved" / "summary.json"
    full = json.loads(path.read_text())
    assert [t["number"] for t in full["trials"]] == [0, 1, 2, 3]
    cut = {**full, "trials": full["trials"][:2]}  # as if the session had ended during trial 2
    path.write_text(json.dumps(cut))
    shutil.rmtree(dirs["runs"] / "sweeps" / "moved")
    again = sweep.run_sweep(study, threads=1, progress=False)
    assert again["counts"] == {"COMPLETE": 4}
    old = {json.dumps(t["params"], sort_keys=True): t for t in full["trials"]}
    for t in again["trials"]:
        before = old[json.dumps(t["params"], sort_keys=True)]
        assert t["value"] == pytest.approx(before["value"], abs=1e-9)  # restored, or retrained deterministically
        assert t["intermediate_values"] == pytest.approx(before["intermediate_values"], abs=1e-9)
    assert sum(t["restored_from"] is not None for t in again["trials"]) == 2
    run_root = dirs["runs"] / "sweeps" / "moved"
    assert sorted(p.name for p in run_root.glob("trial-*")) == ["trial-2", "trial-3"]  # only the missing points ran
    assert summary["best"]["params"] == again["best"]["params"]


def test_publish_without_finish_is_one_clear_line(tmp_path, dirs, small_folder) -> None:
    study = _study(tmp_path / "nopub.yaml", small_folder)
    done = _sweep(str(study), "--publish")
    assert done.returncode == 1
    lines = [x for x in done.stderr.splitlines() if x.strip() and not x.startswith("imvia: warning")]
    assert lines == ["imvia: error: --publish goes with --finish (it publishes the test-evaluated best trial)"]


def test_epochs_without_finish_is_one_clear_line(tmp_path, dirs, small_folder) -> None:
    study = _study(tmp_path / "noflag.yaml", small_folder)
    done = _sweep(str(study), "--epochs", "3")
    assert done.returncode == 1
    lines = [x for x in done.stderr.splitlines() if x.strip() and not x.startswith("imvia: warning")]
    assert lines == ["imvia: error: --epochs goes with --finish (the trials' epochs are set in the study file)"]


# ------------------------------------------------------------------------------------------------ validation only


def test_a_sweep_never_reads_the_test_split(tmp_path, dirs, small_folder, monkeypatch) -> None:
    from imvia_core.data.loading import load_graph
    from imvia_core.errors import DataFormatError
    from imvia_core.training import sweep, trainer

    folder = tmp_path / "blind"
    shutil.copytree(small_folder, folder)
    (folder / "test.txt").write_text("this is not a triple file\n")
    (folder / "test.txt").chmod(0)  # unreadable for a normal user; for root, unparsable
    with pytest.raises((DataFormatError, PermissionError)):
        load_graph(folder)  # what an ordinary run would meet
    ranked = []
    evaluate = trainer.evaluate_model
    monkeypatch.setattr(
        trainer, "evaluate_model", lambda ctx, split, **kw: ranked.append(split) or evaluate(ctx, split, **kw)
    )
    study = _study(tmp_path / "blind.yaml", folder, space={"lr": {"choices": [0.01, 0.02]}})
    summary = sweep.run_sweep(study, threads=1, progress=False)
    assert summary["counts"] == {"COMPLETE": 2}
    assert set(ranked) == {"valid"}


def test_pruned_trials_keep_their_run_directory_and_metrics(tmp_path, dirs, small_folder) -> None:
    from imvia_core.training import sweep

    study = _study(
        tmp_path / "pruned.yaml",
        small_folder,
        epochs=3,
        sampler="random",
        n_trials=2,
        space={"lr": {"low": 0.002, "high": 0.02, "log": True}},
        baseline=True,  # trial 0: the profile's own lr (3e-3)
        pruner="threshold",
        pruner_options={"lower": 0.9},  # no trial reaches validation MRR 0.9: each stops after its first validation
    )
    summary = sweep.run_sweep(study, threads=1, progress=False)
    assert summary["counts"] == {"PRUNED": 2} and summary["best"] is None
    first = summary["trials"][0]
    assert first["baseline"] == "profile ci" and first["params"] == {"lr": 0.003}
    for t in summary["trials"]:
        run_dir = dirs["runs"] / "sweeps" / "pruned" / f"trial-{t['number']}"
        lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [(r["kind"], r["epoch"]) for r in lines] == [("train", 1), ("valid", 1)]
        assert list(t["intermediate_values"]) == ["1"] and t["best_valid_mrr"] is not None
        results = json.loads((run_dir / "results.json").read_text())
        assert results["stopped"].startswith("pruned at epoch 1") and (run_dir / "best.pt").is_file()
        assert list(run_dir.glob("ckpt-000001.pt"))
    rebuilt = sweep.study_from_summary(dirs["results"] / "sweeps" / "pruned" / "summary.json")
    assert len(rebuilt.trials) == 2
    from imvia_core.reporting.results import collect_results

    assert collect_results(dirs["results"]).empty  # a study's files are no profile's runs (Table II ignores them)


def test_train_without_callbacks_is_unchanged_and_a_stop_signal_finishes_cleanly(tmp_path, small_folder) -> None:
    from imvia_core.training.config import profile_config
    from imvia_core.training.trainer import TrainingStopped, train

    cfg = dict(
        epochs=3,
        eval_every=1,
        dim=16,
        visual_features=str(small_folder / "features" / "visual.safetensors"),
        text_features=str(small_folder / "features" / "text.safetensors"),
    )
    seen = []

    def stop_at_2(epoch: int, mrr: float) -> None:
        seen.append(epoch)
        if epoch == 2:
            raise TrainingStopped("enough")

    plain = train(profile_config("ci", str(small_folder), **cfg), tmp_path / "plain", progress=False)
    stopped = train(profile_config("ci", str(small_folder), **cfg), tmp_path / "stopped", progress=False,
                    on_validation=stop_at_2, skip_splits=("test",))  # fmt: skip
    assert seen == [1, 2] and stopped["stopped"] == "enough" and stopped["epochs_trained"] == 2
    assert stopped["test"] is None and "stopped" not in plain and plain["test"] is not None
    plain_log = (tmp_path / "plain" / "metrics.jsonl").read_text().splitlines()
    stopped_log = (tmp_path / "stopped" / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in plain_log]
    assert [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in stopped_log] == strip[:4]


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"space": {"learning_rate": {"low": 0.001, "high": 0.01}}}, "unknown parameter 'learning_rate'"),
        ({"space": {"lr": {"low": 0.01, "high": 0.01}}}, "space.lr: empty range"),
        ({"space": {"lr": {"low": 0.02, "high": 0.01}}}, "space.lr: inverted range"),
        ({"sampler": "annealing"}, "unknown sampler 'annealing'"),
        ({"space": {"dim": {"low": 8.5, "high": 16}}}, "space.dim"),
        ({"space": {"lr": {"low": -1.0, "high": 0.01}}, "sampler": "random"}, "lr must be positive"),
        ({"space": {"lr": {"low": 0.01, "high": 0.1}}, "sampler": "random", "baseline": True}, "lies outside space.lr"),
    ],
)
def test_bad_study_files_are_one_clear_line(tmp_path, dirs, small_folder, capsys, change, expected) -> None:
    study = _study(tmp_path / "bad.yaml", small_folder, **change)
    assert main(["sweep", str(study)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and str(study) in err, err


def test_unreachable_storage_names_the_host_and_hides_the_password(tmp_path, dirs, small_folder, capsys) -> None:
    study = _study(tmp_path / "nodb.yaml", small_folder)
    port = _free_port()  # nothing listens there
    assert main(["sweep", str(study), "--storage", f"postgresql://imvia:{SECRET}@127.0.0.1:{port}/sweeps"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"127.0.0.1:{port}" in err and SECRET not in err, err
    assert f"postgresql://imvia:***@127.0.0.1:{port}/sweeps" in err


def test_workers_sampling_independently_draw_distinct_reproducible_trials(tmp_path, small_folder) -> None:
    """Each worker process has its own sampler: seeded per trial, two of them never draw the same start-up point."""
    import optuna

    from imvia_core.training.sweep import _make_sampler, load_study_spec

    spec = load_study_spec(
        _study(tmp_path / "tpe.yaml", small_folder, sampler="tpe", n_trials=4, space={"lr": {"low": 1e-3, "high": 0.1}})
    )
    draws = []
    for _ in range(2):  # two "workers" on one history: the second asks for trial 1 after the first ran trial 0
        study = optuna.create_study(direction="maximize", sampler=_make_sampler(spec))
        values = []
        for _ in range(3):
            trial = study.ask()
            values.append(spec.space["lr"].suggest(trial))
            study.tell(trial, values[-1])
        draws.append(values)
    assert draws[0] == draws[1] and len(set(draws[0])) == 3


def test_help_explains_storage_and_workers(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = capsys.readouterr().out
    for needle in (
        "--storage URL",
        "journal file",
        "postgresql://",
        "PGPASSWORD",
        "--workers N",
        "--devices",
        "--finish",
    ):
        assert needle in out, needle


# ------------------------------------------------------------------------------------------------ committed studies

_STUDIES = sorted((Path(__file__).resolve().parents[1] / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", _STUDIES, ids=[p.stem for p in _STUDIES])
def test_committed_study_files_load_and_match_their_summaries(path):
    """Every study file of the repository is valid, named after its file, and its usage lines run that file; a
    committed summary of the same name was written for the same search space and grid, so a new machine restores
    its trials instead of refusing the study."""
    from imvia_core.training.sweep import load_study_spec

    spec = load_study_spec(path)
    assert spec.name == path.stem
    usage = [line for line in path.read_text(encoding="utf-8").splitlines() if "imvia sweep" in line]
    assert usage and all(f"studies/{path.name}" in line for line in usage), usage
    summary_file = path.parents[1] / "results" / "sweeps" / spec.name / "summary.json"
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        assert summary["study"] == spec.name
        assert summary["space"] == json.loads(json.dumps(spec.describe()["space"]))
        assert (summary["dataset"], summary["model"], summary["epochs"]) == (spec.dataset, spec.model, spec.epochs)
        assert summary["n_trials"] == spec.n_trials
