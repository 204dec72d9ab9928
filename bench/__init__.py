"""Speed and memory benchmark of IMVIA training and evaluation at the paper's DB15K configuration.

Run ``python -m bench --help`` (or ``make bench``; the allocator is tuned in the process, see ``bench/README.md``).
In one process and on one device it measures:

1. **Matmul peak**: the best of several dense ``n x n`` by ``n x n`` matmuls (``n = 2048``) in the dtype in use,
   in GFLOP/s. Every efficiency below is a ratio to this number, measured in the same run, because absolute
   times on a shared machine drift by tens of percent.
2. **Training steps** of the full IMVIA model (four branches S, V, T, J, DB15K: 12842 entities, 558 relation ids
   with reciprocals, dim 256, batch 1024, three experts over random features of the MoMoK shapes, visual 4096-d
   and text 768-d, one vector per entity), on the real DB15K training queries: the trainer's own batch step,
   :func:`imvia_core.training.step.train_step` (targets built on the device from the
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
   ``mallinfo2``, sampled by :class:`bench.machine.HeapSampler`; the CUDA allocator on CUDA), in units of one
   ``B x E`` fp32 matrix; and peak device memory on CUDA.

Results go to ``<out>/<device>-<dtype>-<date>.json`` and ``.md`` with the machine (CPU model, cores, torch version,
threads), the allocator settings and the git commit measured.

Modules: :mod:`bench.shapes` (what is measured), :mod:`bench.machine` (the machine, RSS and heap probes),
:mod:`bench.flops` (the FLOP model), :mod:`bench.measure` (the timed work), :mod:`bench.report` (targets and the
Markdown report) and :mod:`bench.cli` (``python -m bench``).
"""

from __future__ import annotations

import imvia_core  # noqa: F401 - first: it sets OpenMP's waiting policy before torch is loaded

# isort: split

from bench.cli import build_parser, main
from bench.flops import evaluation_flops, imvia_step_flops, tucker_step_flops
from bench.machine import HeapSampler, current_rss, peak_rss
from bench.measure import build_targets, measure_matmul_peak, random_features, run_benchmark
from bench.report import render_markdown, write_results
from bench.shapes import DB15K_SHAPE, QUICK_SHAPE, UPSTREAM, BenchShape

__all__ = [
    "BenchShape",
    "DB15K_SHAPE",
    "HeapSampler",
    "QUICK_SHAPE",
    "UPSTREAM",
    "build_parser",
    "build_targets",
    "current_rss",
    "evaluation_flops",
    "imvia_step_flops",
    "main",
    "measure_matmul_peak",
    "peak_rss",
    "random_features",
    "render_markdown",
    "run_benchmark",
    "tucker_step_flops",
    "write_results",
]
