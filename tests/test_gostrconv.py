"""Go's strconv quoting (gocompat/gostrconv.py), the one copy behind Go's messages and
``printf "%q"`` in list templates. Expected texts are what Go 1.24's strconv writes."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_jupyter.gocompat import gostrconv


@pytest.mark.parametrize("s,quoted", [
    ("plain", '"plain"'), ('q"b\\', '"q\\"b\\\\"'), ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'),
    ("\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'), ("\u00e9\u4e2d", '"\u00e9\u4e2d"'),
    ("\u00a0\u200b", '"\\u00a0\\u200b"'), ("\U000e0001", '"\\U000e0001"'),
    (b"\xff\xc3", '"\\xff\\xc3"'),                 # bytes that are not UTF-8
    (b"\xed\xa0\x80", '"\\xed\\xa0\\x80"'),         # a surrogate's UTF-8 form: three bad bytes
    (os.fsdecode(b"a\xffb"), '"a\\xffb"'),             # a file name's byte, as os.fsdecode holds it
    ("\ud800", '"\ufffd"'),                           # any other lone surrogate: U+FFFD
])
def test_quote_is_gos(s: str | bytes, quoted: str) -> None:
    assert gostrconv.quote(s) == quoted


def test_quote_to_ascii_and_quote_rune() -> None:
    assert gostrconv.quote("\u00e9\U0001f600", ascii_only=True) == '"\\u00e9\\U0001f600"'
    assert gostrconv.quote_rune(ord("a")) == "'a'"
    assert gostrconv.quote_rune(ord("'")) == "'\\''"
    assert gostrconv.quote_rune(ord('"')) == "'\"'"
    assert gostrconv.quote_rune(-1) == gostrconv.quote_rune(0xD800) == "'\ufffd'"
    assert gostrconv.quote_rune(0x110000) == "'\ufffd'"
    assert gostrconv.quote_rune(0xE9, ascii_only=True) == "'\\u00e9'"


@pytest.mark.parametrize("s, ok", [("a b\tc", True), ("a`b", False), ("a\nb", False),
                                   ("\ufeff", False), ("\x7f", False),
                                   (os.fsdecode(b"\xff"), False), ("\u00e9", True)])
def test_can_backquote(s: str, ok: bool) -> None:
    assert gostrconv.can_backquote(s) is ok


_SIMPLE = {"a": b"\a", "b": b"\b", "f": b"\f", "n": b"\n", "r": b"\r", "t": b"\t",
           "v": b"\v", "\\": b"\\", '"': b'"'}


def _go_literal(body: str) -> bytes:
    """The bytes of a Go interpreted string literal's body, read after the Go spec: ``\\xNN``
    a byte, ``\\uNNNN`` and ``\\UNNNNNNNN`` a rune's UTF-8, the one-letter escapes."""
    out, i = bytearray(), 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        kind = body[i + 1]
        width = {"x": 2, "u": 4, "U": 8}.get(kind)
        if width is None:
            out += _SIMPLE[kind]
            i += 2
            continue
        code = int(body[i + 2:i + 2 + width], 16)
        out += bytes([code]) if kind == "x" else chr(code).encode()
        i += 2 + width
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=24) | st.text(max_size=12).map(lambda t: t.encode("utf-8", "replace")))
def test_a_quoted_string_reads_back_as_its_bytes(data: bytes) -> None:
    """What Quote writes is a Go string literal of the same bytes, on one line; a Python
    string standing for the bytes (``os.fsdecode``) quotes the same."""
    quoted = gostrconv.quote(data)
    assert quoted.startswith('"') and quoted.endswith('"') and "\n" not in quoted
    assert _go_literal(quoted[1:-1]) == data
    assert gostrconv.quote(os.fsdecode(data)) == quoted


_GO_INT_FORMS = [lambda v: str(v), lambda v: f"{'-' if v < 0 else ''}0x{abs(v):x}",
                 lambda v: f"{'-' if v < 0 else ''}0o{abs(v):o}",
                 lambda v: f"{'-' if v < 0 else ''}0{abs(v):o}",
                 lambda v: f"{'-' if v < 0 else ''}0b{abs(v):b}", lambda v: f"{v:_}"]


@settings(max_examples=300)
@given(st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from(_GO_INT_FORMS))
def test_parse_int_reads_every_form_go_writes_and_refuses_int64_overflow(value, form):
    """strconv.ParseInt(s, 0, 64): decimal, 0x, 0o, a leading 0, 0b and ``_`` between digits
    read back to the value while it fits int64; past it, ValueError."""
    text = form(value)
    if -(2**63) <= value < 2**63:
        assert gostrconv.parse_int(text) == value
    else:
        with pytest.raises(ValueError, match="out of range"):
            gostrconv.parse_int(text)


@given(st.text(max_size=30))
def test_parse_int_is_an_int64_or_a_value_error(text):
    try:
        value = gostrconv.parse_int(text)
    except ValueError:
        return
    assert -(2**63) <= value < 2**63 and text.isascii() and text.strip() == text
