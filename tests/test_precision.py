"""bf16 training on a CPU (``TrainConfig.precision``): detection, the step against float32, ranks in float32."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from imvia_core.errors import ConfigError
from imvia_core.training import precision
from imvia_core.training.config import profile_config
from imvia_core.training.experiments import _digest
from imvia_core.training.trainer import prepare_run

#: the tolerance of one bf16 training step against float32 (8 significant bits in the GEMM inputs, sums in float32)
LOSS_RTOL = 2e-2
GRAD_COSINE = 0.99


def _cfg(**overrides):
    return profile_config("ci", "synthetic", **{"dim": 16, **overrides})


def test_detection_never_assumes(monkeypatch) -> None:
    ok, why = precision.cpu_bf16_support()
    assert isinstance(ok, bool) and why
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: (False, "no avx512_bf16 here"))
    with pytest.raises(ConfigError, match="AVX-512-BF16 or AMX .*no avx512_bf16 here"):
        precision.check_precision("bf16", torch.device("cpu"))
    precision.check_precision("fp32", torch.device("cpu"))
    with pytest.raises(ConfigError, match="precision"):
        _cfg(precision="fp16")


def test_fp32_default_keeps_run_names() -> None:
    """The default precision leaves the configuration digest (and so the run directories) as before the option."""
    from imvia_core.training.config import LATER_FIELDS

    cfg = _cfg()
    assert cfg.precision == "fp32" and "precision" in LATER_FIELDS
    assert _digest(cfg) != _digest(dataclasses.replace(cfg, precision="bf16"))


def test_bf16_training_step_is_close_to_fp32() -> None:
    """The same batch, the same weights: loss within LOSS_RTOL, every parameter gradient within GRAD_COSINE."""
    ctx = prepare_run(_cfg())
    model = ctx.model
    model.train()
    g = torch.Generator().manual_seed(0)
    heads = torch.randint(0, ctx.graph.num_entities, (64,), generator=g)
    relations = torch.randint(0, ctx.graph.num_relations_with_reciprocals, (64,), generator=g)
    targets = (torch.rand(64, ctx.graph.num_entities, generator=g) < 0.01).float()

    def step(bf16: bool):
        torch.manual_seed(1)  # the same dropout masks
        model.zero_grad(set_to_none=True)
        with precision.training_autocast("bf16" if bf16 else "fp32", torch.device("cpu")):
            loss, _ = model.training_loss(heads, relations, targets)
        loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        return loss.detach(), grads

    loss32, grads32 = step(False)
    loss16, grads16 = step(True)
    assert loss16.dtype == torch.float32  # the loss itself is computed in float32
    assert torch.allclose(loss16, loss32, rtol=LOSS_RTOL), (float(loss16), float(loss32))
    assert grads16.keys() == grads32.keys()
    for name, g32 in grads32.items():
        g16 = grads16[name]
        assert g16.dtype == torch.float32, name  # parameters and their gradients stay float32
        if g32.norm() > 1e-8:
            cos = torch.nn.functional.cosine_similarity(g16.flatten(), g32.flatten(), dim=0)
            assert cos > GRAD_COSINE, (name, float(cos))


def test_bf16_training_evaluates_in_float32() -> None:
    """A few bf16 training steps (the trainer's autocast); the evaluation ranks of the trained weights are the same
    for a bf16 and an fp32 configuration, even with bf16 autocast active around the evaluation."""
    from imvia_core.training.trainer import _autocast, make_adam

    cfg = _cfg(precision="bf16", dim=8)
    ctx16 = prepare_run(cfg)
    assert isinstance(_autocast(cfg, torch.device("cpu")), torch.autocast)
    model = ctx16.model
    optimizer = make_adam(model.main_parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        heads = torch.randint(0, ctx16.graph.num_entities, (256,), generator=g)
        relations = torch.randint(0, ctx16.graph.num_relations_with_reciprocals, (256,), generator=g)
        targets = (torch.rand(256, ctx16.graph.num_entities, generator=g) < 0.01).float()
        with _autocast(cfg, torch.device("cpu")):
            loss, _ = model.training_loss(heads, relations, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(v.dtype == torch.float32 for s in optimizer.state.values() for v in s.values() if v.dim() > 0)
    ctx32 = dataclasses.replace(ctx16, config=dataclasses.replace(cfg, precision="fp32"))

    def ranks(ctx):
        from imvia_core.evaluation import evaluate

        return evaluate(
            lambda h, r: ctx.model.score_all(h, r),
            ctx.graph.split("valid"),
            num_entities=ctx.graph.num_entities,
            num_relations=ctx.graph.num_relations,
            filter_index=ctx.graph.filter_index,
            progress=False,
            keep_ranks=True,
        ).ranks

    model.eval()
    with torch.no_grad():
        reference = ranks(ctx32)
        with precision.training_autocast("bf16", torch.device("cpu")):
            under_autocast = ranks(ctx16)
    for kind in ("optimistic", "pessimistic", "realistic"):
        assert torch.equal(reference[kind], under_autocast[kind]), kind


def test_fused_loss_gemms_in_bf16_match_fp32() -> None:
    """Under CPU bf16 autocast the fused 1-N loss scores in bf16 GEMMs; loss and gradients stay close to float32."""
    from imvia_core.model.kernels.bce import one_to_n_bce_linear

    g = torch.Generator().manual_seed(0)
    qs = [torch.randn(300, 24, generator=g, requires_grad=True) for _ in range(2)]
    ts = [(0.3 * torch.randn(500, 24, generator=g)).requires_grad_() for _ in range(2)]
    bs = [torch.tensor(-3.0, requires_grad=True) for _ in range(2)]
    targets = (torch.rand(300, 500, generator=g) < 0.02).float()
    lw = torch.log_softmax(torch.randn(300, 2, generator=g), dim=1).requires_grad_()
    leaves = [*qs, *ts, *bs, lw]

    def run(bf16: bool):
        with precision.training_autocast("bf16" if bf16 else "fp32", torch.device("cpu")):
            loss, terms = one_to_n_bce_linear(qs, ts, bs, targets, label_smoothing=0.1, log_weights=lw)
        grads = torch.autograd.grad(loss, leaves)
        return loss.detach(), grads

    loss32, grads32 = run(False)
    loss16, grads16 = run(True)
    assert loss16.dtype == torch.float32
    assert torch.allclose(loss16, loss32, rtol=LOSS_RTOL)
    for g32, g16 in zip(grads32, grads16):
        assert g16.dtype == torch.float32
        cos = torch.nn.functional.cosine_similarity(g16.flatten(), g32.flatten(), dim=0, eps=1e-12)
        assert cos > GRAD_COSINE, float(cos)
