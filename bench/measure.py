"""The timed work of the benchmark: matmul peak, training steps, evaluation, bare scoring matmuls, memory.

:func:`run_benchmark` runs every measurement of :mod:`bench` and returns a JSON-ready dict; :mod:`bench.report`
adds the targets and writes the report.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from bench.flops import evaluation_flops, imvia_step_flops, tucker_step_flops
from bench.machine import allocator_settings, autocast, current_rss, describe_machine, git_state, measure_memory, sync
from bench.report import assess
from bench.shapes import DB15K_SHAPE, DTYPES, BenchShape
from imvia_core.data.graph import KnowledgeGraph
from imvia_core.data.loading import load_graph
from imvia_core.evaluation import FilterIndex, evaluate
from imvia_core.layout import prefer_entity_major
from imvia_core.model import build_model
from imvia_core.training.step import Batch, Optimizers, build_targets, make_adam, train_step, training_queries
from imvia_core.training.trainer import epoch_order
from imvia_core.types import ModalityFeatures

__all__ = ["build_targets", "measure_matmul_peak", "random_features", "run_benchmark"]


# ----------------------------------------------------------------------------------------------- matmul peak
def measure_matmul_peak(
    *, device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 6
) -> dict[str, float]:
    """Dense matmul throughput: best and median of ``repeats`` timed ``size^3`` matmuls after one warm-up.

    :return: ``gflops`` (best), ``gflops_median``, ``size``, ``repeats``.
    """
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device, dtype)
    b = torch.randn(size, size, generator=gen).to(device, dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    torch.mm(a, b, out=out)
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        sync(device)
        times.append(time.perf_counter() - t0)
    flops = 2.0 * size**3
    return {
        "gflops": flops / min(times) / 1e9,
        "gflops_median": flops / statistics.median(times) / 1e9,
        "size": size,
        "repeats": repeats,
    }


# ----------------------------------------------------------------------------------------------- data and model
def _random_graph(shape: BenchShape, seed: int = 0):
    """A random graph of the sizes in ``shape`` (no file needed)."""
    gen = torch.Generator().manual_seed(seed)
    e, r = shape.num_entities, shape.num_relations

    def triples(n: int) -> torch.Tensor:
        return torch.stack(
            [
                torch.randint(0, e, (n,), generator=gen),
                torch.randint(0, r, (n,), generator=gen),
                torch.randint(0, e, (n,), generator=gen),
            ],
            dim=1,
        )

    return KnowledgeGraph(
        name="random",
        entity_to_id={f"e{i}": i for i in range(e)},
        relation_to_id={f"r{i}": i for i in range(r)},
        train=triples(shape.num_train),
        valid=triples(max(1, shape.num_test // 4)),
        test=triples(shape.num_test),
    )


def _load_graph(shape: BenchShape):
    if shape.dataset == "random":
        return _random_graph(shape)
    return load_graph(shape.dataset, progress=False)


def random_features(*, num_entities: int, visual_dim: int, text_dim: int, seed: int = 0) -> dict[str, Any]:
    """One random vector per entity per modality, of the MoMoK feature shapes (speed does not depend on values)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, width in (("visual", visual_dim), ("text", text_dim)):
        views = torch.randn(num_entities, 1, width, generator=gen)
        out[name] = ModalityFeatures(
            views=views,
            mask=torch.ones(num_entities, 1, dtype=torch.bool),
            modality=name,
            metadata={"source": "random", "note": "benchmark features of the MoMoK shapes"},
        )
    return out


# ----------------------------------------------------------------------------------------------- training steps
@dataclass
class _Trainee:
    name: str
    model: Any
    optimizers: Optimizers
    loss_fn: Callable
    compile_error: str | None = None


def _make_trainee(name: str, model, *, lr: float = 1e-3, compile_model: bool = False) -> _Trainee:
    aux_params = model.auxiliary_parameters()
    optimizers = Optimizers(
        main=make_adam(model.main_parameters(), lr=lr), aux=make_adam(aux_params, lr=lr) if aux_params else None
    )
    loss_fn = model.training_loss
    if compile_model:
        loss_fn = torch.compile(model.training_loss)  # every timed batch has the same shape
    return _Trainee(name, model, optimizers, loss_fn)


