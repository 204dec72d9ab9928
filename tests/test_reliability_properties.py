"""Property-based tests (hypothesis): whatever the input, a reader either returns something valid or raises the
project's own error, and the evaluator's ranks obey their bounds end to end.

Complements ``test_data_parsing.py`` (round trips, garbage lines) and ``test_evaluation_properties.py`` (ranks of
one score matrix): here the readers get arbitrary bytes and text, the two unknown-name policies are checked against
each other, the configuration gets values of every type, and :func:`~imvia_core.evaluation.evaluate` is checked as a
whole (both directions, batches, filtering).
"""

from __future__ import annotations

import io
import math
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from imvia_core.data.graph import add_reciprocals
from imvia_core.data.parsing import read_id_map, read_name_table, read_triples
from imvia_core.errors import ConfigError, DataFormatError, ImviaError, InputError
from imvia_core.evaluation import FilterIndex, evaluate
from imvia_core.features.inputs import read_text_sources
from imvia_core.features.io import load_features, save_view_features
from imvia_core.training.config import TrainConfig
from imvia_core.types import ModalityFeatures

_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# ----------------------------------------------------------------------------------------------- text readers

#: text made of the characters that matter to the readers, so that near-valid lines are frequent
_line_text = st.text(
    st.sampled_from(list("ab01 \t.\r\ufeff-é")) | st.characters(blacklist_categories=("Cs",)), max_size=12
)
_file_text = st.lists(_line_text, max_size=8).map("\n".join)


@_SETTINGS
@given(text=_file_text)
def test_id_map_parses_to_contiguous_ids_or_names_the_line(tmp_path, text) -> None:
    path = _write(tmp_path / "entity2id.txt", text)
    try:
        mapping = read_id_map(path)
    except DataFormatError as err:
        assert err.path == str(path)
        assert err.line is None or 1 <= err.line <= text.count("\n") + 1
        assert str(err).startswith(f"{path}:") and "; expected " in str(err)
    else:
        assert sorted(mapping.values()) == list(range(len(mapping)))
        assert all(name and " " not in name and "\t" not in name for name in mapping)


@_SETTINGS
@given(text=_file_text)
def test_name_table_parses_or_names_the_line(tmp_path, text) -> None:
    path = _write(tmp_path / "names.tsv", "id\tname\n" + text)
    try:
        table = read_name_table(path, required_columns=("name",))
    except DataFormatError as err:
        assert err.line is None or 2 <= err.line <= text.count("\n") + 2
    else:
        assert set(table.rows) == set(table.lines)
        assert all(set(row) == set(table.columns) for row in table.rows.values())


@_SETTINGS
@given(text=_file_text)
def test_view_table_parses_or_names_the_line(tmp_path, text) -> None:
    path = _write(tmp_path / "texts.tsv", text)
    try:
        sources = read_text_sources(path)
    except DataFormatError as err:
        assert err.line is not None and 1 <= err.line <= text.count("\n") + 1
    else:
        assert all(s.entity and s.entity == s.entity.strip() for s in sources)
        assert all(s.where.startswith(f"{path}:") for s in sources)


ENTITIES = {"a": 0, "b": 1, "c": 2}
RELATIONS = {"r": 0, "s": 1}
_known_line = st.tuples(st.sampled_from("abc"), st.sampled_from("rs"), st.sampled_from("abc")).map(" ".join)
_unknown_line = st.tuples(st.sampled_from("abz"), st.sampled_from("rsq"), st.sampled_from("acy")).map(" ".join)


@_SETTINGS
@given(
    lines=st.lists(st.one_of(_known_line, _unknown_line, st.just("")), max_size=15),
    bom=st.booleans(),
    eol=st.sampled_from(["\n", "\r\n"]),
    dots=st.booleans(),
)
def test_error_and_drop_policies_agree_on_unknown_names(tmp_path, lines, bom, eol, dots) -> None:
    """The error names the first line that ``drop`` skips, and counts as many lines as ``drop`` drops."""
    text = ("\ufeff" if bom else "") + eol.join(f"{ln} ." if dots and ln else ln for ln in lines) + eol
    path = _write(tmp_path / "valid.txt", text)
    dropped = read_triples(path, entity_to_id=ENTITIES, relation_to_id=RELATIONS, unknown="drop")
    assert dropped.triples.shape == (len([ln for ln in lines if ln]) - dropped.num_dropped, 3)
    try:
        kept = read_triples(path, entity_to_id=ENTITIES, relation_to_id=RELATIONS)
    except DataFormatError as err:
        assert dropped.num_dropped > 0
        assert err.line == dropped.dropped_lines[0]  # physical line: blank lines and the BOM do not shift it
        assert "vocabulary" in err.expected
        if dropped.num_dropped > 1:
            assert f"the first of {dropped.num_dropped} lines" in err.found
        else:
            assert "lines with names outside" not in err.found
    else:
        assert dropped.num_dropped == 0 and torch.equal(kept.triples, dropped.triples)


