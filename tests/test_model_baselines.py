"""Structural baselines: closed-form 1-N scores against naive per-pair formulas, and learning on a tiny graph."""

from __future__ import annotations

import math

import pytest
import torch

from imvia_core.errors import ConfigError, InputError
from imvia_core.model import MODEL_NAMES, BaselineConfig, ComplEx, RotatE, TransE, build_model
from imvia_core.model.kernels import compiled, distances

torch.set_num_threads(1)

E, R = 30, 6  # R with reciprocals


def _queries(b: int = 7):
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, E, (b,), generator=gen), torch.randint(0, R, (b,), generator=gen)


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n != "imvia"])
def test_shapes_and_loss(name):
    torch.manual_seed(0)
    model = build_model(name, num_entities=E, num_relations_with_reciprocals=R, features={}, config={"dim": 8})
    h, r = _queries()
    scores = model.score_all(h, r)
    assert scores.shape == (7, E) and torch.isfinite(scores).all()
    targets = torch.zeros(7, E)
    targets[:, 0] = 1
    loss, logs = model.training_loss(h, r, targets)
    loss.backward()
    assert torch.isfinite(loss) and "kgc" in logs
    assert model.auxiliary_parameters() == [] and model.auxiliary_loss(h, r) is None
    with pytest.raises(InputError):
        model.score_all(h, r, branch="V")


@pytest.mark.parametrize("p_norm", [1, 2])
def test_transe_matches_naive_distance(p_norm):
    torch.manual_seed(0)
    model = TransE(
        num_entities=E, num_relations_with_reciprocals=R, config=BaselineConfig(dim=6, p_norm=p_norm, gamma=3.0)
    )
    h, r = _queries()
    a = model.entity_embeddings(h) + model.relation_embeddings(r)
    naive = torch.stack(
        [
            torch.stack([3.0 - torch.linalg.vector_norm(a[i] - t, ord=p_norm) for t in model.entity_embeddings.weight])
            for i in range(7)
        ]
    )
    torch.testing.assert_close(model.score_all(h, r), naive, rtol=1e-4, atol=1e-4)


def test_complex_matches_complex_arithmetic():
    torch.manual_seed(0)
    model = ComplEx(num_entities=E, num_relations_with_reciprocals=R, config=BaselineConfig(dim=8))
    h, r = _queries()

    def as_complex(x):
        re, im = x.chunk(2, dim=-1)
        return torch.complex(re, im)

    hc, rc = as_complex(model.entity_embeddings(h)), as_complex(model.relation_embeddings(r))
    tc = as_complex(model.entity_embeddings.weight)
    naive = ((hc * rc) @ tc.conj().t()).real
    torch.testing.assert_close(model.score_all(h, r), naive, rtol=1e-5, atol=1e-6)


def test_rotate_chunks_match_naive_and_gradients():
    torch.manual_seed(0)
    chunked = RotatE(
        num_entities=E, num_relations_with_reciprocals=R, config=BaselineConfig(dim=8, gamma=4.0, chunk_elements=40)
    )
    h, r = _queries()
    hc = torch.complex(*chunked.entity_embeddings(h).chunk(2, dim=-1))
    phase = chunked.relation_embeddings(r) * (math.pi / chunked.embedding_range)
    rc = torch.polar(torch.ones_like(phase), phase)
    tc = torch.complex(*chunked.entity_embeddings.weight.chunk(2, dim=-1))
    naive = 4.0 + chunked.bias - ((hc * rc).unsqueeze(1) - tc.unsqueeze(0)).abs().sum(-1)
    scores = chunked.score_all(h, r)
    torch.testing.assert_close(scores, naive, rtol=1e-5, atol=1e-5)
    weights = torch.randn(7, E)
    (scores * weights).sum().backward()
    grad_chunked = chunked.entity_embeddings.weight.grad.clone()
    chunked.zero_grad()
    (naive * weights).sum().backward()
    torch.testing.assert_close(grad_chunked, chunked.entity_embeddings.weight.grad, rtol=1e-4, atol=1e-5)


