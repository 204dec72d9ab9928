"""The chunked 1-N BCE of several branches and their fused probability against plain autograd."""

from __future__ import annotations

import pytest
import torch

from imvia_core.model.kernels.bce import one_to_n_bce, one_to_n_bce_linear, one_to_n_bce_reference, resolve_chunk_rows

torch.set_num_threads(1)


@pytest.mark.parametrize("fused", [True, False])
def test_values_and_gradients_match_reference(fused):
    torch.manual_seed(0)
    b, e, m = 37, 23, 3
    logits = [(torch.randn(b, e, dtype=torch.float64) * s).requires_grad_() for s in (1.0, 4.0, 9.0)]
    log_w = torch.log_softmax(torch.randn(b, m, dtype=torch.float64), 1).requires_grad_()
    targets = (torch.rand(b, e) < 0.1).float()
    lw = log_w if fused else None
    total, terms = one_to_n_bce(logits, targets, label_smoothing=0.1, log_weights=lw, chunk_rows=8)
    ref_total, ref_terms = one_to_n_bce_reference(logits, targets, label_smoothing=0.1, log_weights=lw)
    torch.testing.assert_close(total, ref_total)
    torch.testing.assert_close(terms, ref_terms)
    inputs = logits + ([log_w] if fused else [])
    grads = torch.autograd.grad(total * 3.0, inputs)
    ref_grads = torch.autograd.grad(ref_total * 3.0, inputs)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)
    if not fused:
        assert float(terms[-1]) == 0.0


def test_label_smoothing_and_single_branch_equal_torch_bce():
    torch.manual_seed(1)
    s = torch.randn(9, 14, requires_grad=True)
    t = (torch.rand(9, 14) < 0.2).float()
    total, _ = one_to_n_bce([s], t, label_smoothing=0.2)
    y = 0.8 * t + 0.2 / 14
    torch.testing.assert_close(total, torch.nn.functional.binary_cross_entropy_with_logits(s, y))


def test_extreme_scores_are_finite_and_bf16_logits_work():
    s1 = torch.tensor([[200.0, -200.0, 0.0], [-500.0, 500.0, 3.0]], requires_grad=True)
    s2 = (s1.detach() * -1).requires_grad_()
    t = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    lw = torch.log(torch.full((2, 2), 0.5)).requires_grad_()
    total, terms = one_to_n_bce([s1, s2], t, log_weights=lw)
    total.backward()
    assert torch.isfinite(terms).all() and torch.isfinite(s1.grad).all() and torch.isfinite(lw.grad).all()
    sb = torch.randn(4, 6).bfloat16().requires_grad_()
    total, _ = one_to_n_bce([sb], torch.zeros(4, 6))
    total.backward()
    assert sb.grad.dtype == torch.bfloat16 and total.dtype == torch.float32


def test_gradcheck_float64():
    torch.manual_seed(2)
    logits = [torch.randn(5, 4, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    log_w = torch.log_softmax(torch.randn(5, 2, dtype=torch.float64), 1).requires_grad_()
    t = (torch.rand(5, 4) < 0.3).double()

    def fn(a, b, w):
        return one_to_n_bce([a, b], t, label_smoothing=0.1, log_weights=w, chunk_rows=2)[0]

    assert torch.autograd.gradcheck(fn, (*logits, log_w))


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("batch", [7, 150])
@pytest.mark.parametrize("chunk_rows", [16, 1000], ids=["cpu-chunks", "one-chunk"])
def test_linear_version_equals_scoring_then_reference(fused: bool, batch: int, chunk_rows: int) -> None:
    """Scoring fused into the loss (row blocks, gradients accumulated per block) changes no value or gradient,
    with CPU-sized chunks or with the whole batch as one chunk (the default on a GPU)."""
    torch.manual_seed(1)
    e, d, m = 40, 5, 3
    qs = [torch.randn(batch, d, dtype=torch.float64, requires_grad=True) for _ in range(m)]
    ts = [torch.randn(e, d, dtype=torch.float64, requires_grad=True) for _ in range(m)]
    bs = [torch.tensor(-1.5 + i, dtype=torch.float64, requires_grad=True) for i in range(m)]
    targets = (torch.rand(batch, e) < 0.1).float()
    lw = torch.log_softmax(torch.randn(batch, m, dtype=torch.float64), -1).requires_grad_() if fused else None
    inputs = [*qs, *ts, *bs, *([lw] if fused else [])]

    loss, terms = one_to_n_bce_linear(qs, ts, bs, targets, label_smoothing=0.1, log_weights=lw, chunk_rows=chunk_rows)
    grads = torch.autograd.grad(loss * 2.0, inputs)
    logits = [torch.addmm(b, q, t.t()) for q, t, b in zip(qs, ts, bs)]
    ref, ref_terms = one_to_n_bce_reference(logits, targets, label_smoothing=0.1, log_weights=lw)
    ref_grads = torch.autograd.grad(ref * 2.0, inputs)
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(terms, ref_terms)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


def test_linear_version_refuses_mismatched_shapes() -> None:
    q, t, b = torch.zeros(4, 3), torch.zeros(6, 2), torch.zeros(())
    with pytest.raises(ValueError, match="do not match"):
        one_to_n_bce_linear([q], [t], [b], torch.zeros(4, 6))


def test_chunk_rows_default_by_device() -> None:
    assert resolve_chunk_rows(None, torch.device("cpu"), 1024) == 32
    assert resolve_chunk_rows(None, torch.device("meta"), 1024) == 1024  # any accelerator: the whole batch
    assert resolve_chunk_rows(8, torch.device("meta"), 1024) == 8
