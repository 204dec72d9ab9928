"""CLUB estimators for Eq. 4: likelihood with its log-variance term, frozen bound, view-dimension indexing."""

from __future__ import annotations

import math

import torch

from imvia_core.model.disentangle import GaussianCLUB, ModalityCLUB, ViewCLUB

torch.set_num_threads(1)


def test_learning_loss_is_full_gaussian_nll():
    torch.manual_seed(0)
    club = GaussianCLUB(x_dim=3, y_dim=2, hidden_dim=8)
    x, y = torch.randn(7, 3), torch.randn(7, 2)
    mu, logvar = club(x)
    expected = 0.5 * ((y - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi))
    torch.testing.assert_close(club.learning_loss(x, y), expected.sum(1).mean())


def test_fitting_recovers_conditional_variance():
    """Without the log-variance term the variance would run to its upper bound instead of the true 0.25."""
    torch.manual_seed(0)
    x = torch.randn(512, 2)
    y = 2.0 * x[:, :1] + 0.5 * torch.randn(512, 1)
    club = GaussianCLUB(x_dim=2, y_dim=1, hidden_dim=16)
    opt = torch.optim.Adam(club.parameters(), lr=2e-2)
    for _ in range(300):
        opt.zero_grad()
        club.learning_loss(x, y).backward()
        opt.step()
    _, logvar = club(x)
    var = float(logvar.detach().exp().mean())
    assert 0.12 < var < 0.5, var


def test_bound_matches_formula_and_is_frozen():
    torch.manual_seed(0)
    club = GaussianCLUB(x_dim=3, y_dim=3, hidden_dim=8)
    x = torch.randn(6, 3, requires_grad=True)
    y = torch.randn(6, 3, requires_grad=True)
    perm = torch.tensor([2, 0, 1, 5, 3, 4])
    bound = club.mi_upper_bound(x, y, permutation=perm)
    mu, logvar = club(x)
    pos = -0.5 * ((y - mu) ** 2 / logvar.exp()).sum(1)
    neg = -0.5 * ((y[perm] - mu) ** 2 / logvar.exp()).sum(1)
    torch.testing.assert_close(bound, (pos - neg).mean())
    bound.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(p.grad is None for p in club.parameters())


def test_bound_gradcheck_float64():
    torch.manual_seed(0)
    club = GaussianCLUB(x_dim=2, y_dim=2, hidden_dim=4).double()
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    perm = torch.tensor([1, 2, 3, 4, 0])
    assert torch.autograd.gradcheck(lambda a, b: club.mi_upper_bound(a, b, permutation=perm), (x, y))


def test_bound_separates_dependent_from_independent_after_fitting():
    torch.manual_seed(0)
    x = torch.randn(400, 2)
    y_dep = x + 0.1 * torch.randn(400, 2)
    y_ind = torch.randn(400, 2)
    bounds = []
    for y in (y_dep, y_ind):
        club = GaussianCLUB(x_dim=2, y_dim=2, hidden_dim=16)
        opt = torch.optim.Adam(club.parameters(), lr=2e-2)
        for _ in range(200):
            opt.zero_grad()
            club.learning_loss(x, y).backward()
            opt.step()
        with torch.no_grad():
            bounds.append(float(club.mi_upper_bound(x, y)))
    assert bounds[0] > 2.0 and bounds[0] > bounds[1] + 2.0, bounds


def test_view_club_indexes_view_dimension():
    torch.manual_seed(0)
    views = torch.randn(10, 3, 4)
    mask = torch.ones(10, 3, dtype=torch.bool)
    mask[2, 1] = False
    club = ViewCLUB(num_views=3, dim=4, hidden_dim=8)
    assert club.pairs == [(0, 1), (0, 2), (1, 2)]
    expected = 0.0
    for k, j in club.pairs:
        keep = mask[:, k] & mask[:, j]
        expected = expected + club.estimators[f"{k}__{j}"].learning_loss(views[keep, k], views[keep, j])
    torch.testing.assert_close(club.learning_loss(views, mask), expected)
    # the batch dimension is never paired: a batch of one entity still has view pairs to fit
    assert torch.isfinite(club.learning_loss(views[:1], mask[:1]))
    assert float(club.mi_upper_bound(views[:1], mask[:1])) == 0.0


def test_modality_club_pairs_and_missing_rows():
    torch.manual_seed(0)
    emb = {m: torch.randn(8, 4, requires_grad=True) for m in ("S", "V", "T")}
    present = {"T": torch.tensor([True] * 6 + [False] * 2)}
    club = ModalityCLUB(modalities=("S", "V", "T"), dim=4, hidden_dim=8)
    assert club.pairs == [("S", "V"), ("S", "T"), ("V", "T")]
    ordered = ModalityCLUB(modalities=("S", "V", "T"), dim=4, hidden_dim=8, ordered=True)
    assert len(ordered.pairs) == 6
    loss = club.learning_loss(emb, present)
    expected = (
        club.estimators["S__V"].learning_loss(emb["S"], emb["V"])
        + club.estimators["S__T"].learning_loss(emb["S"][:6], emb["T"][:6])
        + club.estimators["V__T"].learning_loss(emb["V"][:6], emb["T"][:6])
    )
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(e.grad is None for e in emb.values())  # learning loss detaches the embeddings
    bound = club.mi_upper_bound(emb, present)
    bound.backward()
    assert emb["T"].grad[6:].abs().sum() == 0 and emb["T"].grad[:6].abs().sum() > 0
