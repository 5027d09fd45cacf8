"""Go ``text/template``, the part ``kit list --format '<template>'`` users write.

kit executes the ``--format`` text with Go's ``text/template`` once per listed ModelKit, so a
template that works with kit must print the same bytes here, and a broken one must fail with Go's
message. This is a safe subset, evaluated without ``eval`` and without touching Python attributes:

* text, comments (``{{/* … */}}``) and the trim markers ``{{-`` / ``-}}``;
* actions holding a pipeline: ``.``, ``.Field`` chains, ``$`` and ``$var``, string (``"…"``,
  raw ````…````), rune-free number, ``true`` / ``false`` / ``nil`` literals, parentheses,
  ``|`` chains, and Go's builtin functions ``and or not len index print printf println
  eq ne lt le gt ge``;
* ``{{if}}`` / ``{{else if}}`` / ``{{else}}`` / ``{{end}}``, ``{{range}}`` (with ``$i, $v :=``
  and ``{{else}}``) and ``{{with}}``.

Values are Python objects: a mapping is a Go struct whose keys are its exported field names
(``type_name`` names the struct in errors), a list a slice, ``None`` a nil slice or interface;
an int is Go's int, a float a float64 and a bool a bool, three kinds ``eq``/``lt`` keep apart
(``eq 1 1.0`` is Go's error). A string is Go's UTF-8 bytes where Go counts them: ``len`` and
``index`` (an element is a byte, a number) and the column of an error.
Printing follows ``fmt``'s ``%v``: ``[a b]`` for slices, ``<no value>`` for a missing value.
Error texts are Go's, ``template: <name>:<line>: …`` for parse errors and
``template: <name>:<line>:<col>: executing "<name>" at <node>: …`` for execution errors, on one
line (a line break Go would print inside a quoted node or value is a space).

Two known differences. A ``"\\x80"`` literal (``\\x`` or octal escapes whose bytes are no
UTF-8) is a raw byte in Go; a Python string holds none, so it is U+FFFD here, one per byte --
what Go's output shows read as UTF-8 -- and ``len``/``index``/``%q``/``lt`` of it see U+FFFD's
three bytes where Go sees the one. And ``%q`` escapes what Go's ``unicode.IsPrint`` refuses on
Python's Unicode version (Go 1.24 has Unicode 15.0, as Python 3.12 does): a code point assigned
in only one of the two versions is printed by one and escaped by the other.

Go has no bounds of its own; a template typed into a notebook must not exhaust the kernel, so
this one has some no list format comes near (:data:`MAX_DEPTH`, :data:`MAX_STEPS`,
:data:`MAX_OUTPUT`), each failing with a TemplateError that names it.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kit_jupyter.errors import KitError, one_line
from kit_jupyter.gocompat.gostrconv import can_backquote, go_bytes, quote, quote_rune
from kit_jupyter.gocompat.goyaml import go_format_g


class TemplateError(KitError):
    """A template Go would refuse to parse or fail to execute; Go's text, on one line: a line
    break in it (a raw string or a value quoted in the error's context) becomes a space."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


#: Nesting of parentheses and {{if}}/{{range}}/{{with}} blocks (else-if chains count) the parser
#: accepts: Go allows 10000 parentheses and any number of blocks, Python's stack far fewer.
MAX_DEPTH = 100
#: Nodes and range iterations one execution may run (``{{range 1000000000}}`` is valid Go).
MAX_STEPS = 100_000
#: Characters one execution may print, and may build with print/printf/println: Go streams
#: whatever a template makes; here it is held in memory.
MAX_OUTPUT = 1 << 24


_BUILTINS = ("and", "or", "not", "len", "index", "print", "printf", "println",
             "eq", "ne", "lt", "le", "gt", "ge")
_KEYWORDS = ("if", "else", "end", "range", "with")

# -- nodes -------------------------------------------------------------------------------------


@dataclass
class _Arg:
    kind: str            # field | dot | var | string | number | bool | nil | func | pipe
    value: Any
    pos: int
    text: str            # Go's String() of the node, for error context


@dataclass
class _Command:
    args: list[_Arg]
    pos: int

    @property
    def text(self) -> str:
        return " ".join(a.text for a in self.args)


@dataclass
class _Pipe:
    decl: list[str]
    cmds: list[_Command]
    pos: int

    @property
    def text(self) -> str:
        body = " | ".join(c.text for c in self.cmds)
        return f"{', '.join(self.decl)} := {body}" if self.decl else body


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    pipe: _Pipe


@dataclass
class _Branch:
    kind: str            # if | range | with
    pipe: _Pipe
    body: list[Any] = field(default_factory=list)
    otherwise: list[Any] = field(default_factory=list)


# -- lexing ------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|[0-9][0-9_]*(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?
                     |\.[0-9]+))
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<declare>:=)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<dot>\.)
  | (?P<char>[|(),=])
