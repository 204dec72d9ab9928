"""Side-by-side speed of the authors' IMVIA code and of this project, in the same environment.

Two commands:

``python bench/upstream.py measure --upstream PATH``
    times the authors' code (a checkout of ``kernelLZ/ICASSP2025_IMVIA_Code``; nothing of it is copied here) at the
    DB15K paper configuration: it writes the DB15K triples (this project's loader) and random features of the MoMoK
    shapes (4096-d visual, 768-d text, one per entity) in the layout that code reads, builds its model, estimator,
    optimisers and data corpus with its own classes, times its training batches (batch building, main step, the
    estimator's step, as its training loop does them) after a warm-up, then one full filtered test evaluation
    (``get_validation_pred``, both directions), and records the peak RSS. Writes ``upstream-<date>.json``.

``python bench/upstream.py compare --upstream PATH``
    runs ``measure`` and then this project's benchmark (``python -m bench``) back to back, each in a fresh
    process with the same environment, threads and allocator, and writes one table of ratios,
    ``compare-<date>.md`` / ``.json`` (``make bench-compare UPSTREAM=PATH``). The load (``uptime``) before, between
    and after is recorded: on a shared machine only ratios measured within one such run mean anything.

The authors' code imports ``h5py`` (and ``numpy``, ``tqdm``, ``torch``): install ``h5py`` into the interpreter that
runs this script (``.venv/bin/python -m pip install h5py``); it is not a dependency of this project.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib
import json
import os
import platform
import random
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import imvia_core  # noqa: F401 - before torch: OpenMP threads wait passively, as in the project's benchmark
from imvia_core.allocator import allocator_state, tune_allocator

__all__ = ["measure_upstream", "compare", "render_comparison", "main"]

ROOT = Path(__file__).resolve().parents[1]
#: the authors' training settings for DB15K (their ``train.py`` defaults), as far as they touch the timing
UPSTREAM_ARGS: dict[str, Any] = {
    "lr": 0.0005,
    "weight_decay": 0.0,
    "dim": 256,
    "r_dim": 256,
    "batch_size": 1024,
    "n_exp": 3,
    "mu": 0.0001,
    "temp": 0.07,
    "gamma": 1.0,
    "neg_num": 2,
    "pre_trained": 0,
    "image_features": 1,
    "text_features": 1,
    "img_dim": 256,
    "txt_dim": 256,
}
#: MoMoK's DB15K feature widths (the authors' model pools them to 256 each)
FEATURE_DIMS = {"visual": 4096, "text": 768}


def _uptime() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _peak_rss_bytes() -> int:
    """Lifetime peak RSS of this process (``VmHWM``; ``getrusage`` where ``/proc`` is missing)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) * 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * (1 if sys.platform == "darwin" else 1024)


def _git_commit(path: Path) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    return None


def _write_dataset(folder: Path, dataset: str, *, seed: int) -> dict[str, int]:
    """The triples of ``dataset`` (this project's loader) and random features, as the authors' ``load_data`` reads
    them: ``datasets/<name>/{train,valid,test}.txt`` (space-separated names), ``entity2id.txt``, ``relation2id.txt``,
    ``img_features.pth`` (E, 4096) and ``text_features.pth`` (E, 768)."""
    import torch

    # loads torch, as the line above does: the compare command runs both benchmarks in fresh processes and loads
    # neither itself
    from imvia_core.data.loading import load_graph

    graph = load_graph(dataset, progress=False)
    out = folder / "datasets" / dataset
    out.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        rows = graph.split(split).tolist()
        (out / f"{split}.txt").write_text("".join(f"e{h} r{r} e{t}\n" for h, r, t in rows), encoding="utf-8")
    (out / "entity2id.txt").write_text("".join(f"e{i} {i}\n" for i in range(graph.num_entities)), encoding="utf-8")
    (out / "relation2id.txt").write_text("".join(f"r{i} {i}\n" for i in range(graph.num_relations)), encoding="utf-8")
    gen = torch.Generator().manual_seed(seed)
    torch.save(torch.randn(graph.num_entities, FEATURE_DIMS["visual"], generator=gen), out / "img_features.pth")
    torch.save(torch.randn(graph.num_entities, FEATURE_DIMS["text"], generator=gen), out / "text_features.pth")
    return {
        "num_entities": graph.num_entities,
        "num_relations": graph.num_relations,
        "num_train": int(graph.train.shape[0]),
        "num_test": int(graph.test.shape[0]),
    }


