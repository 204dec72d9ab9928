"""Fast paths against straightforward ones, the benchmark's FLOP model, and a quick run of the benchmark.

Covered elsewhere and not repeated here: the Tucker scorer's fast contraction against the per-example reference
(``test_model_tucker.py``), the chunked BCE against plain autograd (``test_model_losses.py``), the evaluator against
a brute-force loop over a fixed score table and ``FilterIndex.known_tails`` against Python sets
(``test_evaluation_*.py``). Here: the whole IMVIA loss with both Tucker paths, the trainer's 1-N targets, the
evaluator driving the real model against a dense sort-based ranking, and the benchmark itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import bench
import bench.measure
import bench.profile_ops
from imvia_core.data.graph import add_reciprocals
from imvia_core.evaluation import FilterIndex, evaluate, model_scorer
from imvia_core.model import build_model

torch.set_num_threads(1)

E, R = 40, 5  # R original relations; the models see 2R ids
ROOT = Path(__file__).resolve().parents[1]


def _graph(seed: int = 0):
    shape = bench.BenchShape(dataset="random", num_entities=E, num_relations=R, num_train=260, num_test=30)
    return bench.measure._random_graph(shape, seed=seed)


def _imvia(*, dim: int = 12, **overrides):
    torch.manual_seed(0)
    feats = bench.random_features(num_entities=E, visual_dim=20, text_dim=9)
    feats["text"].mask[3] = False  # an entity without text
    return build_model(
        "imvia",
        num_entities=E,
        num_relations_with_reciprocals=2 * R,
        features=feats,
        config={"dim": dim, "club_hidden_dim": 8, **overrides},
    )


# ------------------------------------------------------------------------------------------ model-level fast path
@pytest.mark.parametrize(
    "switch", [{"fast_tucker": False}, {"fused_scoring_loss": False}], ids=["tucker-contraction", "scoring-in-loss"]
)
def test_imvia_training_loss_fast_paths_equal_reference(switch):
    """The whole Eq. 8 loss and every gradient agree between each fast path and its straightforward version:
    the grouped Tucker contraction against the per-example one, and the scoring fused into the 1-N BCE (row
    blocks) against full ``(B, E)`` logits followed by the loss."""
    fast = _imvia().double()
    slow = _imvia(**switch).double()
    slow.load_state_dict(fast.state_dict())
    graph = _graph()
    index = FilterIndex.from_triples(
        graph.with_reciprocals("train"), num_entities=E, num_relations_with_reciprocals=2 * R
    )
    heads, relations = (t[:48] for t in index.unique_queries())
    assert torch.unique(relations).numel() < relations.numel()  # several examples share a relation
    targets = bench.build_targets(index, heads, relations).double()
    results = []
    for model in (fast, slow):
        torch.manual_seed(7)  # same dropout masks and CLUB permutations in both runs
        loss, terms = model.training_loss(heads, relations, targets)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), terms, grads))
    (loss_a, terms_a, grads_a), (loss_b, terms_b, grads_b) = results
    torch.testing.assert_close(loss_a, loss_b)
    for name in terms_a:
        torch.testing.assert_close(terms_a[name], terms_b[name], msg=name)
    assert grads_a.keys() == grads_b.keys() and any("scorers" in n for n in grads_a)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], msg=name)
    # and in evaluation mode (batch-norm running statistics, no dropout) the scores agree too
    fast.eval()
    slow.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast.score_all(heads, relations), slow.score_all(heads, relations))


def test_tucker_baseline_fused_loss_equals_logits_then_loss():
    from imvia_core.model.kernels.bce import one_to_n_bce

    graph = _graph()
    index = FilterIndex.from_triples(
        graph.with_reciprocals("train"), num_entities=E, num_relations_with_reciprocals=2 * R
    )
    heads, relations = (t[:150] for t in index.unique_queries())
    targets = bench.build_targets(index, heads, relations).double()
    torch.manual_seed(0)
    model = build_model("tucker", num_entities=E, num_relations_with_reciprocals=2 * R, config={"dim": 6}).double()
    results = []
    for fused in (True, False):
        model.zero_grad()
        torch.manual_seed(3)
        if fused:
            loss, _ = model.training_loss(heads, relations, targets)
        else:
            loss, _ = one_to_n_bce([model.score_all(heads, relations)], targets, label_smoothing=0.1)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    torch.testing.assert_close(results[0][0], results[1][0])
    for name, grad in results[0][1].items():
        torch.testing.assert_close(grad, results[1][1][name], msg=name)


# ------------------------------------------------------------------------------------------ 1-N targets
def test_trainer_targets_equal_dense_reference():
    graph = _graph(seed=3)
    train = add_reciprocals(torch.cat([graph.train, graph.train[:20]]), R)  # with duplicate triples
    index = FilterIndex.from_triples(train, num_entities=E, num_relations_with_reciprocals=2 * R)
    known: dict[tuple[int, int], set[int]] = {}
    for h, r, t in train.tolist():
        known.setdefault((h, r), set()).add(t)
    q_heads, q_relations = index.unique_queries()
    order = torch.randperm(q_heads.numel(), generator=torch.Generator().manual_seed(0))
    for start in range(0, order.numel(), 64):  # every batch of a shuffled epoch
        idx = order[start : start + 64]
        heads, relations = q_heads[idx], q_relations[idx]
        targets = bench.build_targets(index, heads, relations)
        dense = torch.zeros(idx.numel(), E)
        for b, (h, r) in enumerate(zip(heads.tolist(), relations.tolist())):
            dense[b, sorted(known[(h, r)])] = 1.0
        assert targets.dtype == torch.float32 and torch.equal(targets, dense)
        assert bool((targets.sum(1) >= 1).all())  # every training query has a positive


# ------------------------------------------------------------------------------------------ evaluation
def _dense_filtered_ranks(model, graph) -> torch.Tensor:
    """Filtered ranks of every test query from one dense score matrix: sort, then the target's position."""
    h, r, t = graph.test.unbind(1)
    heads, relations, targets = torch.cat([h, t]), torch.cat([r, r + R]), torch.cat([t, h])
    known: dict[tuple[int, int], set[int]] = {}
    for a, b, c in graph.all_known_triples.tolist():
        known.setdefault((a, b), set()).add(c)
    with torch.no_grad():
        scores = model.score_all(heads, relations).clone()
    ranks = []
    for q in range(heads.numel()):
        row = scores[q].clone()
        target = int(targets[q])
        others = [e for e in known.get((int(heads[q]), int(relations[q])), ()) if e != target]
        row[others] = float("-inf")
        order = torch.argsort(row, descending=True, stable=True)
        ranks.append(float((order == target).nonzero()[0, 0]) + 1.0)
    return torch.tensor(ranks, dtype=torch.float64)


