"""Joint embedding, relation-aware decision fusion and the fused log-probability."""

from __future__ import annotations

import pytest
import torch

from imvia_core.errors import ConfigError
from imvia_core.model.joint import JointEmbedding, RelationAwareDecisionFusion, fused_logit, fused_logit_single_pass
from imvia_core.model.kernels import compiled

torch.set_num_threads(1)


def test_joint_embedding_matches_loop_with_masks():
    torch.manual_seed(0)
    joint = JointEmbedding(modalities=("S", "V", "T"), dim=4)
    emb = {m: torch.randn(5, 4) for m in ("S", "V", "T")}
    present = {"V": torch.tensor([True, False, True, True, False]), "T": torch.tensor([True, True, False, True, False])}
    out = joint(emb, present)
    for i in range(5):
        names = [m for m in ("S", "V", "T") if m == "S" or bool(present[m][i])]
        projected = {m: joint.projections[m](emb[m][i]) for m in names}
        scores = torch.stack([joint.attention[m](projected[m]).squeeze() for m in names])
        weights = torch.softmax(scores, 0)
        expected = sum(w * projected[m] for w, m in zip(weights, names))
        torch.testing.assert_close(out.embedding[i], expected, rtol=1e-5, atol=1e-6)
        for j, m in enumerate(("S", "V", "T")):
            w = weights[names.index(m)] if m in names else torch.tensor(0.0)
            torch.testing.assert_close(out.weights[i, j], w, rtol=1e-5, atol=1e-6)
    assert out.modalities == ("S", "V", "T")


def test_joint_without_any_modality_is_zero_not_nan():
    joint = JointEmbedding(modalities=("V", "T"), dim=3)
    emb = {m: torch.randn(2, 3, requires_grad=True) for m in ("V", "T")}
    present = {"V": torch.tensor([False, True]), "T": torch.tensor([False, False])}
    out = joint(emb, present)
    assert torch.all(out.embedding[0] == 0) and torch.all(out.weights[0] == 0)
    out.embedding.sum().backward()
    assert all(torch.isfinite(e.grad).all() for e in emb.values())
    with pytest.raises(ConfigError):
        JointEmbedding(modalities=(), dim=3)


def test_decision_weights_gated_and_uniform():
    torch.manual_seed(0)
    gated = RelationAwareDecisionFusion(branches=("S", "V", "T", "J"), relation_dim=5)
    r = torch.randn(7, 5)
    w = gated.weights(r)
    torch.testing.assert_close(w, torch.softmax(gated.gate(r), dim=-1))
    torch.testing.assert_close(w.sum(1), torch.ones(7))
    assert not torch.allclose(w[0], w[1])  # depends on the relation
    uniform = RelationAwareDecisionFusion(branches=("S", "V"), relation_dim=5, mode="uniform")
    torch.testing.assert_close(uniform.weights(r), torch.full((7, 2), 0.5))
    assert not list(uniform.parameters())
    with pytest.raises(ConfigError):
        RelationAwareDecisionFusion(branches=("S",), relation_dim=5, mode="max")


def test_global_decision_weights_are_learned_and_the_same_for_every_relation():
    fusion = RelationAwareDecisionFusion(branches=("S", "T", "J"), relation_dim=5, mode="global")
    r = torch.randn(4, 5)
    torch.testing.assert_close(fusion.weights(r), torch.full((4, 3), 1 / 3))  # starts uniform
    with torch.no_grad():
        fusion.branch_logits.copy_(torch.tensor([2.0, 0.0, -1.0]))
    w = fusion.weights(r)
    torch.testing.assert_close(w, torch.softmax(torch.tensor([2.0, 0.0, -1.0]), 0).expand(4, 3))
    (fusion.log_weights(r)[:, 1].sum()).backward()  # trainable: a gradient reaches the branch logits
    assert fusion.branch_logits.grad is not None and fusion.branch_logits.grad.abs().sum() > 0
    assert [n for n, _ in fusion.named_parameters()] == ["branch_logits"]


