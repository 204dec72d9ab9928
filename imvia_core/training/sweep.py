"""Hyperparameter sweeps on Optuna: a study file, validation-only trials, pruning, shared storage, many workers.

A *study file* (YAML) names the dataset, model and profile, the settings every trial shares (``fixed``), the
search space, the sampler, the number of trials and the per-trial epoch budget::

    name: mkgy-imvia-cpu          # default: the file name without suffix
    dataset: MKG-Y
    model: imvia
    profile: cpu
    epochs: 6                     # per-trial budget (TrainConfig.epochs of every trial)
    fixed: {eval_every: 2, use_visual: false}
    space:
      lr: {low: 1.0e-3, high: 1.0e-2, log: true}      # float, log scale
      hidden_dropout2: {low: 0.1, high: 0.5}           # float
      dim: {low: 64, high: 192, step: 64}              # int (both ends integers)
      decision_fusion: {choices: [gated, uniform]}     # categorical
    sampler: tpe                  # tpe (default), random, grid
    n_trials: 20                  # default for grid: every grid point once
    pruner: median                # median (default), hyperband, threshold ({lower: x}), none
    pruner_options: {n_startup_trials: 4}
    seed: 0
    baseline: true                # trial 0: the profile's own values of the searched parameters

Every parameter name is a :class:`~imvia_core.training.config.TrainConfig` field; each trial's configuration is
``profile_config(profile, dataset, model=..., **fixed, **params, epochs=...)``, validated like any other.

**Trials never see the test split.** A worker loads the graph with ``include_test=False``: ``test.txt`` is
neither hashed nor read, and the filtered validation ranking removes the known train and valid triples only (not
the test triples, which an ordinary run also filters out). A trial's validation MRR can therefore be a little
lower than the same model's MRR in an ordinary run; the objective is the trial's best validation MRR under that
filtering. :func:`finish_sweep` evaluates the best trial once with the full graph, on valid (the ordinary
filtering, comparable to ``imvia train``) and on test.

**Storage and workers.** The default storage is an Optuna journal file in the sweep folder
(``runs/sweeps/<study>/study.journal``), safe for several processes on one file system. Any SQLAlchemy URL
(``postgresql://user:pass@host/db``, ``sqlite:///file.db``) puts the study in a database that workers on any number
of machines share. Each worker claims trials through the storage, so two workers never run the same one, and a
grid is enqueued once (by the process that creates the study) and each point claimed once.

**Kill safety.** A running trial writes a heartbeat to the storage every ``heartbeat_interval`` seconds. A trial
whose heartbeat is older than ``grace_period`` seconds (its worker was killed) is marked failed by whichever
worker notices it, and the same parameters are enqueued again as a new trial (``retry_of`` names the original).
The retry continues the original's training: its folder becomes the retry's ``trial-<n>/`` and training resumes
from its newest good checkpoint (exact on the CPU; ``resumed_from`` names the folder), so a kill costs at most the
epochs since the last checkpoint. Workers wait for running trials before they exit, so a study whose workers are
restarted completes.

**Credentials.** Storage URLs are only shown with the password masked (:func:`mask_url`); the URL reaches worker
processes through the environment, not the command line, and nothing writes it, ``PGPASSWORD`` or ``~/.pgpass``.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from imvia_core.data.loading import load_graph
from imvia_core.errors import ConfigError, ImviaError, InputError
from imvia_core.evaluation import EvaluationResult
from imvia_core.evaluation.rank_files import RANK_FILE_NAME
from imvia_core.paths import data_dir, project_root, results_dir, runs_dir
from imvia_core.progress import bars_disabled
from imvia_core.training.checkpoint import atomic_write_text
from imvia_core.training.config import MODEL_OPTIONS, TrainConfig, profile_config
from imvia_core.training.publish import RANK_SUFFIX
from imvia_core.training.trainer import TrainingStopped, check_resumable, finish, prepare_run, train

__all__ = [
    "ParamSpec",
    "StudySpec",
    "load_study_spec",
    "mask_url",
    "open_storage",
    "create_or_load_study",
    "run_sweep",
    "run_worker",
    "finish_sweep",
    "study_summary",
    "write_summary",
    "study_from_summary",
    "SAMPLERS",
    "PRUNERS",
]

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "threshold", "none")
#: environment variable that hands the storage URL to worker processes (never the command line: ``ps`` shows it)
STORAGE_ENV = "IMVIA_SWEEP_STORAGE"
#: fields a study may not search or fix: they say what is trained and where, not how
_NOT_SEARCHABLE = ("dataset", "model", "device", "epochs")
_STUDY_KEYS = (
    "name",
    "dataset",
    "model",
    "profile",
    "epochs",
    "fixed",
    "space",
    "sampler",
    "n_trials",
    "pruner",
    "pruner_options",
    "seed",
    "heartbeat_interval",
    "grace_period",
    "baseline",
)
_HB = "imvia:heartbeat"
_RETRY_OF = "imvia:retry_of"
_RETRIED = "imvia:retried"
_GRID_READY = "imvia:grid_ready"


# ------------------------------------------------------------------------------------------------ study files
@dataclass
class ParamSpec:
    """One dimension of the search space.

    :param kind: ``"float"``, ``"int"`` or ``"categorical"``.
    :param step: grid spacing for int/float (int default 1); a float without it has no grid.
    """

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: list[Any] | None = None

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self) -> list[Any]:
        """The points of this dimension in a grid search."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            return list(range(self.low, self.high + 1, self.step or 1))
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass
class StudySpec:
    """A parsed, validated study file (see the module docstring for the keys)."""

    name: str
    dataset: str
    model: str = "imvia"
    profile: str = "cpu"
    epochs: int | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    space: dict[str, ParamSpec] = field(default_factory=dict)
    sampler: str = "tpe"
    n_trials: int = 20
    pruner: str = "median"
    pruner_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    heartbeat_interval: float = 10.0
    grace_period: float = 60.0
    #: run the profile's own values of the searched parameters first (a baseline trial under the same budget)
    baseline: bool = False
    source: str = "study"

    def trial_config(self, params: dict[str, Any], *, device: str | None = None) -> TrainConfig:
        """The training configuration of a trial with ``params``."""
        values: dict[str, Any] = {"model": self.model, **self.fixed, **params}
        if self.epochs is not None:
            values["epochs"] = self.epochs
        if device:
            values["device"] = device
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a profile without settings for a folder dataset warned once already
            return profile_config(self.profile, self.dataset, **values)

    def baseline_params(self) -> dict[str, Any]:
        """The profile's values of the searched parameters (with ``fixed`` applied)."""
        config = self.trial_config({})
        return {name: getattr(config, name) for name in self.space}

    def grid(self) -> list[dict[str, Any]]:
        """Every grid point, in a fixed order (parameters sorted by name, last one fastest)."""
        names = sorted(self.space)
        return [dict(zip(names, values)) for values in itertools.product(*(self.space[n].grid_values() for n in names))]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dataset": self.dataset,
            "model": self.model,
            "profile": self.profile,
            "epochs": self.epochs,
            "fixed": dict(self.fixed),
            "space": {n: p.to_dict() for n, p in self.space.items()},
            "sampler": self.sampler,
            "n_trials": self.n_trials,
            "pruner": self.pruner,
            "pruner_options": dict(self.pruner_options),
            "seed": self.seed,
        }


