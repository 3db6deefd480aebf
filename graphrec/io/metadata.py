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

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from graphrec.errors import DataError, UsageError
from graphrec.io.ids import normalize_asin, normalize_asins
from graphrec.io.literal import parse_literal
from graphrec.io.textfiles import READ_ERRORS, Lines, open_text_lines

__all__ = [
    "FORMATS",
    "RELATIONS",
    "MAX_LINE_BYTES",
    "Product",
    "MetadataReader",
    "detect_format",
    "skip_bad_line",
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
    bad_fields: list[str] = field(default_factory=list)  # fields present but unreadable (left empty)


# --------------------------------------------------------------------------- parsing

def _read_price(value: Any) -> tuple[float, bool]:
    """``(price, readable)``: the price as float (NaN when unknown) and False when a value is
    there but cannot be read as a price (a number too large for a float, negative or not
    finite, text that is not a price, a list...). Empty values and ranges are just unknown."""
    if value is None or value == "":
        return math.nan, True
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return math.nan, False
    if isinstance(value, str):
        text = value.strip().lstrip("$").replace(",", "").strip()
        if not text or " - " in text:  # "$10.00 - $20.00": a range, no single price
            return math.nan, True
        if not text[0].isdigit():
            return math.nan, False
        value = text
    try:
        price = float(value)
    except (ValueError, OverflowError):  # "12abc"; an integer with hundreds of digits
        return math.nan, False
    if not math.isfinite(price) or price < 0:
        return math.nan, False
    return price, True


def parse_price(value: Any) -> float:
    """A price as float, NaN when unknown or unreadable: ``12.99``, ``"$12.99"``, ``"$1,299.00"``.

    Empty strings, ranges (``"$10.00 - $20.00"``) and anything else -> NaN.
    """
    return _read_price(value)[0]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    text = text.strip()
    return text or None


def _asin_list(value: Any) -> tuple[list[str], bool]:
    """The ASINs of a related list, normalised, and whether the list held only strings."""
    if type(value) is list and set(map(type, value)) <= {str}:  # the usual case, checked in C
        return normalize_asins(value), True
    if not isinstance(value, (list, tuple)):
        return [], False
    return normalize_asins([item for item in value if isinstance(item, str)]), _is_asin_list(value)


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


def _related_2014(related: Any) -> tuple[dict[str, list[str]], bool]:
    """The relations of a 2014 ``related`` field, and whether any part of it had the wrong type."""
    if related is None:
        return {}, False
    if not isinstance(related, dict):
        return {}, True
    relations, bad = {}, False
    for name in RELATIONS:
        if name in related:
            relations[name], only_asins = _asin_list(related[name])
            bad = bad or not only_asins
    return relations, bad


def _from_2014(record: dict, line: int) -> Product:
    relations, bad = _related_2014(record.get("related"))
    categories = record.get("categories")
    paths = [p for p in (_path(c) for c in categories) if p] if isinstance(categories, (list, tuple)) else []
    price, readable = _read_price(record.get("price"))
    return Product(
        asin=normalize_asin(record["asin"]),
        title=_text(record.get("title")),
        brand=_text(record.get("brand")),
        price=price,
        categories=paths,
        related=relations,
        sales_rank=record.get("salesRank"),
        image_url=_first_url(record.get("imUrl")),
        line=line,
        bad_related=bad,
        bad_fields=[] if readable else ["price"],
    )


def _from_2018(record: dict, line: int) -> Product:
    relations, bad = {}, False
    for theirs, ours in _RELATIONS_2018.items():
        if theirs in record:
            relations[ours], only_asins = _asin_list(record[theirs])
            bad = bad or not only_asins
    path = _path(record.get("category"))
    image = None
    for key in ("imageURLHighRes", "imageURL", "image", "imUrl"):
        image = _first_url(record.get(key))
        if image:
            break
    price, readable = _read_price(record.get("price"))
    return Product(
        asin=normalize_asin(record["asin"]),
        title=_text(record.get("title")),
        brand=_text(record.get("brand")),
        price=price,
        categories=[path] if path else [],
        related=relations,
        sales_rank=record.get("rank", record.get("salesRank")),
        image_url=image,
        line=line,
        bad_related=bad,
        bad_fields=[] if readable else ["price"],
    )


# --------------------------------------------------------------------------- files


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"metadata file {path} not found; pass the path of an Amazon meta_*.json(.gz) file with --meta.")
    if not path.is_file():
        raise DataError(f"metadata path {path} is not a regular file; pass an Amazon meta_*.json(.gz) file with --meta.")


def _syntax(text: str, number: int, path: Path, lines: Lines) -> tuple[Any, str]:
    """The first record of a file parsed as JSON (2018) or a Python literal (2014)."""
    try:
        return json.loads(text), "2018"
    except ValueError:
        pass
    try:
        return parse_literal(text), "2014"
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise DataError(
            f"{path}, line {number}: cannot detect the metadata format, the first line of this {lines.described} is "
            "neither JSON (2018 dump) nor a Python literal (2014 dump); check the file or pass --format."
        ) from None


