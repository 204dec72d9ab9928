"""The parts of the training loop, one by one: the step, the divergence guard, early stopping, the checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from imvia_core.data.filtering import FilterIndex
from imvia_core.model import build_model
from imvia_core.training.checkpoint import Checkpointer
from imvia_core.training.guards import DivergenceGuard, EarlyStopper, TrainingDiverged
from imvia_core.training.step import Batch, Optimizers, build_targets, make_adam, make_optimizers, train_step

E, R = 30, 4  # R original relations; the model sees 2R ids


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("tucker", num_entities=E, num_relations_with_reciprocals=2 * R, config={"dim": 8})


def _batch(seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    triples = torch.stack(
        [torch.randint(0, E, (60,), generator=gen), torch.randint(0, 2 * R, (60,), generator=gen)]
        + [torch.randint(0, E, (60,), generator=gen)],
        dim=1,
    )
    index = FilterIndex.from_triples(triples, num_entities=E, num_relations_with_reciprocals=2 * R)
    heads, relations = index.unique_queries()
    return Batch(heads[:16], relations[:16], build_targets(index, heads[:16], relations[:16]))


def _params(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_targets_mark_every_known_tail() -> None:
    index = FilterIndex.from_triples(
        torch.tensor([[0, 1, 2], [0, 1, 3], [4, 0, 2]]), num_entities=5, num_relations_with_reciprocals=2
    )
    targets = build_targets(index, torch.tensor([0, 4]), torch.tensor([1, 0]))
    assert targets.tolist() == [[0, 0, 1, 1, 0], [0, 0, 1, 0, 0]]


def test_train_step_is_one_adam_step_on_the_loss() -> None:
    """The step equals a hand-written one: loss, backward, gradient norm, Adam (same seed, same weights after)."""
    batch = _batch()
    model = _model()
    torch.manual_seed(1)
    result = train_step(model, batch, make_optimizers(model, lr=1e-2))

    reference = _model()
    optimizer = make_adam(reference.main_parameters(), lr=1e-2)
    torch.manual_seed(1)
    loss, _ = reference.training_loss(batch.heads, batch.relations, batch.targets)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(reference.main_parameters(), float("inf"))
    optimizer.step()
    assert float(result.loss.detach()) == float(loss.detach()) and float(result.grad_norm) == float(norm)
    for got, want in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert "loss" in result.terms or "kgc" in result.terms


def test_train_step_calls_each_phase_in_order() -> None:
    model = _model()
    seen: list[int] = []
    train_step(model, _batch(), make_optimizers(model, lr=1e-3), on_phase=lambda: seen.append(len(seen)))
    assert seen == [0, 1, 2, 3]  # estimator step, forward, backward, optimizer


def test_gradient_clipping_bounds_the_step() -> None:
    model = _model()
    result = train_step(model, _batch(), make_optimizers(model, lr=1e-3), max_grad_norm=1e-3)
    clipped = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in model.main_parameters() if p.grad is not None))
    assert float(result.grad_norm) > 1e-3 and float(clipped) == pytest.approx(1e-3, rel=1e-3)


def test_guard_stops_a_non_finite_loss_before_the_weights_change(tmp_path: Path) -> None:
    model = _model()
    before = _params(model)

    def nan_loss(heads, relations, targets):
        loss, terms = model.training_loss(heads, relations, targets)
        return loss * float("nan"), terms

    guard = DivergenceGuard(tmp_path).at(epoch=2, batch=0)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 3, batch 1"):
        train_step(model, _batch(), make_optimizers(model, lr=1e-2), guard=guard, loss_fn=nan_loss)
    for got, want in zip(model.parameters(), before, strict=True):
        assert torch.equal(got, want)


def test_guard_stops_an_infinite_gradient_before_the_step(tmp_path: Path) -> None:
    model = _model()
    before = _params(model)
    first = next(iter(model.main_parameters()))
    first.register_hook(lambda grad: grad * float("inf"))
    with pytest.raises(TrainingDiverged, match="gradient norm became"):
        train_step(model, _batch(), make_optimizers(model, lr=1e-2), guard=DivergenceGuard(tmp_path))
    for got, want in zip(model.parameters(), before, strict=True):
        assert torch.equal(got, want)


def test_guard_on_validation(tmp_path: Path) -> None:
    DivergenceGuard(tmp_path).check_validation(0.25, epoch=4)
    with pytest.raises(TrainingDiverged, match="validation MRR became nan at epoch 4"):
        DivergenceGuard(tmp_path).check_validation(math.nan, epoch=4)


def test_early_stopper_counts_evaluations_without_improvement() -> None:
    state = {"best_mrr": -1.0, "best_epoch": 0, "bad_evals": 0}
    stopper = EarlyStopper(2, state)
    assert stopper.observe(0.1, 5) and not stopper.should_stop()
    assert not stopper.observe(0.1, 10) and not stopper.should_stop()  # equal is no improvement
    assert stopper.observe(0.2, 15) and state["bad_evals"] == 0 and state["best_epoch"] == 15
    assert not stopper.observe(0.15, 20) and not stopper.observe(0.19, 25)
    assert stopper.should_stop() and state["stopped_early"] and state["best_mrr"] == 0.2
    never = EarlyStopper(0, {"best_mrr": 0.5, "best_epoch": 1, "bad_evals": 99})
    assert not never.observe(0.1, 2) and not never.should_stop()


def test_checkpointer_saves_prunes_and_resumes(tmp_path: Path) -> None:
    model = _model()
    optimizers = make_optimizers(model, lr=1e-2, lr_decay=0.9)
    shuffle = torch.Generator().manual_seed(3)
    saver = Checkpointer(
        tmp_path, model=model, optimizers=optimizers, shuffle=shuffle, device=torch.device("cpu"), config={"a": 1}
    )
    for epoch in (1, 2, 3):
        train_step(model, _batch(epoch), optimizers)
        optimizers.scheduler.step()
        saver.save({"epoch": epoch, "best_mrr": 0.1 * epoch})
    saver.save_best(3)
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.pt")) == ["ckpt-000002.pt", "ckpt-000003.pt"]
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "best.pt.sha256").is_file()
    weights, rng, order = _params(model), torch.get_rng_state(), torch.randperm(10, generator=shuffle)

    fresh = _model(seed=5)
    fresh_optimizers = make_optimizers(fresh, lr=1e-2, lr_decay=0.9)
    fresh_shuffle = torch.Generator().manual_seed(0)
    torch.manual_seed(123)
    loader = Checkpointer(
        tmp_path, model=fresh, optimizers=fresh_optimizers, shuffle=fresh_shuffle, device=torch.device("cpu"), config={}
    )
    path, state = loader.resume()
    assert path.name == "ckpt-000003.pt" and state == {"epoch": 3, "best_mrr": pytest.approx(0.3)}
    for got, want in zip(fresh.parameters(), weights, strict=True):
        assert torch.equal(got, want)
    assert fresh_optimizers.scheduler.get_last_lr() == optimizers.scheduler.get_last_lr()
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(torch.randperm(10, generator=fresh_shuffle), order)


def test_checkpointer_without_checkpoints_resumes_nothing(tmp_path: Path) -> None:
    model = _model()
    saver = Checkpointer(
        tmp_path,
        model=model,
        optimizers=Optimizers(make_adam(model.main_parameters(), lr=1e-3)),
        shuffle=torch.Generator(),
        device=torch.device("cpu"),
        config={},
    )
    assert saver.resume() == (None, None)