def _field_kinds() -> dict[str, str]:
    return {
        **{name: option.type for name, option in MODEL_OPTIONS.items()},
        **{f.name: str(f.type) for f in fields(TrainConfig)},
    }


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _parse_param(source: str, name: str, raw: Any, kinds: dict[str, str]) -> ParamSpec:
    where = f"{source}: space.{name}"
    if name not in kinds:
        raise ConfigError(
            f"{source}: unknown parameter {name!r} in the search space; parameters are TrainConfig fields: "
            + ", ".join(sorted(k for k in kinds if k not in _NOT_SEARCHABLE))
        )
    if name in _NOT_SEARCHABLE:
        raise ConfigError(f"{where}: {name} cannot be searched (set it with the study's own {name!r} key)")
    if isinstance(raw, list):
        raw = {"choices": raw}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where}: expected a mapping such as {{low: 1e-4, high: 1e-2, log: true}} or {{choices: []}}"
        )
    unknown = sorted(set(raw) - {"type", "low", "high", "log", "step", "choices"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; expected type, low, high, log, step, choices")
    kind = raw.get("type")
    if "choices" in raw:
        choices = raw["choices"]
        if kind not in (None, "categorical") or not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list (and type categorical)")
        if len({json.dumps(c, sort_keys=True) for c in choices}) != len(choices):
            raise ConfigError(f"{where}: choices repeat a value")
        return ParamSpec(name, "categorical", choices=list(choices))
    if "low" not in raw or "high" not in raw:
        raise ConfigError(f"{where}: a range needs both low and high (or give choices)")
    low, high, log, step = raw["low"], raw["high"], raw.get("log", False), raw.get("step")
    if not (_is_number(low) and _is_number(high)):
        raise ConfigError(f"{where}: low and high must be finite numbers, got {low!r} and {high!r}")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    if kind is None:
        kind = "int" if kinds[name] == "int" else "float"
    if kind not in ("int", "float"):
        raise ConfigError(f"{where}: type must be float, int or categorical, got {kind!r}")
    if kind != kinds[name]:
        raise ConfigError(f"{where}: {name} is a {kinds[name]} setting, not {kind}")
    if kind == "int" and not (isinstance(low, int) and isinstance(high, int)):
        raise ConfigError(f"{where}: an integer range needs integer low and high, got {low!r} and {high!r}")
    if not low < high:
        what = "empty" if low == high else "inverted"
        raise ConfigError(f"{where}: {what} range: low {low!r} must be below high {high!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low!r}")
    if step is not None:
        if not _is_number(step) or step <= 0 or (kind == "int" and not isinstance(step, int)):
            raise ConfigError(f"{where}: step must be a positive {'integer' if kind == 'int' else 'number'}")
        if log:
            raise ConfigError(f"{where}: step and log cannot be combined")
        if step > (high - low) * (1 + 1e-9):
            raise ConfigError(f"{where}: step {step!r} is wider than the range {low!r}..{high!r}")
    if kind == "float":
        low, high = float(low), float(high)
    return ParamSpec(name, kind, low=low, high=high, log=log, step=step)


def _check_study(spec: StudySpec, raw: dict[str, Any], path: Path) -> None:
    """Checks that need the whole study: the baseline, the heartbeat, a grid's size (sets ``n_trials``), every end
    of every range as a valid configuration, the pruner's options."""
    if not isinstance(spec.baseline, bool):
        raise ConfigError(f"{path}: baseline must be true or false")
    if spec.baseline and spec.sampler == "grid":
        raise ConfigError(f"{path}: baseline is for tpe and random studies; a grid runs its own points")
    if spec.grace_period <= spec.heartbeat_interval:
        raise ConfigError(f"{path}: grace_period must be longer than heartbeat_interval")
    if spec.sampler == "grid":
        for p in spec.space.values():
            if p.kind == "float" and p.step is None:
                raise ConfigError(f"{path}: space.{p.name}: a grid needs a step for float ranges (or use choices)")
            if p.kind != "categorical" and p.log:
                raise ConfigError(f"{path}: space.{p.name}: a grid cannot use a log range; list the values as choices")
        size = len(spec.grid())
        spec.n_trials = raw.get("n_trials") or size
        if spec.n_trials != size:
            raise ConfigError(f"{path}: n_trials {spec.n_trials} differs from the grid's {size} points; leave it out")
    # every end of every range (and every choice) must make a valid configuration
    try:
        spec.trial_config({})
        for p in spec.space.values():
            for value in p.choices if p.kind == "categorical" else (p.low, p.high):
                spec.trial_config({p.name: value})
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
    if spec.baseline:
        for name, value in spec.baseline_params().items():
            p = spec.space[name]
            inside = value in p.choices if p.kind == "categorical" else p.low <= value <= p.high
            if not inside:
                raise ConfigError(f"{path}: baseline: the profile's {name} {value!r} lies outside space.{name}")
    _make_pruner(spec)  # unknown pruner options fail here


def load_study_spec(path: str | Path) -> StudySpec:
    """Read and validate a study file; every problem is a :class:`~imvia_core.errors.ConfigError` naming it."""
    import yaml

    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"{path}: cannot read the study file ({err.strerror})") from err
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of study keys ({', '.join(_STUDY_KEYS)})")
    unknown = sorted(set(raw) - set(_STUDY_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(_STUDY_KEYS)}")
    name = str(raw.get("name") or path.stem)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ConfigError(f"{path}: study name {name!r} must be letters, digits, '.', '_' or '-'")
    if "dataset" not in raw:
        raise ConfigError(f"{path}: the study needs a dataset (DB15K, MKG-W, MKG-Y, synthetic or a folder)")
    sampler = str(raw.get("sampler", "tpe")).lower()
    if sampler not in SAMPLERS:
        raise ConfigError(f"{path}: unknown sampler {raw.get('sampler')!r}; expected one of {', '.join(SAMPLERS)}")
    pruner = str(raw.get("pruner", "median")).lower()
    if pruner not in PRUNERS:
        raise ConfigError(f"{path}: unknown pruner {raw.get('pruner')!r}; expected one of {', '.join(PRUNERS)}")
    kinds = _field_kinds()
    space_raw = raw.get("space")
    if not isinstance(space_raw, dict) or not space_raw:
        raise ConfigError(f"{path}: the study needs a non-empty search space ('space: {{name: {{low: 1, high: 2}}}}')")
    space = {str(n): _parse_param(source, str(n), v, kinds) for n, v in space_raw.items()}
    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ConfigError(f"{path}: fixed must be a mapping of TrainConfig fields to values")
    for key in fixed:
        if key not in kinds or key in _NOT_SEARCHABLE:
            raise ConfigError(f"{path}: fixed.{key} is not a TrainConfig field a study can set")
        if key in space:
            raise ConfigError(f"{path}: {key} is both fixed and searched")
    for key in ("epochs", "n_trials", "seed"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < (key != "seed")):
            raise ConfigError(f"{path}: {key} must be a {'non-negative' if key == 'seed' else 'positive'} integer")
    for key in ("heartbeat_interval", "grace_period"):
        if key in raw and not (_is_number(raw[key]) and raw[key] > 0):
            raise ConfigError(f"{path}: {key} must be a positive number of seconds")
    pruner_options = raw.get("pruner_options") or {}
    if not isinstance(pruner_options, dict):
        raise ConfigError(f"{path}: pruner_options must be a mapping")
    spec = StudySpec(
        name=name,
        dataset=str(raw["dataset"]),
        model=str(raw.get("model", "imvia")),
        profile=str(raw.get("profile", "cpu")),
        epochs=raw.get("epochs"),
        fixed=dict(fixed),
        space=space,
        sampler=sampler,
        n_trials=raw.get("n_trials") or 20,
        pruner=pruner,
        pruner_options=dict(pruner_options),
        seed=raw.get("seed", 0),
        heartbeat_interval=float(raw.get("heartbeat_interval", 10.0)),
        grace_period=float(raw.get("grace_period", 60.0)),
        baseline=raw.get("baseline", False),
        source=source,
    )
    _check_study(spec, raw, path)
    return spec


# ------------------------------------------------------------------------------------------------ storage
def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (the form every message and file shows)."""
    return re.sub(r"(://[^/@:]*:)[^@/]*@", r"\1***@", url)


def _secrets(url: str | None) -> list[str]:
    found = []
    if url:
        match = re.search(r"://[^/@:]*:([^@/]*)@", url)
        if match and match.group(1):
            found.append(match.group(1))
            from urllib.parse import unquote

            found.append(unquote(match.group(1)))
    if os.environ.get("PGPASSWORD"):
        found.append(os.environ["PGPASSWORD"])
    return [s for s in found if s]


def _scrub(text: str, url: str | None) -> str:
    """``text`` without the URL's password or ``PGPASSWORD``."""
    if url:
        text = text.replace(url, mask_url(url))
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def _storage_host(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        host = parsed.host or "localhost"
        return f"{host}:{parsed.port}" if parsed.port else host
    except Exception:  # noqa: BLE001 - only for the message
        return "?"


def open_storage(url: str | None, sweep_dir: Path):
    """The Optuna storage of a sweep: a journal file in ``sweep_dir`` by default, else the SQLAlchemy ``url``.

    A value without ``://`` is taken as the path of a journal file.
    :raises ImviaError: the database cannot be reached (the message names the host, never the password).
    """
    import optuna  # loaded only where a study runs, not by every imvia command
    from optuna.storages.journal import JournalFileBackend

    if not url or "://" not in url:
        target = Path(url) if url else sweep_dir / "study.journal"
        target.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(target)))
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgres"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except ImportError as err:
        raise ImviaError(
            f"storage {mask_url(url)}: its database driver is not installed "
            "(pip install 'imvia-core[sweeps]' for PostgreSQL: psycopg)"
        ) from err
    except Exception as err:  # noqa: BLE001 - SQLAlchemy's errors carry driver text; keep its first line only
        first = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), type(err).__name__)
        first = re.sub(r"\(Background on this error.*", "", first)
        raise ImviaError(
            _scrub(f"cannot open the sweep storage {mask_url(url)} (host {_storage_host(url)}): {first[:300]}", url)
        ) from None


