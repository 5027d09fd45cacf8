"""Go text/template for ``list --format``: output and Go's error texts, then kit's own
TestListFormatVariants through the CLI and the magic."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from kit_jupyter.__main__ import main
from kit_jupyter.gocompat import gotemplate
from kit_jupyter.gocompat.gotemplate import MAX_DEPTH, MAX_OUTPUT, GoTemplate, TemplateError

INFO = {"Repo": "test", "Digest": "sha256:ab", "Tags": ["first", "x"], "ModelName": "m",
        "Size": "1.00 KiB", "Author": "<none>"}

# (template, output) — each output is what Go 1.24's text/template prints for INFO
OUTPUTS = [
    ("{{ .Repo }}", "test"),
    ("{{ .Repo }}:{{ index .Tags 0 }} - {{ .ModelName }}", "test:first - m"),
    ("{{.Tags}}", "[first x]"),
    ("{{ .Repo }}\t{{ .Size }}", "test\t1.00 KiB"),
    ("{{range .Tags}}{{.}},{{end}}", "first,x,"),
    ("{{range $i, $t := .Tags}}{{$i}}={{$t}} {{end}}", "0=first 1=x "),
    ("{{range .Tags}}{{$.Repo}}:{{.}} {{end}}", "test:first test:x "),
    ('{{ if eq .Author "<none>" }}anon{{ else }}{{ .Author }}{{ end }}', "anon"),
    ('{{ if eq .Repo "a" }}a{{ else if eq .Repo "test" }}t{{ else }}z{{ end }}', "t"),
    ('{{ printf "%-6s|%s" .Repo .Size }}', "test  |1.00 KiB"),
    ('{{ .Repo | printf "%q" }}', '"test"'),
    ("{{ len .Tags }}", "2"),
    ("a  {{- .Repo -}}  b", "atestb"),
    ("{{/* a comment */}}x", "x"),
    ("{{ with .Tags }}{{ index . 1 }}{{ end }}", "x"),
    ("{{ print .Repo 1 2 }}", "test1 2"),
    ('{{ and .Repo "" }}|{{ or "" .Repo }}|{{ not .Tags }}', "|test|false"),
    ("{{ .Repo }}}", "test}"),
]

# (template, Go's error text) — parse errors carry the line, execution errors line:column
ERRORS = [
    ("{{ .Repo }}:{{ .Tag }}", 'template: list:1:15: executing "list" at <.Tag>: can\'t '
                               "evaluate field Tag in type list.modelInfo"),
    ("{{ foo .Repo }}", 'template: list:1: function "foo" not defined'),
    ("{{ .Repo ", "template: list:1: unclosed action"),
    ("{{ if .Repo }}x", "template: list:1: unexpected EOF"),
    ("{{ end }}", "template: list:1: unexpected {{end}}"),
    ("{{}}", "template: list:1: missing value for command"),
    ("{{ @ }}", "template: list:1: unexpected bad character U+0040 '@' in command"),
    ("line1\n{{ index .Tags 5 }}", 'template: list:2:3: executing "list" at <index .Tags 5>: '
                                   "error calling index: index out of range: 5"),
    ("{{ .Repo.X }}", 'template: list:1:3: executing "list" at <.Repo.X>: can\'t evaluate '
                      "field X in type string"),
]


@pytest.mark.parametrize("template,expected", OUTPUTS)
def test_output_matches_go(template, expected):
    assert GoTemplate(template).execute(INFO) == expected


@pytest.mark.parametrize("template,message", ERRORS)
def test_errors_are_gos(template, message):
    with pytest.raises(TemplateError) as err:
        GoTemplate(template).execute(INFO)
    assert str(err.value) == message


def _at(node: str, msg: str, col: int = 3) -> str:
    """Go's execution error for the one-line template ``{{ <node> … }}``."""
    return f'template: list:1:{col}: executing "list" at <{node}>: {msg}'


