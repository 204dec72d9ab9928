"""The numbered notebooks: each runs headlessly in the CI profile, and the outputs committed in them still hold.

Two checks:

* papermill executes the collection in order with ``notebooks/params/ci.yaml`` into a temporary folder (figures and
  build files there too, no download of the benchmark datasets); every notebook must run without an error, and the
  notebooks' own ``assert`` cells are what checks the method (relevant views get more weight, the models are far
  above random, removing structure costs validation MRR, Table II holds every reported row, ...);
* the cells marked ``# NBVAL_CHECK_OUTPUT`` in the committed notebooks (dataset statistics, view counts, the
  reported rows of Table II) must reproduce their stored output in that execution, after the substitutions of
  ``notebooks/nbval_sanitize.cfg`` (nbval's lax mode, without executing the collection a second time; the same
  check by hand: ``pytest --nbval-lax --sanitize-with notebooks/nbval_sanitize.cfg notebooks/*.ipynb``).

Trained runs are cached under ``runs/`` (the same configuration is trained once), so these share the runs of
``tests/test_training.py``.
"""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import nbformat
import pytest

from imvia_core.errors import ConfigError
from imvia_core.notebooks import (
    KERNEL_NAME,
    kernel_environment,
    load_params,
    main,
    notebook_parameters,
    notebook_paths,
    run_collection,
    strip_volatile,
)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = notebook_paths(NOTEBOOK_DIR)
PARAMS_DIR = NOTEBOOK_DIR / "params"
SANITIZE = NOTEBOOK_DIR / "nbval_sanitize.cfg"
#: seconds allowed to one notebook cell; a cell that trains a CI-profile run takes a few minutes on 2 CPU cores
CELL_TIMEOUT = 1200


@pytest.fixture(scope="session")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The collection executed in order with the CI parameters (once per session)."""
    out = tmp_path_factory.mktemp("notebooks")
    params = load_params(PARAMS_DIR / "ci.yaml")
    params.update(download_real_datasets=False, figures_dir=str(out / "figures"), build_dir=str(out / "build"))
    runs = run_collection(
        parameters=params, out_dir=out / "executed", stop_on_error=False, echo=False, timeout=CELL_TIMEOUT
    )
    return out, {run.source.name: run for run in runs}


def test_the_collection_is_numbered_in_the_papers_order() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, len(names) + 1)]
    assert any("table2" in n for n in names) and any("fig2" in n for n in names)


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_notebook_runs_without_error(executed, name: str) -> None:
    _, runs = executed
    run = runs[name]
    assert run.ok, f"{name}: {run.error} (executed copy: {run.output})"
    nb = nbformat.read(str(run.output), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), f"{name}: a cell did not run"
    assert run.parameters.get("dataset", "synthetic") == "synthetic" and run.parameters.get("profile", "ci") == "ci"


def test_collection_writes_table_and_figure(executed) -> None:
    out, runs = executed
    if not all(run.ok for run in runs.values()):
        pytest.skip("a notebook failed; reported by test_notebook_runs_without_error")
    figures = out / "figures"
    for name in ("table2.md", "table2.tex", "table2.csv", "fig2_ablation_synthetic.png", "fig2_ablation_synthetic.pdf"):
        assert (figures / name).is_file() and (figures / name).stat().st_size > 0, name
    csv = (figures / "fig2_ablation_synthetic.csv").read_text().splitlines()
    assert csv[0] == "variant,metric,value" and len(csv) == 1 + 5 * 5  # five variants, five metrics
    table = (figures / "table2.md").read_text()
    assert "| reproduced | IMVIA" in table and "### synthetic" in table and "| seeds |" in table


CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def _sanitizers() -> list[tuple[re.Pattern[str], str]]:
    """The (regex, replacement) pairs of ``nbval_sanitize.cfg``, in file order."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(SANITIZE, encoding="utf-8")
    return [(re.compile(parser[name]["regex"]), parser[name]["replace"]) for name in parser.sections()]