def test_evaluator_on_the_model_equals_dense_sorted_ranks_in_any_query_order():
    model = _imvia().double()
    model.eval()
    graph = _graph(seed=1)
    reference = _dense_filtered_ranks(model, graph)
    common = dict(num_entities=E, num_relations=R, filter_index=graph.filter_index, progress=False, keep_ranks=True)
    result = evaluate(model, graph.test, batch_size=7, **common)
    ranks = result.ranks
    assert torch.equal(ranks["optimistic"], ranks["pessimistic"])  # float64 scores: no ties to split
    torch.testing.assert_close(ranks["realistic"], reference)
    # grouping the test triples by relation (what the benchmark times) changes no rank
    order = torch.argsort(graph.test[:, 1], stable=True)
    by_relation = evaluate(model, graph.test[order], batch_size=7, **common).ranks["realistic"]
    n = graph.test.shape[0]
    torch.testing.assert_close(by_relation[:n], reference[:n][order])
    torch.testing.assert_close(by_relation[n:], reference[n:][order])


def test_entity_major_scores_fused_logit_and_ranks_equal_row_major(monkeypatch: pytest.MonkeyPatch):
    """Without autograd on a CPU scores are entity-major views; values, fused logits and ranks are unchanged."""
    import imvia_core.evaluation.ranks as ranks_module
    from imvia_core.evaluation import compute_ranks
    from imvia_core.layout import prefer_entity_major
    from imvia_core.model.joint import fused_logit

    model = _imvia()
    model.eval()
    scorer, table = model.scorers["S"], model.entity_embeddings.weight.detach()
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(9, table.shape[1], generator=gen)
    with torch.no_grad():
        assert prefer_entity_major(q.device)
        rows = scorer.logits(q, table, entity_major=False)
        cols = scorer.logits(q, table)
    assert cols.stride(0) == 1 and rows.stride(1) == 1
    torch.testing.assert_close(cols, rows)
    assert not prefer_entity_major(q.device)  # with autograd (training) scores stay row-major

    logits = [torch.randn(9, E, generator=gen, dtype=torch.float64) * 8 for _ in range(3)]
    log_w = torch.log_softmax(torch.randn(9, 3, generator=gen, dtype=torch.float64), dim=1)
    transposed = [s.t().contiguous().t() for s in logits]
    for chunk in (1, 4, None):
        a, b = fused_logit(logits, log_w, chunk_rows=chunk), fused_logit(transposed, log_w, chunk_rows=chunk)
        assert b.stride(0) == 1
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)  # vectorised and scalar tails: 1 ulp

    scores = torch.randint(0, 5, (9, E), generator=gen).float()  # many ties
    targets = torch.randint(0, E, (9,), generator=gen)
    f_rows, f_cols = torch.randint(0, 9, (30,), generator=gen), torch.randint(0, E, (30,), generator=gen)
    expected = compute_ranks(scores, targets, filter_rows=f_rows, filter_cols=f_cols)
    for block in (ranks_module._COUNT_BLOCK_ELEMENTS, 7, 1):  # one block, several, one row per block
        monkeypatch.setattr(ranks_module, "_COUNT_BLOCK_ELEMENTS", block)
        for layout in (scores, scores.t().contiguous().t()):
            got = compute_ranks(layout, targets, filter_rows=f_rows, filter_cols=f_cols)
            assert torch.equal(got.optimistic, expected.optimistic)
            assert torch.equal(got.pessimistic, expected.pessimistic)
    hand = torch.tensor([[0.5, 0.9, 0.7, 0.9, 0.9]] * 3)  # target 1 ties with entities 3 and 4
    got = compute_ranks(hand.t().contiguous().t(), torch.tensor([1, 2, 0]))
    assert got.optimistic.tolist() == [1.0, 4.0, 5.0] and got.pessimistic.tolist() == [3.0, 4.0, 5.0]


