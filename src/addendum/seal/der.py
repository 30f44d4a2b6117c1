"""A small reader of DER (X.690), strict: it accepts one encoding of each value, and refuses everything else.

A token that reads here is canonical: definite, minimal lengths; low tag numbers; minimal integers and object
identifiers; booleans 00 or FF; empty NULLs; bit strings without stray padding bits; primitive strings; sorted SETs;
no byte after the last value. So encoding what it read again gives the same bytes, and a byte changed in the framing
is never read as the same value. It is iterative (no recursion to exhaust) and bounded in depth, values, OID arcs
and the integers it decodes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_DEPTH = 32
MAX_VALUES = 20_000
# The longest arc of an OBJECT IDENTIFIER, in bytes: a 128-bit UUID arc (2.25.N) takes 19. Decoding a longer one costs
# the square of its length, and a token is read before anything in it is trusted.
MAX_OID_ARC_BYTES = 20
# The longest INTEGER whose value is asked for: version numbers are one byte, serial numbers at most 20.
MAX_INTEGER_BYTES = 32

BOOLEAN, INTEGER, BIT_STRING, OCTET_STRING, NULL, OID = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
UTC_TIME, GENERALIZED_TIME, SEQUENCE, SET = 0x17, 0x18, 0x30, 0x31
_CONSTRUCTED = 0x20


class DerError(ValueError):
    """Not DER: where (byte offset) and why."""


@dataclass(frozen=True)
class Value:
    """One TLV: its identifier octet, where it starts, its header's length, where it ends, and what it holds."""

    tag: int
    start: int
    header: int
    end: int
    children: tuple[Value, ...]
    source: bytes

    @property
    def content(self) -> bytes:
        return self.source[self.start + self.header:self.end]

    @property
    def encoding(self) -> bytes:
        return self.source[self.start:self.end]

    @property
    def constructed(self) -> bool:
        return bool(self.tag & _CONSTRUCTED)

    def integer(self) -> int:
        if self.tag != INTEGER:
            raise DerError(f"byte {self.start}: an INTEGER was expected, found tag {self.tag:#04x}")
        if len(self.content) > MAX_INTEGER_BYTES:
            raise DerError(f"byte {self.start}: an INTEGER of {len(self.content):,} bytes where a small number belongs")
        return int.from_bytes(self.content, "big", signed=True)

    def oid(self) -> str:
        if self.tag != OID:
            raise DerError(f"byte {self.start}: an OBJECT IDENTIFIER was expected, found tag {self.tag:#04x}")
        numbers, current = [], 0
        for byte in self.content:
            current = (current << 7) | (byte & 0x7F)
            if not byte & 0x80:
                numbers.append(current)
                current = 0
        first = min(numbers[0] // 40, 2)
        return ".".join(map(str, [first, numbers[0] - 40 * first, *numbers[1:]]))


def read(data: bytes) -> Value:
    """The one value `data` encodes, checked as described above; DerError says where it is not DER."""
    top: list[Value] = []
    open_values: list[tuple[int, int, int, int, list[Value]]] = []  # tag, start, header, end, children so far
    position = count = 0
    while True:
        while open_values and position == open_values[-1][3]:
            tag, start, header, end, children = open_values.pop()
            finished = Value(tag, start, header, end, tuple(children), data)
            _check_constructed(finished)
            (open_values[-1][4] if open_values else top).append(finished)
        if top:
            break
        limit = open_values[-1][3] if open_values else len(data)
        tag, header, length = _header(data, position, limit)
        end = position + header + length
        count += 1
        if count > MAX_VALUES:
            raise DerError(f"more than {MAX_VALUES:,} values")
        if tag & _CONSTRUCTED:
            if len(open_values) >= MAX_DEPTH:
                raise DerError(f"byte {position}: nested deeper than {MAX_DEPTH}")
            open_values.append((tag, position, header, end, []))
            position += header
        else:
            value = Value(tag, position, header, end, (), data)
            _check_primitive(value)
            (open_values[-1][4] if open_values else top).append(value)
            position = end
    if position != len(data):
        raise DerError(f"{len(data) - position} bytes after the end of the value, from byte {position}")
    return top[0]


def _header(data: bytes, position: int, limit: int) -> tuple[int, int, int]:
    if position + 2 > limit:
        raise DerError(f"byte {position}: the value is cut short")
    tag, first = data[position], data[position + 1]
    if tag & 0x1F == 0x1F:
        raise DerError(f"byte {position}: a high tag number, which no field of a timestamp token has")
    if first < 0x80:
        header, length = 2, first
    elif first == 0x80:
        raise DerError(f"byte {position + 1}: an indefinite length (DER has definite lengths only)")
    else:
        size = first & 0x7F
        if size > 4:
            raise DerError(f"byte {position + 1}: a length written in {size} bytes (no value of a token needs more than 4)")
        if position + 2 + size > limit:
            raise DerError(f"byte {position + 1}: a length written in {size} bytes runs past the end of what holds it")
        octets = data[position + 2:position + 2 + size]
        length, header = int.from_bytes(octets, "big"), 2 + size
        if octets[0] == 0 or length < 0x80:
            raise DerError(f"byte {position + 1}: a length in more bytes than it needs (DER's are minimal)")
    if position + header + length > limit:
        raise DerError(f"byte {position}: a length of {length} runs past the end of what holds it")
    return tag, header, length


def _check_constructed(value: Value) -> None:
    if value.tag & 0xC0 == 0 and value.tag not in (SEQUENCE, SET):
        raise DerError(f"byte {value.start}: a constructed form of universal tag {value.tag & 0x1F} (DER has primitive ones)")
    if value.tag == SET:
        encodings = [child.encoding for child in value.children]
        if encodings != sorted(encodings):
            raise DerError(f"byte {value.start}: a SET whose values are not in DER's order")


def _minimal_integer(content: bytes) -> bool:
    return bool(content) and not (len(content) > 1 and ((content[0] == 0 and content[1] < 0x80) or
                                                         (content[0] == 0xFF and content[1] >= 0x80)))


def _bit_string(content: bytes) -> bool:
    if not content or content[0] > 7:
        return False
    return not content[0] if len(content) == 1 else not content[-1] & ((1 << content[0]) - 1)


# An arc's bytes but its last (those with the high bit set); one byte class repeated, so it cannot backtrack.
_ARC_CONTINUATIONS = re.compile(rb"[\x80-\xff]+")


def _minimal_oid(content: bytes) -> bool:
    return bool(content) and not content[-1] & 0x80 and \
        not any(byte == 0x80 and (i == 0 or not content[i - 1] & 0x80) for i, byte in enumerate(content)) and \
        all(len(arc) < MAX_OID_ARC_BYTES for arc in _ARC_CONTINUATIONS.findall(content))


# What a primitive universal value must hold in DER, and what it is when it does not.
_PRIMITIVES: dict[int, tuple[Callable[[bytes], bool], str]] = {
    BOOLEAN: (lambda content: content in (b"\x00", b"\xff"), "a BOOLEAN that is not 00 or FF"),
    INTEGER: (_minimal_integer, "an integer that is empty or not in its fewest bytes"),
    0x0A: (_minimal_integer, "an ENUMERATED that is empty or not in its fewest bytes"),
    NULL: (lambda content: not content, "a NULL with content"),
    BIT_STRING: (_bit_string, "a BIT STRING whose unused bits are not DER's"),
    OID: (_minimal_oid, f"an OBJECT IDENTIFIER that is empty, not in its fewest bytes, or with an arc of more than "
                        f"{MAX_OID_ARC_BYTES} bytes"),
    UTC_TIME: (lambda content: _is_time(content, 12), "a time that is not DER's (digits, then Z)"),
    GENERALIZED_TIME: (lambda content: _is_time(content, 14), "a time that is not DER's (digits, then Z)"),
}


def _check_primitive(value: Value) -> None:
    if value.tag in (0x00, 0x10, 0x11):
        raise DerError(f"byte {value.start}: tag {value.tag:#04x} in primitive form")
    check = _PRIMITIVES.get(value.tag)
    if check is not None and not check[0](value.content):
        raise DerError(f"byte {value.start}: {check[1]}")


def _is_time(content: bytes, digits: int) -> bool:
    if len(content) < digits + 1 or not content[:digits].isdigit() or content[-1:] != b"Z":
        return False
    fraction = content[digits:-1]
    # DER's GeneralizedTime has a fraction only when it is not zero, without trailing zeros.
    return not fraction or (digits == 14 and fraction[:1] == b"." and len(fraction) > 1 and fraction[1:].isdigit()
                            and fraction[-1:] != b"0")
