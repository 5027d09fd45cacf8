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
(``type_name`` names the struct in errors), a list a slice, ``None`` a nil slice or interface.
Printing follows ``fmt``'s ``%v``: ``[a b]`` for slices, ``<no value>`` for a missing value.
Error texts are Go's, ``template: <name>:<line>: …`` for parse errors and
``template: <name>:<line>:<col>: executing "<name>" at <node>: …`` for execution errors, on one
line (a line break Go would print inside a quoted node or value is a space).

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
    surrogate or a code point past U+10FFFF."""
    out, i, end = [], 1, len(s) - 1
    while i < end:
        c = s[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = s[i + 1]  # the lexer pairs every backslash with a character before the quote
        if nxt in _GO_ESCAPES:
            out.append(_GO_ESCAPES[nxt])
            i += 2
            continue
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
        out.append(chr(code))
        i += 1 + len(digits) + (0 if octal else 1)
    return "".join(out)


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


def _type_name(value: Any, struct_name: str) -> str:
    if isinstance(value, Mapping):
        return struct_name
    if isinstance(value, bool):
        return "bool"
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


def _printf(fmt: str, args: Sequence[Any]) -> str:
    """Go's ``fmt.Sprintf`` for the verbs templates use: %v %s %d %q %t %x %%, with widths."""
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
        if verb in "vs":
            text = go_sprint(value)
        elif verb == "d" and isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        elif verb == "q" and isinstance(value, str):
            text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        elif verb == "t" and isinstance(value, bool):
            text = go_sprint(value)
        elif verb == "x" and isinstance(value, str):
            text = value.encode().hex()
        elif verb == "x" and isinstance(value, int):
            text = format(value, "x")
        else:
            return f"%!{verb}({_type_name(value, 'struct')}={go_sprint(value)})"
        if width:
            _bounded(built + (int(width) if len(width) < 10 else MAX_OUTPUT + 1))
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width))
        built += len(text)
        _bounded(built)
        return text

    out.append(re.sub(r"%([-+# 0]*)([0-9]*)([a-zA-Z%])", conv, fmt))
    if n < len(args):
        out.append("%!(EXTRA " + ", ".join(f"{_type_name(a, 'struct')}={go_sprint(a)}"
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


def _compare(op: str, a: Any, b: Any) -> bool:
    def kind(v: Any) -> str:
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, (int, float)):
            return "number"
        if isinstance(v, str):
            return "string"
        return "other"
    if kind(a) != kind(b) or kind(a) == "other":
        if op in ("eq", "ne") and kind(a) == "other" and kind(b) == "other":
            raise ValueError("non-comparable types")
        if kind(a) != kind(b):
            raise ValueError("incompatible types for comparison")
        raise ValueError("invalid type for comparison")
    if op in ("lt", "le", "gt", "ge") and kind(a) == "bool":
        raise ValueError("invalid type for comparison")
    return {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b,
            "ge": a >= b}[op]


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, (list, tuple, str)):
            if not isinstance(key, int) or isinstance(key, bool):
                raise ValueError(f"cannot index slice/array with type {_type_name(key, '')}")
            if not 0 <= key < len(item):
                raise ValueError(f"index out of range: {key}")
            item = item[key]
        elif isinstance(item, Mapping):
            item = item.get(key, NO_VALUE)
        elif item is None:
            raise ValueError("index of untyped nil")
        else:
            raise ValueError(f"can't index item of type {_type_name(item, 'struct')}")
    return item


def _len(value: Any) -> int:
    if isinstance(value, (str, list, tuple, Mapping)):
        return len(value)
    raise ValueError(f"len of type {_type_name(value, 'struct')}")


_FUNCS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "index": _index,
    "print": lambda *a: _sprint(a),
    "println": lambda *a: _sprintln(a),
    "printf": lambda f, *a: _printf(f, a),
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
        src = self.text
        line = 1 + src.count("\n", 0, pos)
        col = pos - (src.rfind("\n", 0, pos) + 1)
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
            args = [self._arg(a, dot, scope) for a in cmd.args[1:]]
            if has_piped:
                args.append(piped)
            return self._call(first.value, args, cmd)
        if len(cmd.args) > 1 or has_piped:
            what = first.text if first.kind in ("field", "var") else first.text
            if first.kind in ("field", "var"):
                raise self._fail(first.pos, what, f"{what} has arguments but cannot take any")
            raise self._fail(first.pos, cmd.text, f"can't give argument to non-function {what}")
        return self._arg(first, dot, scope)

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
        try:
            if name in ("and", "or"):
                if not args:
                    raise TypeError
                for a in args:
                    if _truth(a) is (name == "or"):
                        return a
                return args[-1]
            if name in ("eq", "ne", "lt", "le", "gt", "ge"):
                if len(args) < 2 or (name != "eq" and len(args) != 2):
                    raise TypeError
                if name == "eq":
                    return any(_compare("eq", args[0], b) for b in args[1:])
                return _compare(name, args[0], args[1])
            result = _FUNCS[name](*args)
            if isinstance(result, str) and name.startswith("print"):
                self._built += len(result)
                if self._built > MAX_OUTPUT:
                    raise ValueError(f"more than {MAX_OUTPUT} characters built in all "
                                     "(kit-jupyter's bound on a template)")
            return result
        except TypeError:
            raise self._fail(cmd.pos, cmd.text, f"wrong number of args for {name}: "
                                                f"got {len(args)}") from None
        except ValueError as exc:
            raise self._fail(cmd.pos, cmd.text, f"error calling {name}: {exc}") from None