def test_fused_logit_matches_direct_formula_and_resolves_saturation():
    torch.manual_seed(0)
    logits = [torch.randn(37, 11, dtype=torch.float64) * 3 for _ in range(3)]
    log_w = torch.log_softmax(torch.randn(37, 3, dtype=torch.float64), dim=1)
    p = sum(log_w[:, m : m + 1].exp() * torch.sigmoid(s) for m, s in enumerate(logits))
    torch.testing.assert_close(fused_logit(logits, log_w, chunk_rows=8), torch.log(p / (1 - p)))
    # scores of 20 and 25 both give p == 1 in float32, the fused logit still ranks them
    big = [torch.tensor([[20.0, 25.0, -30.0, -35.0]])]
    score = fused_logit(big, torch.zeros(1, 1))
    assert float(torch.sigmoid(big[0])[0, 0]) == float(torch.sigmoid(big[0])[0, 1]) == 1.0
    assert score[0, 0] < score[0, 1] and score[0, 3] < score[0, 2] and torch.isfinite(score).all()
    torch.testing.assert_close(score, big[0])  # one branch: logit(sigmoid(s)) = s


@pytest.mark.skipif(not compiled.compiled_kernels(torch.device("cpu")), reason="no C++ compiler for torch.compile")
def test_compiled_fused_logit_in_evaluation_matches_the_chunked_form(monkeypatch):
    gen = torch.Generator().manual_seed(5)
    logits = [torch.randn(9, 40, generator=gen) * 12 for _ in range(3)]
    log_w = torch.log_softmax(torch.randn(9, 3, generator=gen), dim=1)
    layouts = (logits, [s.t().contiguous().t() for s in logits])  # row- and entity-major scores
    monkeypatch.setenv(compiled.COMPILE_ENV, "0")
    with torch.no_grad():
        eager = [fused_logit(x, log_w, chunk_rows=4) for x in layouts]
    monkeypatch.setenv(compiled.COMPILE_ENV, "auto")  # the default: the fused logit stays eager, bit for bit
    monkeypatch.setattr(compiled, "_COMPILED", {})
    with torch.no_grad():
        assert torch.equal(fused_logit(logits, log_w, chunk_rows=4), eager[0])
    assert "the fused logit" not in compiled._COMPILED
    monkeypatch.setenv(compiled.COMPILE_ENV, "1")
    monkeypatch.setattr(compiled, "_COMPILED", {})
    with torch.no_grad():
        fast = [fused_logit(x, log_w) for x in layouts]
    assert compiled._COMPILED["the fused logit"] is not False  # compiled, no fallback
    for got, want in zip(fast, eager):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)
    with torch.no_grad():  # one branch of saturated sigmoids (p == 1 or 0 in float32): logit(sigmoid(s)) = s
        big = torch.tensor([[20.0, 25.0, -30.0, -35.0]])
        torch.testing.assert_close(fused_logit([big], torch.zeros(1, 1)), big)
    single = fused_logit_single_pass(log_w.exp(), *logits)  # the expression itself, uncompiled
    torch.testing.assert_close(single, eager[0], rtol=1e-6, atol=1e-5)


def test_run_compiled_falls_back_once_when_compiling_fails(monkeypatch):
    calls = []

    def broken_compile(fn, **kwargs):
        def run(*args):
            calls.append("compiled")
            raise RuntimeError("no compiler here")

        return run

    monkeypatch.setenv(compiled.COMPILE_ENV, "1")
    monkeypatch.setattr(compiled, "_COMPILED", {})
    monkeypatch.setattr(compiled.torch, "compile", broken_compile)
    x = torch.ones(3)
    with pytest.warns(RuntimeWarning, match="torch.compile failed for the test kernel"):
        assert torch.equal(compiled.run_compiled("the test kernel", torch.neg, x, fallback=lambda: x * 2), x * 2)
    assert torch.equal(compiled.run_compiled("the test kernel", torch.neg, x, fallback=lambda: x * 3), x * 3)
    assert calls == ["compiled"]  # one attempt per process
    monkeypatch.setenv(compiled.COMPILE_ENV, "0")
    monkeypatch.setattr(compiled, "_COMPILED", {})
    assert torch.equal(compiled.run_compiled("another", torch.neg, x, fallback=lambda: x), x)
    assert "another" not in compiled._COMPILED  # switched off: nothing compiled