# printf's %q is fmt's (print.go fmtString/fmtInteger, format.go fmtQ/fmtQc) over strconv's
# Quote, QuoteToASCII, QuoteRune and CanBackquote (strconv/quote.go appendEscapedRune):
# printable runes as they are, \a…\v, \xNN below a space and for DEL, \u / \U past it.
PRINTF_Q = [
    (r'{{ printf "%q" "a\nb\u2028\x7f\t\"\\" }}', r'"a\nb\u2028\x7f\t\"\\"'),
    (r'{{ printf "%q" "é😀\u00ad\u00a0 \U000e0001\x00" }}', r'"é😀\u00ad\u00a0 \U000e0001\x00"'),
    ("""{{ printf "%q" "'" }}""", "\"'\""),
    (r'{{ printf "%+q" "é\u2028😀" }}', r'"\u00e9\u2028\U0001f600"'),
    (r'{{ printf "%#q|%#q|%#q|%#q" "é\tb" "a\nb" "a`b" "\ufeff" }}',
     '`é\tb`|"a\\nb"|"a`b"|"\\ufeff"'),
    (r'{{ printf "%q %+q %q %q %q %q" 97 233 10 39 34 -1 }}',
     r"""'a' '\u00e9' '\n' '\'' '"' '�'"""),
    (r'{{ printf "%q|%q|%+q" 55296 1114112 128512 }}', r"'�'|'�'|'\U0001f600'"),
    (r'{{ printf "%q" (index "abc" 1) }}', "'b'"),
    (r'{{ .Repo | printf "%-8q|" }}', '"test"  |'),
    (r'{{ printf "%q" .Tags }}', '["first" "x"]'),
    (r'{{ printf "%5q|%-4v|" .Tags .Tags }}', '["first"   "x"]|[first x   ]|'),
    (r'{{ printf "%q|%q|%q" 1.5 true nil }}', "%!q(float64=1.5)|%!q(bool=true)|%!q(<nil>)"),
    (r'{{ printf "%5s|%d" 1 .Tags }}', "%!s(int=    1)|[%!d(string=first) %!d(string=x)]"),
    (r'{{ printf "%d" 1 2 nil . }}', "1%!(EXTRA int=2, <nil>, list.modelInfo={test sha256:ab "
                                     "[first x] m 1.00 KiB <none>})"),
]


@pytest.mark.parametrize("template,expected", PRINTF_Q)
def test_printf_q_quotes_as_gos_fmt(template, expected):
    """%q of a string is strconv.Quote (%+q QuoteToASCII, %#q a raw string where
    CanBackquote), of an integer QuoteRune; slices and structs element by element, each
    padded; a verb the type has not is %!verb(type=value), the value padded."""
    assert GoTemplate(template).execute(INFO) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"])), st.sampled_from(["%q", "%+q", "%#q"]))
def test_printf_q_reads_back_as_the_string(text: str, verb: str) -> None:
    """What %q writes is a Go string literal of the text -- the template's own literal gives it
    back -- with nothing unprintable left in it (%+q: nothing past ASCII); %#q is a raw
    string exactly where Go's CanBackquote allows one."""
    quoted = GoTemplate('{{ printf "' + verb + '" .S }}').execute({"S": text})
    assert GoTemplate("{{ " + quoted + " }}").execute({}) == text
    assert quoted.isprintable() or (verb == "%#q" and quoted.startswith("`"))
    if verb == "%+q":
        assert quoted.isascii()
    can_backquote = not re.search("[\x00-\x08\x0a-\x1f\x7f`\ufeff]", text)
    assert quoted.startswith("`") == (verb == "%#q" and can_backquote)


