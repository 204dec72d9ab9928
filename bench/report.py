"""The benchmark's verdicts and report: ratios to the matmul peak, the targets, the upstream figures, Markdown."""

from __future__ import annotations

import datetime as _dt
import json
import statistics
from pathlib import Path
from typing import Any

from bench.shapes import UPSTREAM

__all__ = ["assess", "render_markdown", "targets", "upstream_comparison", "write_results"]


def assess(results: dict[str, Any], *, paper_shape: bool) -> dict[str, Any]:
    """Add the ratios to the matmul peak, the targets and (``paper_shape``) the upstream comparison to ``results``.

    :param paper_shape: the run measured the paper's DB15K configuration; the upstream figures are for that
        configuration, so a scaled-down run gets ``upstream: None``.
    """
    reference = results["matmul_peak"]["gflops"]
    for entry in results["train"].values():
        entry["ratio_to_matmul_peak"] = entry["gflops_achieved"] / reference
    ev = results["evaluation"]
    ev["gflops_ratio_to_matmul_peak"] = ev["gflops_achieved"] / reference
    ev["bare_scoring_matmuls"]["ratio_to_matmul_peak"] = ev["bare_scoring_matmuls"]["gflops_achieved"] / reference
    results["targets"] = targets(results)
    results["upstream"] = upstream_comparison(results) if paper_shape else None
    return results


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
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


def upstream_comparison(results: dict[str, Any]) -> dict[str, Any]:
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


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def _summary_lines(results: dict[str, Any]) -> list[str]:
    """Title, provenance, machine, allocator, shape and the first table rows (peak and IMVIA training)."""
    m, s, o = results["machine"], results["shape"], results["options"]
    tr = results["train"]["imvia"]
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
    return lines


def _training_rows(results: dict[str, Any]) -> list[str]:
    """Table rows of the optional training measurements: unfused loss, relation-grouped batches, TuckER."""
    tr = results["train"]["imvia"]
    lines: list[str] = []
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
    return lines


def _evaluation_rows(results: dict[str, Any]) -> list[str]:
    """Table rows of the evaluation, its bare matmuls, memory; then the targets table."""
    ev, mem = results["evaluation"], results["memory"]
    bare = ev["bare_scoring_matmuls"]
    lines = [
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
    return lines


def _upstream_lines(results: dict[str, Any]) -> list[str]:
    """The comparison with the fixed upstream figures (a note instead for a scaled-down run)."""
    tr, ev, mem = results["train"]["imvia"], results["evaluation"], results["memory"]
    up = results["upstream"]
    if up is None:
        return ["", "Scaled-down configuration: these numbers check the benchmark, not the speed.", ""]
    return [
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


def render_markdown(results: dict[str, Any]) -> str:
    """A Markdown report of :func:`bench.measure.run_benchmark`'s results."""
    lines = _summary_lines(results) + _training_rows(results) + _evaluation_rows(results) + _upstream_lines(results)
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