def detect_format(path: str | os.PathLike) -> str:
    """``"2014"`` or ``"2018"``, from the first non-empty line of ``path``.

    The keys decide when they are telling (``related``/``categories``/``imUrl`` are
    2014, ``also_buy``/``category``/``imageURL``... are 2018); otherwise a line that is
    valid JSON is 2018 and a Python literal is 2014.
    """
    path = Path(path)
    _check_file(path)
    lines = Lines(path, "metadata file")
    try:
        for number, raw in enumerate(lines, start=1):
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            record, syntax = _syntax(text, number, path, lines)
            if isinstance(record, dict):
                keys = set(record)
                if keys & _KEYS_2014 and not keys & _KEYS_2018:
                    return "2014"
                if keys & _KEYS_2018 and not keys & _KEYS_2014:
                    return "2018"
            return syntax
    except READ_ERRORS as error:
        raise DataError(
            f"{path}: cannot read this {lines.described}, it is damaged or truncated ({error}); "
            "check that it is a complete metadata file."
        ) from None
    finally:
        lines.close()
    raise DataError(f"metadata file {path} is empty; pass an Amazon meta_*.json(.gz) file with --meta.")


def skip_bad_line(reader: Any, number: int, why: str, stacklevel: int) -> None:
    """The bad-line rule of every line reader (metadata, edge lists, pair files): with
    ``reader.strict`` a :class:`DataError` naming ``reader.path`` and the line; otherwise
    count it in ``reader.bad_lines`` and warn about the first ``reader.max_warnings``."""
    message = f"{reader.path}, line {number}: {why}"
    if reader.strict:
        raise DataError(f"{message}; fix or remove the line, or drop --strict to skip bad lines.")
    reader.bad_lines += 1
    if len(reader.messages) < reader.max_warnings:
        reader.messages.append(message + "; skipped")
        warnings.warn(message + "; skipped", stacklevel=stacklevel)


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
    bad_fields: int = 0  # records with a field that is there but cannot be read (e.g. a 400-digit price)

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
        skip_bad_line(self, number, why, stacklevel=5)

    def _note(self, number: int, why: str) -> None:
        """A problem that loses part of a record but not the record (never fatal)."""
        if len(self.messages) < self.max_warnings:
            message = f"{self.path}, line {number}: {why}"
            self.messages.append(message)
            warnings.warn(message, stacklevel=4)

    def _record(self, number: int, raw: bytes, parse) -> dict | None:
        """The record on one line, or None (counted as a bad line) when there is none."""
        if len(raw) > MAX_LINE_BYTES:
            self._bad(number, f"line is longer than {MAX_LINE_BYTES} bytes")
            return None
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return None
        try:
            record = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as error:
            self._bad(number, f"not a valid {self.format} metadata record ({type(error).__name__})")
            return None
        if not isinstance(record, dict):
            self._bad(number, f"expected a dict, got {type(record).__name__}")
            return None
        asin = record.get("asin")
        if not isinstance(asin, str) or not normalize_asin(asin):
            self._bad(number, "record has no 'asin'")
            return None
        if "\ufffd" in asin:
            self._bad(number, f"the ASIN {normalize_asin(asin)!r} is not valid UTF-8")
            return None
        return record

    def _product(self, number: int, record: dict) -> Product:
        """``record`` read by its format's keys (or the other format's, counted), its partial
        problems counted and noted."""
        own_keys, other_keys = (_KEYS_2014, _KEYS_2018) if self.format == "2014" else (_KEYS_2018, _KEYS_2014)
        read = _from_2014 if self.format == "2014" else _from_2018
        if own_keys.isdisjoint(record) and not other_keys.isdisjoint(record):
            read = _from_2018 if self.format == "2014" else _from_2014
            self.other_format_lines += 1
            self._note(number, f"a record in the {'2018' if self.format == '2014' else '2014'} format inside a "
                               f"{self.format} file; read by its own keys")
        product = read(record, number)
        if product.bad_related:
            self.bad_related += 1
            self._note(number, f"ASIN {product.asin}: {_wrong_related(record)}")
        if product.bad_fields:
            self.bad_fields += 1
            shown = ", ".join(f"{name} {str(record.get(name))[:40]!r}" for name in product.bad_fields)
            self._note(number, f"ASIN {product.asin}: cannot read the {shown}; left empty, the rest of the record is kept")
        return product

    def __iter__(self) -> Iterator[Product]:
        self.lines, self.bad_lines, self.messages = 0, 0, []  # counts are per pass
        self.bad_related = self.other_format_lines = self.bad_fields = 0
        parse = parse_literal if self.format == "2014" else _parse_json_line
        lines = Lines(self.path, "metadata file")
        number = 0
        try:
            for number, raw in enumerate(lines, start=1):
                self.lines = number
                if number % 4096 == 0:
                    self.bytes_read = lines.position()
                record = self._record(number, raw, parse)
                if record is not None:
                    yield self._product(number, record)
        except READ_ERRORS as error:
            raise DataError(
                f"{self.path}: this {lines.described} is damaged or truncated after line {number} ({error}); "
                "download it again (products read so far are not used)."
            ) from None
        finally:
            self.bytes_read = lines.position()
            lines.close()


def _wrong_related(record: dict) -> str:
    """What is wrong with the relation fields of ``record`` and what is kept (for a record
    known to be wrong)."""
    related = record.get("related")
    if related is not None and not isinstance(related, dict):
        return f"'related' is a {type(related).__name__}, not a dict; its relations are ignored"
    fields = [(f"related.{name}", related[name]) for name in RELATIONS if name in related] if isinstance(related, dict) else []
    fields += [(name, record[name]) for name in _RELATIONS_2018 if name in record]
    problems = []
    for name, value in fields:
        if not isinstance(value, (list, tuple)):
            problems.append(f"'{name}' is a {type(value).__name__}, not a list of ASINs (that relation is ignored)")
        elif not _is_asin_list(value):
            others = sum(not isinstance(item, str) for item in value)
            problems.append(f"'{name}' mixes ASINs with {others} other value{'s' if others != 1 else ''} "
                            "(the ASINs are kept as edges, the other values ignored)")
    return "; ".join(problems) or "a relation field is not a list of ASINs"


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
