"""Python-literal lines of the 2014 metadata dump, parsed without ``eval``.

A line is first rewritten into JSON by a small tokenizer that only accepts lines whose
meaning is the same in both languages (plain strings with the escapes both share,
numbers, ``True``/``False``/``None``, dicts and lists) and parsed with
:func:`json.loads`; anything else falls back to :func:`ast.literal_eval`, which stays the
reference. The tests check :func:`parse_literal` against ``ast.literal_eval`` on random
inputs.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from typing import Any

__all__ = ["parse_literal"]

_FAST_OK = re.compile(r"""(?:"[^"\n]*+"|[ {}\[\]:,0-9.eE+\-]++)*+""")
_TOKEN = re.compile(  # a run of plain tokens | 'string' | "string" | word | anything else
    r"""((?:[ \t{}\[\]:,0-9.eE+\-]|'[^'"\\\n]*+')++)|'((?:[^'\\\n]|\\.)*+)'|"((?:[^"\\\n]|\\.)*+)"|(True|False|None)|(.)""",
    re.DOTALL,
)
_ESCAPE = re.compile(r"""\\(u[0-9a-fA-F]{4}|.)|(")""", re.DOTALL)
_WORDS = {"True": "true", "False": "false", "None": "null"}
_SHARED_ESCAPES = {"\\": "\\\\", '"': '\\"', "n": "\\n", "t": "\\t", "r": "\\r", "b": "\\b", "f": "\\f", "'": "'"}


class _NotPlain(Exception):
    """The line uses a construct whose JSON translation might differ: use literal_eval."""


def _escape(match: re.Match) -> str:
    if match.group(2):  # a bare double quote inside a single-quoted string
        return '\\"'
    code = match.group(1)
    if code in _SHARED_ESCAPES:
        return _SHARED_ESCAPES[code]
    if code[0] == "u" and len(code) == 5 and not 0xD800 <= int(code[1:], 16) <= 0xDFFF:
        return "\\" + code  # JSON would join surrogate pairs; Python would not
    raise _NotPlain


def _token(match: re.Match) -> str:
    run, single, double, word, _other = match.groups()
    if run is not None:  # punctuation, numbers and quote-free strings without escapes
        return run.replace("'", '"')
    if single is not None:
        return '"' + (_ESCAPE.sub(_escape, single) if ("\\" in single or '"' in single) else single) + '"'
    if double is not None:
        return '"' + (_ESCAPE.sub(_escape, double) if "\\" in double else double) + '"'
    if word is not None:
        return _WORDS[word]
    raise _NotPlain


def parse_literal(text: str) -> Any:
    """Parse a Python literal exactly as :func:`ast.literal_eval` does, but fast.

    Most metadata lines are dicts of plain strings, numbers and lists; such a line is
    translated token by token into JSON and parsed with :func:`json.loads`. The
    translation refuses anything whose JSON meaning could differ (string prefixes,
    escapes JSON lacks or reads differently, tuples, sets, ``NaN``...), and a line JSON
    rejects goes to :func:`ast.literal_eval`, so the result is always what
    ``literal_eval`` gives. Raises ``ValueError``/``SyntaxError`` like it.
    """
    if "\n" in text or "\r" in text:  # several lines: Python's indentation rules decide, so the reference does
        return _literal_eval(text)
    text = text.strip()
    try:
        if '"' not in text and "\\" not in text:
            candidate = text.replace("'", '"')  # every quote is a delimiter here
            if not _FAST_OK.fullmatch(candidate):
                candidate = _TOKEN.sub(_token, text)
        else:
            candidate = _TOKEN.sub(_token, text)
        return json.loads(candidate)
    except (_NotPlain, ValueError, RecursionError):
        pass
    return _literal_eval(text)


def _literal_eval(text: str) -> Any:
    with warnings.catch_warnings():  # e.g. "invalid escape sequence" from the compiler
        warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
        return ast.literal_eval(text)
