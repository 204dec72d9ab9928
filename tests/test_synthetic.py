"""The synthetic graph has the properties the model tests rely on."""

from __future__ import annotations

import torch

from imvia_core.data.synthetic import SyntheticConfig, generate_synthetic


def test_seeded_and_deterministic() -> None:
    a = generate_synthetic(SyntheticConfig(seed=3, num_entities=200))
    b = generate_synthetic(SyntheticConfig(seed=3, num_entities=200))
    c = generate_synthetic(SyntheticConfig(seed=4, num_entities=200))
    assert torch.equal(a.graph.train, b.graph.train) and torch.equal(a.visual.views, b.visual.views)
    assert not torch.equal(a.graph.train, c.graph.train)


def test_default_size_and_splits() -> None:
    kg = generate_synthetic()
    stats = kg.graph.statistics()
    assert stats["entities"] == 1000
    assert 5000 < stats["train"] < 25000
    assert stats["valid"] > 200 and stats["test"] > 200
    # every entity id is in range and every split uses original relations only
    for split in ("train", "valid", "test"):
        t = kg.graph.split(split)
        assert t[:, [0, 2]].max() < 1000 and t[:, 1].max() < kg.graph.num_relations


def test_sparse_entities_have_one_train_triple_and_many_eval_triples() -> None:
    kg = generate_synthetic()
    g = kg.graph
    train_count = torch.bincount(torch.cat([g.train[:, 0], g.train[:, 2]]), minlength=g.num_entities)
    assert (train_count[kg.sparse] == 1).all()
    evals = torch.cat([g.valid, g.test])
    share = kg.sparse[evals[:, 0]].float().mean()
    assert share > 0.25  # a good part of the evaluation needs the modal views


def test_views_masks_distractors_and_missing_modalities() -> None:
    cfg = SyntheticConfig()
    kg = generate_synthetic(cfg)
    for name, feats in kg.features.items():
        rel = kg.view_relevance[name]
        assert feats.views.shape[:2] == feats.mask.shape == rel.shape
        assert not (rel & ~feats.mask).any()  # relevant views are real views
        has = feats.has_modality
        assert (~has).sum() > 0  # some entities miss the modality
        assert (rel.any(1) == has).all()  # every entity with the modality keeps a relevant view
        distractor_share = ((feats.mask & ~rel).sum() / feats.mask.sum()).item()
        assert 0.1 < distractor_share < 0.6
        assert torch.all(feats.views[~feats.mask] == 0)


def test_relevant_views_carry_the_latent_and_distractors_do_not() -> None:
    kg = generate_synthetic()
    feats, rel = kg.visual, kg.view_relevance["visual"]
    # a linear read-out of the latent from relevant views works, from distractors it does not
    x_rel = feats.views[rel]
    x_dis = feats.views[feats.mask & ~rel]
    z_rel = kg.latent.unsqueeze(1).expand(-1, feats.max_views, -1)[rel]
    z_dis = kg.latent.unsqueeze(1).expand(-1, feats.max_views, -1)[feats.mask & ~rel]
    w = torch.linalg.lstsq(x_rel, z_rel).solution
    err_rel = ((x_rel @ w - z_rel) ** 2).mean() / z_rel.var()
    err_dis = ((x_dis @ w - z_dis) ** 2).mean() / z_dis.var()
    assert err_rel < 0.6 < err_dis