def _make_sampler(spec: StudySpec):
    """The study's sampler, seeded per trial: ``seed + trial number``.

    One sampler seeded once per worker process would draw the same random start-up points in every worker (two
    workers would run the same parameters as trials 0 and 1). TPE and random sampling keep no state besides the
    random generator (the history is read from the study), so a sampler made afresh for each trial, seeded with its
    number, samples as a single one would, and the same in every worker.
    """
    import optuna  # loaded only where a study runs, not by every imvia command

    def make(seed: int):
        if spec.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        # grid points are enqueued once and claimed from the queue; any sampler would do for them
        return optuna.samplers.RandomSampler(seed=seed)

    class PerTrialSeed(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self._by_trial: dict[int, Any] = {}

        def _inner(self, trial):
            number = trial.number
            if number not in self._by_trial:
                self._by_trial = {number: make(spec.seed + number)}  # only the trial in progress is kept
            return self._by_trial[number]

        def infer_relative_search_space(self, study, trial):
            return self._inner(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._inner(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._inner(trial).sample_independent(study, trial, param_name, param_distribution)

        def before_trial(self, study, trial) -> None:
            self._inner(trial).before_trial(study, trial)

        def after_trial(self, study, trial, state, values) -> None:
            self._inner(trial).after_trial(study, trial, state, values)

    return PerTrialSeed()


def _make_pruner(spec: StudySpec):
    import optuna  # loaded only where a study runs, not by every imvia command

    options = dict(spec.pruner_options)
    try:
        if spec.pruner == "median":
            return optuna.pruners.MedianPruner(**options)
        if spec.pruner == "hyperband":
            options.setdefault("min_resource", 1)
            options.setdefault("max_resource", spec.epochs or "auto")
            return optuna.pruners.HyperbandPruner(**options)
        if spec.pruner == "threshold":  # e.g. {lower: 0.05}: stop any trial whose validation MRR is below it
            return optuna.pruners.ThresholdPruner(**options)
        return optuna.pruners.NopPruner()
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{spec.source}: pruner_options for {spec.pruner}: {err}") from err


def create_or_load_study(spec: StudySpec, storage):
    """Create the study (and enqueue a grid's points) or load it when another process created it already."""
    import optuna  # loaded only where a study runs, not by every imvia command
    from optuna.exceptions import DuplicatedStudyError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    common = dict(study_name=spec.name, storage=storage, sampler=_make_sampler(spec), pruner=_make_pruner(spec))
    try:
        study = optuna.create_study(direction="maximize", **common)
        created = True
    except DuplicatedStudyError:
        study = optuna.load_study(**common)
        created = False
    saved = _study_attrs(study).get("imvia:spec")
    if saved is None and created:
        _set_study_attr(study, "imvia:spec", spec.describe())
    elif saved is not None and saved != json.loads(json.dumps(spec.describe())):
        raise ConfigError(
            f"{spec.source}: the study {spec.name!r} in this storage was started from another study file; "
            "give the changed study a new name"
        )
    restored = _restore_committed_trials(spec, study) if created else []
    done = {json.dumps(params, sort_keys=True) for params in restored}
    if created and spec.baseline and json.dumps(spec.baseline_params(), sort_keys=True) not in done:
        study.enqueue_trial(spec.baseline_params(), user_attrs={"baseline": f"profile {spec.profile}"})
    if spec.sampler == "grid":
        if created:
            for point in spec.grid():
                if json.dumps(point, sort_keys=True) not in done:
                    study.enqueue_trial(point)
            _set_study_attr(study, _GRID_READY, True)
        else:
            deadline = time.monotonic() + 60
            while not _study_attrs(study).get(_GRID_READY) and time.monotonic() < deadline:
                time.sleep(0.5)
            if not _study_attrs(study).get(_GRID_READY):  # its creator died while enqueueing: enqueue the rest
                taken = {json.dumps(_fixed(t), sort_keys=True) for t in study.get_trials(deepcopy=False)}
                for point in spec.grid():
                    if json.dumps(point, sort_keys=True) not in taken:
                        study.enqueue_trial(point)
                _set_study_attr(study, _GRID_READY, True)
    return study


def _restore_committed_trials(spec: StudySpec, study) -> list[dict[str, Any]]:
    """Put the finished trials of the committed ``results/sweeps/<study>/summary.json`` into a new, empty study.

    The storage and the trial folders live under ``runs/``, which is not committed: on another machine (or after a
    session ended mid-grid) the study starts empty, but the summary that every finished trial updates is there. Its
    complete and pruned trials are added back with their values and validation curves, so the study continues with
    the points still to run; the trial folders are not restored (``--finish`` trains a restored best trial again).
    Returns the restored trials' parameters.
    """
    import optuna
    from optuna.distributions import json_to_distribution
    from optuna.trial import TrialState

    committed = _committed_summary(default_results_dir(spec), spec)
    if committed is None or study.get_trials(deepcopy=False):
        return []
    source = _relative_paths(str(default_results_dir(spec) / "summary.json"))
    keep = ("best_valid_mrr", "best_epoch", "epochs_trained", "train_seconds", "run_dir", "worker", "baseline")
    restored = []
    for t in committed["trials"]:
        if t["state"] not in ("COMPLETE", "PRUNED") or (t["state"] == "COMPLETE" and t.get("value") is None):
            continue
        attrs = {k: t[k] for k in keep if t.get(k) is not None}
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState[t["state"]],
                value=t["value"] if t["state"] == "COMPLETE" else None,
                params=t["params"],
                distributions={k: json_to_distribution(json.dumps(d)) for k, d in t["distributions"].items()},
                intermediate_values={int(k): v for k, v in t.get("intermediate_values", {}).items()},
                user_attrs={**attrs, "restored_from": f"{source}, trial {t['number']}"},
            )
        )
        restored.append(dict(t["params"]))
    return restored


def _study_attrs(study) -> dict[str, Any]:
    return study._storage.get_study_system_attrs(study._study_id)


def _set_study_attr(study, key: str, value: Any) -> None:
    study._storage.set_study_system_attr(study._study_id, key, value)


def _fixed(trial) -> dict[str, Any]:
    return dict(trial.system_attrs.get("fixed_params", trial.params))


# ------------------------------------------------------------------------------------------------ workers
def _fail_stale(study, spec: StudySpec, *, log=print) -> None:
    """Fail every running trial whose heartbeat is older than the grace period and enqueue it again."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = t.system_attrs.get(_HB)
        if beat is None:
            beat = t.datetime_start.timestamp() if t.datetime_start else now
        if now - float(beat) <= spec.grace_period:
            continue
        try:  # attributes first: a finished trial takes no more
            study._storage.set_trial_system_attr(t._trial_id, _RETRIED, True)
            study._storage.set_trial_user_attr(
                t._trial_id, "error", f"interrupted: no heartbeat for {now - float(beat):.0f} s; enqueued again"
            )
            if not study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another worker got there first
        study.enqueue_trial(_fixed(t), user_attrs={"retry_of": t.number})
        log(f"trial {t.number}: its worker stopped (no heartbeat for {now - float(beat):.0f} s); enqueued again")


def _budget_used(study) -> int:
    from optuna.trial import TrialState

    return sum(
        1 for t in study.get_trials(deepcopy=False) if not (t.state == TrialState.FAIL and t.system_attrs.get(_RETRIED))
    )


def _claim(study, spec: StudySpec):
    """A trial to run now, or ``None``: a waiting one (a grid point or a retry) first, else a new one in budget."""
    import optuna  # loaded only where a study runs, not by every imvia command
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if study._storage.set_trial_state_values(t._trial_id, TrialState.RUNNING):
                return optuna.trial.Trial(study, t._trial_id)
        except UpdateFinishedTrialError:
            continue
    if spec.sampler != "grid" and _budget_used(study) < spec.n_trials:
        return study.ask()
    return None


def _take_over_interrupted(study, trial, config: TrainConfig, run_dir: Path, *, log=print) -> bool:
    """Give a retry the folder of the trial it repeats, so that it resumes there; ``True`` when it does.

    Only a folder whose saved configuration is the retry's own is taken (a study file changed in between starts the
    retry afresh), and never over an existing folder of the retry.
    """
    original = trial.user_attrs.get("retry_of")
    if original is None or run_dir.exists():
        return False
    try:
        name = study.trials[int(original)].user_attrs.get("run_dir") or f"trial-{original}"
    except (IndexError, ValueError):
        return False
    source = run_dir.parent / name
    if not (source / "config.json").is_file():
        return False
    try:
        check_resumable(config, source / "config.json")
    except ImviaError as err:
        log(f"trial {trial.number}: starts afresh; {source.name} cannot be resumed ({err})")
        return False
    source.rename(run_dir)
    trial.set_user_attr("resumed_from", source.name)
    log(f"trial {trial.number}: resumes the training of trial {original} ({source.name} -> {run_dir.name})")
    return True


class _Heartbeat:
    """A thread that stamps the trial's heartbeat into the storage until stopped."""

    def __init__(self, study, trial_id: int, interval: float) -> None:
        self._stop = threading.Event()
        self._storage, self._trial_id, self._interval = study._storage, trial_id, interval
        self._beat()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        self._storage.set_trial_system_attr(self._trial_id, _HB, time.time())

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - a lost beat is retried next interval
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _valid_mrr(results: dict[str, Any]) -> float:
    return float(EvaluationResult.from_dict(results["valid"]).metric("mrr"))


