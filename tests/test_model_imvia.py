"""The assembled IMVIA model on tiny random data: every ablation switch, absent modalities, losses, caching."""

from __future__ import annotations

import pytest
import torch

from imvia_core.errors import ConfigError, InputError
from imvia_core.model import IMVIA, ExecutionOptions, IMVIAConfig, build_model
from imvia_core.types import ModalityFeatures

torch.set_num_threads(1)

E, R = 24, 6  # R counts reciprocal relations


def _features() -> tuple[ModalityFeatures, ModalityFeatures]:
    gen = torch.Generator().manual_seed(0)
    vis_mask = torch.ones(E, 1, dtype=torch.bool)
    vis_mask[5] = False
    visual = ModalityFeatures(
        views=torch.randn(E, 1, 20, generator=gen) * vis_mask.unsqueeze(-1), mask=vis_mask, modality="visual"
    )
    txt_mask = torch.rand(E, 3, generator=gen) > 0.3
    txt_mask[7] = False
    txt_mask[8] = True
    text = ModalityFeatures(
        views=torch.randn(E, 3, 10, generator=gen) * txt_mask.unsqueeze(-1), mask=txt_mask, modality="text"
    )
    return visual, text


def _model(visual=True, text=True, **overrides) -> IMVIA:
    torch.manual_seed(0)
    vis, txt = _features()
    execution, overrides = ExecutionOptions.split(overrides)
    cfg = IMVIAConfig(dim=8, club_hidden_dim=8, input_pool_dim=16, **overrides)
    return IMVIA(
        num_entities=E,
        num_relations_with_reciprocals=R,
        visual=vis if visual else None,
        text=txt if text else None,
        config=cfg,
        execution=execution,
    )


def _batch(b: int = 12):
    gen = torch.Generator().manual_seed(1)
    heads = torch.randint(0, E, (b,), generator=gen)
    heads[:3] = torch.tensor([5, 7, 5])  # entities without image / text, and a repeated head
    relations = torch.randint(0, R, (b,), generator=gen)
    targets = torch.zeros(b, E)
    targets[torch.arange(b), (heads * 3 + relations) % E] = 1.0
    return heads, relations, targets


ABLATIONS = [
    {},
    {"use_structure": False},
    {"use_visual": False},
    {"use_text": False},
    {"use_joint": False},
    {"decision_fusion": "uniform"},
    {"decision_fusion": "global"},
    {"mi_between": "views"},
    {"condition_candidates_on_relation": True},
    {"train_fused_score": False},
    {"fast_tucker": False},
    {"mu": 0.0, "lambda_align": 0.0},
    {"trainable_features": True, "feature_dropout": 0.1, "view_mode": "experts"},
]


