"""What ends a run besides its last epoch: divergence (a non-finite loss, gradient or validation score) and
early stopping (no better validation MRR for ``patience`` evaluations)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from imvia_core.errors import ImviaError

__all__ = ["DivergenceGuard", "EarlyStopper", "TrainingDiverged"]


class TrainingDiverged(ImviaError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class DivergenceGuard:
    """Raises :class:`TrainingDiverged` with the place (epoch and batch, 1-based) where a value stopped being finite.

    :param run_dir: the run directory, whose last good checkpoint the message points to.
    """

    run_dir: Path | str
    epoch: int = 0
    batch: int = 0

    def at(self, epoch: int, batch: int) -> DivergenceGuard:
        """Set the place (0-based epoch and batch, as the loop counts them); returns the guard."""
        self.epoch, self.batch = epoch, batch
        return self

    def check_loss(self, loss: torch.Tensor, terms: dict[str, Any]) -> None:
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"loss became {loss.item()} at epoch {self.epoch + 1}, batch {self.batch + 1} "
                f"(terms: {', '.join(f'{k}={float(v):.4g}' for k, v in terms.items())}); "
                f"the last good checkpoint in {self.run_dir} is kept. Lower the learning rate or check the features."
            )

    def check_grad_norm(self, grad_norm: torch.Tensor, loss: torch.Tensor) -> None:
        if not torch.isfinite(grad_norm):
            raise TrainingDiverged(
                f"gradient norm became {float(grad_norm)} at epoch {self.epoch + 1}, batch {self.batch + 1} (loss "
                f"{float(loss.detach()):.4g}); the last good checkpoint in {self.run_dir} is kept. Lower the learning "
                "rate, set max_grad_norm, or check the features."
            )

    def check_validation(self, mrr: float, epoch: int) -> None:
        """``epoch``: 1-based, the epoch just validated."""
        if not math.isfinite(mrr):
            raise TrainingDiverged(
                f"validation MRR became {mrr} at epoch {epoch}: the model's scores are not finite numbers; "
                f"the last good checkpoint in {self.run_dir} is kept. Lower the learning rate or check the features."
            )


class EarlyStopper:
    """Model selection on validation MRR: remembers the best, counts evaluations without improvement.

    It reads and writes ``best_mrr``, ``best_epoch``, ``bad_evals`` and ``stopped_early`` of the run's ``state``
    dict, which every checkpoint saves, so a resumed run goes on counting where it stopped.

    :param patience: evaluations without improvement before stopping; 0 never stops.
    """

    def __init__(self, patience: int, state: dict[str, Any]) -> None:
        self.patience = patience
        self.state = state

    def observe(self, mrr: float, epoch: int) -> bool:
        """Record the validation MRR of ``epoch`` (1-based); ``True`` when it is the best so far."""
        if mrr > self.state["best_mrr"]:
            self.state.update(best_mrr=mrr, best_epoch=epoch, bad_evals=0)
            return True
        self.state["bad_evals"] += 1
        return False

    def should_stop(self) -> bool:
        """Whether ``patience`` evaluations in a row brought no improvement; marks ``stopped_early`` in the state."""
        stop = self.patience > 0 and self.state["bad_evals"] >= self.patience
        if stop:
            self.state["stopped_early"] = True
        return stop