def run_worker(
    spec: StudySpec,
    *,
    storage_url: str | None = None,
    sweep_dir: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    log=print,
) -> int:
    """Run trials of the study until its budget is used and no trial is running anywhere; returns trials run."""
    from optuna.trial import TrialState

    sweep_dir = Path(sweep_dir) if sweep_dir is not None else default_sweep_dir(spec)
    storage = open_storage(storage_url, sweep_dir)
    study = create_or_load_study(spec, storage)
    graph = load_graph(spec.dataset, include_test=False, progress=progress)
    host = socket.gethostname()
    ran = 0
    while True:
        _fail_stale(study, spec, log=log)
        trial = _claim(study, spec)
        if trial is None:
            busy = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
            if not busy:
                return ran
            time.sleep(min(2.0, spec.heartbeat_interval))  # a running trial may still fail and come back
            continue
        params = {name: p.suggest(trial) for name, p in spec.space.items()}
        run_dir = sweep_dir / f"trial-{trial.number}"
        trial.set_user_attr("run_dir", run_dir.name)
        trial.set_user_attr("worker", f"{host}:{os.getpid()}")
        beat = _Heartbeat(study, trial._trial_id, spec.heartbeat_interval)
        log(f"trial {trial.number}: {json.dumps(params)} -> {run_dir}")

        def report(epoch: int, mrr: float, trial=trial) -> None:
            trial.report(mrr, step=epoch)
            if trial.should_prune():
                raise TrainingStopped(f"pruned at epoch {epoch} (valid MRR {mrr:.4f})")

        try:
            config = spec.trial_config(params, device=device)
            resumed = _take_over_interrupted(study, trial, config, run_dir, log=log)
            results = train(
                config,
                run_dir,
                resume=resumed,
                progress=progress,
                on_validation=report,
                skip_splits=("test",),
                graph=graph,
            )
        except ImviaError as err:  # a diverged trial, say: recorded, and the study goes on
            beat.stop()
            trial.set_user_attr("error", _scrub(str(err), storage_url)[:500])
            study.tell(trial, state=TrialState.FAIL)
            log(f"trial {trial.number}: failed: {_scrub(str(err), storage_url)}")
            ran += 1
            continue
        except BaseException as exc:  # interrupted (Ctrl-C) or a bug: fail it, enqueue it again, stop this worker
            beat.stop()
            trial.set_user_attr("error", f"stopped by {type(exc).__name__}; enqueued again")
            study._storage.set_trial_system_attr(trial._trial_id, _RETRIED, True)
            study.tell(trial, state=TrialState.FAIL)
            study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
            raise
        beat.stop()
        value = _valid_mrr(results)
        trial.set_user_attr("best_valid_mrr", value)
        trial.set_user_attr("best_epoch", results["best_epoch"])
        trial.set_user_attr("epochs_trained", results["epochs_trained"])
        trial.set_user_attr("train_seconds", round(float(results["train_seconds"]), 1))
        if results.get("stopped"):
            study.tell(trial, state=TrialState.PRUNED)
            log(f"trial {trial.number}: {results['stopped']}; best valid MRR {value:.4f}")
        else:
            study.tell(trial, value)
            log(f"trial {trial.number}: valid MRR {value:.4f} (best epoch {results['best_epoch']})")
        ran += 1
        # kept current after every trial: what a later session restores from when runs/ is gone
        write_summary(study_summary(spec, study, storage_url=storage_url), default_results_dir(spec))