def _time_upstream_steps(
    model: Any, estimator: Any, optimizer: Any, optimizer_mi: Any, corpus: Any, *, mu: float, warmup: int, steps: int
) -> dict[str, Any]:
    """``warmup`` untimed and ``steps`` timed training batches of the authors' model; seconds per step."""
    import torch  # as in measure_upstream: loaded after imvia_core, which sets OpenMP's waiting policy first

    model.train()
    corpus.shuffle()
    step_seconds, batch_seconds = [], []
    for b in range(warmup + steps):
        start = time.perf_counter()
        estimator.eval()
        optimizer.zero_grad()
        indices, values = corpus.get_batch(b)
        indices = torch.LongTensor(indices)
        built = time.perf_counter()
        output, embeddings, features = model.forward(indices)
        loss = model.loss_func(output, values, features) + mu * estimator(embeddings)
        loss.backward()
        optimizer.step()
        estimator.train()
        optimizer_mi.zero_grad()
        with torch.no_grad():
            embeddings = model.get_batch_embeddings(indices)
        estimator.train_estimator(embeddings).backward()
        optimizer_mi.step()
        float(loss.item())
        if b >= warmup:
            step_seconds.append(time.perf_counter() - start)
            batch_seconds.append(built - start)
    median = statistics.median(step_seconds)
    return {
        "step_seconds": step_seconds,
        "step_seconds_median": median,
        "batch_building_seconds_median": statistics.median(batch_seconds),
        "epoch_seconds_extrapolated": median * corpus.max_batch_num,
        "peak_rss_bytes": _peak_rss_bytes(),
    }