def _train_step(
    trainee: _Trainee, index, heads: torch.Tensor, relations: torch.Tensor, *, device: torch.device, dtype
) -> dict[str, float]:
    """One batch of the trainer's loop (:func:`~imvia_core.training.step.train_step`); the seconds of each phase."""
    model = trainee.model
    marks = [time.perf_counter()]

    def mark() -> None:
        sync(device)
        marks.append(time.perf_counter())

    def loss_fn(heads: torch.Tensor, relations: torch.Tensor, targets: torch.Tensor):
        try:
            return trainee.loss_fn(heads, relations, targets)
        except Exception as err:  # torch.compile failures: record them and run eagerly
            if trainee.loss_fn is model.training_loss:
                raise
            trainee.compile_error = f"{type(err).__name__}: {err}"[:500]
            trainee.loss_fn = model.training_loss
            return model.training_loss(heads, relations, targets)

    batch = Batch(heads, relations, build_targets(index, heads, relations))
    mark()
    step = train_step(
        model, batch, trainee.optimizers, autocast=lambda: autocast(device, dtype), loss_fn=loss_fn, on_phase=mark
    )
    names = ("targets", "aux_step", "forward", "backward", "optimizer")
    phases = {n: marks[i + 1] - marks[i] for i, n in enumerate(names)}
    phases["step"] = marks[-1] - marks[0]
    if not math.isfinite(float(step.loss.detach())):
        raise RuntimeError(f"{trainee.name}: the benchmark loss became {float(step.loss.detach())}")
    return phases


def _time_training(
    trainee: _Trainee,
    index,
    q_heads: torch.Tensor,
    q_relations: torch.Tensor,
    *,
    batch_size: int,
    warmup: int,
    steps: int,
    device: torch.device,
    dtype,
    flops_fn: Callable[[int], float],
    progress: bool,
    by_relation: bool = False,
) -> dict[str, Any]:
    """Warm-up and timed steps on consecutive batches of an epoch's order (the trainer's ``epoch_order``)."""
    num_queries = int(q_heads.numel())
    batches_per_epoch = math.ceil(num_queries / batch_size)
    gen = torch.Generator().manual_seed(0)
    order = epoch_order(q_relations.cpu(), batch_size, gen, by_relation=by_relation).to(q_heads.device)
    trainee.model.train()
    records = []
    bar = tqdm(total=warmup + steps, desc=f"{trainee.name} steps", disable=not progress)

    def run(i: int) -> None:
        start = (i % batches_per_epoch) * batch_size
        idx = order[start : start + batch_size]
        heads, relations = q_heads[idx], q_relations[idx]
        phases = _train_step(trainee, index, heads, relations, device=device, dtype=dtype)
        if i >= warmup:
            u = int(torch.unique(relations).numel())
            records.append({"unique_relations": u, "batch": int(idx.numel()), "flops": flops_fn(u), **phases})
        bar.update(1)

    warm_memory: dict[str, Any] = {}
    with measure_memory(device, warm_memory):  # the first step allocates gradients and optimizer states
        for i in range(warmup):
            run(i)
    memory: dict[str, Any] = {}
    with measure_memory(device, memory):  # starts with gradients and optimizer states of the last step alive
        for i in range(warmup, warmup + steps):
            run(i)
    bar.close()
    memory["rss_peak_bytes"] = max(memory["rss_peak_bytes"], warm_memory["rss_peak_bytes"])
    step_times = [r["step"] for r in records]
    median_step = statistics.median(step_times)
    total_flops = sum(r["flops"] for r in records)
    gflops = total_flops / sum(step_times) / 1e9
    phase_names = ("targets", "aux_step", "forward", "backward", "optimizer")
    return {
        "warmup_steps": warmup,
        "timed_steps": steps,
        "step_seconds": step_times,
        "step_seconds_median": median_step,
        "step_seconds_min": min(step_times),
        "phase_seconds_median": {n: statistics.median(r[n] for r in records) for n in phase_names},
        "batches_per_epoch": batches_per_epoch,
        "epoch_seconds_extrapolated": median_step * batches_per_epoch,
        "unique_relations": [r["unique_relations"] for r in records],
        "flops_per_step": total_flops / len(records),
        "gflops_achieved": gflops,
        "compile_error": trainee.compile_error,
        **memory,
    }