# ------------------------------------------------------------------------------------------ FLOP model
def test_analytic_flops_match_counted_matmul_flops():
    """The docstring's formula against torch's FLOP counter on one real step (within the counter's extras)."""
    graph = _graph(seed=2)
    model = _imvia(dim=32)
    index = FilterIndex.from_triples(
        graph.with_reciprocals("train"), num_entities=E, num_relations_with_reciprocals=2 * R
    )
    q_heads, q_relations = index.unique_queries()
    heads, relations = q_heads[:32], q_relations[:32]
    u = int(torch.unique(relations).numel())
    cpu = torch.device("cpu")
    trainee = bench.measure._make_trainee("imvia", model)
    with FlopCounterMode(display=False) as counter:
        bench.measure._train_step(trainee, index, heads, relations, device=cpu, dtype=torch.float32)
    analytic = bench.imvia_step_flops(model, batch_size=32, unique_relations=u)
    assert analytic["total"] == pytest.approx(counter.get_total_flops(), rel=0.1)
    assert analytic["scoring"] == 3 * 4 * 2 * 32 * 32 * E

    baseline = build_model("tucker", num_entities=E, num_relations_with_reciprocals=2 * R, config={"dim": 32})
    trainee = bench.measure._make_trainee("tucker", baseline)
    with FlopCounterMode(display=False) as counter:
        bench.measure._train_step(trainee, index, heads, relations, device=cpu, dtype=torch.float32)
    parts = bench.tucker_step_flops(batch_size=32, num_entities=E, dim=32, relation_dim=32, unique_relations=u)
    assert sum(parts.values()) == pytest.approx(counter.get_total_flops(), rel=0.1)

    seen = []
    score = model_scorer(model)

    def scorer(h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        seen.append((int(r.numel()), int(torch.unique(r).numel())))
        return score(h, r)

    with FlopCounterMode(display=False) as counter:
        evaluate(scorer, graph.test, num_entities=E, num_relations=R, filter_index=None, batch_size=8, progress=False)
    assert sum(b for b, _ in seen) == 2 * graph.test.shape[0]
    ev = bench.evaluation_flops(model, batches=seen)
    assert ev["total"] == pytest.approx(counter.get_total_flops(), rel=0.1)


# ------------------------------------------------------------------------------------------ memory helpers
def test_heap_sampler_sees_an_allocation():
    sampler = bench.HeapSampler()
    if not sampler.available:
        pytest.skip("glibc mallinfo2 not available")
    with sampler:
        block = torch.ones(8 * 1024 * 1024)  # 32 MiB, alive when the sampler stops
    assert sampler.peak_bytes - sampler.start_bytes >= 30 * 1024 * 1024
    assert bench.peak_rss() >= bench.current_rss() > 0
    del block


# ------------------------------------------------------------------------------------------ the benchmark itself
def _run_bench(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("IMVIA_DATA_MIRROR", None)
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_quick_benchmark_writes_json_and_markdown(tmp_path: Path):
    out = tmp_path / "results"
    proc = _run_bench(["--quick", "--threads", "1", "--unfused", "--relation-batches", "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (json_path,) = out.glob("cpu-fp32-quick-*.json")
    (md_path,) = out.glob("cpu-fp32-quick-*.md")
    results = json.loads(json_path.read_text())
    for key in (
        "git",
        "machine",
        "allocator",
        "options",
        "shape",
        "matmul_peak",
        "train",
        "evaluation",
        "memory",
        "targets",
        "upstream",
    ):
        assert key in results, key
    assert results["options"]["quick"] and results["upstream"] is None
    assert {"torch", "cpu", "torch_threads", "logical_cores"} <= results["machine"].keys()
    assert results["machine"]["torch_threads"] == 1
    assert results["shape"]["score_branches"] == ["S", "V", "T", "J"]
    for name in ("imvia", "tucker", "imvia_unfused", "imvia_relation_batches"):
        train = results["train"][name]
        assert len(train["step_seconds"]) == 2 and all(t > 0 for t in train["step_seconds"])
        assert train["epoch_seconds_extrapolated"] == pytest.approx(
            train["step_seconds_median"] * train["batches_per_epoch"]
        )
        assert train["flops_per_step"] > 0 and 0 < train["ratio_to_matmul_peak"]
        assert set(train["phase_seconds_median"]) == {"targets", "aux_step", "forward", "backward", "optimizer"}
    grouped, shuffled = results["train"]["imvia_relation_batches"], results["train"]["imvia"]
    assert max(grouped["unique_relations"]) < min(shuffled["unique_relations"])  # few relations per batch
    ev = results["evaluation"]
    assert ev["queries"] == 2 * results["shape"]["num_test"] and ev["seconds"] > 0
    assert ev["ratio_to_bare_matmuls"] == pytest.approx(ev["seconds"] / ev["bare_scoring_matmuls"]["seconds"])
    assert ev["relation_sorted"]["mrr_realistic"] == pytest.approx(ev["mrr_realistic"], rel=1e-5)
    assert ev["relation_sorted"]["mean_distinct_relations_per_batch"] <= ev["mean_distinct_relations_per_batch"]
    assert results["memory"]["peak_rss_bytes"] > 0
    for target in results["targets"]:
        value, threshold = target["value"], target["threshold"]
        assert target["holds"] == (value >= threshold if target["comparison"] == ">=" else value <= threshold)
    text = md_path.read_text()
    commit = results["git"]["commit"]
    assert "GFLOP/s" in text and "| holds |" in text and "then the loss (before)" in text and "relation-grouped" in text
    assert commit is None or commit in text


def test_quick_profile_splits_the_time_into_dense_products_and_the_rest(tmp_path: Path):
    """``python -m bench.profile_ops --quick``: per-operator self times of training steps and an evaluation."""
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("IMVIA_DATA_MIRROR", None)
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "bench.profile_ops", "--quick", "--threads", "1", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (json_path,) = out.glob("profile-cpu-fp32-quick-*.json")
    result = json.loads(json_path.read_text())
    for part in ("train", "evaluation"):
        p = result[part]
        assert p["wall_seconds"] > 0 and p["unprofiled_seconds"] > 0
        assert 0 < p["dense_seconds"] <= p["profiled_self_seconds"]
        assert {r["op"] for r in p["dense_ops"]} <= bench.profile_ops.DENSE_OPS
        assert p["top_other_ops"] and not {r["op"] for r in p["top_other_ops"]} & bench.profile_ops.DENSE_OPS
        selfs = [r["self_s"] for r in p["top_other_ops"]]
        assert selfs == sorted(selfs, reverse=True)
    assert result["train"]["steps"] == 2 and set(result["train"]["phase_seconds_mean"]) >= {"forward", "backward"}
    assert "dense products" in (json_path.with_suffix(".md")).read_text()


def test_help_and_bad_options(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--quick" in text and "MALLOC_MMAP_MAX_" in text
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--dtype", "fp8"])
    assert exit_info.value.code != 0 and "invalid choice" in capsys.readouterr().err


def test_side_by_side_table_takes_ratios_from_one_run_and_names_the_precision():
    """bench/upstream.py's table: upstream / project for each row, the project's precision in the header."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import upstream
    finally:
        sys.path.remove(str(ROOT / "bench"))
    up = {
        "train": {"epoch_seconds_extrapolated": 900.0, "step_seconds_median": 12.0},
        "evaluation": {"seconds": 80.0},
        "peak_rss_bytes": 9e9,
    }
    ours = {
        "train": {"imvia": {"epoch_seconds_extrapolated": 300.0, "step_seconds_median": 4.0}},
        "evaluation": {"seconds": 16.0, "ratio_to_bare_matmuls": 2.5},
        "memory": {"peak_rss_bytes": 3e9},
    }
    rows = upstream._rows(up, ours)
    assert [round(r["ratio"], 6) if r["ratio"] else None for r in rows] == [3.0, 3.0, 5.0, 3.0, None]
    record = {
        "created": "now",
        "cpu": "cpu",
        "threads": 2,
        "allocator": {"upstream": "mallopt", "project": "mallopt"},
        "project_commit": "abc",
        "project_dirty": False,
        "upstream_commit": "def",
        "upstream_file": "u.json",
        "project_file": "p.json",
        "uptime": {"start": "load 0"},
        "project_dtype": "bf16",
        "rows": rows,
    }
    text = upstream.render_comparison(record)
    assert "project bf16 (bf16 autocast" in text and "| **5.00x** |" in text
    assert "project fp32" in upstream.render_comparison({**record, "project_dtype": "fp32"})


def test_no_benchmark_module_shadows_the_standard_library():
    """``bench/upstream.py`` runs as a script, so ``bench/`` is first on ``sys.path``: a ``bench/profile.py`` there
    replaced the standard library's ``profile`` (imported by ``cProfile`` inside torch) and broke the comparison."""
    names = {p.stem for p in (ROOT / "bench").glob("*.py")}
    assert not names & set(sys.stdlib_module_names)
