"""%kit and %%kitfile in a real IPython shell."""

from __future__ import annotations

import json

import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

GOOD = """\
manifestVersion: 1.0.0
package: {name: churn, version: 1.10}
model: {name: clf, path: model.pkl}
datasets:
  - name: events
    path: data/events.parquet
    remotePath: s3://acme-ml/events/2026-11.parquet
    remoteHash: 9b2cf535f27731c974343645a3985328-12
"""

BAD = """\
manifestVersion: 1.0
model:
  name: clf
  path: https://example.com/model.pkl
datasets:
  - name: events
    path: data/events.parquet
    remotePath: s3://acme-ml/events.parquet
"""


def test_kitfile_cell_binds_parsed_kitfile(ip):
    report = ip.run_cell_magic("kitfile", "kf", GOOD)
    assert report.valid and report.findings == []
    kf = ip.user_ns["kf"]
    assert kf.package.version == "1.10"  # the scalar text as written, not 1.1
    assert kf.datasets[0].remote_hash == "9b2cf535f27731c974343645a3985328-12"


def test_kitfile_cell_shows_findings_with_field_and_line(ip):
    report = ip.run_cell_magic("kitfile", "kf", BAD)
    assert not report.valid
    by_field = {f.field: f for f in report.findings}
    assert by_field["manifestVersion"].severity == "warning"
    # the editor's lines: the %%kitfile line is line 1
    assert by_field["manifestVersion"].line == 2
    assert by_field["model.path"].line == 5
    assert by_field["datasets[0].remoteHash"].message == (
        "remoteHash is required when remote dataset paths are used "
        "(s3://acme-ml/events.parquet)")
    # static output only: the table is the primary output, no widget anywhere
    page, plain = report._repr_html_(), report.text()
    assert 'class="kit-findings"' in page and "<style" not in page
    assert "datasets[0].remoteHash" in plain
    assert "&lt;" not in plain
    assert set(report._repr_mimebundle_()) == {"text/plain", "text/html"}


def test_kitfile_malformed_yaml_is_a_finding_not_a_traceback(ip):
    report = ip.run_cell_magic("kitfile", "kf", "model: {name: [unclosed\n")
    assert not report.valid
    assert report.errors[0].line is not None
    assert ip.user_ns["kf"] is None


def test_kitfile_unknown_key_suggests_closest(ip):
    body = "manifestVersion: 1.0.0\ndatasets:\n  - name: e\n    path: d\n    remotepath: s3://b/k\n"
    report = ip.run_cell_magic("kitfile", "", body)
    (err,) = report.errors
    assert err.line == 6  # the editor's line: %%kitfile is line 1
    assert "remotepath" in err.message and err.hint == 'did you mean "remotePath"?'


def test_kitfile_strict_raises_plain_usage_error(ip):
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("kitfile", "--strict", BAD)
    assert type(info.value) is UsageError
    assert "error" in str(info.value) and "\n" not in str(info.value)


def test_kitfile_output_written_atomically(ip, tmp_path):
    target = tmp_path / "Kitfile"
    ip.run_cell_magic("kitfile", f"-o {target} kf", GOOD)
    assert target.read_text() == GOOD
    assert [p.name for p in tmp_path.iterdir()] == ["Kitfile"]


def test_kit_validate_directory_and_file(ip, tmp_path):
    (tmp_path / "kitfile").write_text(GOOD)
    report = ip.run_line_magic("kit", f"validate {tmp_path}")
    assert report.valid and report.source.endswith("kitfile")
    (tmp_path / "Kitfile").write_text(BAD)  # Kitfile wins over kitfile, as in kit
    assert not ip.run_line_magic("kit", f"validate {tmp_path}").valid


def test_kit_validate_missing_path_is_one_line(ip, tmp_path):
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("kit", f"validate {tmp_path / 'nope'}")
    assert "no such file" in str(info.value)


def test_kit_var_expansion_and_silencing(ip, tmp_path):
    (tmp_path / "Kitfile").write_text(GOOD)
    ip.user_ns["where"] = str(tmp_path)
    result = ip.run_cell("%kit validate $where;")
    assert result.success and result.result is None
    assert ip.run_cell("r = %kit validate {where}").success
    assert ip.user_ns["r"].valid


