"""Parsers of ``*2id.txt``, triple files and name tables: tolerated variations and line-precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imvia_core.data.names import readable_entity_name, readable_relation_name, split_camel_case, uri_local_name
from imvia_core.data.parsing import read_id_map, read_name_table, read_triples
from imvia_core.errors import DataFormatError

ENTITIES = {"a": 0, "b": 1, "c": 2}
RELATIONS = {"r": 0, "s": 1}


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def triples_of(path: Path, **kwargs):
    return read_triples(path, entity_to_id=ENTITIES, relation_to_id=RELATIONS, **kwargs)


# ---------------------------------------------------------------------------------------------------- id files


def test_id_map_tolerates_bom_crlf_blank_lines_and_tabs(tmp_path):
    path = write(tmp_path / "entity2id.txt", "\ufeffx 1\r\n\r\n  y\t\t0  \r\n\nz   2\r\n")
    assert read_id_map(path) == {"x": 1, "y": 0, "z": 2}
    assert list(read_id_map(path)) == ["x", "y", "z"]  # file order kept


@pytest.mark.parametrize(
    ("content", "line", "needle"),
    [
        ("a 0\nb 1 extra\n", 2, "3 fields"),
        ("a 0\nb\n", 2, "1 fields"),
        ("a 0\nb one\n", 2, "'one'"),
        ("a 0\nb 1.0\n", 2, "'1.0'"),
        ("a 0\nb -1\n", 2, "'-1'"),
        ("a 0\nb 1\na 2\n", 3, "first on line 1"),
        ("a 0\nb 1\n\nc 1\n", 4, "id 1 again"),
        ("a 0\nb 2\n", 2, "contiguous ids 0..1"),
        ("a 1\nb 2\n", 2, "contiguous ids 0..1"),
    ],
)
def test_id_map_errors_name_file_and_line(tmp_path, content, line, needle):
    path = write(tmp_path / "relation2id.txt", content)
    with pytest.raises(DataFormatError) as info:
        read_id_map(path, kind="relation")
    assert info.value.line == line
    assert info.value.path == str(path)
    message = str(info.value)
    assert f"{path}:{line}:" in message
    assert needle in message


def test_id_map_empty_file_is_an_error(tmp_path):
    path = write(tmp_path / "entity2id.txt", "\n\n")
    with pytest.raises(DataFormatError, match="no entries"):
        read_id_map(path)


def test_invalid_utf8_reports_its_line(tmp_path):
    path = write(tmp_path / "entity2id.txt", b"a 0\nb\xff\xfe 1\n")
    with pytest.raises(DataFormatError) as info:
        read_id_map(path)
    assert info.value.line == 2
    assert "UTF-8" in str(info.value)


# ---------------------------------------------------------------------------------------------------- triples


def test_triples_tolerate_variations_and_keep_duplicates_and_order(tmp_path):
    content = "\ufeffa r b .\r\n\r\nb\ts\tc\t.\r\n  c r a  \r\na r b .\n"  # BOM, CRLF, blank, tabs, no dot, dup
    result = triples_of(write(tmp_path / "train.txt", content))
    assert result.triples.dtype == torch.long
    assert result.triples.tolist() == [[0, 0, 1], [1, 1, 2], [2, 0, 0], [0, 0, 1]]
    assert result.num_dropped == 0


def test_empty_triple_file_gives_empty_tensor(tmp_path):
    result = triples_of(write(tmp_path / "test.txt", "\n"))
    assert result.triples.shape == (0, 3)


@pytest.mark.parametrize(
    ("content", "line", "needle"),
    [
        ("a r b .\na r .\n", 2, "3 fields"),  # tail missing, the '.' is not a name
        ("a r b .\na r\n", 2, "2 fields"),
        ("a r b c .\n", 1, "5 fields"),
        ("a r b .\n\na r b x\n", 3, "4 fields"),  # fourth field is not '.'
        ("a r b .\na r z .\n", 2, "tail entity 'z'"),
        ("q r b .\n", 1, "head entity 'q'"),
        ("a r b .\na t b .\n", 2, "relation 't'"),
    ],
)
def test_triple_errors_name_file_and_line(tmp_path, content, line, needle):
    path = write(tmp_path / "train.txt", content)
    with pytest.raises(DataFormatError) as info:
        triples_of(path)
    assert info.value.line == line
    message = str(info.value)
    assert f"{path}:{line}:" in message
    assert needle in message


def test_unknown_names_dropped_on_request_and_counted(tmp_path):
    path = write(tmp_path / "valid.txt", "a r b .\nz r b .\nb s c .\na q c .\n")
    result = triples_of(path, unknown="drop")
    assert result.triples.tolist() == [[0, 0, 1], [1, 1, 2]]
    assert result.num_dropped == 2
    assert result.dropped_lines == [2, 4]
    with pytest.raises(ValueError, match="unknown"):
        triples_of(path, unknown="ignore")


def test_drop_does_not_hide_malformed_lines(tmp_path):
    path = write(tmp_path / "valid.txt", "a r b .\nz r\n")
    with pytest.raises(DataFormatError) as info:
        triples_of(path, unknown="drop")
    assert info.value.line == 2


# ---------------------------------------------------------------------------------------------------- name tables


def test_name_table_unquotes_only_writer_quoting(tmp_path):
    content = (
        "id\tname\tdescription\n"
        '0\t"Heroes" (David Bowie song)\t"sequel to ""The Mask"" of Zorro"\n'
        '1\t"female illusionist"\t\n'
        '2\tA Roller Skating Jam Named "Saturdays"\tfilm\n'
    )
    table = read_name_table(write(tmp_path / "names.tsv", content), required_columns=("name",))
    assert table.columns == ["id", "name", "description"]
    assert table.rows[0]["name"] == '"Heroes" (David Bowie song)'
    assert table.rows[0]["description"] == 'sequel to "The Mask" of Zorro'
    assert table.rows[1] == {"id": "1", "name": '"female illusionist"', "description": ""}
    assert table.rows[2]["name"] == 'A Roller Skating Jam Named "Saturdays"'
    assert table.lines == {0: 2, 1: 3, 2: 4}


@pytest.mark.parametrize(
    ("content", "line", "needle"),
    [
        ("id\tlabel\n0\tx\n", 1, "a column named 'name'"),
        ("id\tname\n0\tx\textra\n", 2, "3 tab-separated fields"),
        ("id\tname\nzero\tx\n", 2, "'zero'"),
        ("id\tname\n0\tx\n0\ty\n", 3, "id 0 again"),
    ],
)
def test_name_table_errors(tmp_path, content, line, needle):
    path = write(tmp_path / "names.tsv", content)
    with pytest.raises(DataFormatError) as info:
        read_name_table(path, required_columns=("name",))
    assert info.value.line == line
    assert needle in str(info.value)


# ---------------------------------------------------------------------------------------------------- readable names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("<http://dbpedia.org/resource/New_York>", "New York"),
        ("<http://dbpedia.org/resource/AC/DC>", "AC/DC"),
        ("<http://dbpedia.org/resource/Caf%C3%A9_de_Flore>", "Café de Flore"),
        ("http://www.wikidata.org/entity/Q42", "Q42"),
        ("Gilles_Mbang_Ondo", "Gilles Mbang Ondo"),
    ],
)
def test_readable_entity_name(name, expected):
    assert readable_entity_name(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("wasBornIn", "was born in"),
        ("isAffiliatedTo", "is affiliated to"),
        ("hasISBN", "has ISBN"),
        ("<http://dbpedia.org/ontology/influencedBy>", "influenced by"),
        ("<http://www.w3.org/2000/01/rdf-schema#seeAlso>", "see also"),
        ("http://www.wikidata.org/entity/P161", "P161"),
        ("located_in", "located in"),
    ],
)
def test_readable_relation_name(name, expected):
    assert readable_relation_name(name) == expected


def test_name_helpers_leave_plain_text_alone():
    assert uri_local_name("plain") == "plain"
    assert split_camel_case("already spaced Words") == "already spaced Words"


# ---------------------------------------------------------------------------------------------------- properties

# names: any characters except the field separators (space, tab), line breaks and a leading BOM; never "."
_name_chars = st.characters(blacklist_characters=" \t\r\n\ufeff", blacklist_categories=("Cs",))
_names = st.text(_name_chars, min_size=1, max_size=12).filter(lambda s: s != ".")


@st.composite
def _graphs(draw):
    entities = draw(st.lists(_names, min_size=1, max_size=8, unique=True))
    relations = draw(st.lists(_names, min_size=1, max_size=4, unique=True))
    e_ids = draw(st.permutations(range(len(entities))))
    r_ids = draw(st.permutations(range(len(relations))))
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(0, len(entities) - 1), st.integers(0, len(relations) - 1), st.integers(0, len(entities) - 1)
            ),
            max_size=20,
        )
    )
    return entities, relations, list(e_ids), list(r_ids), rows


_settings = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_settings
@given(graph=_graphs(), sep=st.sampled_from([" ", "\t", "  ", " \t"]), eol=st.sampled_from(["\n", "\r\n"]))
def test_round_trip_gives_back_the_same_ids(tmp_path, graph, sep, eol):
    entities, relations, e_ids, r_ids, rows = graph
    e_path = write(tmp_path / "entity2id.txt", "".join(f"{n}{sep}{i}{eol}" for n, i in zip(entities, e_ids)))
    r_path = write(tmp_path / "relation2id.txt", "".join(f"{n}{sep}{i}{eol}" for n, i in zip(relations, r_ids)))
    entity_to_id = read_id_map(e_path)
    relation_to_id = read_id_map(r_path, kind="relation")
    assert entity_to_id == dict(zip(entities, e_ids))
    assert relation_to_id == dict(zip(relations, r_ids))
    lines = [f"{entities[h]}{sep}{relations[r]}{sep}{entities[t]}{sep}.{eol}" for h, r, t in rows]
    t_path = write(tmp_path / "train.txt", "".join(lines))
    parsed = read_triples(t_path, entity_to_id=entity_to_id, relation_to_id=relation_to_id).triples
    expected = [[e_ids[h], r_ids[r], e_ids[t]] for h, r, t in rows]
    assert parsed.tolist() == expected


_garbage = st.one_of(
    st.lists(_names, min_size=1, max_size=2).map(" ".join),  # too few fields
    st.lists(_names, min_size=5, max_size=7).map(" ".join),  # too many fields
    st.tuples(_names, _names, _names, _names).filter(lambda t: t[3] != ".").map(" ".join),  # 4th field not '.'
    st.tuples(_names, _names).map(lambda t: f"{t[0]} {t[1]} ."),  # missing tail
    st.binary(min_size=1, max_size=8).map(lambda b: b"\xff" + b.replace(b"\n", b"")),  # not UTF-8
)


@_settings
@given(
    position=st.integers(0, 5),
    garbage=_garbage,
    unknown=st.sampled_from(["error", "drop"]),
)
def test_garbage_line_raises_data_format_error_with_its_line(tmp_path, position, garbage, unknown):
    good = ["a r b .", "b s c", "c\tr\ta ."]
    lines: list[bytes] = [g.encode() for g in good]
    lines.insert(min(position, len(lines)), garbage if isinstance(garbage, bytes) else garbage.encode("utf-8"))
    path = write(tmp_path / "valid.txt", b"\n".join(lines) + b"\n")
    with pytest.raises(DataFormatError) as info:
        triples_of(path, unknown=unknown)
    assert info.value.line == min(position, len(good)) + 1
    assert str(path) in str(info.value)


@_settings
@given(text=st.text(max_size=80))
def test_arbitrary_text_parses_or_raises_data_format_error(tmp_path, text):
    path = write(tmp_path / "test.txt", text)
    try:
        result = triples_of(path, unknown="drop")
    except DataFormatError as err:
        assert err.line is not None and err.line >= 1
    else:
        assert result.triples.shape[1] == 3