def _checked_text(cell, sanitizers) -> str:
    """What a marked cell printed or returned (stdout streams and ``text/plain`` results), sanitised."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data") and "text/plain" in out.get("data", {}):
            parts.append(out["data"]["text/plain"])
    text = "".join("".join(p) if isinstance(p, list) else p for p in parts)
    for pattern, replacement in sanitizers:
        text = pattern.sub(replacement, text)
    return text


def test_committed_notebooks_hold_their_outputs(executed) -> None:
    """Every marked cell of a committed notebook prints, in the CI execution, what its stored output says."""
    _, runs = executed
    sanitizers = _sanitizers()
    checked = 0
    for path in NOTEBOOKS:
        run = runs[path.name]
        if not run.ok:
            pytest.fail(f"{path.name} did not run: {run.error}")
        fresh = {c.source: c for c in nbformat.read(str(run.output), as_version=4).cells if c.cell_type == "code"}
        for cell in nbformat.read(str(path), as_version=4).cells:
            if cell.cell_type != "code" or CHECK_MARK not in cell.source:
                continue
            assert cell.source in fresh, f"{path.name}: a checked cell is missing from the executed copy"
            stored, now = _checked_text(cell, sanitizers), _checked_text(fresh[cell.source], sanitizers)
            assert stored, f"{path.name}: a checked cell has no stored output: {cell.source[:80]!r}"
            assert now == stored, f"{path.name}: {cell.source[:80]!r}\nstored:\n{stored}\nnow:\n{now}"
            checked += 1
    assert checked >= 3


def test_sanitizers_hide_what_changes_between_runs() -> None:
    sanitizers = _sanitizers()

    def cell(text: str) -> dict:
        return {"outputs": [{"output_type": "stream", "name": "stdout", "text": text}]}

    assert _checked_text(cell("runs/ci/imvia-5264b367 in 3.2 s"), sanitizers) == "runs/ci/imvia-<HASH> in <DURATION>"
    assert _checked_text(cell("test MRR 25.05"), sanitizers) != _checked_text(cell("test MRR 25.09"), sanitizers)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    assert "papermill" not in nb.metadata
    assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "the first code cell holds the parameters"
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    for cell in nb.cells:
        assert not {"papermill", "execution"} & set(cell.metadata), cell.source[:60]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert all(c.execution_count is not None for c in code), (
        "refresh the notebooks: python -m imvia_core.notebooks refresh"
    )
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert str(ROOT) not in json.dumps(nb.cells), "an absolute path of the checkout leaked into the outputs"


def test_some_outputs_are_checked() -> None:
    marked = [
        p.name for p in NOTEBOOKS
        if any("# NBVAL_CHECK_OUTPUT" in c.source for c in nbformat.read(str(p), as_version=4).cells)
    ]  # fmt: skip
    assert len(marked) >= 3, marked


@pytest.mark.parametrize("path", sorted(PARAMS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_parameter_files_name_declared_parameters(path: Path) -> None:
    params = load_params(path, notebooks=NOTEBOOKS)
    assert {"dataset", "profile", "device"} <= set(params)
    if "paper" in path.name:
        assert params["profile"] == "paper" and str(params["device"]).startswith("cuda")


def test_unknown_parameter_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: synthetic\nlearning_rate: 3\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_params(bad, notebooks=NOTEBOOKS)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(bad, notebooks=NOTEBOOKS)


def test_every_notebook_takes_the_common_parameters() -> None:
    for path in NOTEBOOKS[2:]:
        declared = notebook_parameters(path)
        assert {"dataset", "profile", "device", "seed"} <= set(declared), (path.name, sorted(declared))
        assert declared["dataset"] == '"synthetic"' and declared["profile"] == '"ci"', path.name


def test_strip_volatile_keeps_outputs() -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=3)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    cell.metadata.update(papermill={"duration": 1.0}, execution={"iopub.status.busy": "x"}, tags=["parameters"])
    nb.cells = [cell]
    nb.metadata.update(papermill={"parameters": {}}, kernelspec={"name": "other", "display_name": "x"})
    clean = strip_volatile(nb)
    assert clean.cells[0].outputs == cell.outputs and clean.cells[0].execution_count == 3
    assert clean.cells[0].metadata == {"tags": ["parameters"]}
    assert "papermill" not in clean.metadata and clean.metadata["kernelspec"]["name"] == KERNEL_NAME
    assert "papermill" in nb.metadata  # the input is left alone


def test_command_line_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--params" in text and "notebooks/executed" in text
    assert main(["list"]) == 0
    assert "01_data.ipynb" in capsys.readouterr().out
    assert main([]) == 2


# ------------------------------------------------------------------------------ helpers the notebooks call
def _results_file(path: Path, dataset: str, config: dict, mrr: float) -> None:
    metrics = {"count": 4, "mrr": mrr, "mr": 3.0, "hits@1": mrr, "hits@3": mrr, "hits@10": mrr, "hits@100": 1.0}
    result = {"filtered": True, "ks": [1, 3, 10, 100], "metrics": {"realistic": {"overall": metrics}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dataset": dataset, "config": config, "test": result, "valid": result}))


def test_collect_results_reads_profile_and_variant_from_the_layout(tmp_path: Path) -> None:
    from imvia_core.reporting.results import collect_results

    _results_file(tmp_path / "ci" / "synthetic" / "imvia.json", "synthetic", {"model": "imvia"}, 0.5)
    _results_file(tmp_path / "cpu" / "synthetic" / "imvia.json", "synthetic", {"model": "imvia"}, 0.6)
    _results_file(tmp_path / "cpu" / "MKG-Y" / "tucker.json", "MKG-Y", {"model": "tucker"}, 0.3)
    _results_file(
        tmp_path / "cpu" / "MKG-Y" / "imvia-no-text.json", "MKG-Y", {"model": "imvia", "use_text": False}, 0.2
    )
    frame = collect_results(tmp_path, variants=("imvia", "tucker"))
    assert list(zip(frame["dataset"], frame["profile"], frame["variant"])) == [
        ("MKG-Y", "cpu", "tucker"),
        ("synthetic", "ci", "imvia"),
        ("synthetic", "cpu", "imvia"),
    ]
    assert frame.loc[frame["profile"] == "cpu", "MRR"].tolist() == [30.0, 60.0]
    assert collect_results(tmp_path, datasets=("DB15K",)).empty
    assert len(collect_results(tmp_path / "nothing")) == 0


def test_queries_and_view_weight_frame() -> None:
    import torch

    from imvia_core.data.synthetic import load_synthetic
    from imvia_core.model import IMVIA, IMVIAConfig
    from imvia_core.reporting.probes import display_path, sample_queries, view_weight_frame

    kg = load_synthetic()
    graph = kg.graph
    heads, relations, tails = sample_queries(graph, split="valid", max_queries=50, seed=1)
    assert len(heads) == 50 and int(relations.max()) < 2 * graph.num_relations
    every = sample_queries(graph, split="valid")[0]
    assert len(every) == 2 * len(graph.valid)
    torch.manual_seed(0)
    model = IMVIA(
        num_entities=graph.num_entities,
        num_relations_with_reciprocals=graph.num_relations_with_reciprocals,
        visual=kg.visual,
        text=kg.text,
        config=IMVIAConfig(dim=8, club_hidden_dim=8),
    ).eval()
    info = model.inspect(heads, relations)
    frame = view_weight_frame(info, heads=heads, relations=relations, relevance=kg.view_relevance)
    for m, feats in (("V", kg.visual), ("T", kg.text)):
        part = frame[frame["modality"] == m]
        assert len(part) == int(feats.mask[heads].sum())  # one row per real view of each query's head
        assert part.groupby("query")["weight"].sum().round(5).eq(1.0).all()  # Eq. 2 weights sum to 1 per head
        truth = kg.view_relevance["visual" if m == "V" else "text"][heads]
        assert int(part["relevant"].sum()) == int(truth.sum())
    assert display_path(ROOT / "runs" / "x") == str(Path("runs") / "x")
    assert display_path("/elsewhere/x") == "/elsewhere/x"


def test_kernels_spin_briefly_unless_told_otherwise() -> None:
    assert kernel_environment({})["GOMP_SPINCOUNT"] == "20000"
    assert kernel_environment({"GOMP_SPINCOUNT": "5"})["GOMP_SPINCOUNT"] == "5"
    assert "GOMP_SPINCOUNT" not in kernel_environment({"OMP_WAIT_POLICY": "ACTIVE"})


def test_progress_echo_names_each_code_cell(tmp_path: Path) -> None:
    import io
    import logging

    from imvia_core.notebooks import _cell_outline, _ProgressEcho

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("# a comment\nx = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("train_everything()"),
    ]
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, str(path))
    cells = _cell_outline(path, injected=True)
    assert cells == [("markdown", ""), ("code", "x = 1"), ("code", "(parameters of this run)"),
                     ("code", "train_everything()")]  # fmt: skip
    out = io.StringIO()
    handler = _ProgressEcho("01_x", cells, out)
    for number in (1, 4):
        handler.emit(logging.LogRecord("papermill", logging.INFO, "", 0, f"Executing Cell {number}----", None, None))
    assert out.getvalue() == "  01_x cell 3/3: train_everything()\n"