def measure_upstream(
    upstream: str | Path, *, dataset: str = "DB15K", warmup: int = 2, steps: int = 4, seed: int = 0
) -> dict[str, Any]:
    """Time the authors' code (see the module docstring) in this process and return the record.

    :param upstream: the checkout of the authors' repository (holding ``models/RelMoE.py``).
    :param warmup: untimed training batches first; ``steps``: timed ones (seconds per epoch are extrapolated from
        their median times the batches of an epoch).
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    upstream = Path(upstream).resolve()
    if not (upstream / "models" / "RelMoE.py").is_file():
        raise SystemExit(f"upstream: {upstream} is not a checkout of the authors' code (no models/RelMoE.py)")
    if dataset != "DB15K":
        raise SystemExit("upstream: only DB15K is supported (the authors' model pools features by dataset name)")
    tune_allocator()
    record: dict[str, Any] = {
        "benchmark": "bench/upstream.py",
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "uptime_start": _uptime(),
        "upstream_commit": _git_commit(upstream),
        "machine": {
            "cpu": _cpu_name(),
            "logical_cores": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
        "allocator": allocator_state(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "options": {"dataset": dataset, "warmup": warmup, "steps": steps, "seed": seed, **UPSTREAM_ARGS},
    }
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="imvia-upstream-") as tmp:
        t0 = time.perf_counter()
        record["shape"] = _write_dataset(Path(tmp), dataset, seed=seed)
        sys.path.insert(0, str(upstream))
        os.chdir(tmp)  # the authors' loader reads datasets/<name>/ relative to the working directory
        try:
            try:
                data_util = importlib.import_module("utils.data_util")
                data_loader = importlib.import_module("utils.data_loader")
                relmoe = importlib.import_module("models.RelMoE")
                modules = importlib.import_module("models.modules")
            except ModuleNotFoundError as err:
                raise SystemExit(
                    f"upstream: the authors' code needs the package {err.name!r}: install it into {sys.executable} "
                    "(e.g. .venv/bin/python -m pip install h5py); it is not a dependency of this project"
                ) from err
            entity2id, relation2id, img, txt, train_data, val_data, test_data = data_util.load_data(dataset)
            args = argparse.Namespace(**UPSTREAM_ARGS, dataset=dataset, device="cpu", cuda=-1)
            args.img = F.normalize(torch.as_tensor(img, dtype=torch.float32), p=2, dim=1)
            args.desp = F.normalize(torch.as_tensor(txt, dtype=torch.float32), p=2, dim=1)
            args.entity2id, args.relation2id = entity2id, relation2id
            corpus = data_loader.ConvECorpus(args, train_data, val_data, test_data, entity2id, relation2id)
            corpus.batch_size, corpus.neg_num = args.batch_size, args.neg_num
            model = relmoe.RelMoE(args)
            args.img_dim, args.txt_dim = model.img_dim, model.txt_dim
            estimator = modules.MIEstimator(args)
            optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
            optimizer_mi = torch.optim.Adam(estimator.parameters(), lr=args.lr, weight_decay=args.weight_decay)
            record["setup_seconds"] = time.perf_counter() - t0
            record["rss_after_setup_bytes"] = _peak_rss_bytes()
            record["model_parameters"] = sum(p.numel() for p in model.parameters())
            record["batches_per_epoch"] = int(corpus.max_batch_num)

            # training batches, in the order of the authors' loop: batch, main step, then the estimator's step
            record["train"] = _time_upstream_steps(
                model, estimator, optimizer, optimizer_mi, corpus, mu=args.mu, warmup=warmup, steps=steps
            )

            # one full filtered test evaluation, both directions
            model.eval()
            start = time.perf_counter()
            with torch.no_grad():
                metrics, _ = corpus.get_validation_pred(model, "test")
            record["evaluation"] = {
                "seconds": time.perf_counter() - start,
                "queries": 2 * len(corpus.test_tail_indices),
                "batch_size": corpus.batch_size,
                "mrr": float(metrics["MRR"]),
            }
        finally:
            os.chdir(cwd)
            sys.path.remove(str(upstream))
    record["peak_rss_bytes"] = _peak_rss_bytes()
    record["uptime_end"] = _uptime()
    return record


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _stamp() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def compare(
    upstream: str | Path,
    *,
    out: str | Path,
    threads: int | None = None,
    bench_args: str = "",
    steps: int = 4,
    warmup: int = 2,
) -> dict[str, Any]:
    """Run ``measure`` and the project's benchmark back to back (fresh processes, same environment) and return the
    comparison; the outputs of both and the table are written to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    thread_args = ["--threads", str(threads)] if threads else []
    uptimes = {"start": _uptime()}
    up_json = out / f"upstream-{_stamp()}.json"
    cmd = [sys.executable, __file__, "measure", "--upstream", str(upstream), "--json", str(up_json)]
    cmd += ["--steps", str(steps), "--warmup", str(warmup)]
    subprocess.run([*cmd, *thread_args], check=True)
    uptimes["between"] = _uptime()
    bench_cmd = [sys.executable, "-m", "bench", *thread_args, "--out", str(out), *shlex.split(bench_args)]
    proc = subprocess.run(bench_cmd, check=True, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    sys.stderr.write(proc.stderr[-2000:])
    found = re.findall(r"wrote (\S+\.json)", proc.stderr)
    if not found:
        raise SystemExit("upstream: the project's benchmark did not say where it wrote its results")
    uptimes["end"] = _uptime()
    up = json.loads(up_json.read_text(encoding="utf-8"))
    ours = json.loads(Path(found[-1]).read_text(encoding="utf-8"))
    result = {
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "uptime": uptimes,
        "upstream_file": up_json.name,
        "project_file": Path(found[-1]).name,
        "project_commit": ours["git"]["commit"],
        "project_dirty": ours["git"]["dirty"],
        "upstream_commit": up["upstream_commit"],
        "threads": ours["machine"]["torch_threads"],
        "project_dtype": ours.get("options", {}).get("dtype", "fp32"),
        "cpu": ours["machine"]["cpu"],
        "allocator": {"upstream": up["allocator"].get("method"), "project": ours["allocator"].get("method")},
        "omp_wait_policy": up.get("omp_wait_policy"),
        "rows": _rows(up, ours),
    }
    stem = f"compare-{_stamp()}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / f"{stem}.md").write_text(render_comparison(result), encoding="utf-8")
    print(render_comparison(result))
    print(f"wrote {out / stem}.md and .json", file=sys.stderr)
    return result


def _rows(up: dict[str, Any], ours: dict[str, Any]) -> list[dict[str, Any]]:
    ev = ours["evaluation"]
    rows = [
        {
            "what": "IMVIA training, s per DB15K epoch (extrapolated from the median batch)",
            "upstream": up["train"]["epoch_seconds_extrapolated"],
            "project": ours["train"]["imvia"]["epoch_seconds_extrapolated"],
        },
        {
            "what": "training, s per batch of 1024 (median)",
            "upstream": up["train"]["step_seconds_median"],
            "project": ours["train"]["imvia"]["step_seconds_median"],
        },
        {
            "what": "full filtered test evaluation (2 x test queries), s",
            "upstream": up["evaluation"]["seconds"],
            "project": ev["seconds"],
        },
        {
            "what": "peak RSS, GB",
            "upstream": up["peak_rss_bytes"] / 1e9,
            "project": ours["memory"]["peak_rss_bytes"] / 1e9,
        },
    ]
    for row in rows:
        row["ratio"] = _ratio(row["upstream"], row["project"])
    rows.append(
        {
            "what": "project's evaluation / its bare scoring GEMMs",
            "upstream": None,
            "project": ev.get("ratio_to_bare_matmuls"),
            "ratio": None,
        }
    )
    return rows


def render_comparison(result: dict[str, Any]) -> str:
    """The comparison as Markdown: ratios are upstream / project (higher: the project is faster or smaller)."""

    def fmt(x: float | None, spec: str = ".3g") -> str:
        return "" if x is None else format(x, spec)

    lines = [
        "# The authors' code and this project, side by side",
        "",
        f"- {result['created']}, {result['cpu']}, {result['threads']} threads, allocator: authors' code "
        f"{result['allocator']['upstream'] or 'not tuned'}, project {result['allocator']['project'] or 'not tuned'}, "
        f"OMP_WAIT_POLICY={result.get('omp_wait_policy')}",
        f"- precision: authors' code fp32, project {result.get('project_dtype', 'fp32')}"
        + (
            " (bf16 autocast of the forward passes; losses, optimiser states and ranking scores fp32)"
            if result.get("project_dtype") == "bf16"
            else ""
        ),
        f"- project commit `{result['project_commit']}`"
        + (" (with local changes)" if result["project_dirty"] else "")
        + f"; authors' code `{result['upstream_commit']}`",
        f"- files: `{result['upstream_file']}`, `{result['project_file']}`",
        *(f"- uptime {k}: `{v}`" for k, v in result["uptime"].items()),
        "",
        "| | authors' code | this project | ratio |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        ratio = f"**{row['ratio']:.2f}x**" if row["ratio"] else ""
        lines.append(f"| {row['what']} | {fmt(row['upstream'])} | {fmt(row['project'])} | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/upstream.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("measure", "time the authors' code alone (training batches after a warm-up, one full test evaluation)"),
        ("compare", "the authors' code, then this project's benchmark, back to back; one table of ratios"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--upstream", required=True, help="path to a checkout of kernelLZ/ICASSP2025_IMVIA_Code")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
        p.add_argument("--steps", type=int, default=4, help="timed training batches of the authors' code (default 4)")
        p.add_argument("--warmup", type=int, default=2, help="untimed batches first (default 2)")
    sub.choices["measure"].add_argument("--json", help="write the record here (default: print it)")
    sub.choices["compare"].add_argument("--out", default="bench/results", help="output folder (default bench/results)")
    sub.choices["compare"].add_argument(
        "--bench-args", default="", help="extra options for python -m bench, as one string"
    )
    args = parser.parse_args(argv)
    if args.command == "measure":
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        record = measure_upstream(args.upstream, warmup=args.warmup, steps=args.steps)
        text = json.dumps(record, indent=2) + "\n"
        if args.json:
            Path(args.json).write_text(text, encoding="utf-8")
        else:
            print(text)
        return 0
    compare(
        args.upstream,
        out=args.out,
        threads=args.threads,
        bench_args=args.bench_args,
        steps=args.steps,
        warmup=args.warmup,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
