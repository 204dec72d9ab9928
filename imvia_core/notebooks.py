"""Run the numbered notebooks (``notebooks/NN_*.ipynb``) in order with papermill, or refresh their committed outputs.

``python -m imvia_core.notebooks run [-f PARAMS.yaml] [--out DIR]`` executes the whole collection with the parameters
of a YAML file (``notebooks/params/``): the keys are the names assigned in the notebooks' ``parameters`` cells, and
each notebook receives only the keys it declares. Executed copies go to ``--out`` (default
``notebooks/executed/<dataset>``, or ``<dataset>-<profile>`` for a profile other than ``ci``). Every notebook runs
with ``notebooks/`` as its working directory, so relative paths in the parameters are relative to ``notebooks/``.

``python -m imvia_core.notebooks refresh`` re-executes the notebooks with their own default parameters (the CI profile
on the synthetic graph) and writes the outputs back into ``notebooks/*.ipynb``, without the volatile metadata that
papermill and Jupyter add (timings, papermill records).

Each notebook is a thin walk through one part of the paper: it imports :mod:`imvia_core`, calls, prints, plots and
asserts; trained runs are cached under ``runs/`` (see :func:`~imvia_core.training.experiments.run_variant`), so
re-executing a notebook reuses them.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imvia_core.cli import run_parsed
from imvia_core.errors import ConfigError, ImviaError, InputError
from imvia_core.paths import project_root

__all__ = [
    "KERNEL_NAME",
    "NotebookRun",
    "notebooks_dir",
    "notebook_paths",
    "notebook_parameters",
    "load_params",
    "kernel_environment",
    "execute_notebook",
    "run_collection",
    "strip_volatile",
    "refresh",
    "main",
]

#: the Jupyter kernel the notebooks run on (registered in the virtual environment by ``make env``)
KERNEL_NAME = "python3"
_INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
#: tqdm's notice when notebook progress widgets (ipywidgets) are missing; it then draws text bars
_TQDM_FILTER = "ignore:IProgress not found"
_VOLATILE_CELL_KEYS = ("papermill", "execution", "collapsed", "scrolled")


@dataclass
class NotebookRun:
    """What happened to one notebook of a collection run.

    :param source: the notebook that was executed.
    :param output: the executed copy.
    :param seconds: wall-clock time of the execution.
    :param parameters: the parameters passed to it.
    :param error: the error message if a cell failed, else ``None``.
    """

    source: Path
    output: Path
    seconds: float
    parameters: dict[str, Any]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def notebooks_dir() -> Path:
    """``notebooks/`` of the checkout."""
    return project_root() / "notebooks"


def notebook_paths(folder: str | Path | None = None) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` of ``folder`` (default :func:`notebooks_dir`), in order.

    :raises InputError: when the folder holds none.
    """
    root = Path(folder) if folder is not None else notebooks_dir()
    found = sorted(p for p in root.glob("[0-9][0-9]_*.ipynb") if p.is_file())
    if not found:
        raise InputError(f"{root}: found no numbered notebook (NN_name.ipynb); expected the notebook collection")
    return found


def notebook_parameters(path: str | Path) -> dict[str, str]:
    """Names and default values (as source text) of the ``parameters`` cell of a notebook."""
    import papermill

    return {name: info["default"] for name, info in papermill.inspect_notebook(str(path)).items()}


def load_params(path: str | Path, *, notebooks: Sequence[Path] | None = None) -> dict[str, Any]:
    """Read a parameters file (YAML mapping ``name: value``) and check every name against the notebooks.

    :param notebooks: the notebooks whose ``parameters`` cells declare the allowed names (default: the collection).
    :raises ConfigError: for a file that is not a mapping, or a name no notebook declares.
    """
    import yaml

    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the parameters file ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: found a {type(values).__name__}; expected a mapping of parameter names to values")
    declared: set[str] = set()
    for nb in notebooks if notebooks is not None else notebook_paths():
        declared |= set(notebook_parameters(nb))
    unknown = sorted(set(values) - declared)
    if unknown:
        raise ConfigError(
            f"{path}: found unknown parameter(s) {', '.join(unknown)}; expected names declared in the notebooks' "
            f"parameters cells: {', '.join(sorted(declared))}"
        )
    return values


