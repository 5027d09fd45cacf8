"""YAML reading and writing the way Go's yaml.v3 does it, on top of PyYAML.

kit decodes Kitfiles with yaml.v3, which keeps the source text of string fields and types the
scalars of ``parameters`` with YAML 1.2 core rules (plus some 1.1 leftovers). PyYAML's constructors
would turn ``1.10`` into ``1.1`` and ``yes`` into ``True``, so we only use PyYAML's composer (the
node tree, which also carries line numbers) and resolve plain scalars ourselves. The emitter
reproduces yaml.v3's output style (indent 2, its quoting rules, its natural map-key order) so that
a Kitfile written here reads the same as one written by kit.
"""

from __future__ import annotations

import base64
import datetime as _dt
import math
import re
from typing import Any, NamedTuple

import yaml

from kit_jupyter.gocompat import gostrconv

# Sentinel tags our resolver gives untagged scalars, so explicit tags can be told apart.
PLAIN = "?plain"
QUOTED = "?quoted"

STR = "!!str"
INT = "!!int"
FLOAT = "!!float"
BOOL = "!!bool"
NULL = "!!null"
TIMESTAMP = "!!timestamp"
MERGE = "!!merge"
BINARY = "!!binary"
MAP = "!!map"
SEQ = "!!seq"

_LONG_PREFIX = "tag:yaml.org,2002:"

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """Composer whose resolver marks untagged scalars instead of typing them."""

    def resolve(self, kind, value, implicit):
        if kind is yaml.ScalarNode:
            return PLAIN if implicit[0] else QUOTED
        return super().resolve(kind, value, implicit)


class YAMLSyntaxError(Exception):
    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


def compose_first(text: str | bytes) -> yaml.Node | None:
    """The node tree of the first document, or None for a stream without documents.

    yaml.v3's Decoder reads only the first document, so later documents are never parsed.
    """
    loader = _Loader(text)
    try:
        if not loader.check_node():
            return None
        return loader.get_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        where = f"line {line}: " if line is not None else ""
        raise YAMLSyntaxError(f"yaml: {where}{problem}", line) from None
    except yaml.YAMLError as exc:
        raise YAMLSyntaxError(f"yaml: {str(exc).splitlines()[0]}", None) from None
    except RecursionError:
        raise YAMLSyntaxError("yaml: exceeded max depth", None) from None
    finally:
        loader.dispose()


def short_tag(tag: str | None) -> str:
    if not tag:
        return ""
    if tag.startswith(_LONG_PREFIX):
        return "!!" + tag[len(_LONG_PREFIX) :]
    return tag


# ---------------------------------------------------------------------------------------------
# Scalar resolution (yaml.v3 resolve.go)

_HINTS: dict[str, str] = {}
for _c in "+-":
    _HINTS[_c] = "S"
for _c in "0123456789":
    _HINTS[_c] = "D"
for _c in "yYnNtTfFoO~":
    _HINTS[_c] = "M"
_HINTS["."] = "."