# ----------------------------------------------------------------------------------------------- evaluation
def _time_evaluation(model, graph, triples: torch.Tensor, *, batch_size: int, device, dtype) -> dict[str, Any]:
    model.eval()
    seen: list[tuple[int, int]] = []  # (queries, distinct relations) of every batch the evaluator scores

    @torch.no_grad()
    def scorer(heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        seen.append((int(relations.numel()), int(torch.unique(relations).numel())))
        with autocast(device, dtype):
            return model.score_all(heads, relations).float()

    filter_index = graph.filter_index.to(device)  # built before the clock starts
    common = dict(
        num_entities=graph.num_entities,
        num_relations=graph.num_relations,
        filter_index=filter_index,
        batch_size=batch_size,
        device=device,
        progress=False,
    )
    # warm-up, not timed: one batch, so that the timed run does not pay for first-touch memory (as training steps
    # are timed after warm-up steps); the candidate tables are dropped again and recomputed inside the timed run
    evaluate(scorer, triples[: max(1, batch_size // 2)], **common)
    getattr(model, "clear_cache", lambda: None)()
    seen.clear()
    memory: dict[str, Any] = {}
    with measure_memory(device, memory):
        sync(device)
        t0 = time.perf_counter()
        result = evaluate(scorer, triples, **common)
        sync(device)
        seconds = time.perf_counter() - t0
    model.train()
    queries = 2 * int(triples.shape[0])
    flops = evaluation_flops(model, batches=seen)
    return {
        "seconds": seconds,
        "queries": queries,
        "queries_per_second": queries / seconds,
        "flops": flops["total"],
        "flops_parts": flops,
        "gflops_achieved": flops["total"] / seconds / 1e9,
        "mean_distinct_relations_per_batch": statistics.mean(u for _, u in seen),
        "mrr_realistic": result.metric("mrr"),
        **memory,
    }


@torch.no_grad()
def _time_bare_scoring(
    *,
    queries: int,
    batch_size: int,
    branches: int,
    num_entities: int,
    dim: int,
    device,
    dtype,
    entity_major: bool | None = None,
) -> dict[str, Any]:
    """The scoring matmuls an evaluation contains: one ``(b, E)`` GEMM per batch and branch, nothing else.

    :param entity_major: the layout of the GEMM, ``(E, d) x (d, b)`` or ``(b, d) x (d, E)``; default: the one the
        evaluation uses (:func:`~imvia_core.model.tucker.prefer_entity_major`).
    """
    if entity_major is None:
        entity_major = prefer_entity_major(torch.device(device))
    gen = torch.Generator().manual_seed(1)
    table = torch.randn(num_entities, dim, generator=gen).to(device, dtype)
    q = torch.randn(batch_size, dim, generator=gen).to(device, dtype)

    def scores(b: int) -> torch.Tensor:
        return table @ q[:b].t() if entity_major else q[:b] @ table.t()

    scores(batch_size).sum()  # warm-up
    sync(device)
    t0 = time.perf_counter()
    flops = 0.0
    for start in range(0, queries, batch_size):
        b = min(batch_size, queries - start)
        for _ in range(branches):
            out = scores(b)
            flops += 2.0 * b * dim * num_entities
        del out
    sync(device)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "flops": flops,
        "gflops_achieved": flops / seconds / 1e9,
        "layout": "entity-major" if entity_major else "row-major",
    }


# ----------------------------------------------------------------------------------------------- driver
def _shape_summary(shape: BenchShape, graph, q_heads: torch.Tensor, model) -> dict[str, Any]:
    return {
        **asdict(shape),
        "num_entities": graph.num_entities,
        "num_relations_with_reciprocals": graph.num_relations_with_reciprocals,
        "num_train": int(graph.train.shape[0]),
        "num_test": int(graph.test.shape[0]),
        "training_queries": int(q_heads.numel()),
        "batches_per_epoch": math.ceil(int(q_heads.numel()) / shape.batch_size),
        "eval_queries": 2 * int(graph.test.shape[0]),
        "score_branches": list(model.score_branches),
        "input_pool_dim": model.config.input_pool_dim,
        "model_parameters": sum(p.numel() for p in model.parameters()),
    }


def _log(progress: bool, message: str) -> None:
    if progress:
        print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass
class _Setup:
    """What every measurement shares: the graph, the IMVIA model, the training queries and their filter index."""

    shape: BenchShape
    device: torch.device
    dtype: torch.dtype
    graph: KnowledgeGraph
    model: Any
    index: FilterIndex
    q_heads: torch.Tensor
    q_relations: torch.Tensor
    progress: bool

    def log(self, message: str) -> None:
        _log(self.progress, message)

    def train_common(self, steps: int, warmup: int) -> dict[str, Any]:
        return dict(
            batch_size=self.shape.batch_size,
            warmup=warmup,
            steps=steps,
            device=self.device,
            dtype=self.dtype,
            progress=self.progress,
        )


def _set_up(shape: BenchShape, device: torch.device, dtype: torch.dtype, memory: dict[str, Any], progress: bool):
    """Load the graph, build the IMVIA model and the training queries' index; the setup's memory into ``memory``."""
    with measure_memory(device, memory):
        _log(progress, f"loading {shape.dataset}")
        graph = _load_graph(shape)
        features = random_features(
            num_entities=graph.num_entities, visual_dim=shape.visual_dim, text_dim=shape.text_dim
        )
        torch.manual_seed(0)
        model = build_model(
            "imvia",
            num_entities=graph.num_entities,
            num_relations_with_reciprocals=graph.num_relations_with_reciprocals,
            features=features,
            config={"dim": shape.dim, "num_experts": shape.num_experts},
        ).to(device)
        index, q_heads, q_relations = training_queries(graph, device)
        _ = graph.filter_index  # built now, not inside the timed evaluation
    return _Setup(shape, device, dtype, graph, model, index, q_heads, q_relations, progress)


def _measure_imvia_training(
    setup: _Setup,
    *,
    steps: int,
    warmup: int,
    compile_model: bool,
    compare_unfused: bool,
    relation_batches: bool,
) -> dict[str, Any]:
    """IMVIA's training steps, then (on request) the unfused loss and relation-grouped batches."""
    model, shape = setup.model, setup.shape
    common = setup.train_common(steps, warmup)
    setup.log(f"IMVIA training: {warmup} warm-up + {steps} timed steps of batch {shape.batch_size}")
    trainee = _make_trainee("imvia", model, compile_model=compile_model)

    def imvia_flops(u: int) -> float:
        return imvia_step_flops(model, batch_size=shape.batch_size, unique_relations=u)["total"]

    def time_variant(trainee: _Trainee, **options: Any) -> dict[str, Any]:
        return _time_training(
            trainee, setup.index, setup.q_heads, setup.q_relations, flops_fn=imvia_flops, **options, **common
        )

    imvia_train = time_variant(trainee)
    u_mean = round(statistics.mean(imvia_train["unique_relations"]))
    imvia_train["flops_parts_at_mean_unique_relations"] = imvia_step_flops(
        model, batch_size=shape.batch_size, unique_relations=u_mean
    )
    train = {"imvia": imvia_train}
    setup.log(
        f"  {imvia_train['step_seconds_median']:.2f} s/step, {imvia_train['epoch_seconds_extrapolated']:.0f} s/epoch "
        f"(extrapolated), {imvia_train['gflops_achieved']:.1f} GFLOP/s"
    )
    if compare_unfused:
        # the same steps with full (B, E) logits per branch and the loss after them (the path before
        # one_to_n_bce_linear), for a before/after comparison in one process; a fresh optimizer
        setup.log("IMVIA training with logits first, then the loss (fused_scoring_loss=False)")
        model.execution.fused_scoring_loss = False
        try:
            unfused = time_variant(_make_trainee("imvia", model, compile_model=compile_model))
        finally:
            model.execution.fused_scoring_loss = True
        if "heap_peak_bytes" in unfused:
            unfused["working_set_in_batch_matrices"] = (unfused["heap_peak_bytes"] - unfused["heap_start_bytes"]) / (
                shape.batch_size * setup.graph.num_entities * 4
            )
        train["imvia_unfused"] = unfused
        setup.log(f"  {unfused['step_seconds_median']:.2f} s/step, {unfused['gflops_achieved']:.1f} GFLOP/s")
    if relation_batches:
        # batches of few relations (imvia train --batch-order relation): fewer Tucker core contractions per step
        setup.log("IMVIA training with relation-grouped batches")
        grouped = time_variant(_make_trainee("imvia", model, compile_model=compile_model), by_relation=True)
        train["imvia_relation_batches"] = grouped
        setup.log(
            f"  {grouped['step_seconds_median']:.2f} s/step, "
            f"{statistics.mean(grouped['unique_relations']):.0f} distinct relations per batch"
        )
    return train


def _measure_evaluation(setup: _Setup, *, relation_sorted_eval: bool) -> dict[str, Any]:
    """The full filtered test evaluation, its bare scoring matmuls and (on request) relation-ordered test triples."""
    model, graph, device, dtype = setup.model, setup.graph, setup.device, setup.dtype
    # on a GPU a batch of 512 queries is a few microseconds of matmul against many small kernels: larger batches
    eval_batch = setup.shape.eval_batch_size if device.type == "cpu" else max(setup.shape.eval_batch_size, 4096)
    setup.log(f"evaluation of {2 * int(graph.test.shape[0])} test queries, {eval_batch} per batch")
    ev = _time_evaluation(model, graph, graph.test, batch_size=eval_batch, device=device, dtype=dtype)
    ev["batch_size"] = eval_batch
    bare_args = dict(
        queries=ev["queries"],
        batch_size=eval_batch,
        branches=len(model.score_branches),
        num_entities=graph.num_entities,
        dim=setup.shape.dim,
        device=device,
        dtype=dtype,
    )
    bare = _time_bare_scoring(**bare_args)
    ev["bare_scoring_matmuls"] = bare
    ev["ratio_to_bare_matmuls"] = ev["seconds"] / bare["seconds"]
    if bare["layout"] == "entity-major":  # the same GEMMs in the other layout, for comparison
        row_major = _time_bare_scoring(**bare_args, entity_major=False)
        ev["bare_scoring_matmuls_row_major"] = row_major
        ev["ratio_to_row_major_bare_matmuls"] = ev["seconds"] / row_major["seconds"]
    setup.log(f"  {ev['seconds']:.1f} s ({ev['ratio_to_bare_matmuls']:.2f}x its bare scoring matmuls)")
    if relation_sorted_eval:
        order = torch.argsort(graph.test[:, 1], stable=True)
        sorted_ev = _time_evaluation(model, graph, graph.test[order], batch_size=eval_batch, device=device, dtype=dtype)
        sorted_ev["ratio_to_bare_matmuls"] = sorted_ev["seconds"] / bare["seconds"]
        ev["relation_sorted"] = sorted_ev
        setup.log(f"  test triples ordered by relation: {sorted_ev['seconds']:.1f} s")
    return ev


def _measure_tucker_training(setup: _Setup, *, steps: int, warmup: int, compile_model: bool) -> dict[str, Any]:
    """The structural TuckER baseline's training steps on the same queries, for reference."""
    shape, graph = setup.shape, setup.graph
    setup.log("TuckER baseline training steps")
    torch.manual_seed(0)
    baseline = build_model(
        "tucker",
        num_entities=graph.num_entities,
        num_relations_with_reciprocals=graph.num_relations_with_reciprocals,
        config={"dim": shape.dim},
    ).to(setup.device)
    base_trainee = _make_trainee("tucker", baseline, compile_model=compile_model)

    def tucker_flops(u: int) -> float:
        parts = tucker_step_flops(
            batch_size=shape.batch_size,
            num_entities=graph.num_entities,
            dim=shape.dim,
            relation_dim=shape.dim,
            unique_relations=u,
        )
        return sum(parts.values())

    return _time_training(
        base_trainee,
        setup.index,
        setup.q_heads,
        setup.q_relations,
        flops_fn=tucker_flops,
        **setup.train_common(steps, warmup),
    )


def _summarise_memory(
    setup: _Setup, memory: dict[str, Any], *, rss_setup: int, train: dict[str, Any], ev: dict[str, Any]
) -> dict[str, Any]:
    """Peak RSS per phase, the training working set in ``B x E`` matrices, peak device memory."""
    model, device = setup.model, setup.device
    imvia_train = train["imvia"]
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    static_bytes = rss_setup + 3 * param_bytes  # gradients and two Adam moments appear during the first step
    batch_matrix = setup.shape.batch_size * setup.graph.num_entities * 4
    if device.type == "cuda":
        working, source = imvia_train["cuda_peak_bytes"] - imvia_train["cuda_start_bytes"], "cuda allocator"
    elif "heap_peak_bytes" in imvia_train:
        working, source = imvia_train["heap_peak_bytes"] - imvia_train["heap_start_bytes"], "C heap (mallinfo2)"
    else:
        working, source = max(0, imvia_train["rss_peak_bytes"] - static_bytes), "RSS above the static estimate"
    memory.update(
        rss_after_setup_bytes=rss_setup,
        parameter_bytes=param_bytes,
        static_footprint_bytes=static_bytes,
        train_peak_rss_bytes=imvia_train["rss_peak_bytes"],
        eval_peak_rss_bytes=ev["rss_peak_bytes"],
        batch_matrix_bytes=batch_matrix,
        train_working_set_bytes=working,
        train_working_set_source=source,
        train_working_set_in_batch_matrices=working / batch_matrix,
        batch_matrix_budget=3 * (len(model.score_branches) + 1),
    )
    if "heap_peak_bytes" in imvia_train:
        memory["train_heap_peak_bytes"] = imvia_train["heap_peak_bytes"]
        memory["eval_heap_peak_bytes"] = ev.get("heap_peak_bytes")
    phases = [memory.get("rss_peak_bytes", 0), imvia_train["rss_peak_bytes"], ev["rss_peak_bytes"]]
    if "tucker" in train:
        phases.append(train["tucker"]["rss_peak_bytes"])
    memory["setup_peak_rss_bytes"] = memory.pop("rss_peak_bytes", 0)
    memory["peak_rss_bytes"] = max(phases)
    if device.type == "cuda":
        memory["cuda_peak_bytes"] = max(
            imvia_train.get("cuda_peak_bytes", 0), ev.get("cuda_peak_bytes", 0), memory.get("cuda_peak_bytes", 0)
        )
    return memory


def _header(device: torch.device, dtype: str, *, compile_model: bool, steps: int, warmup: int, quick: bool):
    """The run's provenance: when, which commit, which machine and allocator, the load, the options."""
    return {
        "benchmark": "bench",
        "format_version": 1,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": describe_machine(device),
        "allocator": allocator_settings(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "options": {
            "device": str(device),
            "dtype": dtype,
            "compile": compile_model,
            "steps": steps,
            "warmup": warmup,
            "quick": quick,
        },
    }


def run_benchmark(
    *,
    shape: BenchShape = DB15K_SHAPE,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    compile_model: bool = False,
    steps: int = 3,
    warmup: int = 2,
    tucker: bool = True,
    relation_sorted_eval: bool = True,
    compare_unfused: bool = False,
    relation_batches: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every measurement of :mod:`bench` and return the results, with their targets, as a JSON-ready dict."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype: found {dtype!r}; expected one of {sorted(DTYPES)}")
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps and warmup: found {steps} and {warmup}; expected steps >= 1 and warmup >= 0")
    device = torch.device(device)
    torch_dtype = DTYPES[dtype]
    quick = shape.dataset == "random"
    results = _header(device, dtype, compile_model=compile_model, steps=steps, warmup=warmup, quick=quick)
    if not results["allocator"]["tuned"] and device.type == "cpu":
        _log(progress, "allocator not tuned: see bench/README.md (expect slower, noisier CPU steps)")

    peak_size = shape.matmul_size if device.type == "cpu" else max(shape.matmul_size, 8192)
    peak_repeats = 6 if device.type == "cpu" else 20
    _log(progress, f"matmul peak ({peak_size}^3, {dtype})")
    peak = measure_matmul_peak(device=device, dtype=torch_dtype, size=peak_size, repeats=peak_repeats)
    results["matmul_peak"] = peak
    _log(progress, f"  {peak['gflops']:.1f} GFLOP/s")

    memory: dict[str, Any] = {}
    setup = _set_up(shape, device, torch_dtype, memory, progress)
    rss_setup = current_rss()
    results["shape"] = _shape_summary(shape, setup.graph, setup.q_heads, setup.model)
    results["train"] = _measure_imvia_training(
        setup,
        steps=steps,
        warmup=warmup,
        compile_model=compile_model,
        compare_unfused=compare_unfused,
        relation_batches=relation_batches,
    )
    results["evaluation"] = ev = _measure_evaluation(setup, relation_sorted_eval=relation_sorted_eval)
    if tucker:
        results["train"]["tucker"] = _measure_tucker_training(
            setup, steps=steps, warmup=warmup, compile_model=compile_model
        )
    results["memory"] = _summarise_memory(setup, memory, rss_setup=rss_setup, train=results["train"], ev=ev)

    # the machine may be shared: the reference peak is the better of two measurements, before and after the work
    _log(progress, "matmul peak again")
    end_peak = measure_matmul_peak(device=device, dtype=torch_dtype, size=peak_size, repeats=peak_repeats)
    results["matmul_peak"] = {
        **peak,
        "gflops": max(peak["gflops"], end_peak["gflops"]),
        "gflops_start": peak["gflops"],
        "gflops_end": end_peak["gflops"],
    }
    assess(results, paper_shape=shape == DB15K_SHAPE)
    results["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return results
