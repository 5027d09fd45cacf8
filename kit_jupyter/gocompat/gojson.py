"""Byte-exact emulation of Go's ``encoding/json.Marshal`` for the values a Kitfile holds.

The config blob's digest is part of every ModelKit manifest, so the bytes must equal kit's:
compact separators, HTML-safe escaping of ``<``, ``>`` and ``&``, U+2028/2029 escaped, map keys
sorted by their UTF-8 bytes, and Go's float formatting (spec §4, §3.4).
"""

from __future__ import annotations

import json
import math
from typing import Any

from kit_jupyter.gocompat.goyaml import AnyKeyMap, Struct, go_json_float

_encode_str = json.encoder.encode_basestring


class UnsupportedValue(ValueError):
    """json.Marshal would fail; the message is Go's."""


def _clean_surrogates(s: str) -> str:
    """Lone surrogates stand for invalid UTF-8; Go writes U+FFFD for those."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)


def encode_string(s: str) -> str:
    out = _encode_str(_clean_surrogates(s))
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
    return _clean_surrogates(k).encode("utf-8")


def _encode(v: Any, out: list[str]) -> None:
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
        out.append("{")
        for i, (k, val) in enumerate(items):
            if i:
                out.append(",")
            out.append(encode_string(k))
            out.append(":")
            _encode(val, out)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(v).__name__} as JSON")


def marshal(v: Any) -> bytes:
    """Go ``json.Marshal(v)``; ``Struct`` dicts keep their order, other dicts are sorted."""
    out: list[str] = []
    _encode(v, out)
    return "".join(out).encode("utf-8")