# funcs.go index and length: a string is bytes; indexArg lets the length itself by, and
# reflect's Index panics (safeCall's error)
INDEX = [
    ('{{ index "abc" 0 }}|{{ index "é" 1 }}|{{ len "é" }}|{{ len "日本" }}', "97|169|2|6"),
    ('{{ index "abc" 5 }}', _at('index "abc" 5', "error calling index: index out of range: 5")),
    ('{{ index "abc" -1 }}', _at('index "abc" -1', "error calling index: index out of range: -1")),
    ('{{ index "abc" 3 }}', _at('index "abc" 3', "error calling index: reflect: string index "
                                                 "out of range")),
    ("{{ index .Tags 2 }}", _at("index .Tags 2", "error calling index: reflect: slice index "
                                                 "out of range")),
    ('{{ index "abc" 0 1 }}', _at('index "abc" 0 1', "error calling index: can't index item of "
                                                     "type uint8")),
    ('{{ index "abc" nil }}', _at('index "abc" nil', "error calling index: cannot index "
                                                     "slice/array with nil")),
]


@pytest.mark.parametrize("template,expected", INDEX)
def test_index_of_a_string_is_a_byte(template, expected):
    """``index "abc" 0`` is the byte 97 (a uint8), not "a"; ``len`` counts bytes."""
    try:
        out = GoTemplate(template).execute(INFO)
    except TemplateError as err:
        out = str(err)
    assert out == expected


# funcs.go eq/lt (and ne le gt ge built on them): basicKind sets int, float, string and bool
# apart; errBadComparison, errBadComparisonType, errNoComparison; exec.go evalCall counts
COMPARISONS = [
    ("{{ eq 1 1.0 }}", _at("eq 1 1.0", "error calling eq: incompatible types for comparison")),
    ("{{ lt 1 1.5 }}", _at("lt 1 1.5", "error calling lt: incompatible types for comparison")),
    ("{{ ge 1.5 1 }}", _at("ge 1.5 1", "error calling ge: incompatible types for comparison")),
    ("{{ eq true 1 }}", _at("eq true 1", "error calling eq: incompatible types for comparison")),
    ("{{ lt true false }}", _at("lt true false", "error calling lt: invalid type for comparison")),
    ("{{ lt nil 1 }}", _at("lt nil 1", "error calling lt: invalid type for comparison")),
    ("{{ eq 1 }}", _at("eq 1", "error calling eq: missing argument for comparison")),
    ("{{ eq }}", _at("eq", "wrong number of args for eq: want at least 1 got 0")),
    ("{{ ne 1 }}", _at("ne", "wrong number of args for ne: want 2 got 1")),
    ("{{ eq .Tags .Tags }}", _at("eq .Tags .Tags", "error calling eq: non-comparable type "
                                                   "[first x]: []string")),
    ("{{ eq .Tags . }}", _at("eq .Tags .", "error calling eq: non-comparable types [first x]: "
                                           "[]string, list.modelInfo: {test sha256:ab "
                                           "[first x] m 1.00 KiB <none>}")),
    ('{{ eq 1 1 "a" }} {{ eq 1.5 1.5 }} {{ eq "a" nil }} {{ eq nil nil }} {{ eq .Tags nil }} '
     '{{ ge 2 1 }} {{ lt "a" "b" }} {{ eq true true }} {{ ne true false }} {{ le 1 1 }} '
     "{{ gt 1.5 2.5 }}", "true true false true false true true true true true false"),
]


@pytest.mark.parametrize("template,expected", COMPARISONS)
def test_comparisons_are_gos(template, expected):
    """An int equals no float (``eq 1 1.0`` is Go's error); lt/le/gt/ge take ints, floats or
    strings of one kind; bools compare only with eq/ne."""
    try:
        out = GoTemplate(template).execute(INFO)
    except TemplateError as err:
        out = str(err)
    assert out == expected


def test_comparisons_of_json_numbers_keep_their_kinds():
    """Data read from JSON holds Python ints, floats and bools: each is its own Go kind."""
    data = {"N": 1, "F": 1.0, "B": True}
    assert GoTemplate("{{ eq .N 1 }} {{ lt .N 2 }} {{ eq .F 1.0 }} {{ eq .B true }}").execute(
        data) == "true true true true"
    for template in ("{{ eq .N .F }}", "{{ eq .B .N }}", "{{ lt .F .N }}"):
        with pytest.raises(TemplateError, match="incompatible types for comparison$"):
            GoTemplate(template).execute(data)


