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
    "1", "-1", "08", "9" * 30, "1e999", "1.5", ".5", "%", '"%5d"', '"%q"', "@", "é", "٣", "\n",
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
        return chr(code) + rest[width:]
    if escape in "01234567":
        digits = (escape + rest)[:3]
        if len(digits) < 3 or any(d not in "01234567" for d in digits) or int(digits, 8) > 255:
            return None
        return chr(int(digits, 8)) + rest[2:]
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
