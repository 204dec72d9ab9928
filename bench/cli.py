"""``python -m bench`` (``make bench``): options, the allocator, one run, the JSON and Markdown written."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import torch

from bench.measure import run_benchmark
from bench.report import render_markdown, write_results
from bench.shapes import DB15K_SHAPE, DTYPES, QUICK_SHAPE
from imvia_core.allocator import ALLOCATOR_ENV, tune_allocator

__all__ = ["build_parser", "main", "start"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
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
        choices=sorted(DTYPES),
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


def start(args: argparse.Namespace) -> torch.device | None:
    """What every benchmark script does first: the allocator, the thread count, the device (``None``: CUDA was
    asked for and is not there, said on stderr)."""
    tune_allocator()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"bench: device {args.device} requested but CUDA is not available", file=sys.stderr)
        return None
    return device


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = start(args)
    if device is None:
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
