"""Amazon product metadata readers (the 2014 and 2018 McAuley dumps).

Both dumps hold one product per line, plain or gzip-compressed (detected from the
file's first bytes, not its name):

* **2014** (``meta_*.json.gz`` from the SNAP/UCSD 2014 release): each line is a
  *Python literal* dict, ``{'asin': ..., 'related': {'also_bought': [...]}, ...}``;
* **2018** (``meta_*.json.gz`` from the 2018 release): each line is JSON, with
  ``also_buy`` / ``also_view`` instead of ``related``, ``category`` as one path and a
  price string such as ``"$12.99"``.

The format is detected from the first non-empty line (:func:`detect_format`) unless
given. Every line becomes a :class:`Product` with the same fields whichever the dump.

Parsing never uses ``eval``. A 2014 line is first rewritten into JSON by a small
tokenizer that only accepts lines whose meaning is the same in both languages (plain
strings with the escapes both share, numbers, ``True``/``False``/``None``, dicts and
lists) and parsed with :func:`json.loads`; anything else falls back to
:func:`ast.literal_eval`, which stays the reference. :func:`parse_literal` is that
function; the tests check it against ``ast.literal_eval`` on random inputs.

Bad input: a line that does not parse, is not a dict, or has no ASIN (or an ASIN that
is not valid UTF-8) is skipped and counted (``reader.bad_lines``); the first few are
reported with their line number as warnings and in ``reader.messages``. With
``strict=True`` the first one raises a :class:`~graphrec.errors.DataError` instead.
A record whose ``related`` (or ``also_buy``...) field has the wrong type keeps its other
fields, loses those relations and is counted in ``reader.bad_related``. A line of the
other dump's format (a 2014 literal inside a 2018 file, or the reverse) is read by its
own keys and counted in ``reader.other_format_lines``. Other non-UTF-8 bytes become
U+FFFD replacement characters.

>>> reader = MetadataReader("meta_Clothing_Shoes_and_Jewelry.json.gz")
>>> for product in reader:
...     print(product.asin, product.related.get("also_bought", [])[:3])
>>> reader.bad_lines, reader.format
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import math
import os
import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from graphrec.errors import DataError, UsageError

__all__ = [
    "FORMATS",
    "RELATIONS",
    "MAX_LINE_BYTES",
    "Product",
    "MetadataReader",
    "detect_format",
    "open_text_lines",
    "parse_literal",
    "parse_price",
    "read_metadata",
]

FORMATS = ("2014", "2018")
RELATIONS = ("also_bought", "also_viewed", "bought_together", "buy_after_viewing")
MAX_WARNINGS = 5
MAX_LINE_BYTES = 16 * 1024 * 1024  # a longer line is counted as bad instead of parsed

# 2018 keys that name a relation of the 2014 vocabulary.
_RELATIONS_2018 = {"also_buy": "also_bought", "also_view": "also_viewed", "bought_together": "bought_together"}
_KEYS_2014 = {"related", "categories", "imUrl", "salesRank"}
_KEYS_2018 = {"also_buy", "also_view", "category", "imageURL", "imageURLHighRes", "image", "main_cat", "rank"}


@dataclass(slots=True)
class Product:
    """One metadata record, normalised across the 2014 and 2018 dumps.

    ``categories`` is a list of category paths (each a list of names, broadest
    first); ``related`` maps a relation name (:data:`RELATIONS`) to ASINs;
    ``price`` is NaN when unknown; ``line`` is the 1-based line number in the file.
    """

    asin: str
    title: str | None = None
    brand: str | None = None
    price: float = math.nan
    categories: list[list[str]] = field(default_factory=list)
    related: dict[str, list[str]] = field(default_factory=dict)
    sales_rank: Any = None
    image_url: str | None = None
    line: int = 0
    bad_related: bool = False  # a relation field had the wrong type and was (partly) ignored


# --------------------------------------------------------------------------- parsing

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


def parse_price(value: Any) -> float:
    """A price as float, NaN when unknown: ``12.99``, ``"$12.99"``, ``"$1,299.00"``.

    Empty strings, ranges (``"$10.00 - $20.00"``) and anything else -> NaN.
    """
    if isinstance(value, bool) or value is None:
        return math.nan
    if isinstance(value, (int, float)):
        price = float(value)
    elif isinstance(value, str):
        text = value.strip().lstrip("$").replace(",", "").strip()
        try:
            price = float(text) if text and text[0].isdigit() else math.nan
        except ValueError:
            return math.nan
    else:
        return math.nan
    return price if math.isfinite(price) and price >= 0 else math.nan


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    text = text.strip()
    return text or None


def _asin_list(value: Any) -> list[str]:
    if type(value) is list and set(map(type, value)) <= {str}:  # the usual case, checked in C
        return value
    if not isinstance(value, (list, tuple)):
        return []
    return [item.strip() for item in value if isinstance(item, str) and item.strip()]


def _is_asin_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and set(map(type, value)) <= {str}


def _path(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return []
    return [name.strip() for name in value if isinstance(name, str) and name.strip()]


def _first_url(value: Any) -> str | None:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, str) and item.strip():
                return item.strip()
    return None


def _from_2014(record: dict, line: int) -> Product:
    related = record.get("related")
    relations = {}
    bad = related is not None and not isinstance(related, dict)
    if isinstance(related, dict):
        for name in RELATIONS:
            if name in related:
                value = related[name]
                relations[name] = listed = _asin_list(value)
                if listed is not value and not _is_asin_list(value):  # only off the fast path
                    bad = True
    categories = record.get("categories")
    paths = [p for p in (_path(c) for c in categories) if p] if isinstance(categories, (list, tuple)) else []
    return Product(
        asin=record["asin"].strip(),
        title=_text(record.get("title")),
        brand=_text(record.get("brand")),
        price=parse_price(record.get("price")),
        categories=paths,
        related=relations,
        sales_rank=record.get("salesRank"),
        image_url=_first_url(record.get("imUrl")),
        line=line,
        bad_related=bad,
    )


def _from_2018(record: dict, line: int) -> Product:
    relations = {ours: _asin_list(record[theirs]) for theirs, ours in _RELATIONS_2018.items() if theirs in record}
    bad = not all(_is_asin_list(record[theirs]) for theirs in _RELATIONS_2018 if theirs in record)
    path = _path(record.get("category"))
    image = None
    for key in ("imageURLHighRes", "imageURL", "image", "imUrl"):
        image = _first_url(record.get(key))
        if image:
            break
    return Product(
        asin=record["asin"].strip(),
        title=_text(record.get("title")),
        brand=_text(record.get("brand")),
        price=parse_price(record.get("price")),
        categories=[path] if path else [],
        related=relations,
        sales_rank=record.get("rank", record.get("salesRank")),
        image_url=image,
        line=line,
        bad_related=bad,
    )


# --------------------------------------------------------------------------- files


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


class _Lines:
    """Binary lines of a plain or gzip file, with the compressed bytes read so far."""

    def __init__(self, path: Path) -> None:
        self.raw = open(path, "rb")
        try:
            if self.raw.read(2) == b"\x1f\x8b":
                self.raw.seek(0)
                self.stream: io.BufferedIOBase = io.BufferedReader(gzip.GzipFile(fileobj=self.raw), buffer_size=1 << 20)
            else:
                self.raw.seek(0)
                self.stream = io.BufferedReader(self.raw, buffer_size=1 << 20)
        except BaseException:
            self.raw.close()
            raise

    def position(self) -> int:
        """Bytes of the file on disk consumed so far (for progress bars)."""
        try:
            return self.raw.tell()
        except (OSError, ValueError):
            return 0

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.stream)

    def close(self) -> None:
        self.stream.close()
        self.raw.close()


def open_text_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` for each line of a plain or gzip text file (UTF-8)."""
    lines = _Lines(Path(path))
    try:
        for number, raw in enumerate(lines, start=1):
            yield number, raw.decode("utf-8", errors="replace")
    finally:
        lines.close()


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"metadata file {path} not found; pass the path of an Amazon meta_*.json(.gz) file with --meta.")
    if not path.is_file():
        raise DataError(f"metadata path {path} is not a file; pass an Amazon meta_*.json(.gz) file with --meta.")