def kernel_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables to set for the kernels that run the notebooks (given the current ``environ``).

    * ``MPLBACKEND``: ``Agg`` (set for headless test runs) would keep the kernels from embedding figures in the
      notebooks, so it becomes the inline backend;
    * ``JUPYTER_PATH``: this interpreter's ``share/jupyter`` first, so that a ``python3`` kernelspec of another
      installation (in the user's home) does not win over the one of the virtual environment;
    * ``PYTHONWARNINGS``: silences tqdm's notice that notebook progress widgets are not installed (text bars are used);
    * ``GOMP_SPINCOUNT``: a bounded spin of the kernels' OpenMP threads unless ``OMP_WAIT_POLICY`` or it is set (see
      :mod:`imvia_core`): waiting threads then leave the cores to other processes soon.
    """
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {"PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    if "OMP_WAIT_POLICY" not in environ:
        out["GOMP_SPINCOUNT"] = environ.get("GOMP_SPINCOUNT") or "20000"
    if environ.get("MPLBACKEND", "").lower() in ("", "agg"):
        out["MPLBACKEND"] = _INLINE_BACKEND
    share = str(Path(sys.prefix) / "share" / "jupyter")
    rest = [p for p in environ.get("JUPYTER_PATH", "").split(os.pathsep) if p and p != share]
    out["JUPYTER_PATH"] = os.pathsep.join([share, *rest])
    warning_filters = [w for w in environ.get("PYTHONWARNINGS", "").split(",") if w]
    if _TQDM_FILTER not in warning_filters:
        warning_filters.append(_TQDM_FILTER)
    out["PYTHONWARNINGS"] = ",".join(warning_filters)
    return out


#: extra kernel arguments: ipykernel's start-up warning about unencrypted TCP (local kernels only) is not shown
KERNEL_ARGUMENTS = ("--IPKernelApp.log_level=ERROR",)


class _ProgressEcho(logging.Handler):
    """Shows where a notebook run is: one line per code cell as it starts (its first source line), and what the
    cells write to stderr (the training progress bars, warnings) passed through to this process's stderr."""

    _CELL = re.compile(r"Executing Cell (\d+)")

    def __init__(self, name: str, cells: list[tuple[str, str]], stream) -> None:  # noqa: ANN001 - a text stream
        super().__init__(logging.INFO)
        self.name, self.cells, self.stream = name, cells, stream
        self.code_cells = sum(kind == "code" for kind, _ in cells)

    def emit(self, record: logging.LogRecord) -> None:
        match = self._CELL.match(str(record.msg))
        if not match:
            return
        index = int(match.group(1)) - 1
        if index >= len(self.cells) or self.cells[index][0] != "code":
            return
        number = sum(kind == "code" for kind, _ in self.cells[: index + 1])
        self.stream.write(f"  {self.name} cell {number}/{self.code_cells}: {self.cells[index][1]}\n")
        self.stream.flush()


def _cell_outline(source: Path, *, injected: bool) -> list[tuple[str, str]]:
    """``(cell type, first source line)`` per cell as papermill will run them (its parameters cell included)."""
    import nbformat

    nb = nbformat.read(str(source), as_version=4)
    cells: list[tuple[str, str]] = []
    for cell in nb.cells:
        lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        cells.append((cell.cell_type, (lines[0].strip() if lines else "")[:70]))
        if injected and "parameters" in cell.metadata.get("tags", []):
            cells.append(("code", "(parameters of this run)"))
    return cells


@contextlib.contextmanager
def _echo_progress(source: Path, *, injected: bool, enabled: bool) -> Iterator[dict[str, Any]]:
    """papermill arguments that echo the run's progress (see :class:`_ProgressEcho`) while the block runs."""
    if not enabled:
        yield {}
        return
    logger = logging.getLogger("papermill")
    handler = _ProgressEcho(source.stem, _cell_outline(source, injected=injected), sys.stderr)
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield {"log_output": True, "stderr_file": sys.stderr}
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