def test_builtins_are_called_as_go_calls_them():
    """exec.go evalCall: the operands counted before any is evaluated (Go's words, at the
    function's name), and/or evaluating only up to their answer, printf's format a string;
    exec.go evalCommand: nil is no command."""
    cases = [
        ("{{ not 1 2 }}", _at("not", "wrong number of args for not: want 1 got 2")),
        ("{{ not .Nope 2 }}", _at("not", "wrong number of args for not: want 1 got 2")),
        ("{{ 1 | ne }}", _at("ne", "wrong number of args for ne: want 2 got 1", col=7)),
        ("{{ and }}", _at("and", "wrong number of args for and: want at least 1 got 0")),
        ("{{ print not }}", _at("not", "wrong number of args for not: want 1 got 0", col=9)),
        ("{{ or 1 .Nope }}|{{ and 0 .Nope }}", "1|0"),
        ("{{ nil }}", _at("nil", "nil is not a command")),
        ("{{ printf 1 }}", _at("1", "expected string; found 1", col=10)),
        ("{{ printf nil }}", _at("nil", "cannot assign nil to string", col=10)),
        ("{{ printf .Tags }}", _at(".Tags", "wrong type for value; expected string; got []string",
                                   col=10)),
        ("{{ 1 | printf }}", _at("printf", "wrong type for value; expected string; got int",
                                 col=7)),
    ]
    for template, expected in cases:
        try:
            out = GoTemplate(template).execute(INFO)
        except TemplateError as err:
            out = str(err)
        assert out == expected, template


def test_error_columns_count_utf8_bytes():
    """parse.Tree.ErrorContext: the column is the byte offset in the line, UTF-8 bytes."""
    for template, where in [("é{{ .Nope }}", "1:5"), ("é\n  éé{{ .Nope }}", "2:9"),
                            ("日本{{ .Nope }}", "1:9"), ("😀{{ .Nope }}", "1:7")]:
        with pytest.raises(TemplateError) as err:
            GoTemplate(template).execute(INFO)
        assert str(err.value) == (f'template: list:{where}: executing "list" at <.Nope>: '
                                  "can't evaluate field Nope in type list.modelInfo")


def test_byte_escapes_are_utf8_or_fffd():
    """strconv.Unquote: \\x and octal escapes are bytes -- a run of them that is UTF-8 is its
    rune, as Go prints it; a byte no rune takes (a raw byte in Go) is U+FFFD here, one per
    byte, as Go's utf8.DecodeRune reads them."""
    cases = [
        (r"\xc3\xa9", "é"), (r"\303\251", "é"), (r"\xc3\251", "é"), (r"a\x41\xc3\xa9b", "aAéb"),
        (r"\xf0\x9f\x98\x80", "😀"), (r"\x80", "\ufffd"), (r"\xe2\x82", "\ufffd\ufffd"),
        (r"\xc3é", "\ufffdé"), (r"\xed\xa0\x80", "\ufffd" * 3), (r"\xc3\n\xa9", "\ufffd\n\ufffd"),
        (r"\xe2\u00e9\x82", "\ufffdé\ufffd"),
    ]
    for literal, expected in cases:
        assert GoTemplate('{{ "' + literal + '" }}').execute(INFO) == expected, literal
    assert GoTemplate(r'{{ len "\xc3\xa9" }}|{{ index "\xc3\xa9" 1 }}').execute(INFO) == "2|169"


def test_no_python_attribute_is_reachable():
    """Only mapping keys are fields: a template cannot reach into Python objects."""
    with pytest.raises(TemplateError, match="can't evaluate field __class__"):
        GoTemplate("{{ .Repo.__class__ }}").execute(INFO)
    with pytest.raises(TemplateError, match='function "getattr" not defined'):
        GoTemplate("{{ getattr . 1 }}").execute(INFO)


# -- properties: whatever a user types renders or is one line, in bounded time and memory ------