# ----------------------------------------------------------------------------------------------- binary files


def _seed_files() -> list[tuple[str, bytes]]:
    matrix = torch.arange(6, dtype=torch.float32).reshape(2, 3) + 1
    out = []
    buffer = io.BytesIO()
    torch.save(matrix, buffer)
    out.append((".pth", buffer.getvalue()))
    buffer = io.BytesIO()
    torch.save({"a": matrix[0], "b": matrix[1]}, buffer)
    out.append((".pth", buffer.getvalue()))
    out.append((".pkl", pickle.dumps(matrix.numpy(), protocol=4)))
    out.append((".pkl", pickle.dumps({0: np.ones(3), 1: np.zeros(3)}, protocol=2)))
    return out


_SEEDS = _seed_files()


@st.composite
def _damaged_files(draw) -> tuple[str, bytes]:
    """A valid feature file (or arbitrary bytes) with some bytes changed, inserted or cut off."""
    if draw(st.integers(0, 4)) > 0:
        suffix, data = draw(st.sampled_from(_SEEDS))
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            position = draw(st.integers(0, len(data)))
            if draw(st.booleans()) and position < len(data):
                data[position] = draw(st.integers(0, 255))
            else:
                data[position:position] = draw(st.binary(min_size=1, max_size=4))
        if draw(st.integers(0, 3)) == 0:
            data = data[: draw(st.integers(0, len(data)))]
        return suffix, bytes(data)
    return draw(st.sampled_from([".pth", ".pkl", ".safetensors"])), draw(st.binary(max_size=64))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=_damaged_files())