""", re.VERBOSE)

_TRIM_LEFT = re.compile(r"\{\{-[ \t\r\n]")
_TRIM_RIGHT = re.compile(r"[ \t\r\n]-\}\}")
_COMMENT_START = re.compile(r"[ \t\r\n]*/\*")
_GO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "a": "\a", "b": "\b",
               "f": "\f", "v": "\v"}
_HEX_WIDTH = {"x": 2, "u": 4, "U": 8}


def _unquote(s: str) -> str:
    """Go's ``strconv.Unquote`` of a ``"…"`` token; ValueError where Go's is ``invalid syntax``:
    an unknown escape (``\\'`` too), too few hex or octal digits, an octal value over 255, a
    surrogate or a code point past U+10FFFF.

    ``\\xNN`` and octal escapes are bytes in Go, not runes: a run of them is read as UTF-8
    (``"\\xc3\\xa9"`` is ``é``), and each byte Go's ``utf8.DecodeRune`` would refuse there is
    U+FFFD -- a Python string holds no raw byte (see :func:`_go_text`)."""
    out: list[str] = []
    raw = bytearray()  # the run of byte escapes under way
    i, end = 1, len(s) - 1
    while i < end:
        c = s[i]
        nxt = s[i + 1] if c == "\\" else ""  # the lexer pairs each backslash with a character
        if nxt and (nxt in _HEX_WIDTH or nxt not in _GO_ESCAPES):
            if nxt in _HEX_WIDTH:
                digits, octal = s[i + 2:min(i + 2 + _HEX_WIDTH[nxt], end)], False
            else:
                digits, octal = s[i + 1:min(i + 4, end)], True
            allowed = "01234567" if octal else string.hexdigits
            if len(digits) != (3 if octal else _HEX_WIDTH[nxt]) or \
                    not all(d in allowed for d in digits):
                raise ValueError("invalid syntax")
            code = int(digits, 8 if octal else 16)
            if code > (0xFF if octal else 0x10FFFF) or 0xD800 <= code < 0xE000:
                raise ValueError("invalid syntax")
            i += 1 + len(digits) + (0 if octal else 1)
            if octal or nxt == "x":
                raw.append(code)
                continue
            piece = chr(code)
        elif nxt:
            piece = _GO_ESCAPES[nxt]
            i += 2
        else:
            piece = c
            i += 1
        if raw:  # no rune's first byte continues a byte run, so the run ends here
            out.append(_go_text(bytes(raw)))
            raw.clear()
        out.append(piece)
    if raw:
        out.append(_go_text(bytes(raw)))
    return "".join(out)


#: The lone surrogates ``surrogateescape`` gives bytes that are not UTF-8, each to U+FFFD.
_BAD_BYTES = {0xDC80 + b: "\ufffd" for b in range(0x80)}


def _go_text(data: bytes) -> str:
    """Go bytes as text: UTF-8, with U+FFFD for each byte ``utf8.DecodeRune`` refuses (one
    per byte, as ranging over the string in Go gives them). Go keeps the bytes themselves, so
    ``len``/``index``/``%q`` of such a string see three bytes of U+FFFD where Go sees one."""
    return data.decode("utf-8", "surrogateescape").translate(_BAD_BYTES)


def _number(token: str) -> int | float:
    """The value Go's parser gives a number token (``parse.newNumber``) and Go's errors: an
    integer that fits int64 or uint64 (``0x`` hex, a leading ``0`` octal), else a float64
    written as one; a whole number Go can only read as a float is ``integer overflow``, one it
    cannot read at all (or past float64's range) ``illegal number syntax``. Digits are counted
    before ``int()``, which refuses more than 4300 of them."""
    text = token.replace("_", "")
    body = text.lstrip("+-")
    quoted = f'"{token}"'  # Go's %q: the token is ASCII without quotes or backslashes
    if body[:2] in ("0x", "0X"):
        digits, base = body[2:], 16
    elif any(c in body for c in ".eE"):
        digits, base = "", 0
    elif len(body) > 1 and body[0] == "0":
        digits, base = body[1:], 8
    else:
        digits, base = body, 10
    if base:
        allowed = string.hexdigits if base == 16 else "0123456789"[:base]
        if digits and all(d in allowed for d in digits) and len(digits.lstrip("0")) <= 22:
            num = int(digits, base) * (-1 if text.startswith("-") else 1)
            if -(1 << 63) <= num < (1 << 64):
                return num
        if base == 16:  # Go's ParseFloat wants a 'p' exponent in hex
            raise ValueError(f"illegal number syntax: {quoted}")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"illegal number syntax: {quoted}") from None
    if math.isinf(value):
        raise ValueError(f"illegal number syntax: {quoted}")
    if base:
        raise ValueError(f"integer overflow: {quoted}")
    return value


class _Parser:
    def __init__(self, name: str, text: str):
        self.name = name
        self.src = text

    def fail(self, pos: int, msg: str) -> TemplateError:
        line = 1 + self.src.count("\n", 0, pos)
        return TemplateError(f"template: {self.name}:{line}: {msg}")

    # the template as a flat list of text pieces and actions (kind, content, pos)
    def items(self) -> list[tuple[str, str, int]]:
        out: list[tuple[str, str, int]] = []
        i, src = 0, self.src
        trim_next = False
        while True:
            j = src.find("{{", i)
            text = src[i:] if j < 0 else src[i:j]
            if trim_next:
                text = text.lstrip(" \t\r\n")
            left_trim = j >= 0 and _TRIM_LEFT.match(src, j) is not None
            if left_trim:
                text = text.rstrip(" \t\r\n")
            if text:
                out.append(("text", text, i))
            if j < 0:
                return out
            start = j + 3 if left_trim else j + 2
            end, trim_next = self._action_end(start)
            out.append(("action", src[start:end], start))
            i = end + (3 if trim_next else 2)

    def _action_end(self, start: int) -> tuple[int, bool]:
        src, i = self.src, start
        comment = _COMMENT_START.match(src, start)  # not a copy of the rest: many actions
        if comment:
            close = src.find("*/", comment.end())
            if close < 0:
                raise self.fail(start, "unclosed comment")
            i = close + 2
        quote: str | None = None
        while i < len(src):
            c = src[i]
            if quote:
                if c == "\\" and quote == '"':
                    i += 2
                    continue
                if c == quote:
                    quote = None
                elif c == "\n" and quote == '"':
                    raise self.fail(i, "unterminated quoted string")
            elif c in "\"`":
                quote = c
            elif _TRIM_RIGHT.match(src, i):
                return i + 1, True
            elif src.startswith("}}", i):
                return i, False
            i += 1
        if quote:
            raise self.fail(start, "unterminated quoted string")
        raise self.fail(start, "unclosed action")

    def parse(self) -> list[Any]:
        self._items = self.items()
        self._at = 0
        self._depth = 0
        body, stop = self._list(())
        if stop is not None:
            kind, _, pos = stop
            raise self.fail(pos, f"unexpected {{{{{kind}}}}}")
        return body

    def _list(self, stops: tuple[str, ...]) -> tuple[list[Any], tuple[str, str, int] | None]:
        out: list[Any] = []
        while self._at < len(self._items):
            kind, content, pos = self._items[self._at]
            self._at += 1
            if kind == "text":
                out.append(_Text(content))
                continue
            body = content.strip(" \t\r\n")
            if body.startswith("/*"):
                if not body.endswith("*/"):
                    raise self.fail(pos, "comment ends before closing delimiter")
                continue
            word = re.match(r"[A-Za-z]+", body)
            keyword = word.group(0) if word and word.group(0) in _KEYWORDS else None
            if keyword in ("end", "else"):
                if keyword not in stops:
                    raise self.fail(pos, f"unexpected {{{{{keyword}}}}}")
                return out, (keyword, body[len(keyword):].strip(" \t\r\n"), pos)
            if keyword in ("if", "range", "with"):
                rest = body[len(keyword):]
                out.append(self._branch(keyword, rest, pos + content.index(keyword) + len(keyword)))
                continue
            out.append(_Action(self._pipe(body, pos + (len(content) - len(content.lstrip())),
                                          allow_decl=True)))
        if stops:
            raise self.fail(len(self.src), "unexpected EOF")
        return out, None

    def _nest(self, pos: int, by: int) -> None:
        """One level deeper (``by`` 1) or back (-1); the parser and the executor recurse per
        level, so Python's stack sets the bound (:data:`MAX_DEPTH`), in Go's words."""
        self._depth += by
        if self._depth > MAX_DEPTH:
            raise self.fail(pos, "max expression depth exceeded")

    def _branch(self, kind: str, rest: str, pos: int) -> _Branch:
        if not rest.strip():
            raise self.fail(pos, f"missing value for {kind}")
        self._nest(pos, 1)
        node = _Branch(kind, self._pipe(rest, pos, allow_decl=True, in_range=kind == "range"))
        node.body, stop = self._list(("end", "else"))
        assert stop is not None
        if stop[0] == "else":
            tail = stop[1]
            if tail.startswith("if") and kind == "if" and (len(tail) == 2 or not tail[2].isalnum()):
                # {{else if …}} is {{else}}{{if …}}…{{end}} sharing the one {{end}}
                node.otherwise = [self._branch("if", tail[2:], stop[2])]
                self._nest(pos, -1)
                return node
            if tail:
                raise self.fail(stop[2], f"unexpected {tail.split()[0]!r} in else")
            node.otherwise, stop = self._list(("end",))
            assert stop is not None
        self._nest(pos, -1)
        return node

    # -- pipelines ------------------------------------------------------------------------------

    def _tokens(self, text: str, base: int) -> list[tuple[str, str, int]]:
        out, i = [], 0
        while i < len(text):
            m = _TOKEN.match(text, i)
            if not m:
                ch = text[i]
                if ch == "}":
                    raise self.fail(base + i, 'unexpected "}" in operand')
                raise self.fail(base + i, f"unexpected bad character U+{ord(ch):04X} {ch!r} "
                                          "in command")
            kind = m.lastgroup or ""
            if kind != "space":
                out.append((kind, m.group(0), base + i))
            i = m.end()
        return out

    def _pipe(self, text: str, base: int, *, allow_decl: bool = False,
              in_range: bool = False) -> _Pipe:
        toks = self._tokens(text, base)
        decl: list[str] = []
        if allow_decl and toks and toks[0][0] == "var":
            names, k = [], 0
            while k < len(toks) and toks[k][0] == "var":
                names.append(toks[k][1])
                if k + 1 < len(toks) and toks[k + 1][1] == "," and in_range:
                    k += 2
                    continue
                k += 1
                break
            if k < len(toks) and toks[k][0] == "declare":
                decl = names
                toks = toks[k + 1:]
        self._toks, self._k = toks, 0
        pipe = self._pipeline(base, decl)
        if self._k < len(self._toks):
            _, value, pos = self._toks[self._k]
            where = "command" if value == ")" else "operand"
            raise self.fail(pos, f"unexpected {value!r} in {where}")
        return pipe

    def _pipeline(self, pos: int, decl: list[str]) -> _Pipe:
        cmds = [self._command()]
        while self._k < len(self._toks) and self._toks[self._k][1] == "|":
            self._k += 1
            cmds.append(self._command())
        return _Pipe(decl, cmds, pos)

    def _command(self) -> _Command:
        args: list[_Arg] = []
        start = self._toks[self._k][2] if self._k < len(self._toks) else 0
        while self._k < len(self._toks) and self._toks[self._k][1] not in "|)":
            args.append(self._operand())
        if not args:
            raise self.fail(start, "missing value for command")
        return _Command(args, args[0].pos)

    def _operand(self) -> _Arg:
        kind, value, pos = self._toks[self._k]
        self._k += 1
        if kind == "field":
            return _Arg("field", value[1:].split("."), pos, value)
        if kind == "dot":
            return _Arg("dot", None, pos, ".")
        if kind == "var":
            name, *fields = value.split(".")
            return _Arg("var", (name, fields), pos, value)
        if kind in ("string", "number"):
            try:
                literal = _unquote(value) if kind == "string" else _number(value)
            except ValueError as exc:
                raise self.fail(pos, str(exc)) from None
            return _Arg(kind, literal, pos, value)
        if kind == "raw":
            return _Arg("string", value[1:-1], pos, value)
        if kind == "ident":
            if value in ("true", "false"):
                return _Arg("bool", value == "true", pos, value)
            if value == "nil":
                return _Arg("nil", None, pos, value)
            if value not in _BUILTINS:
                raise self.fail(pos, f'function "{value}" not defined')
            return _Arg("func", value, pos, value)
        if value == "(":
            self._nest(pos, 1)
            inner = self._pipeline(pos, [])
            if self._k >= len(self._toks) or self._toks[self._k][1] != ")":
                raise self.fail(pos, "unclosed left paren")
            self._k += 1
            self._nest(pos, -1)
            return _Arg("pipe", inner, pos, f"({inner.text})")
        raise self.fail(pos, f"unexpected {value!r} in operand")


# -- execution ---------------------------------------------------------------------------------

class _Missing:
    """Go's "no value" (a missing map key)."""


NO_VALUE = _Missing()


class _Byte(int):
    """An element of a string (``index "abc" 0``): Go's byte, a uint8 -- a number, which
    errors name by its type."""


def _type_name(value: Any, struct_name: str) -> str:
    if isinstance(value, Mapping):
        return struct_name
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, _Byte):
        return "uint8"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "[]string" if all(isinstance(x, str) for x in value) else "[]interface {}"
    return "interface {}"


def go_sprint(value: Any) -> str:
    """``fmt.Sprint`` of one value (``%v``)."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):  # %v is strconv's 'g', shortest: 1e+06, not 1000000
        if math.isnan(value) or math.isinf(value):
            return "NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"
        return go_format_g(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_sprint(x) for x in value) + "]"
    if isinstance(value, Mapping):
        return "{" + " ".join(go_sprint(v) for v in value.values()) + "}"
    return str(value)


def _truth(value: Any) -> bool:
    if value is NO_VALUE or value is None:
        return False
    if isinstance(value, (str, list, tuple, Mapping)):
        return len(value) > 0
    return bool(value)


def _bounded(size: int) -> None:
    """A string a function builds stays within :data:`MAX_OUTPUT` (checked before it is)."""
    if size > MAX_OUTPUT:
        raise ValueError(f"result longer than {MAX_OUTPUT} characters")


def _leaves(value: Any) -> int:
    """How many values ``fmt`` pads in ``value``: each element of a slice or struct has the
    width, not the whole."""
    if isinstance(value, (list, tuple)):
        return sum(map(_leaves, value))
    if isinstance(value, Mapping):
        return sum(map(_leaves, value.values()))
    return 1


def _verb(value: Any, verb: str, flags: str) -> str | None:
    """One value as ``fmt`` writes it for ``verb`` (before padding); None for a verb the
    value's type has not (``%!d(string=a)``)."""
    if verb == "v":
        return go_sprint(value)
    if isinstance(value, bool):
        return go_sprint(value) if verb == "t" else None
    if isinstance(value, int):
        if verb == "q":
            return quote_rune(value, ascii_only="+" in flags)
        return str(value) if verb == "d" else format(value, "x") if verb == "x" else None
    if isinstance(value, str):
        if verb == "q":  # fmtQ: a raw string for %#q where Go can write one
            if "#" in flags and can_backquote(value):
                return f"`{value}`"
            return quote(value, ascii_only="+" in flags)
        return value if verb == "s" else go_bytes(value).hex() if verb == "x" else None
    return None


def _format(value: Any, verb: str, flags: str, width: int, nested: bool = False) -> str:
    """``fmt``'s ``printArg``/``printValue`` of one operand: slices and structs element by
    element (each padded), nil as ``<nil>`` inside them and ``%!q(<nil>)`` for a verb
    other than %v at the top, a wrong verb as ``%!verb(type=value)`` with the value padded."""
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_format(x, verb, flags, width, True) for x in value) + "]"
    if isinstance(value, Mapping):
        return "{" + " ".join(_format(x, verb, flags, width, True) for x in value.values()) + "}"
    if value is None and nested:
        return "<nil>"
    if (value is None or value is NO_VALUE) and verb != "v":
        return f"%!{verb}(<nil>)"

    def pad(text: str) -> str:
        return text.ljust(width) if "-" in flags else text.rjust(width)

    text = _verb(value, verb, flags)
    if text is None:
        return f"%!{verb}({_type_name(value, 'struct')}={pad(go_sprint(value))})"
    return pad(text)


