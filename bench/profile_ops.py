"""Where the time of a training step and of an evaluation goes, operator by operator, at the benchmark's shape.

``python -m bench.profile_ops`` builds the benchmark's setup (the paper's DB15K configuration, or ``--quick``), runs
warm-up steps, then profiles ``--steps`` training steps and (unless ``--no-eval``) the full filtered test
evaluation with :mod:`torch.profiler`. It reports, per phase, the share of time in dense products (``mm``, ``bmm``,
``addmm``, ``baddbmm``, ``matmul``, ``linear``, ``einsum`` and their backward kernels) and the operators that
take the most self time outside them: the work item 4 of the CPU speed plan is about. It writes
``bench/results/profile-<device>-<dtype>[-quick]-<date>.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from bench.cli import start
from bench.machine import autocast, describe_machine, git_state, sync
from bench.measure import _make_trainee, _set_up, _train_step
from bench.shapes import DB15K_SHAPE, DTYPES, QUICK_SHAPE
from imvia_core.evaluation import evaluate
from imvia_core.training.trainer import epoch_order

__all__ = ["DENSE_OPS", "main", "profile_evaluation", "profile_training", "summarise"]

#: operators counted as dense products (their self time is GEMM time)
DENSE_OPS = frozenset({"aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::addbmm", "aten::_mkldnn_matmul"})


def summarise(prof: Any, *, seconds: float, top: int = 15) -> dict[str, Any]:
    """Self CPU time per operator: the dense products' total and share, and the ``top`` other operators.

    :param seconds: the wall time of the profiled region (the shares are of it).
    """
    rows = []
    for event in prof.key_averages():
        if event.self_cpu_time_total <= 0:
            continue
        rows.append({"op": event.key, "calls": int(event.count), "self_s": event.self_cpu_time_total / 1e6})
    rows.sort(key=lambda r: -r["self_s"])
    dense = sum(r["self_s"] for r in rows if r["op"] in DENSE_OPS)
    total = sum(r["self_s"] for r in rows)
    others = [r for r in rows if r["op"] not in DENSE_OPS][:top]
    for r in others:
        r["share"] = r["self_s"] / seconds
    return {
        "wall_seconds": seconds,
        "profiled_self_seconds": total,
        "dense_seconds": dense,
        "dense_share": dense / seconds,
        "dense_ops": [r for r in rows if r["op"] in DENSE_OPS],
        "top_other_ops": others,
    }


def profile_training(setup: Any, *, steps: int, warmup: int) -> dict[str, Any]:
    """Profile ``steps`` IMVIA training steps (after ``warmup`` untimed ones) on consecutive batches of an epoch."""
    model, shape = setup.model, setup.shape
    trainee = _make_trainee("imvia", model)
    order = epoch_order(setup.q_relations.cpu(), shape.batch_size, torch.Generator().manual_seed(0))
    order = order.to(setup.q_heads.device)
    model.train()

    def step(i: int) -> dict[str, float]:
        idx = order[i * shape.batch_size : (i + 1) * shape.batch_size]
        heads, relations = setup.q_heads[idx], setup.q_relations[idx]
        return _train_step(trainee, setup.index, heads, relations, device=setup.device, dtype=setup.dtype)

    for i in range(warmup):
        step(i)
    t0 = time.perf_counter()  # the same batches without the profiler first: its overhead is then known
    for i in range(warmup, warmup + steps):
        step(i)
    unprofiled = time.perf_counter() - t0
    phases: list[dict[str, float]] = []
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for i in range(warmup, warmup + steps):
            phases.append(step(i))
        sync(setup.device)
        seconds = time.perf_counter() - t0
    out = summarise(prof, seconds=seconds)
    out["unprofiled_seconds"] = unprofiled
    out["steps"] = steps
    out["phase_seconds_mean"] = {k: sum(p[k] for p in phases) / steps for k in phases[0]}
    return out


def profile_evaluation(setup: Any, *, triples: int | None = None) -> dict[str, Any]:
    """Profile the full filtered evaluation of the test triples (or their first ``triples``), both directions, as
    the benchmark times it: after a one-batch warm-up, with the model's candidate tables rebuilt inside."""
    model, graph, device = setup.model, setup.graph, setup.device
    test = graph.test if triples is None else graph.test[:triples]
    model.eval()

    @torch.no_grad()
    def scorer(heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        with autocast(device, setup.dtype):
            return model.score_all(heads, relations).float()

    common = dict(
        num_entities=graph.num_entities,
        num_relations=graph.num_relations,
        filter_index=graph.filter_index.to(device),
        batch_size=setup.shape.eval_batch_size,
        device=device,
        progress=False,
    )
    evaluate(scorer, test[: max(1, setup.shape.eval_batch_size // 2)], **common)
    getattr(model, "clear_cache", lambda: None)()
    t0 = time.perf_counter()  # once without the profiler: its overhead is then known
    evaluate(scorer, test, **common)
    unprofiled = time.perf_counter() - t0
    getattr(model, "clear_cache", lambda: None)()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        evaluate(scorer, test, **common)
        sync(device)
        seconds = time.perf_counter() - t0
    model.train()
    out = summarise(prof, seconds=seconds)
    out["unprofiled_seconds"] = unprofiled
    out["queries"] = 2 * int(test.shape[0])
    out["batch_size"] = setup.shape.eval_batch_size
    return out


def render(result: dict[str, Any]) -> str:
    lines = [
        f"# Profile of an IMVIA training step and evaluation batch ({result['dtype']}, {result['threads']} threads)",
        "",
        f"- {result['created']}, commit `{result['git'].get('commit')}`, {result['machine'].get('cpu')}",
        f"- load average at start / end: {result['load_start']} / {result['load_end']}",
        "",
    ]
    for part in ("train", "evaluation"):
        if part not in result:
            continue
        p = result[part]
        lines += [
            f"## {part}: {p['wall_seconds']:.2f} s profiled, dense products {p['dense_seconds']:.2f} s "
            f"({100 * p['dense_share']:.0f}%)",
            "",
            f"The same work without the profiler: {p['unprofiled_seconds']:.2f} s; the shares below are of the "
            "profiled time.",
            "",
            "| operator (outside the dense products) | calls | self s | share of wall |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{r['op']}` | {r['calls']} | {r['self_s']:.3f} | {100 * r['share']:.1f}% |" for r in p["top_other_ops"]
        ]
        lines += ["", "| dense operator | calls | self s |", "|---|---|---|"]
        lines += [f"| `{r['op']}` | {r['calls']} | {r['self_s']:.3f} |" for r in p["dense_ops"]]
        if "phase_seconds_mean" in p:
            lines += [
                "",
                "phases, mean s per step: " + ", ".join(f"{k} {v:.3f}" for k, v in p["phase_seconds_mean"].items()),
            ]
        lines.append("")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile_ops",
        description="Profile IMVIA training steps and evaluation batches at the benchmark's DB15K shape "
        "(torch.profiler, self CPU time per operator): dense products against everything else.",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="forward precision (default fp32)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--steps", type=int, default=2, help="profiled training steps (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument(
        "--eval-triples",
        type=int,
        default=None,
        help="profile the evaluation of the first N test triples (default all)",
    )
    parser.add_argument("--no-eval", action="store_true", help="profile training only")
    parser.add_argument("--quick", action="store_true", help="the scaled-down random graph (seconds)")
    parser.add_argument("--out", default="bench/results", help="output folder (default bench/results)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = start(args)
    if device is None:
        return 2
    shape = QUICK_SHAPE if args.quick else DB15K_SHAPE
    result: dict[str, Any] = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "machine": describe_machine(device),
        "git": git_state(),
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "shape": shape.dataset,
    }
    setup = _set_up(shape, device, DTYPES[args.dtype], {}, progress=False)
    result["train"] = profile_training(setup, steps=args.steps, warmup=args.warmup)
    if not args.no_eval:
        result["evaluation"] = profile_evaluation(setup, triples=args.eval_triples)
    result["load_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"profile-{device.type}-{args.dtype}{'-quick' if args.quick else ''}-{time.strftime('%Y-%m-%dT%H%M%S')}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = render(result)
    (out / f"{stem}.md").write_text(text + "\n")
    print(text)
    print(f"wrote {out / stem}.json and .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