def test_damaged_feature_files_are_refused_with_the_projects_error(tmp_path, file) -> None:
    suffix, data = file
    path = _write(tmp_path / f"img_features{suffix}", data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the pickle protocol of damaged files
        try:
            features = load_features(path, num_entities=2, entity_names=None)
        except ImviaError as err:
            assert str(path) in str(err)
            return
    # a change that leaves a readable file still gives features that pass every check
    assert features.num_entities == 2 and torch.isfinite(features.views).all()
    assert features.mask.dtype == torch.bool and features.mask.shape == features.views.shape[:2]


@_SETTINGS
@given(
    rows=st.integers(1, 6),
    dim=st.integers(1, 5),
    bad=st.sampled_from([float("nan"), float("inf"), -float("inf")]),
    where=st.integers(0, 1000),
)
def test_non_finite_features_name_the_first_bad_entity(tmp_path, rows, dim, bad, where) -> None:
    views = torch.randn(rows, 2, dim)
    entity = where % rows
    views[entity, where % 2, where % dim] = bad
    views[entity + 1 :, 0, 0] = bad  # later entities may be bad too: the first one is named
    names = [f"e{i}" for i in range(rows)]
    path = tmp_path / "f.safetensors"
    save_view_features(path, ModalityFeatures(views, torch.ones(rows, 2, dtype=torch.bool), "text"), entity_names=names)
    with pytest.raises(DataFormatError) as info:
        load_features(path, entity_names=names)
    assert f"entity {entity} (e{entity})" in str(info.value) and f"({rows - entity} entities in all)" in str(info.value)


# ----------------------------------------------------------------------------------------------- configuration

_any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_keys = st.sampled_from([f.name for f in TrainConfig.__dataclass_fields__.values()] + ["dimm", "learning_rate"])


@settings(max_examples=200, deadline=None)
@given(values=st.dictionaries(_keys, _any_value, max_size=4))
def test_any_configuration_is_valid_or_a_config_error(values) -> None:
    try:
        cfg = TrainConfig.from_dict(values)
    except ConfigError as err:
        message = str(err)
        assert "unknown key" in message or "invalid training configuration" in message
        assert any(key in message for key in values)  # names what is wrong
        return
    assert cfg.dim > 0 and cfg.epochs > 0 and cfg.batch_size > 0 and cfg.lr > 0 and math.isfinite(cfg.lr)
    assert all(isinstance(getattr(cfg, k), bool) for k in ("use_structure", "use_visual", "use_text", "amp"))


# ----------------------------------------------------------------------------------------------- the evaluator


@st.composite
def _evaluation_problems(draw):
    entities = draw(st.integers(2, 9))
    relations = draw(st.integers(1, 3))
    triple = st.tuples(st.integers(0, entities - 1), st.integers(0, relations - 1), st.integers(0, entities - 1))
    known = draw(st.lists(triple, max_size=25))
    test = draw(st.lists(triple, min_size=1, max_size=8))
    tied = draw(st.booleans())
    values = st.integers(-2, 2).map(float) if tied else st.floats(-10, 10, width=32)
    table = draw(
        st.lists(values, min_size=entities * 2 * relations * entities, max_size=entities * 2 * relations * entities)
    )
    scores = torch.tensor(table, dtype=torch.float32).reshape(entities, 2 * relations, entities)
    batch_size = draw(st.integers(1, 2 * len(test) + 1))
    return entities, relations, known, test, scores, batch_size


def _run(problem, *, filtered: bool, batch_size: int | None = None):
    entities, relations, known, test, scores, default_batch = problem
    test_t = torch.tensor(test, dtype=torch.long).reshape(-1, 3)
    index = None
    if filtered:
        all_known = torch.tensor(known + test, dtype=torch.long).reshape(-1, 3)
        index = FilterIndex.from_triples(
            add_reciprocals(all_known, relations), num_entities=entities, num_relations_with_reciprocals=2 * relations
        )
    return evaluate(
        lambda h, r: scores[h, r],
        test_t,
        num_entities=entities,
        num_relations=relations,
        filter_index=index,
        batch_size=batch_size or default_batch,
        progress=False,
        keep_ranks=True,
        random_tie_break_seed=0,
    )


@settings(max_examples=80, deadline=None)
@given(problem=_evaluation_problems())
def test_evaluator_ranks_are_bounded_ordered_and_filtering_only_helps(problem) -> None:
    entities = problem[0]
    raw = _run(problem, filtered=False)
    filtered = _run(problem, filtered=True)
    for result in (raw, filtered):
        r = result.ranks
        for kind in ("optimistic", "pessimistic", "realistic", "random"):
            assert bool(((r[kind] >= 1) & (r[kind] <= entities)).all()), kind
        assert bool((r["optimistic"] <= r["realistic"]).all() and (r["realistic"] <= r["pessimistic"]).all())
        assert bool((r["optimistic"] <= r["random"]).all() and (r["random"] <= r["pessimistic"]).all())
        assert 0 < result.metric("mrr") <= 1
    for kind in ("optimistic", "pessimistic", "realistic"):
        assert bool((filtered.ranks[kind] <= raw.ranks[kind]).all()), kind
    assert filtered.metric("mrr") >= raw.metric("mrr")


@settings(max_examples=40, deadline=None)
@given(problem=_evaluation_problems(), other=st.integers(1, 20))
def test_evaluator_does_not_depend_on_the_batch_size(problem, other) -> None:
    a = _run(problem, filtered=True)
    b = _run(problem, filtered=True, batch_size=other)
    for kind in ("optimistic", "pessimistic", "realistic"):
        assert torch.equal(a.ranks[kind], b.ranks[kind])
    assert a.metrics["realistic"]["overall"] == b.metrics["realistic"]["overall"]


@settings(max_examples=30, deadline=None)
@given(problem=_evaluation_problems(), row=st.integers(0, 100))
def test_nan_scores_are_an_error_not_a_rank(problem, row) -> None:
    entities, relations, known, test, scores, batch_size = problem
    assume(len(test) > 0)
    h, r, _ = test[row % len(test)]
    scores = scores.clone()
    scores[h, r, row % entities] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        _run((entities, relations, known, test, scores, batch_size), filtered=True)
