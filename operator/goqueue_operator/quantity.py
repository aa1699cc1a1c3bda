"""Kubernetes resource quantities (`10Gi`, `500M`, `1.5Ti`) as exact numbers, for comparing claim sizes.

Why exact (`Fraction`): a claim reported as `1024Mi` must compare equal to a request of `1Gi`; floats would round.
"""

from __future__ import annotations

import re
from fractions import Fraction

_SUFFIXES = {
    "": Fraction(1),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
    "Pi": Fraction(2**50), "Ei": Fraction(2**60),
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 10**3),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+)?([a-zA-Z]*)$")


class InvalidQuantity(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(text: str | int) -> Fraction:
    """`"1Gi"` → 1073741824; raises InvalidQuantity."""
    if isinstance(text, int):
        return Fraction(text)
    match = _QUANTITY.match(text.strip())
    if not match or match.group(3) not in _SUFFIXES:
        raise InvalidQuantity(f"{text!r} is not a Kubernetes quantity such as 10Gi")
    number, exponent, suffix = match.groups()
    try:
        value = Fraction(number)
    except ValueError as exc:
        raise InvalidQuantity(f"{text!r} is not a Kubernetes quantity such as 10Gi") from exc
    if exponent:
        value *= Fraction(10) ** int(exponent[1:])
    return value * _SUFFIXES[suffix]


def at_least(actual: str | int | None, wanted: str | int) -> bool:
    """True when `actual` is a quantity no smaller than `wanted` (an absent one is not)."""
    if actual is None:
        return False
    return parse_quantity(actual) >= parse_quantity(wanted)