def _render(template: str) -> str:
    """The output, or the TemplateError's text checked to be Go's one-line form."""
    try:
        return GoTemplate(template).execute(INFO)
    except TemplateError as err:
        text = str(err)
        assert len(text.splitlines()) <= 1 and "\n" not in text, text
        assert text.startswith("template: list:"), text
        raise


_PIECES = st.sampled_from([
    "{{", "}}", "{{- ", " -}}", " ", ".", ".Repo", ".Tags", ".Nope", ".Repo.X", "$", "$x", "$.Repo",
    ":=", "|", "(", ")", ",", "=", "if ", "else", "else if ", "end", "range ", "with ", "index ",
    "len ", "printf ", "print ", "println ", "and ", "or ", "not ", "eq ", "lt ", "nil", "true",
    "foo", '"', "`", "\\", "\\x4", "\\u12", "\\U0011ffff", "\\'", "\\101", "/*", "*/", "0x", "_",
    "1", "-1", "08", "9" * 30, "1e999", "1.5", ".5", "%", '"%5d"', '"%q"', '"%+q"', '"%#q"',
    "\\xc3", "\\xa9", "\\x80", "1.0", "eq 1 ", "ne ", "ge ", "@", "é", "٣", "\n",
    "\r", "\u2028", "\x85", "{", "}",
])
_TEMPLATES = st.lists(_PIECES | st.text(max_size=3), max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(_TEMPLATES)
def test_any_template_renders_or_is_one_line(template: str) -> None:
    """Parse or execute: Go's one-line TemplateError, never another exception; a template
    that renders renders the same twice, within the output bound."""
    try:
        out = _render(template)
    except TemplateError:
        return
    assert len(out) <= MAX_OUTPUT
    assert GoTemplate(template).execute(INFO) == out


@settings(max_examples=200, deadline=None)
@given(st.text().filter(lambda t: "{{" not in t))
def test_text_without_actions_is_printed_unchanged(text: str) -> None:
    assert GoTemplate(text).execute(INFO) == text


_NESTS = {  # kind -> (template of `depth` levels, its output, how many levels the parser counts)
    "if": lambda d: ("{{if 1}}" * d + "x" + "{{end}}" * d, "x", d),
    "range": lambda d: ("{{range 1}}" * d + "x" + "{{end}}" * d, "x", d),
    "with": lambda d: ('{{with "y"}}' * d + "x" + "{{end}}" * d, "x", d),
    "paren": lambda d: ("{{" + "(" * d + "1" + ")" * d + "}}", "1", d),
    "else-if": lambda d: ("{{if 0}}" + "{{else if 0}}" * d + "{{else}}x{{end}}", "x", d + 1),
}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(_NESTS)),
       st.integers(min_value=0, max_value=3 * MAX_DEPTH) | st.integers(0, 2000))
def test_nesting_renders_or_is_gos_depth_error(kind: str, depth: int) -> None:
    """Blocks, parentheses and else-if chains as deep as the bound render; deeper ones fail
    with Go's words for a too-deep expression -- never a RecursionError."""
    template, output, levels = _NESTS[kind](depth)
    if levels <= MAX_DEPTH:
        assert _render(template) == output
    else:
        with pytest.raises(TemplateError, match="^template: list:1: max expression depth "
                                                "exceeded$"):
            _render(template)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=1000), st.sampled_from(["print", "len | print"]))
def test_long_pipelines_render(length: int, command: str) -> None:
    """A pipeline of thousands of commands is one loop, not a recursion."""
    template = '{{ "ab" | ' + " | ".join([command] * length) + " }}" if length else '{{ "ab" }}'
    expected = "ab" if length == 0 or command == "print" else "2" if length == 1 else "1"
    assert _render(template) == expected