@pytest.mark.parametrize("line, needle", [
    ("frobnicate", "invalid choice"),
    ("", "required"),
    ("unpack", "required"),
    ("pack --compression lz4 .", "invalid choice"),
    ("pack --layer-format zip .", "invalid choice"),
    ("pakc", "maybe you meant 'pack'?"),
    ("pack . --compression gzp", "maybe you meant 'gzip'?"),
    ("unpack x --overwite", "--overwite (maybe you meant --overwrite?)"),
    ("list --formt json", "--formt (maybe you meant --format?)"),
    ('pack "my dir', "cannot split the line into arguments: No closing quotation (close the "
                     "quote, or put a backslash before it)"),
    ("pack my\\", "No escaped character"),
])
def test_kit_usage_errors_are_plain_usage_errors(ip, line, needle):
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("kit", line)
    assert type(info.value) is UsageError and needle in str(info.value)


def test_kit_help_does_not_exit(ip):
    with capture_output() as cap:
        assert ip.run_line_magic("kit", "unpack -h") is None
    assert "--include-remote" in cap.stdout
    doc = ip.find_line_magic("kit").__doc__
    assert "unpack" in doc and "validate" in doc and "push" in doc


def test_kitfile_line_with_an_open_quote_is_a_usage_error(ip):
    with pytest.raises(UsageError, match="^cannot split the line into arguments: No closing "
                                         "quotation"):
        ip.run_cell_magic("kitfile", "-o 'Kitfile", "manifestVersion: 1.0.0\n")


def test_kit_run_cell_usage_error_is_one_line(ip, capsys):
    result = ip.run_cell("%kit frobnicate")
    assert type(result.error_in_exec) is UsageError
    err = capsys.readouterr().err
    assert "Traceback" not in err and "UsageError" in err


def _completions(ip, text):
    with provisionalcompleter():
        return {c.text for c in ip.Completer.completions(text, len(text))}


@pytest.mark.parametrize("text, expected", [
    ("%kit un", {"unpack"}),
    ("%kit p", {"pack", "push", "pull"}),
    ("r = %kit un", {"unpack"}),
    ("x = 1\n%kit un", {"unpack"}),  # a line magic on a later line of the cell
    ("%kit unpack x --in", {"--include-remote"}),
    ("%kit pack . --comp", {"--compression"}),
])
def test_tab_completion(ip, text, expected):
    assert expected <= _completions(ip, text)


@pytest.mark.parametrize("text, expected", [
    ("%kit pack . --compression ", {"none", "gzip", "gzip-fastest", "zstd"}),
    ("%kit pack . --compression g", {"gzip", "gzip-fastest"}),
    ("%kit pack . --compression=gz", {"gzip", "gzip-fastest"}),
    ("%kit pack . --layer-format ", {"tar", "raw"}),
    ("%kit list --format ", {"table", "json"}),
    ("%kit validate . --format j", {"json"}),
    ("%kit unpack x --progress ", {"auto", "none", "text", "widget", "plain", "fancy"}),
    ("%kit cache ", {"info", "clear"}),
])
def test_completion_offers_exactly_the_choices(ip, text, expected):
    assert _completions(ip, text) == expected  # nothing else: no Python keywords