@pytest.mark.parametrize("overrides", ABLATIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_forward_backward_every_ablation(overrides):
    model = _model(**overrides)
    heads, relations, targets = _batch()
    aux = model.auxiliary_loss(heads, relations)
    if aux is not None:
        aux.backward()
        assert all(p.grad is None for p in model.main_parameters())
        assert any(p.grad is not None for p in model.auxiliary_parameters())
        model.zero_grad(set_to_none=True)
    loss, logs = model.training_loss(heads, relations, targets)
    assert torch.isfinite(loss) and loss.dim() == 0
    for name in ("kgc", "align", "mi", "loss"):
        assert name in logs and torch.isfinite(logs[name])
    for b in model.score_branches:
        assert f"bce_{b}" in logs
    loss.backward()
    assert all(p.grad is None for p in model.auxiliary_parameters())
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    assert model.entity_embeddings.weight.grad is not None
    model.eval()
    with torch.no_grad():
        for b in model.branches:
            s = model.score_all(heads, relations, branch=b)
            assert s.shape == (12, E) and torch.isfinite(s).all()


def test_branches_follow_switches_and_absent_modalities():
    assert _model().branches == ("final", "S", "V", "T", "J")
    assert _model(use_structure=False).branches == ("final", "V", "T", "J")
    assert _model(visual=False).branches == ("final", "S", "T", "J")
    assert _model(text=False, use_joint=False).branches == ("final", "S", "V")
    structure_only = _model(visual=False, text=False)
    assert structure_only.branches == ("final", "S", "J")
    assert structure_only.auxiliary_loss(*_batch()[:2]) is None and structure_only.auxiliary_parameters() == []
    without_s = _model(use_structure=False)
    assert without_s.joint.modalities == ("V", "T") and ("S", "V") not in without_s.alignment.pairs
    with pytest.raises(ConfigError):
        _model(visual=False, text=False, use_structure=False)


def test_final_score_is_logit_of_fused_probability_and_inspect():
    model = _model()
    model.eval()
    heads, relations, _ = _batch()
    with torch.no_grad():
        scores = model.branch_scores(heads, relations)
        beta = model.decision.weights(model.relation_embeddings["S"](relations))
        p = sum(beta[:, i : i + 1] * torch.sigmoid(scores[b]) for i, b in enumerate(model.score_branches))
        torch.testing.assert_close(scores["final"], torch.log(p) - torch.log1p(-p), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model.score_all(heads, relations, branch="V"), scores["V"])
    info = model.inspect(heads, relations)
    assert info.view_weights["V"].shape == (12, 3) and info.view_weights["T"].shape == (12, 3)
    assert torch.all(info.view_weights["V"][0] == 0)  # entity 5 has no image
    assert torch.all(info.view_weights["T"][1] == 0)  # entity 7 has no text
    torch.testing.assert_close(info.view_weights["T"][3:].sum(1), info.view_mask["T"][3:].any(1).float())
    assert info.joint_modalities == ("S", "V", "T") and info.joint_weights.shape == (12, 3)
    assert float(info.joint_weights[0, 1]) == 0.0
    torch.testing.assert_close(info.decision_weights.sum(1), torch.ones(12))
    assert info.decision_branches == ("S", "V", "T", "J")
    with pytest.raises(InputError):
        model.score_all(heads, relations, branch="X")


def test_eval_cache_is_invalidated_by_parameter_updates():
    model = _model()
    model.eval()
    heads, relations, _ = _batch()
    with torch.no_grad():
        first = model.score_all(heads, relations)
        assert model._cache_value is not None
        again = model.score_all(heads, relations)
        torch.testing.assert_close(first, again)
        model.fusion["V"].projection.weight.mul_(2.0)
        changed = model.score_all(heads, relations)
    assert not torch.allclose(first, changed)
    model.clear_cache()
    with torch.no_grad():
        torch.testing.assert_close(model.score_all(heads, relations), changed)


def test_conditioned_candidates_equal_neutral_when_null_relation_is_the_query_relation():
    base = _model()
    cond = _model(condition_candidates_on_relation=True)
    cond.load_state_dict(base.state_dict())
    heads, _, _ = _batch()
    relations = torch.full_like(heads, 2)
    with torch.no_grad():
        for fusion in base.fusion.values():
            fusion.null_relation.copy_(base.relation_embeddings["S"].weight[2])
    base.eval()
    cond.eval()
    with torch.no_grad():
        torch.testing.assert_close(base.score_all(heads, relations), cond.score_all(heads, relations))
        mixed = torch.tensor([0, 1, 2, 1] * 3)
        assert not torch.allclose(base.score_all(heads, mixed), cond.score_all(heads, mixed))


def test_a_few_steps_reduce_the_loss():
    model = _model(input_dropout=0.0, hidden_dropout1=0.0, hidden_dropout2=0.0)
    heads, relations, targets = _batch(24)
    opt = torch.optim.Adam(model.main_parameters(), lr=1e-2)
    aux_opt = torch.optim.Adam(model.auxiliary_parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        aux_opt.zero_grad()
        model.auxiliary_loss(heads, relations).backward()
        aux_opt.step()
        opt.zero_grad()
        loss, logs = model.training_loss(heads, relations, targets)
        loss.backward()
        opt.step()
        losses.append(float(logs["kgc"]))
    assert losses[-1] < 0.7 * losses[0]


def test_autocast_bfloat16_cpu():
    model = _model()
    heads, relations, targets = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logs = model.training_loss(heads, relations, targets)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(model.score_all(heads, relations)).all()


def test_bad_inputs_raise_clear_errors():
    model = _model()
    heads, relations, targets = _batch()
    with pytest.raises(InputError, match="targets"):
        model.training_loss(heads, relations, targets[:, :-1])
    with pytest.raises(InputError, match="batch"):
        model.score_all(heads, relations[:-1])
    with pytest.raises(ConfigError, match="unknown key"):
        IMVIAConfig.from_dict({"dim": 8, "dimension": 8})
    with pytest.raises(ConfigError, match="label_smoothing"):
        IMVIAConfig(label_smoothing=1.5)
    vis, _ = _features()
    with pytest.raises(InputError, match="entity rows"):
        IMVIA(num_entities=E + 1, num_relations_with_reciprocals=R, visual=vis)
    with pytest.raises(ConfigError, match="views"):
        build_model(
            "imvia",
            num_entities=E,
            num_relations_with_reciprocals=R,
            features={"text": _features()[1]},
            config={"dim": 8, "mi_between": "views"},
        )
