"""Labelled pair files: ``relation u v label`` per line (GATNE's ``valid.txt`` / ``test.txt``).

Same conventions as :mod:`graphrec.io.edges` (whitespace or commas, ``#`` comments,
ids kept as written, GATNE's labels ``1``/``2`` read as ``also_bought``/``also_viewed``
unless ``relation_names`` says otherwise); ``label`` is ``1`` (a true edge) or ``0``
(a sampled non-edge). A line with another label or field count is a bad line, counted
and reported with its line number (``strict`` raises instead).

>>> pairs = read_pairs("test.txt", relation="also_bought")
>>> len(pairs), pairs.labels.sum()
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from graphrec.errors import DataError
from graphrec.io.edges import FieldReader, gatne_default

__all__ = ["LabelledPairs", "read_pairs"]

_LABELS = {"1": 1, "0": 0, "1.0": 1, "0.0": 0}


@dataclass
class LabelledPairs:
    """Labelled pairs of one relation: ``u[i]``, ``v[i]`` (ids as written), ``labels[i]``
    (int8, 1 = edge) and ``line_numbers[i]`` in ``path``."""

    path: Path
    relation: str
    u: list[str]
    v: list[str]
    labels: np.ndarray
    line_numbers: np.ndarray
    lines: int = 0
    bad_lines: int = 0
    other_relations: dict[str, int] = field(default_factory=dict)  # lines of other relations, skipped
    messages: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.u)

    def node_pairs(self, index: dict[str, int]) -> np.ndarray:
        """``[m, 2]`` int64 node indices through ``index`` (id -> node); -1 for an unknown id."""
        lookup = index.get
        out = np.fromiter((lookup(node, -1) for pair in zip(self.u, self.v) for node in pair), dtype=np.int64,
                          count=2 * len(self.u))
        return out.reshape(-1, 2)


def read_pairs(
    path: str | os.PathLike,
    relation: str,
    relation_names: dict[str, str] | None = None,
    strict: bool = False,
) -> LabelledPairs:
    """The labelled pairs of ``relation`` in ``path`` (other relations' lines are counted, not kept)."""
    reader = FieldReader(path, (4,), "labelled pair file", "'relation u v label' with label 0 or 1", strict=strict)
    raw_labels: dict[str, tuple[list[str], list[str], array, array]] = {}
    for number, (label, u, v, value) in reader:
        target = _LABELS.get(value)
        if target is None:
            reader.bad(number, f"the label {value!r} is not 0 or 1")
            continue
        lists = raw_labels.get(label)
        if lists is None:
            lists = raw_labels[label] = ([], [], array("b"), array("q"))
        lists[0].append(u)
        lists[1].append(v)
        lists[2].append(target)
        lists[3].append(number)
    mapping = gatne_default(set(raw_labels), relation_names or {})
    names = {label: mapping.get(label, label) for label in raw_labels}
    mine = [label for label, name in names.items() if name == relation]
    if not mine:
        found = ", ".join(sorted(set(names.values()))) or "none"
        raise DataError(f"{reader.path} has no pairs of the relation {relation!r} (it has: {found}; "
                        f"{reader.bad_lines} bad lines); choose one of those or pass --relation-names.")
    u = [node for label in mine for node in raw_labels[label][0]]
    v = [node for label in mine for node in raw_labels[label][1]]
    labels = np.concatenate([np.frombuffer(raw_labels[label][2], np.int8) for label in mine])
    numbers = np.concatenate([np.frombuffer(raw_labels[label][3], np.int64) for label in mine])
    order = np.argsort(numbers, kind="stable")  # file order when several labels share the name
    others: dict[str, int] = {}
    for label, name in names.items():
        if name != relation:
            others[name] = others.get(name, 0) + len(raw_labels[label][0])
    return LabelledPairs(reader.path, relation, [u[i] for i in order], [v[i] for i in order], labels[order],
                         numbers[order], reader.lines, reader.bad_lines, others, list(reader.messages))