def detect_format(path: str | os.PathLike) -> str:
    """``"2014"`` or ``"2018"``, from the first non-empty line of ``path``.

    The keys decide when they are telling (``related``/``categories``/``imUrl`` are
    2014, ``also_buy``/``category``/``imageURL``... are 2018); otherwise a line that is
    valid JSON is 2018 and a Python literal is 2014.
    """
    path = Path(path)
    _check_file(path)
    try:
        for number, text in open_text_lines(path):
            text = text.strip()
            if not text:
                continue
            try:
                record = json.loads(text)
                syntax = "2018"
            except ValueError:
                try:
                    record = parse_literal(text)
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    raise DataError(
                        f"{path}, line {number}: cannot detect the metadata format, the first line is neither "
                        "JSON (2018 dump) nor a Python literal (2014 dump); check the file or pass --format."
                    ) from None
                syntax = "2014"
            if isinstance(record, dict):
                keys = set(record)
                if keys & _KEYS_2014 and not keys & _KEYS_2018:
                    return "2014"
                if keys & _KEYS_2018 and not keys & _KEYS_2014:
                    return "2018"
            return syntax
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataError(
            f"{path}: cannot read the metadata file, it is damaged or truncated ({error}); "
            "check that it is a complete .json or .json.gz file."
        ) from None
    raise DataError(f"metadata file {path} is empty; pass an Amazon meta_*.json(.gz) file with --meta.")


