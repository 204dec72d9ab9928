"""Contrastive alignment (Eq. 5) against a loop-based reading, with duplicate entities masked."""

from __future__ import annotations

import math

import pytest
import torch

from imvia_core.errors import ConfigError
from imvia_core.model.alignment import ContrastiveAlignment, symmetric_contrastive_loss

torch.set_num_threads(1)


def _naive(a, b, tau, ids=None):
    n = a.shape[0]
    a = a / a.norm(dim=1, keepdim=True)
    b = b / b.norm(dim=1, keepdim=True)

    def direction(p, q):
        total = 0.0
        for i in range(n):
            negatives = [j for j in range(n) if j == i or ids is None or ids[j] != ids[i]]
            logits = torch.stack([p[i] @ q[j] / tau for j in negatives])
            total = total - (p[i] @ q[i] / tau - torch.logsumexp(logits, 0))
        return total / n

    return 0.5 * (direction(a, b) + direction(b, a))


def test_matches_loop_without_and_with_duplicates():
    torch.manual_seed(0)
    a, b = torch.randn(7, 5), torch.randn(7, 5)
    torch.testing.assert_close(symmetric_contrastive_loss(a, b, 0.2), _naive(a, b, 0.2))
    ids = torch.tensor([3, 1, 3, 2, 1, 0, 3])
    masked = symmetric_contrastive_loss(a, b, 0.2, entity_ids=ids)
    torch.testing.assert_close(masked, _naive(a, b, 0.2, ids.tolist()))
    assert not torch.isclose(masked, symmetric_contrastive_loss(a, b, 0.2))


def test_identical_duplicates_do_not_compete_with_their_positive():
    """Rows 0 and 2 are one entity with identical embeddings: unmasked, each row's positive ties with its copy
    (each row loses at least log 2); masked, the copy is left out of the softmax."""
    torch.manual_seed(0)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    a[2], b[2] = a[0], b[0]
    ids = torch.tensor([0, 1, 0, 2])
    masked = symmetric_contrastive_loss(a, b, 0.05, entity_ids=ids)
    unmasked = symmetric_contrastive_loss(a, b, 0.05)
    torch.testing.assert_close(masked, _naive(a, b, 0.05, ids.tolist()))
    assert unmasked - masked > 0.5 * math.log(2) * 0.5  # rows 0 and 2 of 4, both directions


def test_gradcheck_float64():
    torch.manual_seed(0)
    a = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([0, 1, 0, 2, 3])
    # the loss runs in float32 internally only for float32 inputs; float64 inputs stay float64
    fn = lambda x, y, t: symmetric_contrastive_loss(x.double(), y.double(), t, entity_ids=ids)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (a, b, tau), eps=1e-6, atol=1e-4)


def test_module_pairs_temperature_and_missing_rows():
    torch.manual_seed(0)
    align = ContrastiveAlignment(modalities=("S", "V", "T"))
    assert align.pairs == [("S", "V"), ("S", "T"), ("V", "T")]
    assert math.isclose(float(align.temperature.detach()), 0.07, rel_tol=1e-5)
    emb = {m: torch.randn(6, 4) for m in ("S", "V", "T")}
    present = {"V": torch.tensor([True, True, False, True, True, True])}
    ids = torch.arange(6)
    total = align(emb, present=present, entity_ids=ids)
    keep = present["V"]
    tau = align.temperature
    expected = (
        symmetric_contrastive_loss(emb["S"][keep], emb["V"][keep], tau)
        + symmetric_contrastive_loss(emb["S"], emb["T"], tau)
        + symmetric_contrastive_loss(emb["V"][keep], emb["T"][keep], tau)
    )
    torch.testing.assert_close(total, expected)
    total.backward()
    assert align.log_temperature.grad is not None
    with torch.no_grad():
        align.log_temperature.fill_(5.0)
    assert float(align.temperature.detach()) == 1.0
    with torch.no_grad():
        align.log_temperature.fill_(-9.0)
    assert math.isclose(float(align.temperature.detach()), 0.01, rel_tol=1e-6)
    with pytest.raises(ConfigError):
        ContrastiveAlignment(modalities=("S", "V"), temperature_init=2.0)
