"""Product ids (ASINs), normalised in one place, the same way wherever they are read:
metadata records and their related lists, feature records, image manifests and file
names, query lists."""

from __future__ import annotations

from typing import Iterable

__all__ = ["normalize_asin", "normalize_asins", "valid_asin"]

_INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060"  # byte-order mark and zero-width characters


def normalize_asin(value: str) -> str:
    """``value`` without surrounding whitespace (Unicode spaces included) or invisible
    characters: ``" B000ASIN42\\n"`` -> ``"B000ASIN42"``. Case is kept."""
    return value.strip().strip(_INVISIBLE).strip()


def normalize_asins(values: Iterable[str]) -> list[str]:
    """Each id normalised; ids that are empty once normalised are dropped."""
    cleaned = [normalize_asin(value) for value in values]
    return [value for value in cleaned if value] if "" in cleaned else cleaned


def valid_asin(name: str) -> bool:
    """A plausible ASIN (at most 10 printable ASCII characters, no spaces)."""
    return 0 < len(name) <= 10 and name.isascii() and name.isprintable() and " " not in name
