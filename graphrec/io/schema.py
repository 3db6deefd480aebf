"""Shape checks for the JSON files graphrec reads back (a GRAPH_DIR's manifest.json, a
features file's sidecar, the style-index cache's index.json).

Valid JSON can still have the wrong shape (``dropped`` a list, ``features`` without
``dim``, ``[]`` instead of an object). A :class:`Field` says which JSON types a value may
have, whether it is required, and for an object the fields it must or may hold;
:func:`shape_problem` describes the first mismatch in words, and :func:`read_json_object`
reads a file and raises one :class:`DataError` sentence naming it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphrec.errors import DataError

__all__ = ["Field", "read_json_object", "shape_problem"]

_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
          bool: "true or false", type(None): "null"}


@dataclass(frozen=True)
class Field:
    """What a JSON value may be: one of ``types`` (``int`` never accepts true/false,
    ``float`` accepts integers); an object's known ``fields``; the shape of ``each``
    value of an object or item of a list."""

    types: tuple[type, ...]
    required: bool = False
    fields: dict[str, "Field"] = field(default_factory=dict)
    each: "Field | None" = None


def _is(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def _describe(value: Any) -> str:
    for kind in (bool, type(None), int, float, str, list, dict):
        if _is(value, kind):
            return _NAMES[kind]
    return type(value).__name__


def shape_problem(value: Any, spec: Field, keys: tuple = ()) -> str | None:
    """None when ``value`` has the shape ``spec`` describes, else what is wrong, naming the
    value by its keys (e.g. ``"'dropped' is a list, not an object"``, ``"'features.dim' is
    missing"``, ``"the file holds a list, not an object"``)."""
    label = "'" + ".".join(map(str, keys)) + "'" if keys else "the file"
    if not any(_is(value, kind) for kind in spec.types):
        wanted = " or ".join(_NAMES.get(kind, kind.__name__) for kind in spec.types)
        return f"{label} {'holds' if not keys else 'is'} {_describe(value)}, not {wanted}"
    if isinstance(value, dict):
        for name, child in spec.fields.items():
            if name in value:
                problem = shape_problem(value[name], child, (*keys, name))
                if problem:
                    return problem
            elif child.required:
                return "'" + ".".join(map(str, (*keys, name))) + "' is missing"
    if spec.each is not None and isinstance(value, (dict, list)):
        for key, item in (value.items() if isinstance(value, dict) else enumerate(value)):
            problem = shape_problem(item, spec.each, (*keys, key))
            if problem:
                return problem
    return None


def read_json_object(path: str | os.PathLike, spec: Field, advice: str) -> dict:
    """The JSON object in ``path`` (UTF-8, a byte-order mark allowed), checked against
    ``spec``; a :class:`DataError` naming the file and ending with ``advice`` otherwise."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid JSON ({error}); {advice}.") from None
    problem = shape_problem(value, spec)
    if problem:
        raise DataError(f"{path} does not have the expected shape ({problem}); {advice}.")
    return value