def _printf(fmt: str, args: Sequence[Any], struct_name: str = "struct") -> str:
    """Go's ``fmt.Sprintf`` for the verbs templates use: %v %s %d %q (with ``+`` and ``#``)
    %t %x %%, with widths and ``-``; ``struct_name`` names a mapping's type in ``%!(EXTRA …)``."""
    out, n, built = [], 0, len(fmt)

    def conv(m: re.Match[str]) -> str:
        nonlocal n, built
        flags, width, verb = m.group(1), m.group(2), m.group(3)
        if verb == "%":
            return "%"
        if n >= len(args):
            return f"%!{verb}(MISSING)"
        value = args[n]
        n += 1
        if width:  # each padded value is at least the width long: bounded before it is built
            _bounded(built + (int(width) * _leaves(value) if len(width) < 10 else MAX_OUTPUT + 1))
        text = _format(value, verb, flags, int(width or 0))
        built += len(text)
        _bounded(built)
        return text

    out.append(re.sub(r"%([-+# 0]*)([0-9]*)([a-zA-Z%])", conv, fmt))
    if n < len(args):
        out.append("%!(EXTRA " + ", ".join("<nil>" if _is_nil(a) else
                                           f"{_type_name(a, struct_name)}={go_sprint(a)}"
                                           for a in args[n:]) + ")")
    return "".join(out)


