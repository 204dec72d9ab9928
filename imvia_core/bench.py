"""Speed and memory benchmark of IMVIA training and evaluation at the paper's DB15K configuration.

Run ``python -m imvia_core.bench --help`` (or ``make bench``; the allocator is tuned in the process, see below). In
one process and on one device it measures:

1. **Matmul peak**: the best of several dense ``n x n`` by ``n x n`` matmuls (``n = 2048``) in the dtype in use,
   in GFLOP/s. Every efficiency below is a ratio to this number, measured in the same run, because absolute
   times on a shared machine drift by tens of percent.
2. **Training steps** of the full IMVIA model (four branches S, V, T, J, DB15K: 12842 entities, 558 relation ids
   with reciprocals, dim 256, batch 1024, three experts over random features of the MoMoK shapes, visual 4096-d
   and text 768-d, one vector per entity), on the real DB15K training queries: the batch step of
   :mod:`imvia_core.training.trainer`, reproduced here (targets built on the device from the
   :class:`~imvia_core.evaluation.FilterIndex`, the CLUB estimators' alternating step, the main step of Eq. 8, the
   gradient norm, both Adam steps), after warm-up steps. Seconds per step; seconds per epoch **extrapolated** as
   ``batches_per_epoch x median step`` (75,105 training queries, 74 batches); model FLOPs per step (below),
   achieved GFLOP/s and its ratio to the peak. The same for the structural TuckER baseline, for reference.
3. **Filtered evaluation** of the DB15K test set in both directions (2 x 9902 queries) with the trained-shape model
   through :func:`imvia_core.evaluation.evaluate` (which batches the queries by relation), after an untimed
   one-batch warm-up; queries per second, and the ratio of its time to the time of the bare scoring matmuls it
   contains (one ``b x E`` GEMM per batch and branch in the evaluation's layout, entity-major on a CPU; timed in the
   same run, with the row-major GEMMs beside them on a CPU). Also timed: the same evaluation with the test triples
   ordered by relation first (the same batches, in another order within each relation).
4. **Memory**: peak resident set size per phase (``VmHWM``, reset between phases through
   ``/proc/self/clear_refs`` where Linux allows it; otherwise ``getrusage``'s lifetime peak); the training working
   set, i.e. the bytes allocated at the peak of a step above those alive between steps (C heap through glibc's
   ``mallinfo2``, sampled by :class:`HeapSampler`; the CUDA allocator on CUDA), in units of one ``B x E`` fp32
   matrix; and peak device memory on CUDA.

Results go to ``<out>/<device>-<dtype>-<date>.json`` and ``.md`` with the machine (CPU model, cores, torch version,
threads), the allocator settings and the git commit measured.

Model FLOPs per training step (a multiply-add counts 2; ``B`` batch, ``E`` entities, ``d`` model dim, ``d_r``
relation dim of the Tucker cores, ``M`` score branches (4), ``U`` distinct relations in the batch, ``m`` a fused
modality (V, T), ``p_m`` input width of modality ``m``'s experts after pooling, ``K`` experts of width ``d_x``,
``S`` modalities in the joint embedding and in the pair losses (S, V, T), ``P`` modality pairs, ``h`` CLUB hidden
width)::

    scoring      3 * M * 2 B d E                    # q @ entity_table.T, forward + two backward matmuls
    tucker core  3 * M * 2 U d_r d^2                # W x_2 r once per distinct relation of the batch
    contraction  3 * M * 2 B d^2                    # x_b @ W_r (useful work; the grouped bmm pads up to 2x)
    experts      2 * sum_m 2 E p_m K d_x            # all entities; forward + weight gradient (the feature
                                                    # table takes no gradient); head views are rows of these
    fusion       3 * sum_m [ (E + B) (2 d d_x + 2 d_x d + 6 K d_x) + B 2 d d_x ]
                                                    # Eq. 1 gate and output projection for candidates (null
                                                    # relation) and heads (+ relation term), Eq. 2-3 cosines/sum
    joint        3 * (E + B) * S (2 d^2 + 4 d)      # projections, attention, weighted sum
    decision     3 * 2 B d M                        # beta(r)
    alignment    3 * P * 2 B^2 d                    # Eq. 5 similarity matrices
    MI bound     2 * P * 8 B d h                    # frozen CLUB nets: forward + input gradient
    aux step     sum_m [2 B p_m K d_x + B (4 d d_x + 2 d_x d + 6 K d_x)] + 3 * P * 8 B d h
                                                    # heads re-encoded without gradient, CLUB nets fitted

``tucker core`` and ``scoring`` dominate (about 80 and 81 GFLOP per DB15K step with ``U`` near 200). The
element-wise work of the loss over ``M x B x E`` entries (sigmoids, logarithms: about 13 M entries per branch) is
not counted as FLOPs but takes time. The TuckER baseline counts ``scoring``, ``tucker core`` and ``contraction``
with ``M = 1``. Evaluation counts the forward terms: the candidate tables once (experts, fusion and joint over
``E``), then per batch of ``b`` queries with ``U_b`` distinct relations (counted from the batches the scorer
receives) ``M (2 U_b d_r d^2 + 2 b d^2 + 2 b d E)`` plus the encoding of the ``b`` heads. Tests check the formula
against :class:`torch.utils.flop_counter.FlopCounterMode` on small models (within 10%; at dim 256 within 1%).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as _dt
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from imvia_core.allocator import ALLOCATOR_ENV, allocator_state, tune_allocator

__all__ = [
    "BenchShape",
    "DB15K_SHAPE",
    "HeapSampler",
    "QUICK_SHAPE",
    "UPSTREAM",
    "build_targets",
    "evaluation_flops",
    "imvia_step_flops",
    "main",
    "measure_matmul_peak",
    "render_markdown",
    "run_benchmark",
    "tucker_step_flops",
]

#: the upstream IMVIA code on the development machine (2-core AMD EPYC, torch CPU build, 2 threads), from the
#: project's performance notes: historical, other settings (glibc's default allocator, another day's machine
#: state). Side-by-side ratios come from ``bench/upstream.py compare`` (``make bench-compare``)
UPSTREAM: dict[str, Any] = {
    "machine": "2-core AMD EPYC with AVX-512, torch CPU build, 2 threads (development machine)",
    "matmul_peak_gflops": 130.0,
    "train_seconds_per_step": 14.4,
    "train_seconds_per_epoch": 1070.0,
    "eval_seconds": 83.0,
    "peak_rss_bytes": 6.1e9,
}


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class BenchShape:
    """What is benchmarked.

    :param dataset: ``"DB15K"`` (real triples through :func:`imvia_core.data.loading.load_graph`) or ``"random"``
        (a random graph of ``num_entities`` / ``num_relations`` / ``num_train`` / ``num_test`` made in memory).
    :param dim: model dim ``d``.
    :param batch_size: training batch ``B``.
    :param eval_batch_size: queries per evaluation batch on a CPU (at least 4096 on a GPU); the trainer's default.
    :param num_experts: ``K``.
    :param visual_dim: width of the random visual vector per entity (MoMoK DB15K: 4096).
    :param text_dim: width of the random text vector per entity (MoMoK DB15K: 768).
    :param matmul_size: ``n`` of the peak measurement on a CPU (a GPU uses at least 8192: a 2048^3 product is too
        short there to reach the device's rate).
    """

    dataset: str = "DB15K"
    dim: int = 256
    batch_size: int = 1024
    eval_batch_size: int = 2048
    num_experts: int = 3
    visual_dim: int = 4096
    text_dim: int = 768
    matmul_size: int = 2048
    num_entities: int = 0
    num_relations: int = 0
    num_train: int = 0
    num_test: int = 0


#: the paper's DB15K configuration
DB15K_SHAPE = BenchShape()
#: a scaled-down configuration that runs in seconds (used by the tests)
QUICK_SHAPE = BenchShape(
    dataset="random",
    dim=16,
    batch_size=96,
    eval_batch_size=64,
    num_experts=3,
    visual_dim=40,
    text_dim=24,
    matmul_size=256,
    num_entities=300,
    num_relations=8,
    num_train=1500,
    num_test=100,
)


# ----------------------------------------------------------------------------------------------- machine and memory
def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def _git_state() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    state: dict[str, Any] = {"commit": None, "dirty": None}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        state["commit"] = out.stdout.strip() or None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if status.returncode == 0:
            state["dirty"] = bool(status.stdout.strip())
    return state


def allocator_settings() -> dict[str, Any]:
    """How this process's allocator keeps freed memory (see ``bench/README.md`` and :mod:`imvia_core.allocator`).

    ``tuned``: freed memory stays mapped, through ``mallopt`` in the process (``method: "mallopt"``), the variables
    set before it started (``"environment"``) or a preloaded caching allocator; ``env``: those variables.
    """
    state = allocator_state()
    env = {k: os.environ.get(k) for k in (*ALLOCATOR_ENV, "LD_PRELOAD")}
    return {**state, "env": env}


def describe_machine(device: torch.device) -> dict[str, Any]:
    """CPU model, cores, torch version and threads (and the GPU on CUDA)."""
    info: dict[str, Any] = {
        "device": str(device),
        "cpu": _cpu_name(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError, ValueError):
        mem = Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]
        info["memory_bytes"] = int(mem) * 1024
    if device.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def _status_kib(field_name: str) -> int | None:
    with contextlib.suppress(OSError, IndexError, ValueError):
        text = Path("/proc/self/status").read_text()
        return int(text.split(f"{field_name}:")[1].split()[0])
    return None


def current_rss() -> int:
    """Resident set size now, in bytes (0 where ``/proc`` is not there)."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else 0


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS; ``False`` where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    """Peak resident set size since the last :func:`reset_peak_rss` (or since start), in bytes."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _load_mallinfo2() -> Callable[[], int] | None:
    """``() -> bytes in use by the C heap`` through glibc's ``mallinfo2``, or ``None`` elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2

    def in_use() -> int:
        info = fn()
        return int(info.uordblks + info.hblkhd)

    return in_use


_HEAP_IN_USE = _load_mallinfo2()


class HeapSampler:
    """Peak bytes in use by the C heap (what tensors hold, without the memory the allocator keeps for reuse).

    A background thread reads glibc's ``mallinfo2`` every ``interval`` seconds; torch releases the interpreter lock
    inside its kernels, so the samples land during the work. ``available`` is ``False`` off glibc.
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.available = _HEAP_IN_USE is not None
        self.start_bytes = 0
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, _HEAP_IN_USE())
            self._stop.wait(self.interval)

    def __enter__(self) -> HeapSampler:
        if self.available:
            self.start_bytes = self.peak_bytes = _HEAP_IN_USE()
            self._thread = threading.Thread(target=self._run, name="heap-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, _HEAP_IN_USE())


@contextlib.contextmanager
def _measure_memory(device: torch.device, into: dict[str, Any]) -> Iterator[None]:
    """Peak host RSS, peak C-heap use and (on CUDA) peak device memory of the block, stored in ``into``.

    ``rss_peak_bytes`` is the block's own peak where ``/proc/self/clear_refs`` allows a reset; with an allocator that
    keeps freed memory (``bench/README.md``) it cannot fall below the RSS at the block's start. ``heap_*`` count the
    bytes actually allocated at the start of the block and at the peak; ``cuda_*`` the same for device memory.
    """
    into["rss_peak_is_phase_local"] = reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        into["cuda_start_bytes"] = int(torch.cuda.memory_allocated(device))
    sampler = HeapSampler()
    try:
        with sampler:
            yield
    finally:
        into["rss_peak_bytes"] = peak_rss()
        if sampler.available:
            into["heap_start_bytes"] = sampler.start_bytes
            into["heap_peak_bytes"] = sampler.peak_bytes
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            into["cuda_peak_bytes"] = int(torch.cuda.max_memory_allocated(device))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


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
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        _sync(device)
        times.append(time.perf_counter() - t0)
    flops = 2.0 * size**3
    return {
        "gflops": flops / min(times) / 1e9,
        "gflops_median": flops / statistics.median(times) / 1e9,
        "size": size,
        "repeats": repeats,
    }


# ----------------------------------------------------------------------------------------------- FLOP model
def tucker_step_flops(
    *, batch_size: int, num_entities: int, dim: int, relation_dim: int, unique_relations: int
) -> dict[str, float]:
    """FLOPs of one TuckER training step (forward + backward): ``scoring``, ``tucker_core``, ``contraction``."""
    b, e, d, dr, u = batch_size, num_entities, dim, relation_dim, unique_relations
    return {
        "scoring": 3.0 * 2 * b * d * e,
        "tucker_core": 3.0 * 2 * u * dr * d * d,
        "contraction": 3.0 * 2 * b * d * d,
    }


def _fusion_dims(model) -> list[tuple[int, int, int]]:
    """``(p_m, K, d_x)`` per fused modality; ``p_m = 0`` for true multi-view features (no experts)."""
    dims = []
    for fusion in model.fusion.values():
        p = fusion.experts.in_features if fusion.experts is not None else 0
        dims.append((p, fusion.num_views, fusion.view_dim))
    return dims


def _club_terms(model) -> tuple[int, int, int]:
    """``(pairs, x_dim, hidden)`` of the CLUB estimators (0 pairs when there are none)."""
    if model.club_modalities is not None:
        est = next(iter(model.club_modalities.estimators.values()))
        return len(model.club_modalities.pairs), est.mean_net.first.in_features, est.mean_net.first.out_features
    pairs, x_dim, hidden = 0, 0, 0
    for club in model.club_views.values():
        pairs += len(club.pairs)
        est = next(iter(club.estimators.values()))
        x_dim, hidden = est.mean_net.first.in_features, est.mean_net.first.out_features
    return pairs, x_dim, hidden


def imvia_step_flops(model, *, batch_size: int, unique_relations: int) -> dict[str, float]:
    """FLOPs of one IMVIA training step by part, following the formula of the module docstring.

    :param model: an :class:`~imvia_core.model.IMVIA` (its sizes are read from its modules).
    :param batch_size: ``B``.
    :param unique_relations: ``U``, distinct relation ids in the batch.
    """
    e, d, b, u = model.num_entities, model.config.dim, batch_size, unique_relations
    m = len(model.score_branches)
    scorer = next(iter(model.scorers.values()))
    dr = scorer.relation_dim
    parts = {
        "scoring": 3.0 * m * 2 * b * d * e,
        "tucker_core": 3.0 * m * 2 * u * dr * d * d,
        "contraction": 3.0 * m * 2 * b * d * d,
        "experts": 0.0,
        "fusion": 0.0,
        "joint": 0.0,
        "decision": 3.0 * 2 * b * d * m if model.decision.gate is not None else 0.0,
        "alignment": 0.0,
        "mi_bound": 0.0,
        "aux_step": 0.0,
    }
    for p, k, dx in _fusion_dims(model):
        per_entity = 2 * d * dx + 2 * dx * d + 6 * k * dx
        parts["experts"] += 2.0 * 2 * e * p * k * dx
        parts["fusion"] += 3.0 * ((e + b) * per_entity + b * 2 * d * dx)
        parts["aux_step"] += 2.0 * b * p * k * dx + b * (per_entity + 2 * d * dx)
    s = len(model.modalities)
    if model.joint is not None:
        parts["joint"] = 3.0 * (e + b) * s * (2 * d * d + 4 * d)
    if model.alignment is not None and model.config.lambda_align > 0:
        parts["alignment"] = 3.0 * len(model.alignment.pairs) * 2 * b * b * d
    pairs, x_dim, hidden = _club_terms(model)
    if pairs:
        per_pair = 8.0 * b * x_dim * hidden  # two 2-layer nets of x_dim -> hidden -> x_dim
        parts["mi_bound"] = 2.0 * pairs * per_pair
        parts["aux_step"] += 3.0 * pairs * per_pair
    parts["total"] = float(sum(parts.values()))
    return parts


def evaluation_flops(model, *, batches: Sequence[tuple[int, int]]) -> dict[str, float]:
    """Forward FLOPs of an evaluation that scored the given batches (see the module docstring).

    :param batches: ``(b, U_b)`` per scored batch: queries and distinct relation ids in it (what the scorer saw).
    :return: ``candidates``, ``scoring``, ``tucker_core``, ``contraction``, ``heads`` and ``total``.
    """
    e, d = model.num_entities, model.config.dim
    m = len(model.score_branches)
    dr = next(iter(model.scorers.values())).relation_dim
    cand = 0.0
    head_cost = 0.0
    for p, k, dx in _fusion_dims(model):
        cand += e * (2 * p * k * dx + 2 * d * dx + 2 * dx * d + 6 * k * dx)
        head_cost += 2 * p * k * dx + 4 * d * dx + 2 * dx * d + 6 * k * dx
    if model.joint is not None:
        cand += e * len(model.modalities) * (2 * d * d + 4 * d)
        head_cost += len(model.modalities) * (2 * d * d + 4 * d)
    parts = {"candidates": cand, "scoring": 0.0, "tucker_core": 0.0, "contraction": 0.0, "heads": 0.0}
    for b, u in batches:
        parts["scoring"] += m * 2.0 * b * d * e
        parts["tucker_core"] += m * 2.0 * u * dr * d * d
        parts["contraction"] += m * 2.0 * b * d * d
        parts["heads"] += b * head_cost
    parts["total"] = float(sum(parts.values()))
    return parts


# ----------------------------------------------------------------------------------------------- data and model
def _random_graph(shape: BenchShape, seed: int = 0):
    """A random graph of the sizes in ``shape`` (no file needed)."""
    from imvia_core.data.graph import KnowledgeGraph

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
    from imvia_core.data.loading import load_graph

    return load_graph(shape.dataset, progress=False)


def random_features(*, num_entities: int, visual_dim: int, text_dim: int, seed: int = 0) -> dict[str, Any]:
    """One random vector per entity per modality, of the MoMoK feature shapes (speed does not depend on values)."""
    from imvia_core.features.types import ModalityFeatures

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


def build_targets(index, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
    """The trainer's 1-N targets: a ``(B, E)`` float 0/1 matrix on the index's device, from the known tails."""
    rows, cols = index.known_tails(heads, relations)
    targets = torch.zeros(heads.shape[0], index.num_entities, device=index.device)
    targets[rows, cols] = 1.0
    return targets


# ----------------------------------------------------------------------------------------------- training steps
@dataclass
class _Trainee:
    name: str
    model: Any
    optimizer: torch.optim.Optimizer
    aux_optimizer: torch.optim.Optimizer | None
    loss_fn: Callable
    compile_error: str | None = None


def _make_trainee(name: str, model, *, lr: float = 1e-3, compile_model: bool = False) -> _Trainee:
    from imvia_core.training.trainer import make_adam

    optimizer = make_adam(model.main_parameters(), lr=lr)
    aux_params = model.auxiliary_parameters()
    aux_optimizer = make_adam(aux_params, lr=lr) if aux_params else None
    loss_fn = model.training_loss
    if compile_model:
        loss_fn = torch.compile(model.training_loss)  # every timed batch has the same shape
    return _Trainee(name, model, optimizer, aux_optimizer, loss_fn)


def _train_step(
    trainee: _Trainee, index, heads: torch.Tensor, relations: torch.Tensor, *, device: torch.device, dtype
) -> dict[str, float]:
    """One batch of the trainer's loop; returns the seconds of each phase."""
    model = trainee.model
    marks = [time.perf_counter()]

    def mark() -> None:
        _sync(device)
        marks.append(time.perf_counter())

    targets = build_targets(index, heads, relations)
    mark()
    if trainee.aux_optimizer is not None:  # alternating step of the CLUB estimators (Eq. 4)
        with _autocast(device, dtype):
            aux_loss = model.auxiliary_loss(heads, relations)
        if aux_loss is not None:
            trainee.aux_optimizer.zero_grad(set_to_none=True)
            aux_loss.float().backward()
            trainee.aux_optimizer.step()
    mark()
    with _autocast(device, dtype):
        try:
            loss, _ = trainee.loss_fn(heads, relations, targets)
        except Exception as err:  # torch.compile failures: record them and run eagerly
            if trainee.loss_fn is model.training_loss:
                raise
            trainee.compile_error = f"{type(err).__name__}: {err}"[:500]
            trainee.loss_fn = model.training_loss
            loss, _ = model.training_loss(heads, relations, targets)
    mark()
    trainee.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    mark()
    torch.nn.utils.clip_grad_norm_(model.main_parameters(), float("inf"))
    trainee.optimizer.step()
    mark()
    names = ("targets", "aux_step", "forward", "backward", "optimizer")
    phases = {n: marks[i + 1] - marks[i] for i, n in enumerate(names)}
    phases["step"] = marks[-1] - marks[0]
    if not math.isfinite(float(loss.detach())):
        raise RuntimeError(f"{trainee.name}: the benchmark loss became {float(loss.detach())}")
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
    from imvia_core.training.trainer import epoch_order

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
    with _measure_memory(device, warm_memory):  # the first step allocates gradients and optimizer states
        for i in range(warmup):
            run(i)
    memory: dict[str, Any] = {}
    with _measure_memory(device, memory):  # starts with gradients and optimizer states of the last step alive
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
    from imvia_core.evaluation import evaluate

    model.eval()
    seen: list[tuple[int, int]] = []  # (queries, distinct relations) of every batch the evaluator scores

    @torch.no_grad()
    def scorer(heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        seen.append((int(relations.numel()), int(torch.unique(relations).numel())))
        with _autocast(device, dtype):
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
    with _measure_memory(device, memory):
        _sync(device)
        t0 = time.perf_counter()
        result = evaluate(scorer, triples, **common)
        _sync(device)
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
    from imvia_core.model.tucker import prefer_entity_major

    if entity_major is None:
        entity_major = prefer_entity_major(torch.device(device))
    gen = torch.Generator().manual_seed(1)
    table = torch.randn(num_entities, dim, generator=gen).to(device, dtype)
    q = torch.randn(batch_size, dim, generator=gen).to(device, dtype)

    def scores(b: int) -> torch.Tensor:
        return table @ q[:b].t() if entity_major else q[:b] @ table.t()

    scores(batch_size).sum()  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    flops = 0.0
    for start in range(0, queries, batch_size):
        b = min(batch_size, queries - start)
        for _ in range(branches):
            out = scores(b)
            flops += 2.0 * b * dim * num_entities
        del out
    _sync(device)
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


def _targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value, the threshold and whether it holds."""
    train, ev, mem = results["train"]["imvia"], results["evaluation"], results["memory"]
    up = UPSTREAM
    return [
        {
            "target": "training at >= 60% of the measured matmul peak",
            "value": train["ratio_to_matmul_peak"],
            "threshold": 0.6,
            "comparison": ">=",
            "holds": train["ratio_to_matmul_peak"] >= 0.6,
        },
        {
            "target": "full evaluation <= 2x its bare scoring matmuls",
            "value": ev["ratio_to_bare_matmuls"],
            "threshold": 2.0,
            "comparison": "<=",
            "holds": ev["ratio_to_bare_matmuls"] <= 2.0,
        },
        {
            "target": "training working set <= 3 (B x E) fp32 matrices per branch and for the targets",
            "value": mem["train_working_set_in_batch_matrices"],
            "threshold": mem["batch_matrix_budget"],
            "comparison": "<=",
            "holds": mem["train_working_set_in_batch_matrices"] <= mem["batch_matrix_budget"],
        },
        {
            "target": "peak RSS no more than the upstream code's 6.1 GB",
            "value": mem["peak_rss_bytes"],
            "threshold": up["peak_rss_bytes"],
            "comparison": "<=",
            "holds": mem["peak_rss_bytes"] <= up["peak_rss_bytes"],
        },
    ]


def _upstream_comparison(results: dict[str, Any]) -> dict[str, Any]:
    """Speed-up factors against the upstream numbers; ``*_peak_normalised`` rescales by the two measured peaks."""
    train, ev = results["train"]["imvia"], results["evaluation"]
    ratio_peak = results["matmul_peak"]["gflops"] / UPSTREAM["matmul_peak_gflops"]
    per_epoch = UPSTREAM["train_seconds_per_epoch"] / train["epoch_seconds_extrapolated"]
    per_eval = UPSTREAM["eval_seconds"] / ev["seconds"]
    return {
        **UPSTREAM,
        "train_speedup": per_epoch,
        "eval_speedup": per_eval,
        "train_speedup_peak_normalised": per_epoch / ratio_peak,
        "eval_speedup_peak_normalised": per_eval / ratio_peak,
        "peak_rss_ratio": results["memory"]["peak_rss_bytes"] / UPSTREAM["peak_rss_bytes"],
        "note": (
            "historical, other settings: the upstream figures were measured earlier on the development machine with "
            "glibc's default allocator; for a side-by-side ratio run make bench-compare UPSTREAM=path "
            "(bench/upstream.py). "
            "The peak-normalised factors divide by (this run's matmul peak / 130 GFLOP/s)."
        ),
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
    """Run every measurement of the module docstring and return the results as a JSON-ready dict."""
    from imvia_core.evaluation import FilterIndex
    from imvia_core.model import build_model

    if dtype not in _DTYPES:
        raise ValueError(f"dtype: found {dtype!r}; expected one of {sorted(_DTYPES)}")
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps and warmup: found {steps} and {warmup}; expected steps >= 1 and warmup >= 0")
    device = torch.device(device)
    torch_dtype = _DTYPES[dtype]

    def log(message: str) -> None:
        if progress:
            print(f"[bench] {message}", file=sys.stderr, flush=True)

    results: dict[str, Any] = {
        "benchmark": "imvia_core.bench",
        "format_version": 1,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": _git_state(),
        "machine": describe_machine(device),
        "allocator": allocator_settings(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "options": {
            "device": str(device),
            "dtype": dtype,
            "compile": compile_model,
            "steps": steps,
            "warmup": warmup,
            "quick": shape.dataset == "random",
        },
    }
    if not results["allocator"]["tuned"] and device.type == "cpu":
        log("allocator not tuned: see bench/README.md (expect slower, noisier CPU steps)")

    peak_size = shape.matmul_size if device.type == "cpu" else max(shape.matmul_size, 8192)
    peak_repeats = 6 if device.type == "cpu" else 20
    log(f"matmul peak ({peak_size}^3, {dtype})")
    peak = measure_matmul_peak(device=device, dtype=torch_dtype, size=peak_size, repeats=peak_repeats)
    results["matmul_peak"] = peak
    log(f"  {peak['gflops']:.1f} GFLOP/s")

    memory: dict[str, Any] = {}
    with _measure_memory(device, memory):
        log(f"loading {shape.dataset}")
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
        index = FilterIndex.from_triples(
            graph.with_reciprocals("train"),
            num_entities=graph.num_entities,
            num_relations=graph.num_relations_with_reciprocals,
        ).to(device)
        q_heads, q_relations = index.unique_queries()
        _ = graph.filter_index  # built now, not inside the timed evaluation
    rss_setup = current_rss()
    results["shape"] = _shape_summary(shape, graph, q_heads, model)

    log(f"IMVIA training: {warmup} warm-up + {steps} timed steps of batch {shape.batch_size}")
    trainee = _make_trainee("imvia", model, compile_model=compile_model)

    def imvia_flops(u: int) -> float:
        return imvia_step_flops(model, batch_size=shape.batch_size, unique_relations=u)["total"]

    train_common = dict(
        batch_size=shape.batch_size, warmup=warmup, steps=steps, device=device, dtype=torch_dtype, progress=progress
    )
    imvia_train = _time_training(trainee, index, q_heads, q_relations, flops_fn=imvia_flops, **train_common)

    def time_imvia_variant(**options: Any) -> dict[str, Any]:
        """The same timing with a fresh optimizer (and ``options`` for the batch order)."""
        fresh = _make_trainee("imvia", model, compile_model=compile_model)
        return _time_training(fresh, index, q_heads, q_relations, flops_fn=imvia_flops, **options, **train_common)

    u_mean = round(statistics.mean(imvia_train["unique_relations"]))
    imvia_train["flops_parts_at_mean_unique_relations"] = imvia_step_flops(
        model, batch_size=shape.batch_size, unique_relations=u_mean
    )
    results["train"] = {"imvia": imvia_train}
    log(
        f"  {imvia_train['step_seconds_median']:.2f} s/step, {imvia_train['epoch_seconds_extrapolated']:.0f} s/epoch "
        f"(extrapolated), {imvia_train['gflops_achieved']:.1f} GFLOP/s"
    )
    if compare_unfused:
        # the same steps with full (B, E) logits per branch and the loss after them (the path before
        # one_to_n_bce_linear), for a before/after comparison in one process
        log("IMVIA training with logits first, then the loss (fused_scoring_loss=False)")
        model.config.fused_scoring_loss = False
        try:
            unfused = time_imvia_variant()
        finally:
            model.config.fused_scoring_loss = True
        if "heap_peak_bytes" in unfused:
            unfused["working_set_in_batch_matrices"] = (unfused["heap_peak_bytes"] - unfused["heap_start_bytes"]) / (
                shape.batch_size * graph.num_entities * 4
            )
        results["train"]["imvia_unfused"] = unfused
        log(f"  {unfused['step_seconds_median']:.2f} s/step, {unfused['gflops_achieved']:.1f} GFLOP/s")
    if relation_batches:
        # batches of few relations (imvia train --batch-order relation): fewer Tucker core contractions per step
        log("IMVIA training with relation-grouped batches")
        grouped = time_imvia_variant(by_relation=True)
        results["train"]["imvia_relation_batches"] = grouped
        log(
            f"  {grouped['step_seconds_median']:.2f} s/step, "
            f"{statistics.mean(grouped['unique_relations']):.0f} distinct relations per batch"
        )
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    static_bytes = rss_setup + 3 * param_bytes  # gradients and two Adam moments appear during the first step

    # on a GPU a batch of 512 queries is a few microseconds of matmul against many small kernels: larger batches
    eval_batch = shape.eval_batch_size if device.type == "cpu" else max(shape.eval_batch_size, 4096)
    log(f"evaluation of {2 * int(graph.test.shape[0])} test queries, {eval_batch} per batch")
    ev = _time_evaluation(model, graph, graph.test, batch_size=eval_batch, device=device, dtype=torch_dtype)
    ev["batch_size"] = eval_batch
    bare_args = dict(
        queries=ev["queries"],
        batch_size=eval_batch,
        branches=len(model.score_branches),
        num_entities=graph.num_entities,
        dim=shape.dim,
        device=device,
        dtype=torch_dtype,
    )
    bare = _time_bare_scoring(**bare_args)
    ev["bare_scoring_matmuls"] = bare
    ev["ratio_to_bare_matmuls"] = ev["seconds"] / bare["seconds"]
    if bare["layout"] == "entity-major":  # the same GEMMs in the other layout, for comparison
        row_major = _time_bare_scoring(**bare_args, entity_major=False)
        ev["bare_scoring_matmuls_row_major"] = row_major
        ev["ratio_to_row_major_bare_matmuls"] = ev["seconds"] / row_major["seconds"]
    log(f"  {ev['seconds']:.1f} s ({ev['ratio_to_bare_matmuls']:.2f}x its bare scoring matmuls)")
    if relation_sorted_eval:
        order = torch.argsort(graph.test[:, 1], stable=True)
        sorted_ev = _time_evaluation(
            model, graph, graph.test[order], batch_size=eval_batch, device=device, dtype=torch_dtype
        )
        sorted_ev["ratio_to_bare_matmuls"] = sorted_ev["seconds"] / bare["seconds"]
        ev["relation_sorted"] = sorted_ev
        log(f"  test triples ordered by relation: {sorted_ev['seconds']:.1f} s")
    results["evaluation"] = ev

    if tucker:
        log("TuckER baseline training steps")
        torch.manual_seed(0)
        baseline = build_model(
            "tucker",
            num_entities=graph.num_entities,
            num_relations_with_reciprocals=graph.num_relations_with_reciprocals,
            config={"dim": shape.dim},
        ).to(device)
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

        results["train"]["tucker"] = _time_training(
            base_trainee, index, q_heads, q_relations, flops_fn=tucker_flops, **train_common
        )
        del baseline, base_trainee

    batch_matrix = shape.batch_size * graph.num_entities * 4
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
    if "tucker" in results["train"]:
        phases.append(results["train"]["tucker"]["rss_peak_bytes"])
    memory["setup_peak_rss_bytes"] = memory.pop("rss_peak_bytes", 0)
    memory["peak_rss_bytes"] = max(phases)
    if device.type == "cuda":
        memory["cuda_peak_bytes"] = max(
            imvia_train.get("cuda_peak_bytes", 0), ev.get("cuda_peak_bytes", 0), memory.get("cuda_peak_bytes", 0)
        )
    results["memory"] = memory

    # the machine may be shared: the reference peak is the better of two measurements, before and after the work
    log("matmul peak again")
    end_peak = measure_matmul_peak(device=device, dtype=torch_dtype, size=peak_size, repeats=peak_repeats)
    results["matmul_peak"] = {
        **peak,
        "gflops": max(peak["gflops"], end_peak["gflops"]),
        "gflops_start": peak["gflops"],
        "gflops_end": end_peak["gflops"],
    }
    reference = results["matmul_peak"]["gflops"]
    for entry in results["train"].values():
        entry["ratio_to_matmul_peak"] = entry["gflops_achieved"] / reference
    ev["gflops_ratio_to_matmul_peak"] = ev["gflops_achieved"] / reference
    bare["ratio_to_matmul_peak"] = bare["gflops_achieved"] / reference
    results["targets"] = _targets(results)
    # the upstream numbers are for DB15K at the paper's configuration: nothing to compare a scaled-down run with
    results["upstream"] = _upstream_comparison(results) if shape == DB15K_SHAPE else None
    results["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return results


# ----------------------------------------------------------------------------------------------- output
def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def render_markdown(results: dict[str, Any]) -> str:
    """A Markdown report of :func:`run_benchmark`'s results."""
    m, s, o = results["machine"], results["shape"], results["options"]
    tr, ev, mem = results["train"]["imvia"], results["evaluation"], results["memory"]
    peak = results["matmul_peak"]["gflops"]
    git = results["git"]
    alloc = results["allocator"]
    lines = [
        f"# IMVIA benchmark: {s['dataset']} on {o['device']} ({o['dtype']})",
        "",
        f"- created {results['created']}, commit `{git['commit']}`" + (" (with local changes)" if git["dirty"] else ""),
        f"- machine: {m['cpu']}, {m['usable_cores']} usable of {m['logical_cores']} logical cores, torch {m['torch']}, "
        f"{m['torch_threads']} threads" + (f", GPU {m['gpu']}" if "gpu" in m else ""),
        f"- allocator: {'tuned' if alloc['tuned'] else 'NOT tuned'}"
        + (f" by {alloc['method']}" if alloc.get("method") else "")
        + (f" ({alloc['library']})" if alloc.get("library") else "")
        + f"; variables: {', '.join(f'{k}={v}' for k, v in alloc['env'].items() if v is not None) or 'none set'}",
        f"- load average at start / end: {results['load_average_start']} / {results['load_average_end']}",
        f"- shape: {s['num_entities']} entities, {s['num_relations_with_reciprocals']} relation ids, dim {s['dim']}, "
        f"batch {s['batch_size']}, branches {', '.join(s['score_branches'])}, {s['num_experts']} experts over "
        f"random {s['visual_dim']}-d visual and {s['text_dim']}-d text vectors, {s['training_queries']} training "
        f"queries ({s['batches_per_epoch']} batches), {s['eval_queries']} test queries",
        f"- {o['warmup']} warm-up + {o['steps']} timed steps; compile: {o['compile']}",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| matmul peak ({results['matmul_peak']['size']}^3; best of start / end) | {peak:.1f} GFLOP/s "
        f"({results['matmul_peak']['gflops_start']:.1f} / {results['matmul_peak']['gflops_end']:.1f}) |",
        f"| IMVIA training, s per step (median) | {tr['step_seconds_median']:.3g} |",
        f"| IMVIA training, s per epoch (extrapolated, {tr['batches_per_epoch']} batches) | "
        f"{tr['epoch_seconds_extrapolated']:.1f} |",
        "| phases (median s): targets / aux / forward / backward / optimizer | "
        + " / ".join(f"{v:.3f}" for v in tr["phase_seconds_median"].values())
        + " |",
        f"| model FLOPs per step | {tr['flops_per_step'] / 1e9:.1f} GFLOP |",
        f"| achieved | {tr['gflops_achieved']:.1f} GFLOP/s ({100 * tr['ratio_to_matmul_peak']:.0f}% of peak) |",
    ]
    if "imvia_unfused" in results["train"]:
        uf = results["train"]["imvia_unfused"]
        ws = uf.get("working_set_in_batch_matrices")
        lines += [
            "| IMVIA training with (B x E) logits, then the loss (before): s per step | "
            f"{uf['step_seconds_median']:.2f} "
            f"({uf['step_seconds_median'] / tr['step_seconds_median']:.2f}x the fused step) |",
            f"| ... achieved | {uf['gflops_achieved']:.1f} GFLOP/s ({100 * uf['ratio_to_matmul_peak']:.0f}% of peak)"
            + (f"; working set {ws:.1f} x (B x E fp32)" if ws is not None else "")
            + " |",
        ]
    if "imvia_relation_batches" in results["train"]:
        rb = results["train"]["imvia_relation_batches"]
        lines += [
            "| IMVIA training with relation-grouped batches (`--batch-order relation`): s per step / per epoch | "
            f"{rb['step_seconds_median']:.3g} / {rb['epoch_seconds_extrapolated']:.1f} "
            f"({statistics.mean(rb['unique_relations']):.0f} instead of "
            f"{statistics.mean(tr['unique_relations']):.0f} distinct relations per batch) |",
            f"| ... achieved | {rb['gflops_achieved']:.1f} GFLOP/s ({100 * rb['ratio_to_matmul_peak']:.0f}% of peak) |",
        ]
    if "tucker" in results["train"]:
        tk = results["train"]["tucker"]
        lines += [
            f"| TuckER baseline, s per step / per epoch (extrapolated) | {tk['step_seconds_median']:.3g} / "
            f"{tk['epoch_seconds_extrapolated']:.1f} |",
            f"| TuckER baseline, achieved | {tk['gflops_achieved']:.1f} GFLOP/s "
            f"({100 * tk['ratio_to_matmul_peak']:.0f}% of peak) |",
        ]
    bare = ev["bare_scoring_matmuls"]
    lines += [
        f"| full filtered test evaluation (both directions, {ev.get('batch_size', '?')} queries per batch) | "
        f"{ev['seconds']:.3g} s, {ev['queries_per_second']:.0f} queries/s |",
        f"| bare scoring matmuls of that evaluation ({bare.get('layout', 'row-major')}) | "
        f"{bare['seconds']:.3g} s ({bare['gflops_achieved']:.1f} GFLOP/s) |",
        f"| evaluation / bare matmuls | {ev['ratio_to_bare_matmuls']:.2f} |",
        f"| evaluation FLOPs, achieved | {ev['flops'] / 1e9:.0f} GFLOP, {ev['gflops_achieved']:.1f} GFLOP/s |",
    ]
    if "bare_scoring_matmuls_row_major" in ev:
        rm = ev["bare_scoring_matmuls_row_major"]
        lines.append(
            f"| the same matmuls row-major, (b, d) x (d, E) | {rm['seconds']:.3g} s ({rm['gflops_achieved']:.1f} "
            f"GFLOP/s); evaluation / these: {ev['ratio_to_row_major_bare_matmuls']:.2f} |"
        )
    if "relation_sorted" in ev:
        rs = ev["relation_sorted"]
        lines.append(
            f"| evaluation with test triples ordered by relation | {rs['seconds']:.3g} s "
            f"({rs['ratio_to_bare_matmuls']:.2f}x bare; {rs['mean_distinct_relations_per_batch']:.0f} instead of "
            f"{ev['mean_distinct_relations_per_batch']:.0f} distinct relations per batch) |"
        )
    lines += [
        f"| peak RSS: setup / training / evaluation | {_gb(mem['setup_peak_rss_bytes'])} / "
        f"{_gb(mem['train_peak_rss_bytes'])} / {_gb(mem['eval_peak_rss_bytes'])} |",
        f"| training working set above parameters, gradients, Adam states and data ({mem['train_working_set_source']}) "
        f"| {_gb(mem['train_working_set_bytes'])} = {mem['train_working_set_in_batch_matrices']:.1f} x (B x E fp32) |",
    ]
    if "cuda_peak_bytes" in mem:
        lines.append(f"| peak device memory | {_gb(mem['cuda_peak_bytes'])} |")
    lines += ["", "## Targets", "", "| target | measured | threshold | holds |", "|---|---|---|---|"]
    for t in results["targets"]:
        value, threshold = t["value"], t["threshold"]
        if "RSS" in t["target"]:
            value, threshold = _gb(value), _gb(threshold)
        else:
            value, threshold = f"{value:.2f}", f"{threshold:g}"
        lines.append(f"| {t['target']} | {value} | {threshold} | {'yes' if t['holds'] else 'NO'} |")
    up = results["upstream"]
    if up is None:
        lines += ["", "Scaled-down configuration: these numbers check the benchmark, not the speed.", ""]
        return "\n".join(lines)
    lines += [
        "",
        "## Against fixed upstream figures (historical, other settings)",
        "",
        "| | upstream | this run | speed-up | speed-up, peak-normalised |",
        "|---|---|---|---|---|",
        f"| training, s per epoch | {up['train_seconds_per_epoch']:.0f} | {tr['epoch_seconds_extrapolated']:.1f} | "
        f"{up['train_speedup']:.1f}x | {up['train_speedup_peak_normalised']:.1f}x |",
        f"| full test evaluation, s | {up['eval_seconds']:.0f} | {ev['seconds']:.1f} | {up['eval_speedup']:.1f}x | "
        f"{up['eval_speedup_peak_normalised']:.1f}x |",
        f"| peak RSS | {_gb(up['peak_rss_bytes'])} | {_gb(mem['peak_rss_bytes'])} | | |",
        "",
        up["note"],
        "",
    ]
    return "\n".join(lines)


def write_results(results: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``<device>-<dtype>[-compile][-quick]-<date>.json`` and ``.md`` into ``out_dir``; return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    o = results["options"]
    stamp = _dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    device = o["device"].split(":")[0]
    stem = f"{device}-{o['dtype']}{'-compile' if o['compile'] else ''}{'-quick' if o['quick'] else ''}-{stamp}"
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(results), encoding="utf-8")
    return json_path, md_path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m imvia_core.bench",
        description=(
            "Benchmark IMVIA at the paper's DB15K configuration on one device: dense matmul peak, training steps "
            "(IMVIA and TuckER), full filtered test evaluation and peak memory. Writes JSON and Markdown. For CPU "
            "runs the process sets glibc's allocator as "
            f"{' '.join(f'{k}={v}' for k, v in ALLOCATOR_ENV.items())} would (mallopt; IMVIA_MALLOC_TUNE=0 turns "
            "that off): see bench/README.md."
        ),
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default: cpu)")
    parser.add_argument(
        "--dtype",
        choices=sorted(_DTYPES),
        default="fp32",
        help="fp32 (default), or bf16 autocast for the forward passes (meant for CUDA; losses stay fp32)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="wrap the training loss in torch.compile (meaningful on CUDA; a failure is recorded and the run "
        "continues eagerly)",
    )
    parser.add_argument("--steps", type=int, default=None, help="timed training steps (default 3; quick: 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps first (default 2; quick: 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="scaled-down random graph that runs in seconds (checks the benchmark itself, not the speed)",
    )
    parser.add_argument("--no-tucker", action="store_true", help="skip the TuckER baseline steps")
    parser.add_argument(
        "--no-sorted-eval", action="store_true", help="skip the evaluation with test triples ordered by relation"
    )
    parser.add_argument(
        "--unfused",
        action="store_true",
        help="also time IMVIA steps that build the full (B x E) logits before the loss (the path before the "
        "fused scoring loss), for a before/after comparison in the same run",
    )
    parser.add_argument(
        "--relation-batches",
        action="store_true",
        help="also time IMVIA steps on relation-grouped batches (imvia train --batch-order relation)",
    )
    parser.add_argument("--out", default="bench/results", help="output folder (default: bench/results)")
    return parser


def main(argv: list[str] | None = None) -> int:
    tune_allocator()
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"bench: device {args.device} requested but CUDA is not available", file=sys.stderr)
        return 2
    if args.compile and device.type != "cuda":
        warnings.warn("--compile on a CPU: torch.compile may be slow to start and gain little", stacklevel=1)
    shape = QUICK_SHAPE if args.quick else DB15K_SHAPE
    steps = args.steps if args.steps is not None else (2 if args.quick else 3)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    results = run_benchmark(
        shape=shape,
        device=device,
        dtype=args.dtype,
        compile_model=args.compile,
        steps=steps,
        warmup=warmup,
        tucker=not args.no_tucker,
        relation_sorted_eval=not args.no_sorted_eval,
        compare_unfused=args.unfused,
        relation_batches=args.relation_batches,
        progress=os.environ.get("TQDM_DISABLE", "") in ("", "0"),
    )
    json_path, md_path = write_results(results, args.out)
    print(render_markdown(results))
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
