"""Modality disentanglement (paper Eq. 4) through the CLUB upper bound of mutual information.

Eq. 4 minimises ``I(e_m ; e_n)`` between the embeddings of two modalities of the same entity. The mutual information
is replaced by the sampled CLUB bound (Cheng et al., ICML 2020)::

    I_CLUB(x; y) = 1/N sum_i [ log q(y_i | x_i) - log q(y_{pi(i)} | x_i) ]

with a random permutation ``pi`` and a variational Gaussian ``q(y | x) = N(mu(x), diag(exp(logvar(x))))`` whose mean
and log-variance are small MLPs. ``q`` is fitted by maximum likelihood in an alternating step with its own optimizer
(:meth:`GaussianCLUB.learning_loss`); the main step uses :meth:`GaussianCLUB.mi_upper_bound` with the estimator
frozen: no gradient reaches the estimator's parameters, but it flows into ``x`` and ``y``.

Deviations from the upstream code, and why:

* The learning loss is the full Gaussian negative log-likelihood, including ``0.5 * logvar`` (the upstream copy
  drops it, so minimising its loss pushes the variance to its upper bound and the bound degenerates).
* The log-variance is bounded softly, ``logvar = b * tanh(raw / b)`` with ``b = 8``, instead of CLUB's ``tanh`` range
  ``(-1, 1)``: the embeddings here have a learned scale and their conditional variance can be far below ``e^-1``.
* :class:`ViewCLUB` applies the bound between the views (experts) of one modality, as the upstream code intends;
  it indexes the view dimension (the upstream code indexes the batch dimension by mistake).
* Pairs: one estimator per unordered pair ``{m, n}`` by default (``q(e_n | e_m)`` with ``m`` before ``n``); Eq. 4
  sums over ordered pairs ``m != n``, which counts each symmetric term twice: that factor is absorbed in ``mu``.
  ``ordered=True`` fits both directions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from imvia_core.model._utils import float32_region, rows_present, upcast

__all__ = ["GaussianCLUB", "ModalityCLUB", "ViewCLUB"]

_LOGVAR_BOUND = 8.0
_LOG_2PI = math.log(2.0 * math.pi)


class _MLP(nn.Module):
    """Two-layer perceptron ``Linear -> ReLU -> Linear`` that can run with its parameters detached."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.first = nn.Linear(in_dim, hidden_dim)
        self.second = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor, *, frozen: bool = False) -> torch.Tensor:
        w1, b1, w2, b2 = self.first.weight, self.first.bias, self.second.weight, self.second.bias
        if frozen:
            w1, b1, w2, b2 = w1.detach(), b1.detach(), w2.detach(), b2.detach()
        return F.linear(F.relu(F.linear(x, w1, b1)), w2, b2)