def _sprint(args: Sequence[Any]) -> str:
    """``fmt.Sprint``: a space between operands when neither is a string."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_sprint(a))
    _bounded(sum(map(len, out)))
    return "".join(out)


def _sprintln(args: Sequence[Any]) -> str:
    """``fmt.Sprintln``: operands separated by spaces, and a newline."""
    out = [go_sprint(a) for a in args]
    _bounded(sum(map(len, out)) + len(out))
    return " ".join(out) + "\n"


def _basic_kind(value: Any) -> str | None:
    """Go's ``basicKind`` (funcs.go): the kinds comparisons know, None (``invalidKind``) for
    nil, slices and structs. A Python int is Go's int or uint -- Go compares those two across
    signs -- a float a float64: ``eq 1 1.0`` is two kinds, as in Go."""
    return _BASIC_KINDS.get(_type_name(value, "struct"))


#: Go's types by their ``basicKind``; a byte (uint8) compares with ints
_BASIC_KINDS = {"bool": "bool", "int": "int", "uint8": "int", "float64": "float",
                "string": "string"}


def _is_nil(value: Any) -> bool:
    return value is None or value is NO_VALUE


def _reflect_kind(value: Any) -> str:
    """reflect's Kind, as ``canCompare`` tells nil, slices and structs apart."""
    if _is_nil(value):
        return "invalid"
    if isinstance(value, (list, tuple)):
        return "slice"
    return "struct" if isinstance(value, Mapping) else _basic_kind(value) or "interface"