@contextlib.contextmanager
def _kernel_environment() -> Iterator[None]:
    """Set :func:`kernel_environment` in ``os.environ`` (kernels inherit it) and restore it afterwards."""
    values = kernel_environment()
    saved = {key: os.environ.get(key) for key in values}
    try:
        os.environ.update(values)
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _error_of(output: Path) -> str | None:
    """The first error recorded in an executed notebook, or ``None``."""
    import nbformat

    nb = nbformat.read(str(output), as_version=4)
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"cell {index}: {out.get('ename')}: {out.get('evalue')}"
    return None


def execute_notebook(
    source: str | Path,
    output: str | Path,
    *,
    parameters: Mapping[str, Any] | None = None,
    kernel_name: str = KERNEL_NAME,
    cwd: str | Path | None = None,
    timeout: float | None = None,
    log_output: bool = False,
    progress: bool = False,
    echo_progress: bool = False,
) -> NotebookRun:
    """Execute one notebook with papermill; a failing cell is recorded in the result, not raised.

    :param source: the notebook.
    :param output: where the executed copy goes (folders are created).
    :param parameters: values for the names of its ``parameters`` cell; names it does not declare are left out.
    :param kernel_name: Jupyter kernel.
    :param cwd: working directory of the kernel (default: the notebook's folder).
    :param timeout: seconds allowed per cell (``None``: no limit).
    :param log_output: echo the cells' output to this process's stdout/stderr while running.
    :param progress: show papermill's progress bar.
    :param echo_progress: print each code cell as it starts and pass what the cells write to stderr (training
        progress bars) through to this process's stderr; ignored with ``log_output``.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source, output = Path(source), Path(output)
    declared = notebook_parameters(source)
    given = {k: v for k, v in (parameters or {}).items() if k in declared}
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error = None
    echo = _echo_progress(source, injected=bool(given), enabled=echo_progress and not log_output)
    with _kernel_environment(), echo as echo_arguments:
        try:
            papermill.execute_notebook(
                str(source),
                str(output),
                parameters=given or None,
                kernel_name=kernel_name,
                cwd=str(cwd if cwd is not None else source.parent),
                execution_timeout=timeout,
                progress_bar=progress,
                extra_arguments=list(KERNEL_ARGUMENTS),
                **{"log_output": log_output, **echo_arguments},
            )
        except PapermillExecutionError as err:
            error = f"cell {err.cell_index}: {err.ename}: {err.evalue}"
    if error is None and output.is_file():
        error = _error_of(output)
    return NotebookRun(source, output, time.perf_counter() - start, given, error)


def run_collection(
    *,
    parameters: Mapping[str, Any] | None = None,
    out_dir: str | Path,
    folder: str | Path | None = None,
    only: Sequence[str] | None = None,
    kernel_name: str = KERNEL_NAME,
    timeout: float | None = None,
    stop_on_error: bool = False,
    log_output: bool = False,
    echo: bool = True,
    echo_progress: bool = False,
) -> list[NotebookRun]:
    """Execute the numbered notebooks in order into ``out_dir`` (same file names).

    :param parameters: values for the notebooks' ``parameters`` cells (each notebook gets the names it declares).
    :param out_dir: folder of the executed copies.
    :param folder: folder of the notebooks (default ``notebooks/``); it is also the kernels' working directory.
    :param only: run only the notebooks whose file name starts with one of these prefixes (``"03"``, ``"07_table2"``).
    :param stop_on_error: stop after the first notebook that fails (each notebook trains or reuses the runs it needs,
        so the later ones can run after an earlier one failed).
    :param echo: print one line per notebook.
    :param echo_progress: also show each cell as it starts and the training progress bars (see
        :func:`execute_notebook`).
    """
    paths = notebook_paths(folder)
    if only:
        paths = [p for p in paths if any(p.name.startswith(prefix) for prefix in only)]
        if not paths:
            raise InputError(f"--only {' '.join(only)}: matches no notebook of {notebook_paths(folder)[0].parent}")
    runs = []
    for number, path in enumerate(paths, start=1):
        if echo:
            print(f"[{number}/{len(paths)}] running {path.name}", flush=True)
        run = execute_notebook(
            path,
            Path(out_dir) / path.name,
            parameters=parameters,
            kernel_name=kernel_name,
            cwd=path.parent,
            timeout=timeout,
            log_output=log_output,
            echo_progress=echo_progress,
        )
        runs.append(run)
        if echo:
            status = "ok" if run.ok else f"FAILED: {run.error}"
            print(f"{path.name}: {status} ({run.seconds:.0f} s)", flush=True)
        if not run.ok and stop_on_error:
            break
    return runs


def strip_volatile(nb):
    """A copy of notebook ``nb`` without papermill records and execution timings, with the ``python3`` kernelspec.

    Outputs and execution counts stay. Cell ids are kept (nbformat 4.5).
    """
    nb = copy.deepcopy(nb)
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": KERNEL_NAME}
    for cell in nb.cells:
        for key in _VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
        if "tags" in cell.metadata and not cell.metadata["tags"]:
            del cell.metadata["tags"]
    return nb


def refresh(
    *,
    folder: str | Path | None = None,
    only: Sequence[str] | None = None,
    kernel_name: str = KERNEL_NAME,
    timeout: float | None = None,
    echo: bool = True,
) -> list[NotebookRun]:
    """Re-execute the notebooks with their default parameters and write the outputs back into them.

    A notebook whose execution fails is left unchanged, and :class:`~imvia_core.errors.ImviaError` is raised at the
    end naming the failures.
    """
    import nbformat

    paths = notebook_paths(folder)
    if only:
        paths = [p for p in paths if any(p.name.startswith(prefix) for prefix in only)]
    runs = []
    with tempfile.TemporaryDirectory(prefix="imvia-notebooks-") as tmp:
        for path in paths:
            if echo:
                print(f"running {path.name}", flush=True)
            run = execute_notebook(
                path,
                Path(tmp) / path.name,
                kernel_name=kernel_name,
                cwd=path.parent,
                timeout=timeout,
                echo_progress=echo,
            )
            runs.append(run)
            if run.ok:
                nb = strip_volatile(nbformat.read(str(run.output), as_version=4))
                nbformat.write(nb, str(path))
                run.output = path
            if echo:
                status = "refreshed" if run.ok else f"FAILED, left unchanged: {run.error}"
                print(f"{path.name}: {status} ({run.seconds:.0f} s)", flush=True)
    failed = [r for r in runs if not r.ok]
    if failed:
        raise ImviaError("; ".join(f"{r.source.name}: {r.error}" for r in failed))
    return runs


# ------------------------------------------------------------------------------------------------ command line
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m imvia_core.notebooks",
        description="Execute the numbered notebooks (notebooks/NN_*.ipynb) in order with papermill, or refresh the "
        "outputs stored in them.",
        epilog="Examples: 'run' (synthetic graph, CI profile, as 'make demo'); "
        "'run -f notebooks/params/db15k-paper.yaml' (DB15K, paper settings, GPU); 'refresh' (before committing).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="execute the collection with a parameters file into an output folder",
        description="Execute every numbered notebook in order with papermill (kernel python3, working directory "
        "notebooks/). Each notebook gets the parameters of the file that its parameters cell declares; the others "
        "keep their defaults (synthetic graph, CI profile, CPU).",
    )
    run.add_argument(
        "-f",
        "--params",
        metavar="YAML",
        help="parameters file, e.g. notebooks/params/ci.yaml, db15k-paper.yaml, mkgw-cpu.yaml (default: none, the "
        "notebooks' own defaults)",
    )
    run.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set one parameter (VALUE is read as YAML: 5, true, cuda:0); applied after --params",
    )
    run.add_argument(
        "--out",
        metavar="DIR",
        help="folder of the executed notebooks (default notebooks/executed/<dataset>, or <dataset>-<profile> for a "
        "profile other than ci)",
    )
    run.add_argument("--only", nargs="+", metavar="PREFIX", help="run only these notebooks, e.g. --only 01 07")
    run.add_argument("--timeout", type=float, default=None, help="seconds allowed per cell (default: no limit)")
    run.add_argument(
        "--stop-on-error",
        action="store_true",
        help="stop at the first notebook that fails (default: run the others too; the exit status is 1 either way)",
    )
    run.add_argument("--log-output", action="store_true", help="echo all of the cells' output while they run")
    run.add_argument(
        "--quiet",
        action="store_true",
        help="one line per notebook only (default: also each code cell as it starts, and the training progress bars)",
    )
    run.add_argument("--kernel", default=KERNEL_NAME, help=f"Jupyter kernel name (default {KERNEL_NAME})")
    run.set_defaults(func=_cmd_run)

    ref = sub.add_parser(
        "refresh",
        help="re-execute with the default (CI) parameters and store the outputs in notebooks/*.ipynb",
        description="Re-execute every numbered notebook with its default parameters (synthetic graph, CI profile) "
        "and write the outputs back into notebooks/NN_*.ipynb without papermill records and timings. A notebook "
        "that fails is left as it was.",
    )
    ref.add_argument("--only", nargs="+", metavar="PREFIX", help="refresh only these notebooks")
    ref.add_argument("--timeout", type=float, default=None, help="seconds allowed per cell (default: no limit)")
    ref.add_argument("--kernel", default=KERNEL_NAME, help=f"Jupyter kernel name (default {KERNEL_NAME})")
    ref.set_defaults(func=_cmd_refresh)

    lst = sub.add_parser("list", help="list the notebooks and their parameters")
    lst.set_defaults(func=_cmd_list)
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    import yaml

    params: dict[str, Any] = load_params(args.params) if args.params else {}
    for name, value in args.param:
        params[name] = yaml.safe_load(value)
    if args.param:
        declared: set[str] = set()
        for nb in notebook_paths():
            declared |= set(notebook_parameters(nb))
        unknown = sorted({name for name, _ in args.param} - declared)
        if unknown:
            raise ConfigError(
                f"--param: found unknown name(s) {', '.join(unknown)}; expected one of {sorted(declared)}"
            )
    dataset, profile = Path(str(params.get("dataset", "synthetic"))).name, str(params.get("profile", "ci"))
    out = (
        Path(args.out)
        if args.out
        else notebooks_dir() / "executed" / (dataset if profile == "ci" else f"{dataset}-{profile}")
    )
    source = args.params or "the notebooks' default parameters"
    if args.param:
        source += " and " + ", ".join(f"{name}={value}" for name, value in args.param)
    print(f"executing the notebooks with {source} into {out}")
    runs = run_collection(
        parameters=params,
        out_dir=out,
        only=args.only,
        kernel_name=args.kernel,
        timeout=args.timeout,
        stop_on_error=args.stop_on_error,
        log_output=args.log_output,
        echo_progress=not args.quiet,
    )
    failed = [r for r in runs if not r.ok]
    total = sum(r.seconds for r in runs)
    print(f"{len(runs) - len(failed)} of {len(runs)} notebooks ran without error in {total:.0f} s; copies in {out}")
    return 1 if failed else 0


def _cmd_refresh(args: argparse.Namespace) -> int:
    runs = refresh(only=args.only, kernel_name=args.kernel, timeout=args.timeout)
    print(f"refreshed {len(runs)} notebooks in {sum(r.seconds for r in runs):.0f} s")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    for path in notebook_paths():
        params = notebook_parameters(path)
        print(f"{path.name}: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_parsed(_parser(), argv, prog="imvia notebooks")


if __name__ == "__main__":
    sys.exit(main())