_RESOLVE_MAP: dict[str, tuple[str, Any]] = {}
for _tag, _val, _words in (
    (BOOL, True, ("true", "True", "TRUE")),
    (BOOL, False, ("false", "False", "FALSE")),
    (NULL, None, ("", "~", "null", "Null", "NULL")),
    (FLOAT, math.nan, (".nan", ".NaN", ".NAN")),
    (FLOAT, math.inf, (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")),
    (FLOAT, -math.inf, ("-.inf", "-.Inf", "-.INF")),
    (MERGE, "<<", ("<<",)),
):
    for _w in _words:
        _RESOLVE_MAP[_w] = (_tag, _val)

_YAML_STYLE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)?")
_DIGITS = {2: re.compile(r"[01]*"), 8: re.compile(r"[0-7]*"), 10: re.compile(r"[0-9]*"),
           16: re.compile(r"[0-9a-fA-F]*")}
_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1


class Timestamp(str):
    """A YAML timestamp; the string value is Go's RFC 3339 (nano) rendering of it.

    It behaves as that string in JSON (as Go's time.Time does) and is written unquoted in YAML.
    """

    __slots__ = ()


def _go_parse_unsigned_base0(s: str) -> int | None:
    """strconv.ParseUint(s, 0, 64) without the range check; s has no sign and no '_'."""
    if not s:
        return None
    base, body = 10, s
    if s[0] == "0":
        low = s[1:2].lower()
        if len(s) >= 3 and low in ("x", "b", "o"):
            base = {"x": 16, "b": 2, "o": 8}[low]
            body = s[2:]
        else:
            base, body = 8, s[1:]
    if not _DIGITS[base].fullmatch(body):
        return None
    return _bounded_int(body, base)


# Digits of the largest uint64 in each base: more significant digits than this cannot fit.
_UINT64_DIGITS = {2: 64, 8: 22, 10: 20, 16: 16}


def _bounded_int(digits: str, base: int) -> int:
    """``int(digits, base)``, or :data:`_UINT64_MAX` + 1 when the value cannot fit in 64 bits.

    Go's strconv stops at the range check; Python would convert thousands of digits (and refuse
    more than 4300 with a ValueError), so out-of-range values never reach ``int``.
    """
    significant = digits.lstrip("0")
    if len(significant) > _UINT64_DIGITS[base]:
        return _UINT64_MAX + 1
    return int(significant, base) if significant else 0


def _go_parse_int(s: str) -> int | None:
    try:
        return gostrconv.parse_int(s)
    except ValueError:
        return None


def _go_parse_uint(s: str) -> int | None:
    if s[:1] in "+-":
        return None
    v = _go_parse_unsigned_base0(s)
    return v if v is not None and v <= _UINT64_MAX else None


def _go_float(s: str) -> float | None:
    try:
        f = float(s)
    except ValueError:
        return None
    if math.isinf(f):
        return None  # Go: ErrRange, so not a float
    return f


# ASCII digits only (``\d`` would take any script's), as Go's time.Parse.
_TS_RE = re.compile(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
    r"(?:(?P<sep>[Tt ])([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[.,]([0-9]{1,9}))?"
    r"(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})?)?"
)


def parse_timestamp(s: str) -> Timestamp | None:
    """yaml.v3's timestamp (Go's time.Parse with its four layouts), rendered as RFC 3339 nano;
    None if Go would not read ``s`` as one. As Go: year 0 exists (a leap year), a zone offset
    may reach 24:60 (and is then written as Go writes it, +25:00)."""
    m = _TS_RE.fullmatch(s)
    if not m:
        return None
    sep, tz = m.group("sep"), m.group("tz")
    if sep in ("T", "t") and tz is None:
        return None
    if sep == " " and tz is not None:
        return None
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    try:
        _dt.date(year or 2000, month, day)  # year 0 is a leap year, as 2000
    except ValueError:
        return None
    hh = mm = ss = 0
    frac = ""
    if sep:
        hh, mm, ss = int(m.group(5)), int(m.group(6)), int(m.group(7))
        if hh >= 24 or mm >= 60 or ss >= 60:
            return None
        frac = (m.group(8) or "").rstrip("0")
    out = f"{year:04d}-{month:02d}-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}"
    if frac:
        out += "." + frac
    sign, offset = "+", 0
    if tz and tz != "Z":
        hours, minutes = int(tz[1:3]), int(tz[4:6])
        if hours > 24 or minutes > 60:
            return None
        sign, offset = tz[0], hours * 60 + minutes
    out += f"{sign}{offset // 60:02d}:{offset % 60:02d}" if offset else "Z"
    return Timestamp(out)


def resolve_plain(s: str) -> tuple[str, Any]:
    """Type an untagged plain scalar as yaml.v3 does: returns (short tag, Python value)."""
    hint = "N" if s == "" else _HINTS.get(s[0])
    if hint is None:
        return STR, s
    hit = _RESOLVE_MAP.get(s)
    if hit is not None:
        return hit
    if hint == ".":
        if _DOT_FLOAT.fullmatch(s):
            f = _go_float(s.replace("_", ""))
            if f is not None:
                return FLOAT, f
    elif hint in ("D", "S"):
        ts = parse_timestamp(s)
        if ts is not None:
            return TIMESTAMP, ts
        plain = s.replace("_", "")
        v = _go_parse_int(plain)
        if v is not None:
            return INT, v
        v = _go_parse_uint(plain)
        if v is not None:
            return INT, v
        if _YAML_STYLE_FLOAT.fullmatch(plain):
            f = _go_float(plain)
            if f is not None:
                return FLOAT, f
        for prefix, base in (("0b", 2), ("-0b", 2), ("0o", 8), ("-0o", 8)):
            if plain.startswith(prefix):
                digits = plain[len(prefix) :]
                if digits and _DIGITS[base].fullmatch(digits):
                    v = _bounded_int(digits, base) * (-1 if prefix[0] == "-" else 1)
                    if _INT64_MIN <= v <= _UINT64_MAX:
                        return INT, v
                break
    return STR, s


class TagError(Exception):
    """An explicit tag that does not fit its value (yaml.v3: ``cannot decode ...``)."""


def resolve_scalar(node: yaml.ScalarNode) -> tuple[str, Any]:
    """(short tag, value) of a scalar node, honouring explicit tags like yaml.v3."""
    tag = node.tag
    value = node.value
    if tag == QUOTED or (tag == PLAIN and node.style not in (None, "")):
        return STR, value
    if tag == PLAIN:
        return resolve_plain(value)
    st = short_tag(tag)
    if st == STR:
        return STR, value
    if st == "!":
        return STR, value
    if st == BINARY:
        try:
            # validate=True: Go's StdEncoding rejects characters outside the alphabet, where
            # Python would silently skip them.
            data = value.replace("\n", "").replace(" ", "")
            # the bytes, as Go keeps them in a string: invalid UTF-8 (a file name) survives as
            # surrogate escapes, the way os.fsdecode holds such a name
            return STR, base64.b64decode(data, validate=True).decode("utf-8", "surrogateescape")
        except (ValueError, TypeError):
            raise TagError("!!binary value contains invalid base64 data") from None
    if st in (BOOL, INT, FLOAT, NULL, TIMESTAMP, MERGE):
        rtag, rval = resolve_plain(value)
        if rtag == st:
            return rtag, rval
        if st == FLOAT and rtag == INT:
            return FLOAT, float(rval)
        raise TagError(f"cannot decode {rtag} `{value}` as a {st}")
    # Unknown (application) tags: yaml.v3 keeps the text.
    return st, value


def scalar_tag(node: yaml.ScalarNode) -> str:
    """The short tag yaml.v3 would report for this node in type errors."""
    try:
        return resolve_scalar(node)[0]
    except TagError:
        return short_tag(node.tag)


# ---------------------------------------------------------------------------------------------
# Numbers in Go's formats


def shortest_digits(f: float) -> tuple[str, int]:
    """Shortest round-tripping digits of abs(f) (no leading/trailing zeros) and the position
    of the decimal point: value = 0.<digits> x 10**dp."""
    mant, _, e = repr(abs(f)).partition("e")
    ip, _, fp = mant.partition(".")
    digits = ip + fp
    dp = len(ip) + (int(e) if e else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    return stripped.rstrip("0") or "0", dp


def _fmt_e(ds: str, dp: int, min_exp_digits: int = 2) -> str:
    exp = dp - 1
    mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    sign = "-" if exp < 0 else "+"
    return f"{mant}e{sign}{abs(exp):0{min_exp_digits}d}"


def _fmt_f(ds: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * (-dp) + ds
    if dp >= len(ds):
        return ds + "0" * (dp - len(ds))
    return ds[:dp] + "." + ds[dp:]


def go_format_g(f: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64), yaml.v3's float style (with YAML inf/nan)."""
    if math.isnan(f):
        return ".nan"
    if math.isinf(f):
        return ".inf" if f > 0 else "-.inf"
    neg = math.copysign(1.0, f) < 0
    if f == 0:
        return "-0" if neg else "0"
    ds, dp = shortest_digits(f)
    exp = dp - 1
    # 'g' with the shortest digits switches to %e when exp < -4 or exp >= 6.
    s = _fmt_e(ds, dp) if exp < -4 or exp >= 6 else _fmt_f(ds, dp)
    return ("-" if neg else "") + s


def go_json_float(f: float) -> str:
    """encoding/json's float64 rendering (caller rejects inf/nan first)."""
    neg = math.copysign(1.0, f) < 0
    if f == 0:
        return "-0" if neg else "0"
    ds, dp = shortest_digits(f)
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        s = _fmt_e(ds, dp)
        # clean up e-09 to e-9
        if len(s) >= 4 and s[-4] == "e" and s[-3] == "-" and s[-2] == "0":
            s = s[:-2] + s[-1]
    else:
        s = _fmt_f(ds, dp)
    return ("-" if neg else "") + s


# ---------------------------------------------------------------------------------------------
# Emitter (yaml.v3 encoder + libyaml emitter, block style, indent 2)

_OLD_BOOLS = frozenset("y Y yes Yes YES n N no No NO on On ON off Off OFF".split())
_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_BREAKS = "\n\r\x85\u2028\u2029"


def _printable(c: str) -> bool:
    o = ord(c)
    return (
        o == 0x0A
        or 0x20 <= o <= 0x7E
        or 0xA0 <= o <= 0xD7FF
        or (0xE000 <= o <= 0xFFFD and o != 0xFEFF)
    )


_SIMPLE = re.compile(r"[A-Za-z0-9_/](?:[A-Za-z0-9_./+=@ -]*[A-Za-z0-9_./+=@-])?")


class _Analysis:
    __slots__ = ("multiline", "flow_plain", "block_plain", "single", "block")

    def __init__(self, value: str):
        if _SIMPLE.fullmatch(value):
            # fast path: no indicators, breaks, edge spaces or special characters
            self.multiline = False
            self.flow_plain = self.block_plain = self.single = self.block = True
            return
        if not value:
            self.multiline = False
            self.flow_plain = False
            self.block_plain = True
            self.single = True
            self.block = False
            return
        block_ind = flow_ind = line_breaks = special = tabs = False
        leading_space = leading_break = trailing_space = trailing_break = False
        break_space = space_break = False
        prev_space = prev_break = False
        if value.startswith("---") or value.startswith("..."):
            block_ind = flow_ind = True
        preceded_ws = True
        n = len(value)
        for i, c in enumerate(value):
            followed_ws = i + 1 >= n or value[i + 1] in " \t" or value[i + 1] in _BREAKS
            if i == 0:
                if c in "#,[]{}&*!|>'\"%@`":
                    flow_ind = block_ind = True
                elif c in "?:":
                    flow_ind = True
                    if followed_ws:
                        block_ind = True
                elif c == "-" and followed_ws:
                    flow_ind = block_ind = True
            else:
                if c in ",?[]{}":
                    flow_ind = True
                elif c == ":":
                    flow_ind = True
                    if followed_ws:
                        block_ind = True
                elif c == "#" and preceded_ws:
                    flow_ind = block_ind = True
            if c == "\t":
                tabs = True
            elif not _printable(c):
                special = True
            if c == " ":
                if i == 0:
                    leading_space = True
                if i == n - 1:
                    trailing_space = True
                if prev_break:
                    break_space = True
                prev_space, prev_break = True, False
            elif c in _BREAKS:
                line_breaks = True
                if i == 0:
                    leading_break = True
                if i == n - 1:
                    trailing_break = True
                if prev_space:
                    space_break = True
                prev_space, prev_break = False, True
            else:
                prev_space = prev_break = False
            preceded_ws = c in " \t" or c in _BREAKS
        self.multiline = line_breaks
        self.flow_plain = self.block_plain = self.single = self.block = True
        if leading_space or leading_break or trailing_space or trailing_break:
            self.flow_plain = self.block_plain = False
        if trailing_space:
            self.block = False
        if break_space:
            self.flow_plain = self.block_plain = self.single = False
        if space_break or tabs or special:
            self.flow_plain = self.block_plain = self.single = False
        if space_break or special:
            self.block = False
        if line_breaks:
            self.flow_plain = self.block_plain = False
        if flow_ind:
            self.flow_plain = False
        if block_ind:
            self.block_plain = False


_ESCAPES = {
    "\0": "0", "\a": "a", "\b": "b", "\t": "t", "\n": "n", "\v": "v", "\f": "f", "\r": "r",
    "\x1b": "e", '"': '"', "\\": "\\", "\x85": "N", "\xa0": "_", "\u2028": "L", "\u2029": "P",
}


def _double_quoted(value: str) -> str:
    out = ['"']
    for c in value:
        if not _printable(c) or c == "\ufeff" or c in _BREAKS or c in '"\\':
            esc = _ESCAPES.get(c)
            if esc is not None:
                out.append("\\" + esc)
            else:
                o = ord(c)
                if o <= 0xFF:
                    out.append(f"\\x{o:02X}")
                elif o <= 0xFFFF:
                    out.append(f"\\u{o:04X}")
                else:
                    out.append(f"\\U{o:08X}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _single_quoted(value: str, indent: int) -> str:
    """libyaml's single-quoted writer; only U+2028/U+2029 can be breaks here (a newline makes
    yaml.v3 choose a literal or double-quoted style instead)."""
    if not any(c in _BREAKS for c in value):
        return "'" + value.replace("'", "''") + "'"
    out = ["'"]
    breaks = False
    for c in value:
        if c in _BREAKS:
            if not breaks and c == "\n":
                out.append("\n")
            out.append(c)
            breaks = True
        else:
            if breaks:
                out.append(" " * indent)
            out.append("''" if c == "'" else c)
            breaks = False
    out.append("'")
    return "".join(out)


def _needs_quotes(s: str) -> bool:
    """yaml.v3's ``!canUsePlain``: the text would read back as something other than a string."""
    try:
        tag = resolve_plain(s)[0]
    except Exception:  # pragma: no cover - defensive
        tag = STR
    return tag != STR or s in _OLD_BOOLS or bool(_BASE60.fullmatch(s))


def _literal(value: str, indent: int) -> str:
    hints = "|"
    if value[0] == " " or value[0] in _BREAKS:
        hints += "2"
    if value[-1] not in _BREAKS:
        hints += "-"
    elif len(value) == 1 or value[-2] in _BREAKS:
        hints += "+"
    out = [hints, "\n"]
    pad = " " * indent
    breaks = True
    line: list[str] = []
    for c in value:
        if c in _BREAKS:
            if line:
                out.append("".join(line))
                line = []
            out.append(c)
            breaks = True
        else:
            if breaks:
                line.append(pad)
            line.append(c)
            breaks = False
    if line:
        out.append("".join(line))
    text = "".join(out)
    if value[-1] not in _BREAKS:
        text += "\n"
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(s: str) -> str:
    """``s`` with U+FFFD for each lone surrogate -- the escape of a byte that is not UTF-8
    (``os.fsdecode``), or a ``\\ud800`` read from JSON -- which is what Go's encoders and
    decoders give for invalid UTF-8. The one copy of that rule: the JSON writer and reader and
    the ``!!binary`` writer all use it."""
    return s if s.isascii() else _SURROGATE.sub("\ufffd", s)


def _binary(s: str) -> str | None:
    """yaml.v3's ``!!binary`` text for a string that is not valid UTF-8 (a file name's bytes,
    held as ``os.fsdecode`` holds them), else None: the base64 of the bytes, in lines of 70
    characters each ended by a line break when there is more than one (``encodeBase64``)."""
    if s.isascii():
        return None
    try:
        s.encode("utf-8")
        return None
    except UnicodeEncodeError:
        pass
    try:
        raw = s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no byte stands for: U+FFFD, as Go has it
        raw = replace_surrogates(s).encode()
    text = base64.b64encode(raw).decode()
    if len(text) < 70:
        return text
    return "".join(text[i:i + 70] + "\n" for i in range(0, len(text), 70))


def format_string(
    s: str, *, indent: int, flow: bool = False, key: bool = False, force_plain: bool = False
) -> str:
    """A string scalar in yaml.v3's style; block scalars end with a newline, others do not.
    A string that is not valid UTF-8 is written as yaml.v3 writes it, ``!!binary``: plain on
    one line, a literal block (double-quoted in flow) on several."""
    binary = _binary(s)
    if binary is not None:
        if "\n" not in binary:
            return f"{BINARY} {binary}"
        return f"{BINARY} " + (_double_quoted(binary) if flow else _literal(binary, indent))
    a = _Analysis(s)
    if force_plain:
        style = "plain"
    elif "\n" in s:
        style = "double" if flow else "literal"
    elif not _needs_quotes(s):
        style = "plain"
    else:
        style = "double"
    if key and a.multiline:
        style = "double"
    if style == "plain":
        if (flow and not a.flow_plain) or (not flow and not a.block_plain):
            style = "single"
        if not s and (flow or key):
            style = "single"
    if style == "single" and not a.single:
        style = "double"
    if style == "literal" and (not a.block or flow or key):
        style = "double"
    if style == "plain":
        return s
    if style == "single":
        return _single_quoted(s, indent)
    if style == "double":
        return _double_quoted(s)
    return _literal(s, indent)


def _kind_rank(v: Any) -> int:
    # reflect.Kind order: Bool(1) < Int(2) < Float64(14) < Interface(20) < Slice(23)
    # < String(24) < Struct(25)
    if v is None:
        return 20  # a nil interface{} key stays reflect.Interface
    if isinstance(v, Timestamp):
        return 25  # time.Time: reflect.Struct
    if isinstance(v, bool):
        return 1
    if isinstance(v, int):
        return 2
    if isinstance(v, float):
        return 14
    if isinstance(v, str):
        return 24
    return 23


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        return float(v)
    return None


def key_less(a: Any, b: Any) -> bool:
    """yaml.v3's keyList.Less: numbers numerically, strings in natural order, else by kind."""
    af, bf = _num(a), _num(b)
    if af is not None and bf is not None:
        if af != bf:
            return af < bf
        ak, bk = _kind_rank(a), _kind_rank(b)
        if ak != bk:
            return ak < bk
        return a < b
    ak, bk = _kind_rank(a), _kind_rank(b)
    if ak != 24 or bk != 24:
        return ak < bk
    digits = False
    for i in range(min(len(a), len(b))):
        ca, cb = a[i], b[i]
        if ca == cb:
            digits = ca.isdecimal()
            continue
        al, bl = ca.isalpha(), cb.isalpha()
        if al and bl:
            return ca < cb
        if al or bl:
            return al if digits else bl
        an = bn = 0
        if ca == "0" or cb == "0":
            j = i - 1
            while j >= 0 and a[j].isdecimal():
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and a[ai].isdecimal():
            an = an * 10 + (ord(a[ai]) - 48)
            ai += 1
        bi = i
        while bi < len(b) and b[bi].isdecimal():
            bn = bn * 10 + (ord(b[bi]) - 48)
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ca < cb
    return len(a) < len(b)


class _KeyCmp:
    __slots__ = ("k",)

    def __init__(self, k: Any):
        self.k = k

    def __lt__(self, other: _KeyCmp) -> bool:
        return key_less(self.k, other.k)


def _letter_key(s: str) -> tuple:
    # Without digits, keyList.Less is: letters by code point, a non-letter before a letter,
    # non-letters by code point, a prefix first -- exactly this tuple order.
    return tuple((c.isalpha(), ord(c)) for c in s)


def sorted_keys(d: dict) -> list:
    keys = list(d.keys())
    if all(isinstance(k, str) and not any(c.isdecimal() for c in k) for k in keys):
        return sorted(keys, key=_letter_key)
    return sorted(keys, key=_KeyCmp)


class Struct(dict):
    """An ordered mapping of a Go struct: written in insertion order, never sorted."""


class MapKey(NamedTuple):
    """A key of a mapping that has non-string keys; ``kind`` (the YAML tag) keeps ``1``,
    ``1.0`` and ``true`` apart, as Go's interface{} keys are."""

    kind: str
    value: Any


class AnyKeyMap(dict):
    """A YAML mapping with a non-string key (Go: map[interface{}]interface{}); keys are
    :class:`MapKey`. It can be written as YAML but not as JSON, like in kit."""

    def plain_items(self) -> list[tuple[Any, Any]]:
        return [(k.value, v) for k, v in self.items()]


class FlowList(list):
    """A list written in flow style (``authors: [a, b]``)."""


def format_scalar(v: Any, *, indent: int, flow: bool = False, key: bool = False) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_format_g(v)
    if isinstance(v, Timestamp):
        return str.__str__(v)
    if isinstance(v, str):
        return format_string(v, indent=indent, flow=flow, key=key)
    raise TypeError(f"cannot write {type(v).__name__} as YAML")


def _items(d: dict) -> list:
    if isinstance(d, Struct):
        return list(d.items())
    if isinstance(d, AnyKeyMap):
        return sorted(d.plain_items(), key=lambda kv: _KeyCmp(kv[0]))
    return [(k, d[k]) for k in sorted_keys(d)]


def _line_end(text: str) -> str:
    """A scalar followed by the end of its line; block scalars already end their lines."""
    return text if text.startswith(("|", f"{BINARY} |")) else text + "\n"


def _simple_key(k: Any, indent: int) -> str | None:
    """``key`` as a simple key, or None when libyaml needs the complex ``? key`` form
    (more than 128 bytes, or a line break in the key)."""
    binary = _binary(k) if isinstance(k, str) else None
    if binary is not None:  # one line of base64 is short enough; several are never simple
        return None if "\n" in binary else f"{BINARY} {binary}"
    raw = k if isinstance(k, str) else format_scalar(k, indent=indent)
    if isinstance(k, str) and any(c in _BREAKS for c in k):
        return None
    if len(raw.encode("utf-8", "surrogatepass")) > 128:
        return None
    return format_scalar(k, indent=indent, key=True)


def _emit_value_after_key(v: Any, indent: int, out: list[str]) -> None:
    """Write the value of a block-mapping entry whose key (at ``indent``) is already out."""
    if isinstance(v, FlowList):
        parts = [format_scalar(x, indent=indent + 4, flow=True) for x in v]
        out.append(" [" + ", ".join(parts) + "]\n")
    elif isinstance(v, dict) and v:
        out.append("\n")
        _emit_mapping(v, indent + 2, out)
    elif isinstance(v, list) and v:
        out.append("\n")
        _emit_sequence(v, indent + 2, out)
    else:
        _emit_compact(v, indent, out)


def _emit_compact(v: Any, indent: int, out: list[str]) -> None:
    """The node after a ``-`` or a complex key's ``:`` at ``indent``: collections start on the
    same line, their further lines at ``indent + 2``."""
    if isinstance(v, FlowList):
        parts = [format_scalar(x, indent=indent + 4, flow=True) for x in v]
        out.append(" [" + ", ".join(parts) + "]\n")
    elif isinstance(v, dict) and v:
        out.append(" ")
        _emit_mapping(v, indent + 2, out, first_inline=True)
    elif isinstance(v, list) and v and not isinstance(v, FlowList):
        out.append(" ")
        _emit_sequence(v, indent + 2, out, first_inline=True)
    elif isinstance(v, dict):
        out.append(" {}\n")
    elif isinstance(v, list):
        out.append(" []\n")
    else:
        out.append(" " + _line_end(format_scalar(v, indent=indent + 2)))


def _emit_mapping(d: dict, indent: int, out: list[str], first_inline: bool = False) -> None:
    pad = " " * indent
    for i, (k, v) in enumerate(_items(d)):
        if not (first_inline and i == 0):
            out.append(pad)
        key = _simple_key(k, indent)
        if key is not None:
            out.append(key + ":")
            _emit_value_after_key(v, indent, out)
        else:
            out.append("? " + _line_end(format_scalar(k, indent=indent + 2)) + pad + ":")
            _emit_compact(v, indent, out)


def _emit_sequence(seq: list, indent: int, out: list[str], first_inline: bool = False) -> None:
    pad = " " * indent
    for i, v in enumerate(seq):
        if not (first_inline and i == 0):
            out.append(pad)
        out.append("-")
        _emit_compact(v, indent, out)


def dump_document(root: Any) -> str:
    """One YAML document in yaml.v3's encoder style with indent 2 (no ``---``)."""
    out: list[str] = []
    if isinstance(root, dict):
        if not root:
            return "{}\n"
        _emit_mapping(root, 0, out)
    elif isinstance(root, list):
        if not root:
            return "[]\n"
        _emit_sequence(root, 0, out)
    else:
        out.append(_line_end(format_scalar(root, indent=2)))
    return "".join(out)
