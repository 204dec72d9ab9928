"""Tucker scorer (Eq. 6): per-distinct-relation fast path equals the per-example reference and a naive einsum."""

from __future__ import annotations

import math

import pytest
import torch

from imvia_core.model.tucker import RelationGroups, TuckerScorer, contract_by_relation

torch.set_num_threads(1)


def _skewed_ids(n: int, num_relations: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    p = 1.0 / torch.arange(1, num_relations + 1, dtype=torch.float64)
    return torch.multinomial(p / p.sum(), n, replacement=True, generator=gen)


def test_relation_groups_plan_covers_every_example_once():
    ids = _skewed_ids(50, 9)
    groups = RelationGroups.from_ids(ids)
    assert torch.equal(groups.unique[groups.inverse], ids)
    rows = torch.cat([b.rows for b in groups.buckets])
    assert sorted(rows.tolist()) == list(range(50))
    for b in groups.buckets:
        n_groups = b.group_end - b.group_start
        assert b.slots.unique().numel() == b.slots.numel() and int(b.slots.max()) < n_groups * b.capacity
    caps = [b.capacity for b in groups.buckets]
    assert caps == sorted(caps) and all(c & (c - 1) == 0 for c in caps)
    assert len(groups.buckets) > 1  # the skewed ids give several group sizes


def test_contract_by_relation_matches_loop():
    torch.manual_seed(0)
    ids = _skewed_ids(40, 7, seed=1)
    groups = RelationGroups.from_ids(ids)
    x = torch.randn(40, 5, dtype=torch.float64, requires_grad=True)
    mats = torch.randn(groups.num_groups, 5, 3, dtype=torch.float64, requires_grad=True)
    out = contract_by_relation(x, mats, groups)
    expected = torch.stack([x[b] @ mats[groups.inverse[b]] for b in range(40)])
    torch.testing.assert_close(out, expected)
    assert torch.autograd.gradcheck(lambda a, m: contract_by_relation(a, m, groups), (x, mats))


def _scorer(**kw) -> TuckerScorer:
    torch.manual_seed(0)
    return TuckerScorer(entity_dim=6, relation_dim=4, input_dropout=0.0, hidden_dropout1=0.0, hidden_dropout2=0.0, **kw)


def test_fast_equals_reference_scores_and_gradients():
    scorer = _scorer().double()
    ids = _skewed_ids(30, 5, seed=2)
    rel_table = torch.randn(5, 4, dtype=torch.float64)
    e_h = torch.randn(30, 6, dtype=torch.float64)
    table = torch.randn(11, 6, dtype=torch.float64)
    results = []
    for fast in (True, False):
        scorer.zero_grad()
        e = e_h.clone().requires_grad_(True)
        r = rel_table[ids].clone().requires_grad_(True)
        scores = scorer.score_all(e, r, table, relation_ids=ids, fast=fast)  # train mode: batch statistics
        (scores * torch.linspace(-1, 1, 11, dtype=torch.float64)).sum().backward()
        results.append((scores.detach(), e.grad, r.grad, scorer.core.grad.clone()))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)
    # the same with a precomputed grouping and one vector per distinct relation
    groups = RelationGroups.from_ids(ids)
    grouped = scorer.score_all(e_h, rel_table[groups.unique], table, groups=groups)
    torch.testing.assert_close(grouped, results[0][0])
    # grouping by identical rows when no ids are given
    by_rows = scorer.score_all(e_h, rel_table[ids], table)
    torch.testing.assert_close(by_rows, results[0][0])


def test_matches_naive_einsum_in_eval_mode():
    scorer = _scorer()
    scorer.eval()
    with torch.no_grad():
        scorer.bn0.running_mean.uniform_(-1, 1)
        scorer.bn1.running_var.uniform_(0.5, 2)
    e_h, r, table = torch.randn(8, 6), torch.randn(8, 4), torch.randn(9, 6)
    x = scorer.bn0(e_h)
    naive = torch.einsum("bi,kij,bk->bj", x, scorer.core, r)
    expected = scorer.bn1(naive) @ table.t()
    torch.testing.assert_close(scorer.score_all(e_h, r, table), expected, rtol=1e-4, atol=1e-5)


def test_fast_path_gradcheck_float64():
    scorer = _scorer().double()
    scorer.eval()
    ids = torch.tensor([0, 2, 2, 1, 2, 0])
    table = torch.randn(4, 6, dtype=torch.float64)
    e = torch.randn(6, 6, dtype=torch.float64, requires_grad=True)
    r = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: scorer.score_all(a, b[ids], table, relation_ids=ids), (e, r))


def test_dropout_in_training_keeps_scores_finite_and_varies():
    torch.manual_seed(0)
    scorer = TuckerScorer(entity_dim=8, relation_dim=4)
    e, r, table = torch.randn(16, 8), torch.randn(16, 4), torch.randn(10, 8)
    ids = torch.arange(16) % 3
    a = scorer.score_all(e, r[ids], table, relation_ids=ids)
    b = scorer.score_all(e, r[ids], table, relation_ids=ids)
    assert torch.isfinite(a).all() and not torch.equal(a, b)
    scorer.eval()
    assert torch.equal(
        scorer.score_all(e, r[ids], table, relation_ids=ids), scorer.score_all(e, r[ids], table, relation_ids=ids)
    )


def test_output_bias_starts_at_label_prior_and_keeps_rankings():
    torch.manual_seed(0)
    e, d = 50, 6
    scorer = TuckerScorer(entity_dim=d, relation_dim=4, num_candidates=e).eval()
    assert scorer.bias.item() == pytest.approx(-math.log(e))
    table, heads, rels = torch.randn(e, d), torch.randn(5, d), torch.randn(5, 4)
    with_bias = scorer.score_all(heads, rels, table)
    q = scorer.query(heads, rels)
    torch.testing.assert_close(with_bias, q @ table.t() - math.log(e))
    assert torch.equal(with_bias.argsort(dim=1), (q @ table.t()).argsort(dim=1))
    assert TuckerScorer(entity_dim=d, relation_dim=4).bias.item() == 0.0
    # the bias is learned: a loss on the scores gives it a gradient
    with_bias.sum().backward()
    assert scorer.bias.grad is not None and scorer.bias.grad.item() == pytest.approx(5 * e)