def _comparable(value: Any) -> bool:
    """Go's ``Type.Comparable``: not a slice, nor a struct holding one."""
    if isinstance(value, (list, tuple)):
        return False
    return not isinstance(value, Mapping) or all(map(_comparable, value.values()))


def _identical(a: Any, b: Any) -> bool:
    """Go's ``==`` of two comparable interface values: the same kind and equal."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return list(a) == list(b) and all(_identical(a[k], b[k]) for k in a)
    return _reflect_kind(a) == _reflect_kind(b) and bool(a == b)


def _eq(a: Any, b: Any, struct_name: str) -> bool:
    """One comparison of Go's ``eq`` (funcs.go): basic kinds compare only with their own kind
    (an error otherwise, unless one side is nil, which equals nothing else); nil, slices and
    structs as Go's ``==`` compares interfaces, refusing what Go cannot compare."""
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka != kb:
        if _is_nil(a) or _is_nil(b):
            return False
        raise ValueError("incompatible types for comparison")
    if ka is not None:
        return bool(a == b)
    if _reflect_kind(a) != _reflect_kind(b) and not _is_nil(a) and not _is_nil(b):
        raise ValueError(f"non-comparable types {go_sprint(a)}: {_type_name(a, struct_name)}, "
                         f"{_type_name(b, struct_name)}: {go_sprint(b)}")
    if _is_nil(a) or _is_nil(b):
        return _is_nil(a) and _is_nil(b)
    if not _comparable(b):
        raise ValueError(f"non-comparable type {go_sprint(b)}: {_type_name(b, struct_name)}")
    return _identical(a, b)


