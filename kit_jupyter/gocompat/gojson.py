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
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

from kit_jupyter.gocompat.goyaml import AnyKeyMap, Struct, go_json_float, replace_surrogates


class UnsupportedValue(ValueError):
    """json.Marshal would fail; the message is Go's."""


def unmarshal(data: bytes | str, **options: Any) -> Any:
    """``json.loads`` (``options`` are its keywords) for JSON that comes from outside: a
    registry's manifest or config, an annotation, a token answer, a file another tool wrote.
    It reads what Go's ``encoding/json`` reads, so that what one tool accepts the other does:

    * Nesting too deep for Python's recursive decoder (about a thousand levels: ``[[[[...``)
      is the ``ValueError`` any other bad JSON is, instead of a ``RecursionError`` that would
      pass every ``except ValueError`` and end as a traceback. Go refuses it too (beyond
      10,000 levels).
    * ``NaN``, ``Infinity`` and a number no float64 holds (``1e400``, or a long integer read
      with ``parse_int=float``) are refused, as Go refuses them. Python would keep them, and
      the value would fail later, wherever it is written back (an index file, a config).
    * Bytes are UTF-8 and nothing else: a byte order mark, or UTF-16 and UTF-32 (which
      ``json.loads`` would detect), are not JSON to Go. A byte that is not UTF-8, and a lone
      surrogate (an escape, or its UTF-8 form), is U+FFFD, one for each byte as Go reads it:
      Python would keep a surrogate, and a str holding one fails later, wherever it is encoded
      (a tag printed, a path made)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "surrogateescape")   # each bad byte a surrogate, then U+FFFD
    if "\\u" in data:
        data = _ESCAPE.sub(_lone_escape, data)
    data = replace_surrogates(data)
    options["parse_float"] = _finite(options.get("parse_float", float))
    if "parse_int" in options:   # Python's own int() never gives a float
        options["parse_int"] = _finite(options["parse_int"])
    options["parse_constant"] = _constant
    try:
        return json.loads(data, **options)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _finite(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse``, refusing a float that is not finite (what no float64 holds), in Go's words."""
    def number(text: str) -> Any:
        value = parse(text)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"cannot unmarshal number {text[:40]} into Go value of type "
                             "float64")
        return value
    return number


def _constant(name: str) -> Any:
    """Go's message for ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON."""
    if name.startswith("-"):
        raise ValueError("invalid character 'I' in numeric literal")
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def json_kind(value: object) -> str:
    """The JSON type of a decoded value in Go's words, as its ``UnmarshalTypeError`` names it
    ("cannot unmarshal number into ..."): ``null``, ``bool``, ``number``, ``string``,
    ``array`` or ``object``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


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