class GaussianCLUB(nn.Module):
    """Variational Gaussian ``q(y | x)`` and the sampled CLUB bound.

    :param x_dim: dim of ``x``.
    :param y_dim: dim of ``y``.
    :param hidden_dim: hidden width of the mean and log-variance MLPs.
    """

    def __init__(self, *, x_dim: int, y_dim: int, hidden_dim: int = 256) -> None:
        super().__init__()
        self.mean_net = _MLP(x_dim, hidden_dim, y_dim)
        self.logvar_net = _MLP(x_dim, hidden_dim, y_dim)

    def forward(self, x: torch.Tensor, *, frozen: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``q(y | x)``, each shape ``(N, y_dim)``."""
        mu = self.mean_net(x, frozen=frozen)
        logvar = _LOGVAR_BOUND * torch.tanh(self.logvar_net(x, frozen=frozen) / _LOGVAR_BOUND)
        return mu, logvar

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean over samples of ``log q(y_i | x_i)`` (full Gaussian, constant included), in float32.

        :param x: shape ``(N, x_dim)``.
        :param y: shape ``(N, y_dim)``.
        """
        with float32_region(x.device):
            x, y = upcast(x), upcast(y)
            mu, logvar = self(x)
            ll = -0.5 * ((y - mu) ** 2 * torch.exp(-logvar) + logvar + _LOG_2PI)
            return ll.sum(dim=-1).mean()

    def learning_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood to fit ``q`` (alternating step); the caller detaches ``x`` and ``y``."""
        return -self.log_likelihood(x, y)

    def mi_upper_bound(
        self, x: torch.Tensor, y: torch.Tensor, *, permutation: torch.Tensor | None = None, frozen: bool = True
    ) -> torch.Tensor:
        """Sampled CLUB bound ``mean_i [log q(y_i|x_i) - log q(y_pi(i)|x_i)]`` in float32.

        The log-variance and constant terms cancel between the two log-likelihoods and are left out.

        :param x: shape ``(N, x_dim)``.
        :param y: shape ``(N, y_dim)``.
        :param permutation: shape ``(N,)``; a fresh random permutation if ``None``.
        :param frozen: no gradient into the estimator's parameters (the main step); gradients still reach ``x, y``.
        :return: scalar; zero (still attached to ``x`` and ``y``) when ``N < 2``.
        """
        n = x.shape[0]
        if n < 2:
            return (x.sum() + y.sum()).float() * 0.0
        if permutation is None:
            permutation = torch.randperm(n, device=x.device)
        with float32_region(x.device):
            x, y = upcast(x), upcast(y)
            mu, logvar = self(x, frozen=frozen)
            inv_var = torch.exp(-logvar)
            positive = -0.5 * ((y - mu) ** 2 * inv_var).sum(dim=-1)
            negative = -0.5 * ((y[permutation] - mu) ** 2 * inv_var).sum(dim=-1)
            return (positive - negative).mean()


def _pair_key(a: str, b: str) -> str:
    return f"{a}__{b}"


class ModalityCLUB(nn.Module):
    """One :class:`GaussianCLUB` per pair of modalities (Eq. 4 between modalities).

    :param modalities: names of the modalities present, e.g. ``("S", "V", "T")``.
    :param dim: dim of every modality embedding.
    :param hidden_dim: hidden width of the estimators.
    :param ordered: one estimator per ordered pair instead of per unordered pair.
    """

    def __init__(self, *, modalities: Sequence[str], dim: int, hidden_dim: int = 256, ordered: bool = False) -> None:
        super().__init__()
        pairs = itertools.permutations(modalities, 2) if ordered else itertools.combinations(modalities, 2)
        self.pairs: list[tuple[str, str]] = list(pairs)
        self.estimators = nn.ModuleDict(
            {_pair_key(a, b): GaussianCLUB(x_dim=dim, y_dim=dim, hidden_dim=hidden_dim) for a, b in self.pairs}
        )

    def _rows(
        self, a: str, b: str, embeddings: Mapping[str, torch.Tensor], present: Mapping[str, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = embeddings[a], embeddings[b]
        keep = rows_present(present, (a, b))
        if keep is not None:
            x, y = x[keep], y[keep]
        return x, y

    def learning_loss(
        self, embeddings: Mapping[str, torch.Tensor], present: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Sum over pairs of the estimators' negative log-likelihoods; inputs are detached here.

        :param embeddings: name -> ``(N, dim)``.
        :param present: name -> ``(N,)`` bool; rows where either modality is missing are left out.
        """
        total = None
        for a, b in self.pairs:
            x, y = self._rows(a, b, embeddings, present)
            if x.shape[0] == 0:
                continue
            term = self.estimators[_pair_key(a, b)].learning_loss(x.detach(), y.detach())
            total = term if total is None else total + term
        if total is None:
            return self._zero()
        return total

    def mi_upper_bound(
        self, embeddings: Mapping[str, torch.Tensor], present: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Sum over pairs of the frozen CLUB bounds (the ``L_1`` term of Eq. 8)."""
        total = None
        for a, b in self.pairs:
            x, y = self._rows(a, b, embeddings, present)
            term = self.estimators[_pair_key(a, b)].mi_upper_bound(x, y, frozen=True)
            total = term if total is None else total + term
        if total is None:
            return self._zero()
        return total

    def _zero(self) -> torch.Tensor:
        p = next(self.parameters(), None)
        return torch.zeros((), device=p.device if p is not None else None)


class ViewCLUB(nn.Module):
    """CLUB between the views (experts) of one modality: the upstream placement of Eq. 4, on the view dimension.

    :param num_views: ``K``.
    :param dim: dim of each view.
    :param hidden_dim: hidden width of the estimators.
    :param ordered: one estimator per ordered pair of views instead of per unordered pair.
    """

    def __init__(self, *, num_views: int, dim: int, hidden_dim: int = 256, ordered: bool = False) -> None:
        super().__init__()
        rng = range(num_views)
        pairs = itertools.permutations(rng, 2) if ordered else itertools.combinations(rng, 2)
        self.pairs: list[tuple[int, int]] = list(pairs)
        self.estimators = nn.ModuleDict(
            {
                _pair_key(str(k), str(j)): GaussianCLUB(x_dim=dim, y_dim=dim, hidden_dim=hidden_dim)
                for k, j in self.pairs
            }
        )

    def _rows(
        self, views: torch.Tensor, mask: torch.Tensor | None, k: int, j: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = views[:, k], views[:, j]
        if mask is not None:
            keep = mask[:, k] & mask[:, j]
            x, y = x[keep], y[keep]
        return x, y

    def learning_loss(self, views: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Sum over view pairs of the negative log-likelihoods; inputs are detached here.

        :param views: shape ``(N, K, d)``; the view dimension is dim 1.
        :param mask: shape ``(N, K)`` bool.
        """
        total = views.new_zeros((), dtype=torch.float32)
        for k, j in self.pairs:
            x, y = self._rows(views, mask, k, j)
            if x.shape[0] == 0:
                continue
            total = total + self.estimators[_pair_key(str(k), str(j))].learning_loss(x.detach(), y.detach())
        return total

    def mi_upper_bound(self, views: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Sum over view pairs of the frozen CLUB bounds."""
        total = views.new_zeros((), dtype=torch.float32)
        for k, j in self.pairs:
            x, y = self._rows(views, mask, k, j)
            total = total + self.estimators[_pair_key(str(k), str(j))].mi_upper_bound(x, y, frozen=True)
        return total
