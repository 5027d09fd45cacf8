"""Byte-exact emulation of Go's ``encoding/json`` ``Marshal`` and ``MarshalIndent``; and
:func:`unmarshal`, the one reader of JSON that comes from outside.

The one Go-style JSON encoder of the package: the config blob, manifests, the storage index files
and kit's ``--format json`` output all go through :func:`marshal`. Their digests (or the text kit
users compare) depend on the bytes, so they must equal Go's: compact separators (or Go's indent),
HTML-safe escaping of ``<``, ``>`` and ``&``, U+2028/2029 escaped, raw UTF-8, and Go's float
formatting (spec §4, §3.4). Key order follows Go: a :class:`Struct` (a Go struct) keeps its
order, any other dict is a Go map and is written with its keys sorted by their UTF-8 bytes.
"""

from __future__ import annotations

import json
import math
import re
from json.encoder import encode_basestring
from typing import Any

from kit_jupyter.gocompat.goyaml import AnyKeyMap, Struct, go_json_float, replace_surrogates


class UnsupportedValue(ValueError):
    """json.Marshal would fail; the message is Go's."""


def unmarshal(data: bytes | str, **options: Any) -> Any:
    """``json.loads`` (``options`` are its keywords) for JSON that comes from outside: a
    registry's manifest or config, an annotation, a token answer, a file another tool wrote.
    Nesting too deep for Python's recursive decoder (about a thousand levels: ``[[[[...``) is
    the ``ValueError`` any other bad JSON is, instead of a ``RecursionError`` that would pass
    every ``except ValueError`` and end as a traceback. Go's decoder refuses such input too
    (beyond 10,000 levels). A lone surrogate is U+FFFD, as Go reads it: Python would keep it,
    and a str holding one fails later, wherever it is encoded (a tag printed, a path made)."""
    if isinstance(data, bytes) and (b"\\u" in data or b"\xed" in data):
        try:  # json.loads would decode so too; a lone surrogate's UTF-8 form starts with ED
            data = data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            pass  # not UTF-8: json.loads refuses it, or reads it as UTF-16/32, as before
    if isinstance(data, str):
        if "\\u" in data:
            data = _ESCAPE.sub(_lone_escape, data)
        data = replace_surrogates(data)
    try:
        return json.loads(data, **options)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


#: an escape, left to right (so ``\\\\ud800`` is a backslash, then text): a high surrogate and the
#: low one after it (a pair: kept), a high or low one alone (group 1 or 3 without 2), or any other
_ESCAPE = re.compile(r"\\(?:u([dD][89abAB][0-9a-fA-F]{2})(?:\\u([dD][c-fC-F][0-9a-fA-F]{2}))?"
                     r"|u([dD][c-fC-F][0-9a-fA-F]{2})|.)", re.DOTALL)


def _lone_escape(m: re.Match[str]) -> str:
    lone = (m.group(1) and not m.group(2)) or m.group(3)
    return "\\ufffd" if lone else m.group(0)


def encode_string(s: str) -> str:
    out = encode_basestring(replace_surrogates(s))
    if any(c in out for c in "<>&\u2028\u2029"):
        out = (
            out.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return out


def _utf8_key(k: str) -> bytes:
    return replace_surrogates(k).encode("utf-8")


def _encode(v: Any, out: list[str], indent: str, depth: int) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, str):
        out.append(encode_string(v))
    elif isinstance(v, int):
        out.append(str(int(v)))
    elif isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            text = "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")
            raise UnsupportedValue(f"json: unsupported value: {text}")
        out.append(go_json_float(v))
    elif isinstance(v, AnyKeyMap):
        raise UnsupportedValue("json: unsupported type: map[interface {}]interface {}")
    elif isinstance(v, dict):
        items = list(v.items()) if isinstance(v, Struct) else sorted(
            v.items(), key=lambda kv: _utf8_key(kv[0])
        )
        if not items:
            out.append("{}")
            return
        out.append("{")
        colon = ": " if indent else ":"
        for i, (k, val) in enumerate(items):
            if i:
                out.append(",")
            _newline(out, indent, depth + 1)
            out.append(encode_string(k))
            out.append(colon)
            _encode(val, out, indent, depth + 1)
        _newline(out, indent, depth)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        if not v:
            out.append("[]")
            return
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _newline(out, indent, depth + 1)
            _encode(item, out, indent, depth + 1)
        _newline(out, indent, depth)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(v).__name__} as JSON")


def _newline(out: list[str], indent: str, depth: int) -> None:
    if indent:
        out.append("\n" + indent * depth)


def marshal(v: Any, *, indent: str = "") -> bytes:
    """Go ``json.Marshal(v)``, or ``json.MarshalIndent(v, "", indent)`` when ``indent`` is set.

    ``Struct`` dicts keep their order, other dicts are sorted; empty objects and arrays stay
    ``{}`` and ``[]`` when indented, as in Go."""
    out: list[str] = []
    _encode(v, out, indent, 0)
    return "".join(out).encode("utf-8")