def _go_v(f: float) -> str:
    """Go's ``%v`` of a float64 (strconv's 'g' with the shortest digits), from Go's definition:
    the shortest round-trip digits, in exponent form (at least two exponent digits) when the
    decimal exponent is below -4 or at least 6, else positional."""
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    sign, digits, exp = Decimal(repr(f)).normalize().as_tuple()
    assert isinstance(exp, int)
    ds = "".join(map(str, digits))
    point = len(ds) + exp  # f = 0.<ds> * 10**point
    e = point - 1
    if e < -4 or e >= 6:
        text = ds[0] + ("." + ds[1:] if len(ds) > 1 else "") + \
            f"e{'-' if e < 0 else '+'}{abs(e):02d}"
    elif point <= 0:
        text = "0." + "0" * -point + ds
    elif point >= len(ds):
        text = ds + "0" * (point - len(ds))
    else:
        text = ds[:point] + "." + ds[point:]
    return ("-" if sign else "") + text


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(10**400), max_value=10**400)
       | st.integers(min_value=-(2**64), max_value=2**65))
def test_integer_literals_are_gos(n: int) -> None:
    """An integer fits int64 or uint64 and prints as itself; a bigger one is Go's ``integer
    overflow`` (``illegal number syntax`` past float64's range, as Go's ParseFloat fails) --
    never a float, an ``inf`` or Python's 4300-digit ValueError."""
    for literal, base in ((str(n), 10), (f"{'-' if n < 0 else ''}0x{abs(n):x}", 16)):
        template = "{{ " + literal + " }}"
        if -(2**63) <= n < 2**64:
            assert _render(template) == str(n)
            continue
        if base == 10 and math.isfinite(float(literal)):
            message = f'integer overflow: "{literal}"'
        else:
            message = f'illegal number syntax: "{literal}"'
        with pytest.raises(TemplateError) as err:
            _render(template)
        assert str(err.value) == "template: list:1: " + message


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_literals_print_as_go(f: float) -> None:
    """``{{ 1e6 }}`` prints ``1e+06`` as Go's %v does (a float64 literal is printed with the
    shortest digits, exponent form from 1e+06 on)."""
    assert _render("{{ " + repr(f) + " }}") == _go_v(f)


_SIMPLE = {"\a": "a", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t", "\v": "v",
           "\\": "\\", '"': '"'}


def _escaped(c: str, how: int) -> str:
    """``c`` inside a Go ``"…"`` literal, written one of several ways Go accepts."""
    code = ord(c)
    if how == 0 and c not in '"\\\n':
        return c
    if how == 1 and code <= 0xFFFF:
        return f"\\u{code:04x}"
    if how == 2 and code < 0x80:
        return f"\\x{code:02X}"
    if how == 3 and code < 0x80:
        return f"\\{code:03o}"
    if how == 4 and c in _SIMPLE:
        return "\\" + _SIMPLE[c]
    return f"\\U{code:08x}"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.characters(exclude_categories=["Cs"]),
                          st.integers(min_value=0, max_value=5)), max_size=20))
def test_string_literals_unquote_as_go(chars: list[tuple[str, int]]) -> None:
    """Every escape Go's strconv.Unquote knows gives its character; a raw string is as
    written."""
    text = "".join(c for c, _ in chars)
    assert _render('{{ "' + "".join(_escaped(c, how) for c, how in chars) + '" }}') == text
    raw = text.replace("`", "").replace("\r", "")
    assert _render("{{ `" + raw + "` }}") == raw


def _byte(code: int) -> str:
    """One byte alone, as text: Go's \\x and octal escapes are bytes, and a lone byte past
    ASCII is no UTF-8 -- U+FFFD here."""
    return chr(code) if code < 0x80 else "\ufffd"