@dataclass
class MetadataReader:
    """Iterate over the products of a metadata file (2014 or 2018 dump, plain or gzip).

    ``format`` is ``"2014"``, ``"2018"`` or ``None``/``"auto"`` to detect it. After (or
    during) iteration: ``lines`` read, ``bad_lines`` skipped, ``messages`` (the first
    few warnings, with line numbers), ``bytes_read`` of the file on disk.
    """

    path: str | os.PathLike
    format: str | None = None
    strict: bool = False
    max_warnings: int = MAX_WARNINGS
    lines: int = 0
    bad_lines: int = 0
    messages: list[str] = field(default_factory=list)
    bytes_read: int = 0
    bad_related: int = 0
    other_format_lines: int = 0

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        _check_file(self.path)
        self.size = self.path.stat().st_size
        if self.format in (None, "auto"):
            self.format = detect_format(self.path)
        elif str(self.format) not in FORMATS:
            raise UsageError(f"unknown metadata format {self.format!r}; use one of: auto, {', '.join(FORMATS)}.")
        self.format = str(self.format)

    def _bad(self, number: int, why: str) -> None:
        message = f"{self.path}, line {number}: {why}"
        if self.strict:
            raise DataError(f"{message}; fix or remove the line, or drop --strict to skip bad lines.")
        self.bad_lines += 1
        if len(self.messages) < self.max_warnings:
            self.messages.append(message + "; skipped")
            warnings.warn(message + "; skipped", stacklevel=3)

    def _note(self, number: int, why: str) -> None:
        """A problem that loses part of a record but not the record (never fatal)."""
        if len(self.messages) < self.max_warnings:
            message = f"{self.path}, line {number}: {why}"
            self.messages.append(message)
            warnings.warn(message, stacklevel=3)

    def __iter__(self) -> Iterator[Product]:
        self.lines, self.bad_lines, self.messages = 0, 0, []  # counts are per pass
        self.bad_related = self.other_format_lines = 0
        convert = _from_2014 if self.format == "2014" else _from_2018
        other = _from_2018 if self.format == "2014" else _from_2014
        own_keys, other_keys = (_KEYS_2014, _KEYS_2018) if self.format == "2014" else (_KEYS_2018, _KEYS_2014)
        parse = parse_literal if self.format == "2014" else _parse_json_line
        lines = _Lines(self.path)
        number = 0
        try:
            for number, raw in enumerate(lines, start=1):
                self.lines = number
                if number % 4096 == 0:
                    self.bytes_read = lines.position()
                if len(raw) > MAX_LINE_BYTES:
                    self._bad(number, f"line is longer than {MAX_LINE_BYTES} bytes")
                    continue
                text = raw.decode("utf-8", errors="replace").strip()
                if not text:
                    continue
                try:
                    record = parse(text)
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as error:
                    self._bad(number, f"not a valid {self.format} metadata record ({type(error).__name__})")
                    continue
                if not isinstance(record, dict):
                    self._bad(number, f"expected a dict, got {type(record).__name__}")
                    continue
                asin = record.get("asin")
                if not isinstance(asin, str) or not asin.strip():
                    self._bad(number, "record has no 'asin'")
                    continue
                if "\ufffd" in asin:
                    self._bad(number, f"the ASIN {asin.strip()!r} is not valid UTF-8")
                    continue
                read = convert
                if own_keys.isdisjoint(record) and not other_keys.isdisjoint(record):
                    read = other
                    self.other_format_lines += 1
                    self._note(number, f"a record in the {'2018' if self.format == '2014' else '2014'} format inside a "
                                       f"{self.format} file; read by its own keys")
                product = read(record, number)
                if product.bad_related:
                    self.bad_related += 1
                    self._note(number, f"ASIN {product.asin}: {_wrong_related(record)}; those relations are ignored")
                yield product
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise DataError(
                f"{self.path}: the file is damaged or truncated after line {number} ({error}); "
                "download it again (products read so far are not used)."
            ) from None
        finally:
            self.bytes_read = lines.position()
            lines.close()


def _wrong_related(record: dict) -> str:
    """Why the relation fields of ``record`` cannot be read (for a record known to be wrong)."""
    related = record.get("related")
    if related is not None and not isinstance(related, dict):
        return f"'related' is a {type(related).__name__}, not a dict"
    fields = [(f"related.{name}", related[name]) for name in RELATIONS if name in related] if isinstance(related, dict) else []
    fields += [(name, record[name]) for name in _RELATIONS_2018 if name in record]
    for name, value in fields:
        if not _is_asin_list(value):
            return f"'{name}' is not a list of ASINs"
    return "a relation field is not a list of ASINs"


def _parse_json_line(text: str) -> Any:
    """A 2018 line: JSON, with the 2014 literal parser as fallback for stray Python-style lines."""
    try:
        return json.loads(text)
    except ValueError:
        return parse_literal(text)


def read_metadata(
    path: str | os.PathLike, format: str | None = None, strict: bool = False
) -> Iterator[Product]:
    """Iterate over the :class:`Product` records of a metadata file (see :class:`MetadataReader`)."""
    return iter(MetadataReader(path, format=format, strict=strict))
