"""Go's ``strconv``: the one copy of how Go writes a string or a rune between quotes, and of
how it reads an integer (:func:`parse_int`: kit's integer flags, yaml.v3's ints).

Go's messages quote what they name (``%q``, ``%#v``: ``invalid reference: invalid tag "a b"``,
``parse "s3://…": invalid port``, yaml.v3's ``mapping key "k" already defined``), and ``list
--format`` templates quote with ``printf "%q"``. Users compare those texts with kit's, so the
escapes must be Go's, not Python's ``repr``.

A Go string is bytes. A Python string stands for them as :func:`go_bytes` says: its UTF-8, a
byte that ``os.fsdecode`` escaped (U+DC80-U+DCFF) as that byte, any other lone surrogate as
U+FFFD (what Go's decoders give for one).
"""

from __future__ import annotations

import re

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v"}
#: what Quote may write otherwise than as it is: all but printable ASCII, and " and \
_SPECIAL = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')
#: what keeps CanBackquote from a string: control characters but tab, `, DEL and the BOM
_NO_BACKQUOTE = re.compile("[\x00-\x08\x0a-\x1f\x7f`\ufeff]")


def go_bytes(s: str) -> bytes:
    """The bytes of the Go string ``s`` stands for (see the module's docstring)."""
    try:
        return s.encode()
    except UnicodeEncodeError:
        pass
    out = bytearray()
    for ch in s:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(code - 0xDC00)
        else:
            out += ("\ufffd" if 0xD800 <= code <= 0xDFFF else ch).encode()
    return bytes(out)


def _escape(c: str, quote: str, ascii_only: bool) -> str:
    """``appendEscapedRune``: the quote and ``\\`` backslashed; a printable rune as it is
    (ASCII only for ``QuoteToASCII``); ``\\a``...``\\v``; else ``\\xNN`` below a space and for
    DEL, ``\\uNNNN``, ``\\UNNNNNNNN``. Printable is Go's ``unicode.IsPrint`` -- letters, marks,
    numbers, punctuation, symbols and the ASCII space -- which is ``str.isprintable``'s
    definition too, on Python's Unicode version (Go 1.24 has 15.0, as Python 3.12 does). A
    byte that is not UTF-8 (held as a U+DC80-U+DCFF escape) is ``\\xNN``, as Go writes it."""
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if c == quote or c == "\\":
        return "\\" + c
    if c.isprintable() and (code < 0x80 or not ascii_only):
        return c
    if c in _ESCAPES:
        return _ESCAPES[c]
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def quote(s: str | bytes, *, ascii_only: bool = False) -> str:
    """``strconv.Quote`` (``QuoteToASCII`` with ``ascii_only``) of a Go string: its bytes, or
    a Python string standing for them."""
    text = (s if isinstance(s, bytes) else go_bytes(s)).decode("utf-8", "surrogateescape")
    return '"' + _SPECIAL.sub(lambda m: _escape(m.group(0), '"', ascii_only), text) + '"'


def quote_rune(code: int, *, ascii_only: bool = False) -> str:
    """``strconv.QuoteRune`` (``QuoteRuneToASCII``): a single-quoted Go character literal; a
    negative number, a surrogate or one past U+10FFFF is U+FFFD, as Go's ``fmtQc`` makes it."""
    if not (0 <= code <= 0x10FFFF) or 0xD800 <= code < 0xE000:
        code = 0xFFFD
    return "'" + _escape(chr(code), "'", ascii_only) + "'"


def can_backquote(s: str) -> bool:
    """``strconv.CanBackquote``: ``s`` can be written as a raw string literal (```s```).
    A Go string that is not UTF-8 cannot."""
    return not _NO_BACKQUOTE.search(s) and not any(0xD800 <= ord(c) <= 0xDFFF for c in s)


__all__ = ["can_backquote", "go_bytes", "quote", "quote_rune"]


#: what ``strconv.ParseInt(s, 0, 64)`` reads: a sign, then decimal, ``0x``/``0o``/``0b`` or a
#: leading ``0`` (octal), with ``_`` only between digits or after the prefix (``underscoreOK``)
_GO_INT = re.compile(r"[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[bB](?:_?[01])+|0[oO](?:_?[0-7])+"
                     r"|0(?:_?[0-7])*|[1-9](?:_?[0-9])*)", re.ASCII)
#: digits of the largest uint64 in each base: a longer number is out of range whatever it is
_MAX_DIGITS = {2: 64, 8: 22, 10: 20, 16: 16}


def parse_int(text: str) -> int:
    """Go's ``strconv.ParseInt(text, 0, 64)``: raises ValueError for anything it refuses,
    including a value outside int64 (counted by its digits before ``int()``, which would
    refuse more than 4300 of them with another message)."""
    if not _GO_INT.fullmatch(text):
        raise ValueError(f"invalid syntax: {text!r}")
    negative = text[:1] == "-"
    body = text.lstrip("+-").replace("_", "")
    if body[:2].lower() in ("0x", "0o", "0b"):
        base, digits = {"x": 16, "o": 8, "b": 2}[body[1].lower()], body[2:]
    elif len(body) > 1:
        base, digits = (8, body[1:]) if body[0] == "0" else (10, body)
    else:
        base, digits = 10, body
    significant = digits.lstrip("0")
    if len(significant) > _MAX_DIGITS[base]:
        raise ValueError(f"value out of range: {text!r}")
    value = (-1 if negative else 1) * (int(significant, base) if significant else 0)
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"value out of range: {text!r}")
    return value