def _go_unquoted(escape: str, rest: str) -> str | None:
    """What Go's strconv.Unquote makes of ``"\\<escape><rest>"`` (None: invalid syntax), for the
    escapes the test below writes; ``rest`` holds no quote or backslash."""
    if escape == "\\":
        return "\\" + rest
    if escape in ("x", "u", "U"):
        width = {"x": 2, "u": 4, "U": 8}[escape]
        digits = rest[:width]
        if len(digits) < width or any(d not in "0123456789abcdefABCDEF" for d in digits):
            return None
        code = int(digits, 16)
        if escape != "x" and (code > 0x10FFFF or 0xD800 <= code <= 0xDFFF):
            return None
        return _byte(code) + rest[width:] if escape == "x" else chr(code) + rest[width:]
    if escape in "01234567":
        digits = (escape + rest)[:3]
        if len(digits) < 3 or any(d not in "01234567" for d in digits) or int(digits, 8) > 255:
            return None
        return _byte(int(digits, 8)) + rest[2:]
    return None  # \' is for rune literals only; \q \z \e \8 are no escapes


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["x", "u", "U", "0", "1", "3", "4", "7", "8", "'", "q", "z", "\\", "e"]),
       st.text(alphabet="0123456789abcdefABCDEFgxz_+ -'", max_size=9))
def test_escapes_are_gos_or_invalid_syntax(escape: str, rest: str) -> None:
    """An escape Go accepts gives Go's character, one Go refuses is ``invalid syntax`` -- not a
    ValueError from int() or chr(), nor the backslash kept as text."""
    expected = _go_unquoted(escape, rest)
    template = '{{ "\\' + escape + rest + '" }}'
    if expected is None:
        with pytest.raises(TemplateError) as err:
            _render(template)
        assert str(err.value) == "template: list:1: invalid syntax"
    else:
        assert _render(template) == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=3000).map(str)
       | st.sampled_from([str(MAX_OUTPUT), str(MAX_OUTPUT + 1), "1" + "0" * 12, "9" * 30,
                          "9" * 5000]))
def test_printf_widths_are_bounded(width: str) -> None:
    """A width pads as Go's does, up to the output bound; past it one line, not a huge string
    (or int()'s 4300-digit ValueError)."""
    template = '{{ printf "%' + width + 'd|" 7 }}'
    if len(width) < 10 and int(width) + 1 <= MAX_OUTPUT:
        assert _render(template) == "7".rjust(int(width)) + "|"
    else:
        with pytest.raises(TemplateError, match="error calling printf: result longer than"):
            _render(template)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=20))
def test_doubling_strings_is_cut_off(width: int, doublings: int) -> None:
    """``{{$x := print $x $x}}`` doubles a string per action; all that print/printf build in one
    execution is bounded, so a short template cannot build an exponential one."""
    limit = 1 << 14
    template = ('{{ $x := printf "%' + str(width) + 's" "" }}'
                + "{{ $x := print $x $x }}" * doublings + "{{ len $x }}")
    with mock.patch.object(gotemplate, "MAX_OUTPUT", limit):
        if width * (2 ** (doublings + 1) - 1) <= limit:
            assert _render(template) == str(width * 2**doublings)
        else:
            with pytest.raises(TemplateError, match="error calling print"):
                _render(template)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-5, max_value=1000) | st.sampled_from([2**63 - 1, 2**64 - 1]),
       st.booleans())
def test_range_counts_are_bounded(count: int, nested: bool) -> None:
    """``{{range N}}`` (Go 1.22) iterates N times -- lazily, and at most the step bound in all,
    so a huge N (or ranges inside ranges) is one line quickly, not a list of N items."""
    body = "{{range 100}}.{{end}}" if nested else "."
    template = "{{range " + str(count) + "}}" + body + "{{else}}none{{end}}"
    with mock.patch.object(gotemplate, "MAX_STEPS", 20_000):
        if max(count, 0) * (202 if nested else 2) + 1 <= 20_000:
            expected = "." * (max(count, 0) * (100 if nested else 1)) if count > 0 else "none"
            assert _render(template) == expected
        else:
            with pytest.raises(TemplateError, match="^template: list: more than 20000 steps"):
                _render(template)


