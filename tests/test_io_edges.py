"""Plain edge lists and labelled pair files: separators, comments, ids, relation labels, bad lines."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from graphrec.errors import DataError, UsageError
from graphrec.io.edges import parse_relation_names, read_edge_list
from graphrec.io.pairs import read_pairs


def write(path, text: str):
    data = text.encode("utf-8") if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def named_edges(edges, relation):
    return sorted((edges.ids[u], edges.ids[v]) for u, v in edges.edges[relation].T)


def test_two_columns_whitespace_commas_comments_and_blank_lines(tmp_path):
    path = write(tmp_path / "e.txt", "# a header comment\nB001 B002\n\nB002,B003  # trailing comment\n  B003\tB001\n")
    edges = read_edge_list(path)
    assert list(edges.edges) == ["also_bought"]
    assert named_edges(edges, "also_bought") == [("B001", "B002"), ("B002", "B003"), ("B003", "B001")]
    assert edges.bad_lines == 0 and edges.lines == 5 and edges.ids == ["B001", "B002", "B003"]


def test_ids_are_kept_exactly_as_written(tmp_path):
    path = write(tmp_path / "e.csv", "007,7\nA#1 b-2\n")  # leading zeros, case, a '#' inside an id
    edges = read_edge_list(path)
    assert edges.ids == ["007", "7", "A#1", "b-2"]


def test_gatne_labels_map_to_relations_by_default_and_say_so(tmp_path):
    path = write(tmp_path / "train.txt", "1 10 20\n2 10 30\n1 20 30\n")
    edges = read_edge_list(path)
    assert edges.labels == {"1": "also_bought", "2": "also_viewed"}
    assert named_edges(edges, "also_bought") == [("10", "20"), ("20", "30")]
    assert named_edges(edges, "also_viewed") == [("10", "30")]
    assert edges.notes and "GATNE" in edges.notes[0]


def test_other_labels_are_kept_and_mapping_can_be_chosen(tmp_path):
    path = write(tmp_path / "e.txt", "1 a b\n3 a c\n")
    assert set(read_edge_list(path).edges) == {"1", "3"}  # not exactly GATNE's labels: kept as written
    named = read_edge_list(path, relation_names=parse_relation_names("1=also_bought, 3=bought_together"))
    assert set(named.edges) == {"also_bought", "bought_together"} and not named.notes


def test_relation_names_option_is_checked():
    assert parse_relation_names("1=also_bought,2=also_viewed") == {"1": "also_bought", "2": "also_viewed"}
    for bad in ("1:also_bought", "1=", "=x", "1=a b", "1=a,1=b"):
        with pytest.raises(UsageError, match="relation-names"):
            parse_relation_names(bad)


def test_bad_lines_are_counted_and_reported_with_file_and_line(tmp_path):
    path = write(tmp_path / "e.txt", b"r a b\nonly-one\nr a b c\nr a,,b\nr c d\n" + b"r \xff x\n")
    with pytest.warns(UserWarning, match=r"e\.txt, line 2"):
        edges = read_edge_list(path)
    assert edges.bad_lines == 4
    assert [m.split(": ", 1)[0].rsplit(" ", 1)[1] for m in edges.messages] == ["2", "3", "4", "6"]
    assert "3 fields" in edges.messages[1] or "4 fields" in edges.messages[1]
    assert "UTF-8" in edges.messages[3]
    assert named_edges(edges, "r") == [("a", "b"), ("c", "d")]


def test_first_data_line_fixes_the_number_of_fields(tmp_path):
    path = write(tmp_path / "e.txt", "a b\nr c d\n")
    with pytest.warns(UserWarning, match="3 fields where this file's lines have 2"):
        edges = read_edge_list(path)
    assert edges.bad_lines == 1 and edges.listed() == {"also_bought": 1}


def test_strict_stops_at_the_first_bad_line(tmp_path):
    path = write(tmp_path / "e.txt", "a b\na b c d\n")
    with pytest.raises(DataError, match=r"line 2.*--strict"):
        read_edge_list(path, strict=True)


def test_self_loops_are_counted_and_dropped(tmp_path):
    edges = read_edge_list(write(tmp_path / "e.txt", "a a\na b\n"))
    assert edges.self_loops == 1 and edges.listed() == {"also_bought": 1}


def test_gzip_missing_and_empty_files(tmp_path):
    edges = read_edge_list(write(tmp_path / "e.txt.gz", "a b\n"))
    assert edges.ids == ["a", "b"]
    with pytest.raises(DataError, match="not found"):
        read_edge_list(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="holds no edges"):
        read_edge_list(write(tmp_path / "empty.txt", "# nothing\n\n"))


def test_large_file_streams(tmp_path):
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 20_000, size=(250_000, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    write(tmp_path / "big.txt", "".join(f"{u} {v}\n" for u, v in pairs))
    edges = read_edge_list(tmp_path / "big.txt")
    assert edges.listed()["also_bought"] == len(pairs)
    ids = np.array(edges.ids)
    assert (ids[edges.edges["also_bought"][:, :5].T] == pairs[:5].astype(str)).all()


def test_pairs_keep_one_relation_count_the_others_and_check_labels(tmp_path):
    path = write(tmp_path / "test.txt", "1 a b 1\n1 a c 0\n2 a b 1\n1 b c 2\n1 c d 1.0\n")
    with pytest.warns(UserWarning, match=r"line 4: the label '2'"):
        pairs = read_pairs(path, "also_bought")
    assert (pairs.u, pairs.v, pairs.labels.tolist()) == (["a", "a", "c"], ["b", "c", "d"], [1, 0, 1])
    assert pairs.line_numbers.tolist() == [1, 2, 5]
    assert pairs.other_relations == {"also_viewed": 1} and pairs.bad_lines == 1
    assert pairs.node_pairs({"a": 0, "b": 1, "c": 2}).tolist() == [[0, 1], [0, 2], [2, -1]]
    with pytest.raises(DataError, match="no pairs of the relation 'also_viewd'.*also_bought, also_viewed"):
        read_pairs(path, "also_viewd")
