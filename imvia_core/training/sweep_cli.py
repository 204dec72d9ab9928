"""``imvia sweep``: hyperparameter search on Optuna (see :mod:`imvia_core.training.sweep`)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from imvia_core.errors import ConfigError
from imvia_core.evaluation import EvaluationResult
from imvia_core.training import sweep

__all__ = ["register"]

_DESCRIPTION = """\
Search hyperparameters with Optuna. STUDY.yaml names the dataset, model, profile, the search space
(float, log-float, int, categorical), the sampler (tpe, random, grid), the number of trials, the epochs per trial
and the pruner (median, hyperband, threshold, none). Every trial is an ordinary run directory,
runs/sweeps/<study>/trial-<n>/. The objective is the trial's best validation MRR: trials never read the test split.

storage:
  default            a journal file, runs/sweeps/<study>/study.journal: no server; any number of processes on this
                     machine (or on one shared file system) join the study
  --storage URL      any SQLAlchemy URL, e.g. postgresql://user:password@db-host:5432/sweeps (or
                     sqlite:///sweeps.db for one worker). Start the same command on several machines with the same
                     URL and they all work on one study. The URL may also come from $IMVIA_SWEEP_STORAGE, and the
                     password from $PGPASSWORD or ~/.pgpass; a password is never printed or written (shown as ***)

workers:
  --workers N        N local worker processes on one study (each with its CPU share of threads, --threads)
  --devices LIST     devices for the workers, cycled: --workers 2 --devices cuda:0,cuda:1

Two workers never run the same trial, and a grid is run exactly once. A killed worker loses only its current
trial: once its heartbeat is older than the study's grace_period, another worker (or the same command started
again) fails it and runs its parameters again as a new trial. Run the same command again to continue a study.

after the search:
  --finish           evaluate the best trial once on valid and test; writes results/sweeps/<study>/results.json
                     (study name, trial number, search space inside) with summary.json, summary.csv and
                     best-config.json (for 'imvia train --config') beside it
  --finish --epochs N
                     train the best trial's configuration again for N epochs (the profile's full budget, say, where
                     the trials had a short one), select its checkpoint on validation, then evaluate it on test once
  --finish --publish [NAME]
                     also copy that result with its per-query rank file to results/<profile>/<dataset>/NAME.json
                     (default NAME: the study's model), where Table II reads its rows: the grid's
                     validation-selected setting becomes that row
  --summary          only write the summary files (no training, no test)
"""


def _cmd_sweep(args: argparse.Namespace) -> int:
    storage = args.storage or os.environ.get(sweep.STORAGE_ENV) or None
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
    if args.worker:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        spec = sweep.load_study_spec(args.study)
        sweep.run_worker(
            spec,
            storage_url=storage,
            sweep_dir=args.sweep_dir,
            device=devices[0] if devices else None,
            log=lambda line: print(line, flush=True),
        )
        return 0
    if args.publish is not None and not args.finish:
        raise ConfigError("--publish goes with --finish (it publishes the test-evaluated best trial)")
    if args.epochs is not None and not args.finish:
        raise ConfigError("--epochs goes with --finish (the trials' epochs are set in the study file)")
    if args.finish:
        results = sweep.finish_sweep(
            args.study,
            storage_url=storage,
            sweep_dir=args.sweep_dir,
            device=devices[0] if devices else None,
            epochs=args.epochs,
            publish=args.publish,
        )

        headline = {
            split: round(EvaluationResult.from_dict(results[split]).metric("mrr"), 4) for split in ("valid", "test")
        }
        print(json.dumps({"study": results["sweep"]["study"], "trial": results["sweep"]["trial"], "mrr": headline}))
        return 0
    if args.summary:
        spec = sweep.load_study_spec(args.study)
        sweep_dir = Path(args.sweep_dir) if args.sweep_dir else sweep.default_sweep_dir(spec)
        study = sweep.create_or_load_study(spec, sweep.open_storage(storage, sweep_dir))
        summary = sweep.study_summary(spec, study, storage_url=storage)
        print(sweep.write_summary(summary, sweep.default_results_dir(spec)))
        return 0
    summary = sweep.run_sweep(
        args.study,
        storage_url=storage,
        workers=args.workers,
        devices=devices,
        threads=args.threads,
        sweep_dir=args.sweep_dir,
    )
    best = summary["best"]
    print(
        json.dumps(
            {
                "study": summary["study"],
                "counts": summary["counts"],
                "best": best
                and {"trial": best["number"], "valid_mrr": round(best["value"], 4), "params": best["params"]},
            }
        )
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="hyperparameter search on Optuna (validation MRR only; resumable; local workers or a shared database)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("study", type=Path, help="the study file (YAML)")
    p.add_argument("--storage", metavar="URL", help="SQLAlchemy URL of a shared database (default: a journal file)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--devices", help="comma-separated devices, one per worker, cycled (default: the profile's)")
    p.add_argument("--threads", type=int, help="torch threads per worker (default: CPU count / workers)")
    p.add_argument("--sweep-dir", type=Path, help="where trial run directories go (default runs/sweeps/<study>)")
    p.add_argument("--finish", action="store_true", help="evaluate the best trial once on test (see below)")
    p.add_argument(
        "--epochs",
        type=int,
        help="with --finish: train the best trial's configuration again for this many epochs (e.g. the profile's "
        "full budget) before its one test evaluation, instead of reloading the trial's checkpoint",
    )
    p.add_argument(
        "--publish",
        nargs="?",
        const="",
        metavar="NAME",
        help="with --finish: copy the result and its rank file to results/<profile>/<dataset>/NAME.json "
        "(default NAME: the study's model)",
    )
    p.add_argument("--summary", action="store_true", help="write the study summary only")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_sweep)