def test_the_real_bounds_end_huge_templates():
    """The module's own bounds (the properties above use smaller ones to stay fast)."""
    with pytest.raises(TemplateError, match="steps"):
        GoTemplate("{{range 1000000000000}}{{end}}").execute(INFO)
    with pytest.raises(TemplateError, match="result longer than"):
        GoTemplate('{{ printf "%99999999999999999999d" 1 }}').execute(INFO)
    with pytest.raises(TemplateError, match="characters of output"):
        GoTemplate("{{range 10000}}" + "x" * 2000 + "{{end}}").execute(INFO)


KITFILE = "\nmanifestVersion: 1.0.0\npackage:\n  name: test-list-modelkit\nmodel:\n  path: .\n"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_kit_list_format_variants(tmp_path, monkeypatch, capsys):
    """kit's TestListFormatVariants (testing/list_format_test.go): table is the default, json
    is one array, a template prints one line per ModelKit."""
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "home"))
    ctx = tmp_path / "in"
    ctx.mkdir()
    (ctx / "Kitfile").write_text(KITFILE)
    (ctx / "file1").write_text("testing: file1")
    assert run(capsys, "pack", str(ctx), "-t", "test:first")[0] == 0
    assert run(capsys, "list")[1] == run(capsys, "list", "--format", "table")[1]
    (ctx / "file2").write_text("testing: file2")
    assert run(capsys, "pack", str(ctx), "-t", "test:second")[0] == 0
    assert len(json.loads(run(capsys, "list", "--format", "json")[1])) == 2
    code, out, _ = run(capsys, "list", "--format", "{{ .Repo }}")
    assert code == 0 and out == "test\ntest\n"
    code, out, _ = run(capsys, "list", "--format",
                       "{{ .Repo }}:{{ index .Tags 0 }} - {{ .ModelName }}")
    assert sorted(out.splitlines()) == ["test:first - test-list-modelkit",
                                        "test:second - test-list-modelkit"]
    code, out, _ = run(capsys, "list", "--format", "{{ .Repo }}\n")  # no second newline
    assert out == "test\ntest\n"
    code, out, err = run(capsys, "list", "--format", "{{ .Repo }}:{{ .Tag }}")
    assert code == 1 and out == ""
    assert err == ('[ERROR] Template: list:1:15: executing "list" at <.Tag>: can\'t evaluate '
                   "field Tag in type list.modelInfo\n")


def test_kit_list_format_empty(tmp_path, monkeypatch, capsys):
    """kit's TestListFormatEmpty: no ModelKits is ``[]`` in JSON and nothing from a template."""
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "home"))
    assert json.loads(run(capsys, "list", "--format", "json")[1]) == []
    assert run(capsys, "list", "--format", "{{ .Repo }}")[1] == ""


def test_magic_list_template(ip, tmp_path, monkeypatch):
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "home"))
    ctx = tmp_path / "in"
    ctx.mkdir()
    (ctx / "Kitfile").write_text(KITFILE)
    (ctx / "f").write_text("x")
    ip.run_line_magic("kit", f"pack {ctx} -t demo:v1,v2")
    result = ip.run_line_magic("kit", "list --format '{{ .Repo }} {{ .Tags }}'")
    assert result.text() == "demo [v1 v2]\n"
    assert re.search(r"<pre[^>]*>demo \[v1 v2\]\n</pre>", result._repr_html_())
    with pytest.raises(UsageError, match='function "nope" not defined'):
        ip.run_line_magic("kit", "list --format '{{ nope }}'")


def test_magic_keeps_variable_expansion_outside_templates(ip, tmp_path, monkeypatch):
    """``$var`` and ``{expr}`` still expand in the rest of the line."""
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "home"))
    ctx = tmp_path / "in"
    ctx.mkdir()
    (ctx / "Kitfile").write_text(KITFILE)
    (ctx / "f").write_text("x")
    ip.user_ns.update(ctx_dir=str(ctx), tag_name="exp")
    ip.run_line_magic("kit", "pack $ctx_dir -t {tag_name + ':v1'}")
    assert ip.run_line_magic("kit", "list --format '{{ .Repo }}={{ index .Tags 0 }}'"
                             ).text() == "exp=v1\n"
