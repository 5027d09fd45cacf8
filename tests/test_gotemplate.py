"""Go text/template for ``list --format``: output and Go's error texts, then kit's own
TestListFormatVariants through the CLI and the magic."""

from __future__ import annotations

import json
import re

import pytest
from IPython.core.error import UsageError

from kit_jupyter.__main__ import main
from kit_jupyter.gocompat.gotemplate import GoTemplate, TemplateError

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