def default_sweep_dir(spec: StudySpec) -> Path:
    return runs_dir() / "sweeps" / spec.name


def default_results_dir(spec: StudySpec) -> Path:
    return results_dir() / "sweeps" / spec.name


def run_sweep(
    study_file: str | Path,
    *,
    storage_url: str | None = None,
    workers: int = 1,
    devices: list[str] | None = None,
    threads: int | None = None,
    sweep_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the study of ``study_file`` with ``workers`` local processes; returns the study summary.

    :param devices: one device per worker, cycled (default: each trial's configured device).
    :param threads: torch threads per worker (default: the CPU count divided by the number of workers).
    """
    spec = load_study_spec(study_file)
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    sweep_dir = Path(sweep_dir) if sweep_dir is not None else default_sweep_dir(spec)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    storage = open_storage(storage_url, sweep_dir)
    study = create_or_load_study(spec, storage)  # before any worker starts: the grid is enqueued exactly once
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    devices = devices or [None]
    if workers == 1:
        import torch

        torch.set_num_threads(threads)
        run_worker(spec, storage_url=storage_url, sweep_dir=sweep_dir, device=devices[0], progress=progress)
    else:
        _run_children(spec, study_file, storage_url, sweep_dir, workers, devices, threads, study, progress)
    summary = study_summary(spec, study, storage_url=storage_url)
    write_summary(summary, default_results_dir(spec))
    return summary


def _run_children(spec, study_file, storage_url, sweep_dir, workers, devices, threads, study, progress) -> None:
    from optuna.trial import TrialState
    from tqdm.auto import tqdm

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
    if storage_url:
        env[STORAGE_ENV] = storage_url
    children = []
    for i in range(workers):
        command = [sys.executable, "-m", "imvia_core", "sweep", str(study_file), "--worker"]
        command += ["--threads", str(threads), "--sweep-dir", str(sweep_dir)]
        if devices[i % len(devices)]:
            command += ["--devices", devices[i % len(devices)]]
        log = (sweep_dir / f"worker-{i}.log").open("ab")
        children.append((subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    finished_states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

    def terminate(signum, frame):  # a SIGTERM to this process stops its workers too (as Ctrl-C does)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    bar = tqdm(total=spec.n_trials, desc=f"sweep {spec.name}", unit="trial", disable=bars_disabled(progress))
    try:
        while any(p.poll() is None for p, _ in children):
            done = sum(1 for t in study.get_trials(deepcopy=False) if t.state in finished_states[:2])
            bar.update(done - bar.n)
            time.sleep(2.0)
    except KeyboardInterrupt:
        for p, _ in children:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p, _ in children:
            p.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
        for _, log in children:
            log.close()
    failed = [i for i, (p, _) in enumerate(children) if p.returncode != 0]
    if failed:
        raise ImviaError(
            f"worker(s) {', '.join(map(str, failed))} of sweep {spec.name} stopped with an error; see "
            + ", ".join(str(sweep_dir / f"worker-{i}.log") for i in failed)
            + "; run the same command again to continue the study"
        )


# ------------------------------------------------------------------------------------------------ after the search
def study_summary(spec: StudySpec, study, *, storage_url: str | None = None) -> dict[str, Any]:
    """Every trial with its parameters, state and validation MRR, the best trial and its configuration."""
    from optuna.distributions import distribution_to_json
    from optuna.trial import TrialState

    trials = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            continue
        trials.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value if t.state == TrialState.COMPLETE else None,
                "best_valid_mrr": t.user_attrs.get("best_valid_mrr"),
                "params": dict(t.params),
                "distributions": {k: json.loads(distribution_to_json(d)) for k, d in t.distributions.items()},
                "intermediate_values": {str(k): v for k, v in sorted(t.intermediate_values.items())},
                "best_epoch": t.user_attrs.get("best_epoch"),
                "epochs_trained": t.user_attrs.get("epochs_trained"),
                "train_seconds": t.user_attrs.get("train_seconds"),
                "retry_of": t.user_attrs.get("retry_of"),
                "resumed_from": t.user_attrs.get("resumed_from"),
                "error": t.user_attrs.get("error"),
                "run_dir": t.user_attrs.get("run_dir"),
                "worker": t.user_attrs.get("worker"),
                "baseline": t.user_attrs.get("baseline"),
                "restored_from": t.user_attrs.get("restored_from"),
                "datetime_start": t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else None,
                "datetime_complete": t.datetime_complete.isoformat(timespec="seconds") if t.datetime_complete else None,
            }
        )
    complete = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    best = max(complete, key=lambda t: (t["value"], -t["number"])) if complete else None
    counts: dict[str, int] = {}
    for t in trials:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    summary = {
        "study": spec.name,
        "objective": "best validation MRR (realistic rank; filtering by train and valid triples, test never read)",
        "storage": mask_url(storage_url) if storage_url else "journal file in the sweep folder",
        **{k: v for k, v in spec.describe().items() if k != "name"},
        "baseline": spec.baseline,
        "counts": counts,
        "best": None,
        "trials": trials,
    }
    if best is not None:
        summary["best"] = {
            "number": best["number"],
            "value": best["value"],
            "params": best["params"],
            "config": spec.trial_config(best["params"]).to_dict(),
        }
    return json.loads(_scrub(json.dumps(summary), storage_url))


_CSV_COLUMNS = ("number", "state", "value", "best_valid_mrr", "best_epoch", "epochs_trained", "train_seconds")


def write_summary(summary: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``summary.json``, ``summary.csv`` and (with a best trial) ``best-config.json`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    names = sorted(summary["space"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*_CSV_COLUMNS, *names, "retry_of"])
    for t in summary["trials"]:
        writer.writerow(
            [*("" if t.get(c) is None else t[c] for c in _CSV_COLUMNS)]
            + [t["params"].get(n, "") for n in names]
            + ["" if t.get("retry_of") is None else t["retry_of"]]
        )
    atomic_write_text(out_dir / "summary.csv", buffer.getvalue())
    if summary.get("best"):
        atomic_write_text(out_dir / "best-config.json", json.dumps(summary["best"]["config"], indent=2) + "\n")
    return out_dir / "summary.json"


def _relative_paths(value: Any) -> Any:
    """``value`` with absolute paths under the project (or the data folder) made relative."""
    roots = sorted({str(project_root()), str(data_dir().parent)}, key=len, reverse=True)
    if isinstance(value, dict):
        return {k: _relative_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative_paths(v) for v in value]
    if isinstance(value, str):
        for root in roots:
            if value.startswith(root + os.sep):
                return value[len(root) + 1 :]
    return value


def finish_sweep(
    study_file: str | Path,
    *,
    storage_url: str | None = None,
    sweep_dir: str | Path | None = None,
    device: str | None = None,
    epochs: int | None = None,
    publish: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate the best complete trial once on valid and test and write ``results/sweeps/<study>/results.json``.

    Without ``epochs`` the trial's best checkpoint is reloaded (no retraining) into the model built from its
    ``config.json``, with the full graph. With ``epochs`` the trial's configuration is trained again for that many
    epochs (e.g. the profile's full budget, where the trials had a shorter one) in
    ``<sweep dir>/final-trial-<n>-<epochs>ep/``, selected on validation like any run, and its best checkpoint is
    evaluated on test; an interrupted retraining resumes. Called again for the same best trial (and the same
    ``epochs``), the written result is returned without a second test evaluation.

    A best trial restored from the committed ``results/sweeps/<study>/summary.json`` (the sweep folder under
    ``runs/`` is not committed and was lost with its machine; see :func:`_restore_committed_trials`) has no
    checkpoint: it is trained again from its parameters, as its worker trained it, and then evaluated; the rebuilt
    validation MRR is recorded beside the committed one (``sweep.rebuilt_trial_valid_mrr``).

    :param publish: also copy the result, with its per-query rank file, to
        ``results/<profile>/<dataset>/<publish>.json`` (and ``.ranks.npz``), where the tables read their rows: the
        grid's validation-selected setting becomes the row of that name (``""``: the study's model name).
    """
    spec = load_study_spec(study_file)
    sweep_dir = Path(sweep_dir) if sweep_dir is not None else default_sweep_dir(spec)
    study = create_or_load_study(spec, open_storage(storage_url, sweep_dir))
    out_dir = default_results_dir(spec)
    summary = study_summary(spec, study, storage_url=storage_url)
    write_summary(summary, out_dir)
    best = summary["best"]
    if best is None:
        raise ImviaError(f"study {spec.name} has no complete trial yet; run 'imvia sweep {study_file}' first")
    target = out_dir / "results.json"
    run_dir = sweep_dir / f"trial-{best['number']}"
    final_dir = run_dir if epochs is None else sweep_dir / f"final-trial-{best['number']}-{epochs}ep"
    if target.is_file():
        previous = json.loads(target.read_text(encoding="utf-8"))
        done = previous.get("sweep", {})
        if done.get("trial") == best["number"] and done.get("retrained_epochs") == epochs:
            if progress:
                print(f"trial {best['number']} was evaluated on test already: {target}")
            if publish is not None:
                _publish_finished(spec, previous, target, final_dir, publish)
            return previous
    rebuilt = None
    restored = next(t.get("restored_from") for t in summary["trials"] if t["number"] == best["number"])
    if restored and epochs is None and not (run_dir / "best.pt").is_file():
        rebuilt = _rebuild_trial(spec, best, run_dir, device=device, progress=progress)
    if not (run_dir / "best.pt").is_file():
        raise InputError(f"{run_dir}/best.pt is missing: the best trial's run directory is needed for --finish")
    trial_results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    config = TrainConfig.from_file(run_dir / "config.json")
    if device:
        config.device = device
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"--epochs must be a positive integer, got {epochs}")
        config.epochs = epochs
        results = train(config, final_dir, resume=(final_dir / "config.json").is_file(), progress=progress)
    else:
        ctx = prepare_run(config)
        state = {
            "epoch": trial_results["epochs_trained"],
            "best_epoch": trial_results["best_epoch"],
            "train_seconds": trial_results["train_seconds"],
            "stopped_early": trial_results.get("stopped_early", False),
        }
        results = finish(ctx, run_dir, state, progress=progress)
    results["sweep"] = {
        "study": spec.name,
        "trial": best["number"],
        "objective": summary["objective"],
        "trial_valid_mrr": best["value"],
        "params": best["params"],
        "search_space": summary["space"],
        "fixed": summary["fixed"],
        "sampler": spec.sampler,
        "pruner": spec.pruner,
        "n_trials": spec.n_trials,
        "epochs_per_trial": spec.epochs,
        "retrained_epochs": epochs,
        "counts": summary["counts"],
        "storage": summary["storage"],
    }
    if rebuilt is not None:
        results["sweep"]["rebuilt_trial_valid_mrr"] = rebuilt
    results = json.loads(_scrub(json.dumps(_relative_paths(results), default=str), storage_url))
    atomic_write_text(target, json.dumps(results, indent=2) + "\n")
    if publish is not None:
        _publish_finished(spec, results, target, final_dir, publish)
    return results


def _committed_summary(out_dir: Path, spec: StudySpec) -> dict[str, Any] | None:
    """The summary a finished study left in ``results/sweeps/<study>/``, if it names a best trial of this study."""
    path = out_dir / "summary.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
    if summary.get("study") != spec.name or not summary.get("best"):
        return None
    if summary.get("space") != json.loads(json.dumps(spec.describe()["space"])):
        raise ConfigError(
            f"{path} was written for another search space than {spec.source}; give the changed study a new name"
        )
    return summary


def _rebuild_trial(
    spec: StudySpec, best: dict[str, Any], run_dir: Path, *, device: str | None, progress: bool
) -> float:
    """Train the best trial again from its parameters, exactly as its worker did (test never read).

    Used for a best trial restored from the committed summary, whose folder is gone: on the CPU the run is
    deterministic for a given thread count, so the rebuilt trial's validation MRR is compared with the recorded one
    and both are kept in the result. An interrupted rebuild resumes.
    """
    config = spec.trial_config(best["params"], device=device)
    graph = load_graph(spec.dataset, include_test=False, progress=progress)
    resume = (run_dir / "config.json").is_file()
    results = train(config, run_dir, resume=resume, progress=progress, skip_splits=("test",), graph=graph)
    value = _valid_mrr(results)
    if progress:
        print(
            f"trial {best['number']} rebuilt: valid MRR {value:.4f} (recorded {best['value']:.4f}, "
            f"difference {value - best['value']:+.2e})"
        )
    return value


def _publish_finished(spec: StudySpec, results: dict[str, Any], source: Path, run_dir: Path, name: str) -> Path:
    """Copy a finished study's result and its run's rank file to ``results/<profile>/<dataset>/<name>.json``."""
    name = name or spec.model
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"--publish: found {name!r}; expected a file stem (letters, digits, '-', '_', '.')")
    ranks = run_dir / str(results.get("rank_file") or RANK_FILE_NAME)
    if not ranks.is_file():
        raise InputError(f"{ranks} is missing: the finished run's per-query rank file is needed to publish it")
    out = results_dir() / spec.profile / Path(str(results["dataset"])).name
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.json"
    atomic_write_text(target, source.read_text(encoding="utf-8"))
    shutil.copyfile(ranks, out / f"{name}{RANK_SUFFIX}")
    print(f"published as {target} (with {name}{RANK_SUFFIX})")
    return target


def study_from_summary(summary: dict[str, Any] | str | Path):
    """An in-memory Optuna study rebuilt from a summary (for plots; no storage or training needed)."""
    import optuna  # loaded only where a study runs, not by every imvia command
    from optuna.distributions import json_to_distribution
    from optuna.trial import TrialState, create_trial

    if not isinstance(summary, dict):
        summary = json.loads(Path(summary).read_text(encoding="utf-8"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", study_name=summary["study"])
    for t in summary["trials"]:
        if t["state"] not in ("COMPLETE", "PRUNED"):
            continue
        study.add_trial(
            create_trial(
                state=TrialState[t["state"]],
                value=t["value"] if t["state"] == "COMPLETE" else None,
                params=t["params"],
                distributions={k: json_to_distribution(json.dumps(d)) for k, d in t["distributions"].items()},
                intermediate_values={int(k): v for k, v in t["intermediate_values"].items()},
                user_attrs={"best_valid_mrr": t.get("best_valid_mrr"), "number": t["number"]},
            )
        )
    return study
