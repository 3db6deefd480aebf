"""Plain edge lists: ``u v`` or ``relation u v`` per line (a graph without photos or metadata).

Format, one edge per line:

* fields separated by whitespace or commas (``a b``, ``a,b``, ``also_viewed, a, b``);
* ``#`` starts a comment (a whole line, or the rest of a line after a field);
  blank lines are ignored;
* the first data line fixes the number of fields: two (``u v``, every edge gets the
  relation ``default_relation``, ``also_bought``) or three (``relation u v``);
* node ids are kept exactly as written (they play the ASIN's role, so a file of ASINs
  combines with metadata and image features of the same products).

Relation labels are renamed by ``relation_names`` (``{"1": "also_bought"}``). Without a
mapping, a file whose labels are exactly GATNE's integer edge types (``1`` and/or ``2``:
type 1 = co-purchase, type 2 = co-view) gets :data:`GATNE_RELATIONS`, ``1`` ->
``also_bought`` and ``2`` -> ``also_viewed``, and a note says so; any other label is kept
as written.

Bad lines (a wrong number of fields, an empty or non-UTF-8 id, an over-long line) are
skipped and counted (``bad_lines``); the first few are reported with file and line number
as warnings and in ``messages``, as :class:`~graphrec.io.metadata.MetadataReader` does.
With ``strict=True`` the first one raises a :class:`~graphrec.errors.DataError`.
Self-loops (``u u``) are counted in ``self_loops`` and dropped.

>>> edges = read_edge_list("train.txt")            # GATNE: 1/2 -> also_bought/also_viewed
>>> edges.ids[:3], {name: e.shape for name, e in edges.edges.items()}, edges.bad_lines
"""

from __future__ import annotations

import os
import re
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from graphrec.errors import DataError, UsageError
from graphrec.io.metadata import MAX_LINE_BYTES, MAX_WARNINGS, open_text_lines, skip_bad_line

__all__ = [
    "DEFAULT_RELATION",
    "GATNE_RELATIONS",
    "EdgeList",
    "FieldReader",
    "gatne_default",
    "parse_relation_names",
    "read_edge_list",
]

DEFAULT_RELATION = "also_bought"
GATNE_RELATIONS = {"1": "also_bought", "2": "also_viewed"}
_SEPARATORS = re.compile(r"\s*,\s*|\s+")
_NAME = re.compile(r"[A-Za-z0-9_.:-]+")


def parse_relation_names(text: str | None) -> dict[str, str]:
    """``"1=also_bought,2=also_viewed"`` -> ``{"1": "also_bought", "2": "also_viewed"}``."""
    if not text:
        return {}
    names: dict[str, str] = {}
    for part in text.split(","):
        label, sep, name = (piece.strip() for piece in part.partition("="))
        if not sep or not label or not _NAME.fullmatch(name or ""):
            raise UsageError(
                f"--relation-names takes LABEL=NAME pairs separated by commas, e.g. 1=also_bought,2=also_viewed "
                f"(got {part.strip()!r}); names use letters, digits and _ . : - only."
            )
        if label in names and names[label] != name:
            raise UsageError(f"--relation-names maps the label {label!r} twice ({names[label]}, {name}).")
        names[label] = name
    return names


def gatne_default(labels: set[str], relation_names: dict[str, str]) -> dict[str, str]:
    """The mapping to apply: ``relation_names`` when given, else :data:`GATNE_RELATIONS`
    when every label is one of GATNE's integer edge types, else none."""
    if relation_names:
        return relation_names
    return dict(GATNE_RELATIONS) if labels and labels <= set(GATNE_RELATIONS) else {}


