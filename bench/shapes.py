"""What the benchmark measures: the paper's DB15K shape, a scaled-down quick shape, the upstream figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["BenchShape", "DB15K_SHAPE", "DTYPES", "QUICK_SHAPE", "UPSTREAM"]

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


#: ``--dtype`` name -> the dtype of the timed forward passes
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


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