def test_completion_offers_local_references_and_paths(ip, tmp_path):
    from kit_jupyter.commands.pack import pack

    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    (project / "model.bin").write_bytes(b"m")
    (project / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: model.bin\n")
    (project / "data").mkdir()
    pack(str(project), tag="myproj/churn:v1,v2", home=str(home))
    for command in ("unpack", "inspect", "info", "push", "tag", "remove"):
        found = _completions(ip, f"%kit {command} --config {home} myproj/churn:")
        assert found == {"myproj/churn:v1", "myproj/churn:v2"}, command
    assert _completions(ip, f"%kit validate {project}/Ki") == {f"{project}/Kitfile"}
    assert _completions(ip, f"%kit pack {project}/d") == {f"{project}/data/"}
    assert _completions(ip, f"%kit unpack x -d {project}/da") == {f"{project}/data/"}
    assert _completions(ip, f"%%kitfile -o {project}/Kit") == {f"{project}/Kitfile"}
    assert "--fix" not in _completions(ip, "%%kitfile\nmodel:\n  --f")  # the body is YAML


def test_validate_json_shape_via_magic(ip, tmp_path):
    (tmp_path / "Kitfile").write_text(BAD)
    shown = ip.run_line_magic("kit", f"validate {tmp_path} --format json")
    assert isinstance(shown, str) and ip.display_formatter.format(shown)[0] == {
        "text/plain": shown}  # the JSON itself, as text: not a table, not a quoted string
    data = json.loads(shown)
    assert data["valid"] is False
    assert set(data["findings"][0]) == {"severity", "message", "field", "line"}


def test_validate_of_a_directory_without_kitfile_names_the_right_next_step(ip, tmp_path):
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("kit", f"validate {tmp_path}")
    assert str(info.value) == (f"No Kitfile found in {tmp_path} "
                               "(give the Kitfile's path instead of its directory)")


def test_existing_file_says_which_flags_help(ip, tmp_path):
    project, out = tmp_path / "p", tmp_path / "out"
    project.mkdir()
    (project / "model.bin").write_bytes(b"m")
    (project / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: model.bin\n")
    home = tmp_path / "home"
    ip.run_line_magic("kit", f"pack {project} -t t/m:v1 --config {home} --progress none")
    ip.run_line_magic("kit", f"unpack t/m:v1 -d {out} --config {home} --progress none")
    (out / "model.bin").write_bytes(b"changed")
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("kit", f"unpack t/m:v1 -d {out} --config {home} --progress none")
    assert "model.bin' already exists" in str(info.value)
    assert str(info.value).endswith(
        "(-o/--overwrite replaces it, -i/--ignore-existing keeps it)")


def test_unknown_reference_creates_nothing_and_says_nothing_done(ip, tmp_path, capsys):
    out = tmp_path / "not" / "there"
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("kit", f"unpack nothere:v1 -d {out} --config {tmp_path / 'home'} "
                                 "--progress text")
    assert "nothere:v1" in str(info.value)
    assert not (tmp_path / "not").exists()
    assert "Unpacking to" not in capsys.readouterr().out


def test_kit_validate_file_keeps_the_files_own_lines(ip, tmp_path):
    """A cell counts the %%kitfile line as line 1; a file on disk has no such line."""
    (tmp_path / "Kitfile").write_text(BAD)
    by_field = {f.field: f for f in ip.run_line_magic("kit", f"validate {tmp_path}").findings}
    assert by_field["manifestVersion"].line == 1 and by_field["model.path"].line == 4
    cell = {f.field: f for f in ip.run_cell_magic("kitfile", "", BAD).findings}
    assert cell["manifestVersion"].line == 2 and cell["model.path"].line == 5


def test_kitfile_one_run_shows_every_finding_and_binds_a_partial_kitfile(ip):
    """A wrong type and a misspelt key do not hide the other checks; the variable gets what
    decoded, and the display says it is partial."""
    body = ("manifestVersion: 1.0.0\ncode: src\nmodel:\n  name: clf\n  pth: m.bin\n"
            "datasets:\n  - path: /abs\n")
    report = ip.run_cell_magic("kitfile", "kf", body)
    found = [(f.line, f.message) for f in report.findings]
    assert (3, "cannot unmarshal !!str `src` into []artifact.Code") in found
    assert (6, "field pth not found in type artifact.Model") in found
    assert any(line == 8 and m.startswith("absolute paths are not supported") for line, m in found)
    hints = {f.message: f.hint for f in report.findings}
    assert hints["cannot unmarshal !!str `src` into []artifact.Code"] == \
        "code must be a list: - path: src"
    kf = ip.user_ns["kf"]
    assert kf is not None and kf.partial and kf.model.name == "clf" and kf.code == []
    assert "The Kitfile object is partial" in report.text()
    assert "The Kitfile object is partial" in report._repr_html_()