@dataclass
class FieldReader:
    """Data lines of a whitespace/comma-separated file as lists of fields, with bad-line
    accounting shared by the edge-list and labelled-pair readers.

    ``counts`` are the numbers of fields a line may have; the first data line picks one
    and every later line must have the same. Iterating yields ``(line_number, fields)``.
    """

    path: str | os.PathLike
    counts: tuple[int, ...]
    what: str  # e.g. "edge list", for messages
    layout: str  # e.g. "'u v' or 'relation u v'"
    strict: bool = False
    max_warnings: int = MAX_WARNINGS
    lines: int = 0
    bad_lines: int = 0
    fields: int = 0  # the field count fixed by the first data line (0 before it)
    messages: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.path.is_file():
            state = "is not a file" if self.path.exists() else "not found"
            raise DataError(f"{self.what} {self.path} {state}; pass a text file with lines {self.layout}.")

    def bad(self, number: int, why: str) -> None:
        """Count (or with ``strict`` raise) a bad line; the first few become warnings."""
        skip_bad_line(self, number, why, stacklevel=4)

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        self.lines = self.bad_lines = self.fields = 0
        self.messages = []
        number = 0
        try:
            for number, text in open_text_lines(self.path):
                if len(text) > MAX_LINE_BYTES:
                    self.bad(number, f"line is longer than {MAX_LINE_BYTES} characters")
                    continue
                if "#" in text:
                    text = text[: _comment_start(text)]
                parts = _SEPARATORS.split(text.strip())
                if parts == [""]:
                    continue
                if "\ufffd" in text:
                    self.bad(number, "the line is not valid UTF-8")
                    continue
                if self.fields == 0 and len(parts) in self.counts:
                    self.fields = len(parts)
                if len(parts) != (self.fields or self.counts[0]) or "" in parts:
                    self.bad(number, self._shape_error(parts))
                    continue
                yield number, parts
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{self.path}: the file is damaged or truncated after line {number} ({error}).") from None
        finally:
            self.lines = number

    def _shape_error(self, parts: list[str]) -> str:
        if "" in parts:
            return "an empty field (two separators in a row)"
        count = f"{len(parts)} field{'s' if len(parts) != 1 else ''}"
        if self.fields:
            return f"{count} where this file's lines have {self.fields} ({self.layout})"
        return f"{count}; expected {self.layout}"


def _comment_start(text: str) -> int:
    """Index where a ``#`` comment begins: at the start of a field, not inside an id."""
    for match in re.finditer("#", text):
        start = match.start()
        if start == 0 or text[start - 1] in " \t,":
            return start
    return len(text)


@dataclass
class EdgeList:
    """An edge list read into interned node ids.

    ``ids[i]`` is the id of node ``i`` (first-appearance order); ``edges[relation]`` is an
    int64 ``[2, E]`` array of node indices as listed (repeats and both directions kept;
    the graph build canonicalises them). ``labels`` maps each relation label found in the
    file to the relation name it became.
    """

    path: Path
    ids: list[str]
    edges: dict[str, np.ndarray]
    labels: dict[str, str]
    lines: int = 0
    bad_lines: int = 0
    self_loops: int = 0
    messages: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def num_nodes(self) -> int:
        return len(self.ids)

    def listed(self) -> dict[str, int]:
        """Edge lines kept per relation (before duplicates are merged)."""
        return {name: int(index.shape[1]) for name, index in self.edges.items()}


def read_edge_list(
    path: str | os.PathLike,
    relation_names: dict[str, str] | None = None,
    default_relation: str = DEFAULT_RELATION,
    strict: bool = False,
) -> EdgeList:
    """Read a plain edge list (see the module docstring) in one streaming pass."""
    reader = FieldReader(path, (2, 3), "edge list", "'u v' or 'relation u v'", strict=strict)
    ids: dict[str, int] = {}
    setdefault = ids.setdefault
    columns: dict[str, tuple[array, array]] = {}
    self_loops = 0
    for _, parts in reader:
        label, u, v = (default_relation, *parts) if len(parts) == 2 else parts
        if u == v:
            self_loops += 1
            continue
        pair = columns.get(label)
        if pair is None:
            pair = columns[label] = (array("q"), array("q"))
        pair[0].append(setdefault(u, len(ids)))
        pair[1].append(setdefault(v, len(ids)))
    if not columns:
        raise DataError(f"edge list {reader.path} holds no edges ({reader.bad_lines} bad lines of {reader.lines}); "
                        "expected lines 'u v' or 'relation u v'.")
    mapping = gatne_default(set(columns) if reader.fields == 3 else set(), relation_names or {})
    notes = []
    if mapping and not relation_names:
        notes.append(f"{reader.path}: relation labels {', '.join(sorted(columns))} read as GATNE edge types "
                     f"({', '.join(f'{k}={v}' for k, v in mapping.items() if k in columns)}); "
                     "pass --relation-names to choose other names.")
    labels = {label: mapping.get(label, label) for label in columns}
    edges: dict[str, list[np.ndarray]] = {}
    for label, (src, dst) in columns.items():
        edges.setdefault(labels[label], []).append(np.stack([np.frombuffer(src, np.int64), np.frombuffer(dst, np.int64)]))
    return EdgeList(
        path=reader.path, ids=list(ids), edges={name: np.concatenate(parts, axis=1) for name, parts in edges.items()},
        labels=labels, lines=reader.lines, bad_lines=reader.bad_lines, self_loops=self_loops,
        messages=list(reader.messages), notes=notes,
    )