def _lt(a: Any, b: Any) -> bool:
    """Go's ``lt`` (funcs.go): ints, floats or strings, each with its own kind."""
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka is None or kb is None:
        raise ValueError("invalid type for comparison")
    if ka != kb:
        raise ValueError("incompatible types for comparison")
    if ka == "bool":
        raise ValueError("invalid type for comparison")
    return bool(a < b)


def _compare(op: str, args: Sequence[Any], struct_name: str) -> bool:
    """Go's ``eq ne lt le gt ge``, built as Go builds them: ``eq`` is true at the first equal
    operand (an error after it is not reached), ``le`` is ``lt`` or ``eq``, ``gt`` not ``le``,
    ``ge`` not ``lt``."""
    if op == "eq":
        if len(args) < 2:
            raise ValueError("missing argument for comparison")
        return any(_eq(args[0], b, struct_name) for b in args[1:])
    a, b = args
    if op == "ne":
        return not _eq(a, b, struct_name)
    if op == "lt":
        return _lt(a, b)
    if op == "ge":
        return not _lt(a, b)
    le = _lt(a, b) or _eq(a, b, struct_name)
    return le if op == "le" else not le


def _index(item: Any, keys: Sequence[Any], struct_name: str) -> Any:
    """Go's ``index`` (funcs.go): a string's element is a byte (``index "abc" 0`` is 97), a
    key out of range or of another type is Go's error -- the length itself gets past Go's
    ``indexArg`` and is reflect's panic, which Go's ``safeCall`` turns into the error."""
    if _is_nil(item):
        raise ValueError("index of untyped nil")
    for key in keys:
        if isinstance(item, (list, tuple, str)):
            if _is_nil(key):
                raise ValueError("cannot index slice/array with nil")
            if not isinstance(key, int) or isinstance(key, bool):
                raise ValueError("cannot index slice/array with type "
                                 f"{_type_name(key, struct_name)}")
            if (1 << 63) <= key < (1 << 64):  # Go's int64() of a uint64
                key -= 1 << 64
            seq = go_bytes(item) if isinstance(item, str) else item
            if key == len(seq):  # Go's check lets it by; reflect's Index panics
                kind = "string" if isinstance(seq, bytes) else "slice"
                raise ValueError(f"reflect: {kind} index out of range")
            if not 0 <= key < len(seq):
                raise ValueError(f"index out of range: {key}")
            item = _Byte(seq[key]) if isinstance(seq, bytes) else seq[key]
        elif isinstance(item, Mapping):
            item = item.get(key, NO_VALUE)
        elif _is_nil(item):
            raise ValueError("index of nil pointer")
        else:
            raise ValueError(f"can't index item of type {_type_name(item, struct_name)}")
    return item