def _tiny_graph():
    """Relation k maps entity i to i + k + 1 (a chain every baseline can express), plus reciprocals."""
    heads, rels, tails = [], [], []
    for k in range(R // 2):
        h = torch.arange(E - k - 1)
        t = h + k + 1
        heads += [h, t]
        rels += [torch.full_like(h, k), torch.full_like(h, k + R // 2)]
        tails += [t, h]
    return torch.cat(heads), torch.cat(rels), torch.cat(tails)


def _mrr(model, h, r, t) -> float:
    model.eval()
    with torch.no_grad():
        s = model.score_all(h, r)
    true = s[torch.arange(len(t)), t].unsqueeze(1)
    rank = (s > true).sum(1).float() + 0.5 * ((s == true).sum(1).float() - 1) + 1
    model.train()
    return float((1.0 / rank).mean())


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n != "imvia"])
def test_training_raises_train_mrr_above_random(name):
    torch.manual_seed(0)
    cfg = {"dim": 16, "label_smoothing": 0.0}
    if name == "tucker":
        cfg.update(input_dropout=0.0, hidden_dropout1=0.0, hidden_dropout2=0.0)
    if name == "transe":  # RotatE and PairRE learn a logit offset and train at their default gamma (12)
        cfg.update(gamma=2.0)
    model = build_model(name, num_entities=E, num_relations_with_reciprocals=R, features={}, config=cfg)
    h, r, t = _tiny_graph()
    targets = torch.zeros(len(h), E)
    targets[torch.arange(len(h)), t] = 1.0
    random_mrr = sum(1.0 / k for k in range(1, E + 1)) / E
    before = _mrr(model, h, r, t)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        loss, _ = model.training_loss(h, r, targets)
        loss.backward()
        opt.step()
    after = _mrr(model, h, r, t)
    assert after > 2 * random_mrr and after > before, (before, after, random_mrr)


def test_factory_errors():
    with pytest.raises(ConfigError, match="model name"):
        build_model("transx", num_entities=E, num_relations_with_reciprocals=R)
    with pytest.raises(ConfigError, match="unknown key"):
        build_model("distmult", num_entities=E, num_relations_with_reciprocals=R, config={"dims": 4})
    with pytest.raises(ConfigError, match="even"):
        build_model("rotate", num_entities=E, num_relations_with_reciprocals=R, config={"dim": 7})
    with pytest.raises(InputError, match="modality"):
        build_model("imvia", num_entities=E, num_relations_with_reciprocals=R, features={"audio": None})
    with pytest.raises(ConfigError, match="p_norm"):
        BaselineConfig(p_norm=3)


def test_rotate_distance_gradcheck_float64():
    from imvia_core.model.kernels.distances import _RotateDistance

    torch.manual_seed(0)
    inputs = [torch.randn(n, 3, dtype=torch.float64, requires_grad=True) for n in (4, 4, 5, 5)]
    for block in (7, 1 << 10):  # many small blocks, and one block
        assert torch.autograd.gradcheck(lambda *x, b=block: _RotateDistance.apply(*x, b), inputs)


def test_pairre_blocks_match_naive_and_gradients():
    from imvia_core.model import PairRE

    torch.manual_seed(0)
    model = PairRE(
        num_entities=E, num_relations_with_reciprocals=R, config=BaselineConfig(dim=6, gamma=3.0, chunk_elements=30)
    )
    h, r = _queries()
    unit = torch.nn.functional.normalize
    r_head, r_tail = model.relation_embeddings(r).chunk(2, dim=-1)
    hn, tn = unit(model.entity_embeddings(h), dim=-1), unit(model.entity_embeddings.weight, dim=-1)
    naive = 3.0 + model.bias - ((hn * r_head).unsqueeze(1) - r_tail.unsqueeze(1) * tn.unsqueeze(0)).abs().sum(-1)
    scores = model.score_all(h, r)
    torch.testing.assert_close(scores, naive, rtol=1e-5, atol=1e-5)
    weights = torch.randn(scores.shape)
    (scores * weights).sum().backward()
    grads = [p.grad.clone() for p in (model.entity_embeddings.weight, model.relation_embeddings.weight)]
    model.zero_grad()
    (naive * weights).sum().backward()
    for got, p in zip(grads, (model.entity_embeddings.weight, model.relation_embeddings.weight)):
        torch.testing.assert_close(got, p.grad, rtol=1e-4, atol=1e-5)


def test_pair_distance_gradcheck_float64():
    from imvia_core.model.kernels.distances import _PairDistance

    torch.manual_seed(0)
    inputs = [torch.randn(n, 3, dtype=torch.float64, requires_grad=True) for n in (4, 4, 5)]
    for block in (7, 1 << 10):
        assert torch.autograd.gradcheck(lambda *x, b=block: _PairDistance.apply(*x, b), inputs)


def _pair_inputs(b: int = 5, e: int = 7, d: int = 4, dtype=torch.float32):
    gen = torch.Generator().manual_seed(3)
    return [torch.randn(n, d, generator=gen, dtype=dtype, requires_grad=True) for n in (b, b, e)]


def _value_and_grads(fn, inputs):
    for x in inputs:
        x.grad = None
    out = fn(*inputs)
    weights = torch.linspace(-1.0, 2.0, out.numel()).view_as(out).to(out.dtype)
    (out * weights).sum().backward()
    return out.detach(), [x.grad.clone() for x in inputs]


@pytest.mark.skipif(not compiled.compiled_kernels(torch.device("cpu")), reason="no C++ compiler for torch.compile")
def test_compiled_pair_distance_matches_blocked_and_reference(monkeypatch):
    monkeypatch.setattr(compiled, "_COMPILED", {})
    inputs = _pair_inputs()
    fast = _value_and_grads(lambda *x: distances.pair_distance(*x, block_elements=1 << 18), inputs)
    assert compiled._COMPILED["the PairRE distance"] is not False  # the compiled function ran, no fallback
    blocked = _value_and_grads(lambda *x: distances._PairDistance.apply(*x, 7), inputs)
    reference = _value_and_grads(distances.pair_distance_reference, inputs)
    for other in (blocked, reference):
        torch.testing.assert_close(fast[0], other[0], rtol=1e-5, atol=1e-5)
        for got, want in zip(fast[1], other[1]):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # another batch size and no autograd (an evaluation batch): the same values as the reference
    with torch.no_grad():
        a, s, t = (x.detach() for x in _pair_inputs(b=3, e=9))
        torch.testing.assert_close(
            distances.pair_distance(a, s, t, block_elements=1 << 18), distances.pair_distance_reference(a, s, t)
        )


def test_pair_distance_blocked_when_compiling_is_off_or_fails(monkeypatch):
    inputs = [x.detach() for x in _pair_inputs()]
    want = distances.pair_distance_reference(*inputs)
    monkeypatch.setenv(compiled.COMPILE_ENV, "0")
    assert not compiled.compiled_kernels(torch.device("cpu"))

    def refuse(*args, **kwargs):
        raise AssertionError("torch.compile called with compiling off")

    monkeypatch.setattr(compiled, "_COMPILED", {})
    monkeypatch.setattr(compiled.torch, "compile", refuse)
    torch.testing.assert_close(distances.pair_distance(*inputs, block_elements=30), want)

    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no compiler here")

        return run

    monkeypatch.setenv(compiled.COMPILE_ENV, "1")
    monkeypatch.setattr(compiled.torch, "compile", broken_compile)
    with pytest.warns(RuntimeWarning, match="PairRE distance"):
        torch.testing.assert_close(distances.pair_distance(*inputs, block_elements=30), want)
    assert compiled._COMPILED["the PairRE distance"] is False
    torch.testing.assert_close(distances.pair_distance(*inputs, block_elements=30), want)  # no second attempt


def test_runs_record_the_compile_setting(monkeypatch):
    from imvia_core.training.trainer import describe_hardware

    monkeypatch.setenv(compiled.COMPILE_ENV, "0")
    record = describe_hardware(torch.device("cpu"))["compiled_kernels"]  # results.json's "hardware"
    assert record["setting"] == "0" and isinstance(record["failed"], list)
    assert not compiled.compiled_kernels(torch.device("cpu"))
    monkeypatch.setenv(compiled.COMPILE_ENV, "auto")
    assert not compiled.compiled_kernels(torch.device("cpu"), by_default=False)  # opt-in kernels stay eager
