"""Multi-view fusion (Eq. 1-3) against a loop-based reading of the equations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from imvia_core.errors import ConfigError
from imvia_core.model.fusion import MultiViewFusion
from imvia_core.types import ModalityFeatures

torch.set_num_threads(1)


def _naive(module: MultiViewFusion, entity_emb, relation_emb, views, mask):
    """Python loops over entities and valid views: gate, cosine, softmax, weighted sum, projection."""
    w_g = torch.cat([module.gate_entity.weight, module.gate_relation.weight], dim=1)
    b_g = module.gate_entity.bias
    outs, weights = [], []
    for i in range(views.shape[0]):
        rel = relation_emb if relation_emb.dim() == 1 else relation_emb[i]
        g = torch.sigmoid(w_g @ torch.cat([entity_emb[i], rel]) + b_g)
        valid = [k for k in range(views.shape[1]) if bool(mask[i, k])]
        alpha = torch.zeros(views.shape[1], dtype=views.dtype)
        if not valid:
            outs.append(torch.zeros(module.out_dim, dtype=views.dtype))
            weights.append(alpha)
            continue
        cos = torch.stack([F.cosine_similarity(g * views[i, k], views[i, k], dim=0) for k in valid])
        soft = torch.exp(cos / module.temperature)
        soft = soft / soft.sum()
        fused = sum(soft[j] * views[i, k] for j, k in enumerate(valid))
        for j, k in enumerate(valid):
            alpha[k] = soft[j]
        outs.append(module.projection(fused))
        weights.append(alpha)
    return torch.stack(outs), torch.stack(weights)


def _multiview_features(num_entities=6, views=4, dim=5, dtype=torch.float32):
    torch.manual_seed(0)
    x = torch.randn(num_entities, views, dim, dtype=dtype)
    mask = torch.rand(num_entities, views) > 0.3
    mask[0] = False  # an entity with no view
    mask[1] = torch.tensor([True] + [False] * (views - 1))  # exactly one view
    mask[2] = True
    x = x * mask.unsqueeze(-1)
    return ModalityFeatures(views=x, mask=mask, modality="visual")


def test_true_views_match_loop_and_mask_empty_entity():
    feats = _multiview_features()
    module = MultiViewFusion(features=feats, entity_dim=3, relation_dim=2, out_dim=4, temperature=0.5)
    assert not module.uses_experts and module.num_views == 4
    e = torch.randn(6, 3, requires_grad=True)
    r = torch.randn(6, 2, requires_grad=True)
    out = module(e, r)
    ref_emb, ref_w = _naive(module, e, r, feats.views, feats.mask)
    torch.testing.assert_close(out.embedding, ref_emb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.view_weights, ref_w, rtol=1e-5, atol=1e-6)
    assert out.has_view.tolist() == feats.has_modality.tolist()
    assert torch.all(out.embedding[0] == 0) and torch.all(out.view_weights[0] == 0)
    torch.testing.assert_close(out.view_weights[1], torch.tensor([1.0, 0.0, 0.0, 0.0]))
    valid_rows = out.has_view
    torch.testing.assert_close(out.view_weights[valid_rows].sum(1), torch.ones(int(valid_rows.sum())))
    (out.embedding.sum() + out.view_weights.pow(2).sum()).backward()
    for p in [e, r, *module.parameters()]:
        assert p.grad is None or torch.isfinite(p.grad).all()
    assert torch.all(e.grad[0] == 0)  # no view: the gate cannot matter


def test_expert_views_match_loop_with_pooling():
    torch.manual_seed(1)
    vec = torch.randn(5, 1, 12)
    mask = torch.ones(5, 1, dtype=torch.bool)
    mask[3] = False
    feats = ModalityFeatures(views=vec, mask=mask, modality="text")
    module = MultiViewFusion(
        features=feats, entity_dim=3, relation_dim=3, out_dim=4, num_experts=3, expert_dim=6, input_pool_dim=4
    )
    assert module.uses_experts and module.num_views == 3 and module.view_dim == 6
    pooled = vec[:, 0].view(5, 4, 3).mean(-1)  # 12 -> 4 by averaging contiguous blocks
    torch.testing.assert_close(module.feature_table[:, 0], pooled)
    views, vmask = module.views()
    expected_views = (pooled @ module.experts.weight.t() + module.experts.bias).view(5, 3, 6)
    torch.testing.assert_close(views, expected_views)
    assert vmask.shape == (5, 3) and not vmask[3].any() and vmask[0].all()
    e, r = torch.randn(5, 3), torch.randn(5, 3)
    out = module(e, r)
    ref_emb, ref_w = _naive(module, e, r, views.detach(), vmask)
    torch.testing.assert_close(out.embedding, ref_emb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.view_weights, ref_w, rtol=1e-5, atol=1e-6)
    assert torch.all(out.embedding[3] == 0)


def test_subset_and_precomputed_views_and_null_relation():
    feats = _multiview_features()
    module = MultiViewFusion(features=feats, entity_dim=3, relation_dim=2, out_dim=4)
    with torch.no_grad():
        module.null_relation.copy_(torch.tensor([0.3, -0.7]))
    e_all = torch.randn(6, 3)
    ids = torch.tensor([4, 2, 2])
    full = module(e_all, None)  # null relation for every entity
    explicit = module(e_all, module.null_relation.detach().expand(6, 2))
    torch.testing.assert_close(full.embedding, explicit.embedding)
    sub = module(e_all[ids], None, entity_ids=ids)
    torch.testing.assert_close(sub.embedding, full.embedding[ids])
    v, m = module.views()
    pre = module(e_all[ids], None, views=(v[ids], m[ids]))
    torch.testing.assert_close(pre.embedding, full.embedding[ids])


def test_gradcheck_float64():
    feats = _multiview_features(num_entities=4, views=3, dim=4, dtype=torch.float64)
    module = MultiViewFusion(features=feats, entity_dim=2, relation_dim=2, out_dim=3, temperature=0.3).double()
    e = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    r = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    views = feats.views.clone().requires_grad_(True)

    def fn(e_, r_, v_):
        out = module(e_, r_, views=(v_, feats.mask))
        return out.embedding, out.view_weights

    assert torch.autograd.gradcheck(fn, (e, r, views), eps=1e-6, atol=1e-5)


def test_temperature_sharpens_and_config_errors():
    feats = _multiview_features()
    e, r = torch.randn(6, 3), torch.randn(6, 2)
    soft = MultiViewFusion(features=feats, entity_dim=3, relation_dim=2, out_dim=4, temperature=1.0)
    sharp = MultiViewFusion(features=feats, entity_dim=3, relation_dim=2, out_dim=4, temperature=0.01)
    sharp.load_state_dict(soft.state_dict())
    w_soft = soft(e, r).view_weights[2]
    w_sharp = sharp(e, r).view_weights[2]
    assert w_sharp.max() > w_soft.max()
    assert math.isclose(float(w_sharp.detach().sum()), 1.0, rel_tol=1e-5)
    with pytest.raises(ConfigError):
        MultiViewFusion(features=feats, entity_dim=3, relation_dim=2, out_dim=4, view_mode="bogus")
    with pytest.raises(ConfigError):
        MultiViewFusion(features=feats, entity_dim=3, relation_dim=2, out_dim=4, temperature=0.0)


def test_experts_on_multiview_mean_and_trainable_features():
    feats = _multiview_features()
    module = MultiViewFusion(
        features=feats, entity_dim=3, relation_dim=2, out_dim=4, view_mode="experts", trainable_features=True
    )
    assert module.uses_experts
    torch.testing.assert_close(module.feature_table[:, 0], feats.mean_vectors())
    assert any(p is module.feature_table for p in module.parameters())
    out = module(torch.randn(6, 3), torch.randn(6, 2))
    out.embedding.sum().backward()
    assert module.feature_table.grad is not None and torch.isfinite(module.feature_table.grad).all()


def test_view_cosines_closed_form_backward_equals_plain_autograd():
    from imvia_core.model.kernels.view_cosines import view_cosines, view_cosines_reference

    gen = torch.Generator().manual_seed(4)
    views = torch.randn(6, 3, 5, generator=gen, dtype=torch.float64)
    views[2, 1] = 0.0  # a padding view: cosine 0, finite gradient
    gate = torch.sigmoid(torch.randn(6, 5, generator=gen, dtype=torch.float64))
    views.requires_grad_()
    gate.requires_grad_()
    assert torch.autograd.gradcheck(view_cosines, (views, gate))
    upstream = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    fast, plain = view_cosines(views, gate), view_cosines_reference(views, gate)
    torch.testing.assert_close(fast, plain)
    for a, b in zip(
        torch.autograd.grad(fast, (views, gate), upstream), torch.autograd.grad(plain, (views, gate), upstream)
    ):
        torch.testing.assert_close(a, b)
        assert torch.isfinite(a).all()