def _len(value: Any) -> int:
    """Go's ``len``: a string's is its UTF-8 bytes (``len "é"`` is 2)."""
    if isinstance(value, str):
        return len(go_bytes(value))
    if isinstance(value, (list, tuple, Mapping)):
        return len(value)
    raise ValueError(f"len of type {_type_name(value, 'struct')}")


#: Go's signatures of the builtins (funcs.go): how many operands are fixed, and whether more
#: may follow (``eq`` takes one and more, so ``eq 1`` is its own error, not a count's).
_ARITY: dict[str, tuple[int, bool]] = {
    "and": (1, True), "or": (1, True), "not": (1, False), "len": (1, False),
    "index": (1, True), "print": (0, True), "printf": (1, True), "println": (0, True),
    "eq": (1, True), "ne": (2, False), "lt": (2, False), "le": (2, False), "gt": (2, False),
    "ge": (2, False),
}

_FUNCS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "print": lambda *a: _sprint(a),
    "println": lambda *a: _sprintln(a),
    "not": lambda v: not _truth(v),
}


class GoTemplate:
    """A parsed template; :meth:`execute` renders it for one value."""

    def __init__(self, text: str, name: str = "list", type_name: str = "list.modelInfo"):
        self.name = name
        self.text = text
        self.type_name = type_name
        self._parser = _Parser(name, text)
        self._tree = self._parser.parse()

    def execute(self, data: Any) -> str:
        out: list[str] = []
        self._steps = self._printed = self._built = 0
        self._run(self._tree, data, {"$": data}, out)
        return "".join(out)

    def _step(self) -> None:
        self._steps += 1
        if self._steps > MAX_STEPS:
            raise TemplateError(f"template: {self.name}: more than {MAX_STEPS} steps "
                                "(kit-jupyter's bound on a template)")

    def _print(self, text: str, out: list[str]) -> None:
        self._printed += len(text)
        if self._printed > MAX_OUTPUT:
            raise TemplateError(f"template: {self.name}: more than {MAX_OUTPUT} characters of "
                                "output (kit-jupyter's bound on a template)")
        out.append(text)

    # -- walking ---------------------------------------------------------------------------------

    def _fail(self, pos: int, node: str, msg: str) -> TemplateError:
        src = self.text  # Go counts the column in bytes of UTF-8, from the line's start
        line = 1 + src.count("\n", 0, pos)
        col = len(go_bytes(src[src.rfind("\n", 0, pos) + 1:pos]))
        return TemplateError(f"template: {self.name}:{line}:{col}: executing \"{self.name}\" "
                             f"at <{node}>: {msg}")

    def _run(self, nodes: list[Any], dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        for node in nodes:
            self._step()
            if isinstance(node, _Text):
                self._print(node.text, out)
            elif isinstance(node, _Action):
                value = self._pipe(node.pipe, dot, scope)
                if not node.pipe.decl:
                    self._print(go_sprint(value), out)
            elif node.kind == "range":
                self._range(node, dot, scope, out)
            else:
                value = self._pipe(node.pipe, dot, scope)
                if _truth(value):
                    self._run(node.body, value if node.kind == "with" else dot, dict(scope), out)
                else:
                    self._run(node.otherwise, dot, dict(scope), out)

    def _range(self, node: _Branch, dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        value = self._pipe(node.pipe, dot, scope, declare=False)
        items: Iterable[tuple[Any, Any]]
        if value is None or value is NO_VALUE:
            items = []
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, Mapping):
            items = sorted(value.items())
        elif isinstance(value, int) and not isinstance(value, bool):
            items = ((i, i) for i in range(value))  # lazily: MAX_STEPS ends a huge count
        else:
            raise self._fail(node.pipe.pos, node.pipe.text,
                             f"range can't iterate over {go_sprint(value)}")
        empty = True
        for key, elem in items:
            empty = False
            self._step()
            inner = dict(scope)
            names = node.pipe.decl
            if len(names) == 1:
                inner[names[0]] = elem
            elif len(names) == 2:
                inner[names[0]], inner[names[1]] = key, elem
            self._run(node.body, elem, inner, out)
        if empty:
            self._run(node.otherwise, dot, dict(scope), out)

    def _pipe(self, pipe: _Pipe, dot: Any, scope: dict[str, Any], declare: bool = True) -> Any:
        value: Any = NO_VALUE
        for i, cmd in enumerate(pipe.cmds):
            value = self._command(cmd, dot, scope, value if i else None, i > 0)
        if pipe.decl and declare:
            for name in pipe.decl:
                scope[name] = value
        return value

    def _command(self, cmd: _Command, dot: Any, scope: dict[str, Any], piped: Any,
                 has_piped: bool) -> Any:
        first = cmd.args[0]
        if first.kind == "func":
            name, operands = first.value, cmd.args[1:]
            self._arity(name, len(operands), has_piped, first)
            if name in ("and", "or"):  # Go evaluates their operands only up to the answer
                value = None
                for a in operands:
                    value = self._arg(a, dot, scope)
                    if _truth(value) is (name == "or"):
                        return value
                return piped if has_piped else value
            args: list[Any] = []
            for i, a in enumerate(operands):
                args.append(self._arg(a, dot, scope))
                if i == 0 and name == "printf":
                    self._format_arg(args[0], a)
            if has_piped:
                if not operands and name == "printf":
                    self._format_arg(piped, first)
                args.append(piped)
            return self._call(name, args, cmd)
        if first.kind == "nil":
            raise self._fail(first.pos, "nil", "nil is not a command")
        if len(cmd.args) > 1 or has_piped:
            what = first.text if first.kind in ("field", "var") else first.text
            if first.kind in ("field", "var"):
                raise self._fail(first.pos, what, f"{what} has arguments but cannot take any")
            raise self._fail(first.pos, cmd.text, f"can't give argument to non-function {what}")
        return self._arg(first, dot, scope)

    def _arity(self, name: str, given: int, has_piped: bool, ident: _Arg) -> None:
        """Go's count of a builtin's operands (exec.go ``evalCall``), before any is evaluated;
        "at least" counts them without the piped value, Go's quirk."""
        fixed, variadic = _ARITY[name]
        if variadic and given + has_piped < fixed:
            raise self._fail(ident.pos, name, f"wrong number of args for {name}: want at least "
                                              f"{fixed} got {given}")
        if not variadic and given + has_piped != fixed:
            raise self._fail(ident.pos, name, f"wrong number of args for {name}: want {fixed} "
                                              f"got {given + has_piped}")

    def _format_arg(self, value: Any, arg: _Arg) -> None:
        """printf's format must be a string (exec.go ``evalArg``): a literal is refused by its
        node, a computed value by its type."""
        if isinstance(value, str):
            return
        if arg.kind == "nil":
            raise self._fail(arg.pos, arg.text, "cannot assign nil to string")
        if arg.kind in ("number", "bool"):
            raise self._fail(arg.pos, arg.text, f"expected string; found {arg.text}")
        raise self._fail(arg.pos, arg.text, "wrong type for value; expected string; got "
                                            f"{_type_name(value, self.type_name)}")

    def _arg(self, arg: _Arg, dot: Any, scope: dict[str, Any]) -> Any:
        if arg.kind == "dot":
            return dot
        if arg.kind == "field":
            return self._fields(dot, arg.value, arg)
        if arg.kind == "var":
            name, fields = arg.value
            if name not in scope:
                raise self._parser.fail(arg.pos, f'undefined variable "{name}"')
            return self._fields(scope[name], fields, arg)
        if arg.kind == "pipe":
            return self._pipe(arg.value, dot, dict(scope))
        if arg.kind == "func":
            self._arity(arg.value, 0, False, arg)
            return self._call(arg.value, [], _Command([arg], arg.pos))
        return arg.value

    def _fields(self, value: Any, names: list[str], arg: _Arg) -> Any:
        for name in names:
            if isinstance(value, Mapping):
                if name not in value:
                    raise self._fail(arg.pos, arg.text, f"can't evaluate field {name} in type "
                                                        f"{self.type_name}")
                value = value[name]
            elif value is None or value is NO_VALUE:
                raise self._fail(arg.pos, arg.text, f"nil pointer evaluating interface {{}}."
                                                    f"{name}")
            else:
                raise self._fail(arg.pos, arg.text, f"can't evaluate field {name} in type "
                                                    f"{_type_name(value, self.type_name)}")
        return value

    def _call(self, name: str, args: list[Any], cmd: _Command) -> Any:
        """A builtin on evaluated operands (their count checked by :meth:`_arity`); a Go
        error it returns is ``error calling <name>: …`` at the command."""
        try:
            if name in ("eq", "ne", "lt", "le", "gt", "ge"):
                return _compare(name, args, self.type_name)
            if name == "index":
                return _index(args[0], args[1:], self.type_name)
            result = (_printf(args[0], args[1:], self.type_name) if name == "printf"
                      else _FUNCS[name](*args))
            if isinstance(result, str) and name.startswith("print"):
                self._built += len(result)
                if self._built > MAX_OUTPUT:
                    raise ValueError(f"more than {MAX_OUTPUT} characters built in all "
                                     "(kit-jupyter's bound on a template)")
            return result
        except ValueError as exc:
            raise self._fail(cmd.pos, cmd.text, f"error calling {name}: {exc}") from None
