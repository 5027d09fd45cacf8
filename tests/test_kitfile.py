"""Kitfile decoding (strict, raw scalars, lines), YAML output and helpers (spec §3)."""

from __future__ import annotations

import json
import math
import os
import re
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_jupyter.errors import KitfileError
from kit_jupyter.gocompat.goyaml import (
    BOOL,
    FLOAT,
    INT,
    MERGE,
    NULL,
    STR,
    TIMESTAMP,
    Struct,
    dump_document,
    parse_timestamp,
    resolve_plain,
)
from kit_jupyter.kitfile.model import (
    Code,
    DataSet,
    Docs,
    Kitfile,
    MCPServer,
    Model,
    ModelPart,
    Package,
    Prompt,
    decode_kitfile,
    find_kitfile,
    load_kitfile,
    load_kitfile_file,
)

DATA = Path(__file__).parent / "data" / "kitfiles"
KIT_DATA = Path(__file__).parent / "data" / "kit"
MV = "manifestVersion: 1.0.0\n"


def _err(text: str) -> KitfileError:
    with pytest.raises(KitfileError) as ei:
        load_kitfile(text)
    assert "\n" not in str(ei.value)
    return ei.value


# -- raw scalars --------------------------------------------------------------------------------


def test_string_fields_keep_source_text():
    kf = load_kitfile(
        "manifestVersion: 1.0\npackage:\n  name: yes\n  version: 1.10\n  license: 0x10\n"
        "  description: 2024-01-01\n  authors: [no, 1e3, 'quoted', \"dq\"]\n"
        "model:\n  name: 'on'\n  version: !!str 3\n  path: ~\n  license: null\n  format:\n"
    )
    assert kf.manifest_version == "1.0"
    assert kf.package == Package(
        name="yes", version="1.10", description="2024-01-01", license="0x10",
        authors=["no", "1e3", "quoted", "dq"],
    )
    assert kf.model == Model(name="on", version="3")


def test_block_scalars_and_multiline_text():
    kf = load_kitfile(MV + "package:\n  description: |\n    line one\n    line two\n"
                      "  name: >-\n    folded\n    text\n")
    assert kf.package.description == "line one\nline two\n"
    assert kf.package.name == "folded text"


def test_only_first_document_is_read():
    kf = load_kitfile(MV + "code:\n  - path: src\n---\nthis: [is not valid\n")
    assert kf.code == [Code(path="src")]


def test_empty_document_and_null_model():
    kf = load_kitfile("---\n")
    assert kf.manifest_version == "" and kf.model is None
    kf = load_kitfile(MV + "model:\n")
    assert kf.model is None
    kf = load_kitfile(MV + "model: {}\ncode: [{}]\n")
    assert kf.model == Model() and kf.code == [Code()]


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n"])
def test_empty_input_is_eof(text):
    err = _err(text)
    assert str(err) == "EOF"
    assert decode_kitfile(text)[1][0].message == "EOF"


# -- parameters typing (spec §3.4) ----------------------------------------------------------------

PARAMS = [
    ("true", True), ("False", False), ("TRUE", True), ("yes", "yes"), ("No", "no".title()),
    ("on", "on"), ("OFF", "OFF"), ("3", 3), ("-123", -123), ("1_000", 1000), ("0x1F", 31),
    ("0o17", 15), ("017", 15), ("0b101", 5), ("+7", 7), ("08", 8.0),
    ("12345678901234567890", 12345678901234567890),
    ("12345678901234567890123", 1.2345678901234568e22), ("12.3", 12.3), ("2.0", 2.0),
    ("1e3", 1000.0), ("1e-7", 1e-7), (".5", 0.5), ("-0.0", -0.0), ("~", None), ("null", None),
    ("", None), ("'3'", "3"), ('"true"', "true"), ("tRUE", "tRUE"), ("0x", "0x"),
    ("1e400", "1e400"), ("2024-01-01", "2024-01-01T00:00:00Z"),
    ("2024-1-2T3:04:05.500+02:00", "2024-01-02T03:04:05.5+02:00"),
    ("2001-12-14 21:59:43.10", "2001-12-14T21:59:43.1Z"), ("2024-02-30", "2024-02-30"),
    ("0000-02-29", "0000-02-29T00:00:00Z"),
    ("2\u0660\u0662\u0664-01-01", "2\u0660\u0662\u0664-01-01"),
    ("2024-01-01T00:00:00.123456789+24:60", "2024-01-01T00:00:00.123456789+25:00"),
    ("!!float 1", 1.0), ("!!str 1", "1"), ("!custom 12", "12"),
]


@pytest.mark.parametrize("scalar,value", PARAMS, ids=[p[0] or "empty" for p in PARAMS])
def test_parameter_scalar_types(scalar, value):
    kf = load_kitfile(MV + f"model:\n  parameters:\n    v: {scalar}\n")
    got = kf.model.parameters["v"]
    assert got == value or (got != got and value != value)
    assert type(got) is type(value) or isinstance(got, str) and isinstance(value, str)


# Go's time.Format(RFC3339Nano): zero-padded fields, a fraction without trailing zeros, Z or ±hh:mm
_RFC3339_NANO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                           r"(\.[0-9]{0,8}[1-9])?(Z|[+-][0-9]{2}:[0-9]{2})")
_TS_PIECES = st.sampled_from([
    "2024", "0000", "9999", "-", ":", "T", "t", " ", "Z", "z", "+", ".", ",", "1", "01", "12", "13",
    "29", "30", "31", "00", "23", "24", "59", "60", "٢", "1234567890", "\n", "_", "+24:60",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(_TS_PIECES, max_size=14).map("".join) | st.text(max_size=30))
def test_any_text_is_a_timestamp_or_not(text: str) -> None:
    """Never an exception; a timestamp is ASCII (Go reads ASCII digits only), keeps the year as
    written, and is Go's RFC 3339 rendering -- which reads back as itself."""
    got = parse_timestamp(text)
    if got is None:
        return
    assert text.isascii() and got[:4] == text[:4]
    assert _RFC3339_NANO.fullmatch(got), got
    if not got.endswith("25:00"):  # Go writes a +24:60 offset as +25:00, which it cannot read
        assert parse_timestamp(got) == got


@settings(max_examples=400, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 1)), st.integers(0, 999_999_999),
       st.text(alphabet="0123456789", max_size=4), st.sampled_from(["date", "T", "t", " "]),
       st.none() | st.tuples(st.sampled_from("+-"), st.integers(0, 24), st.integers(0, 60)),
       st.booleans(), st.data())
def test_timestamps_read_as_yaml_v3_does(when: datetime, nanos: int, extra: str, layout: str,
                                         zone: tuple[str, int, int] | None, pad: bool,
                                         data: st.DataObject) -> None:
    """yaml.v3's four layouts (date; ``T``/``t`` with a zone; space without one), with short or
    padded fields, a fraction of up to nine digits and any zone Go accepts, read as Go renders
    them; a tenth fraction digit (tests/data/kitfiles/yamlv3) or one digit from another script
    and it is no timestamp."""
    f = "{:02d}" if pad else "{}"
    text = f"{when.year:04d}-" + f.format(when.month) + "-" + f.format(when.day)
    zone_text, total = "Z", 0
    if zone is not None and layout in "Tt":
        zone_text = f"{zone[0]}{zone[1]:02d}:{zone[2]:02d}"
        total = zone[1] * 60 + zone[2]
    if layout != "date":
        text += layout + ":".join(f.format(v) for v in (when.hour, when.minute, when.second))
        if nanos or extra:
            text += data.draw(st.sampled_from(".,")) + f"{nanos:09d}" + extra
        text += "" if layout == " " else zone_text
    fraction = f"{nanos:09d}".rstrip("0") if layout != "date" else ""
    expected = (f"{when.year:04d}-{when.month:02d}-{when.day:02d}T"
                + (f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}" if layout != "date"
                   else "00:00:00")
                + ("." + fraction if fraction else "")
                + (f"{zone[0]}{total // 60:02d}:{total % 60:02d}" if total and zone else "Z"))
    assert parse_timestamp(text) == (expected if not extra or layout == "date" else None)
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    i = data.draw(st.sampled_from(digits))
    assert parse_timestamp(text[:i] + chr(0x660 + int(text[i])) + text[i + 1:]) is None


_SCALAR_PIECES = st.sampled_from([
    "0x", "0o", "0b", "-", "+", "_", ".", "e", "E", "1", "9" * 25, "0", "7", "f", "inf", ".inf",
    ".nan", "2024-01-01", "T", ":", "٣", "\n", " ", "true", "~", "<<", "1" * 5000,
])


@settings(max_examples=400, deadline=None)
@given(st.lists(_SCALAR_PIECES, max_size=10).map("".join) | st.text(max_size=20))
def test_any_plain_scalar_resolves_to_a_yaml_v3_type(text: str) -> None:
    """Never an exception (nor int()'s 4300-digit ValueError); an int fits 64 bits, a float is
    finite unless YAML spelled it .inf/.nan, a string is the text, a timestamp its rendering."""
    tag, value = resolve_plain(text)
    assert tag in (STR, INT, FLOAT, BOOL, NULL, TIMESTAMP, MERGE)
    if tag == INT:
        assert type(value) is int and -(2**63) <= value <= 2**64 - 1
    elif tag == FLOAT:
        assert math.isfinite(value) or text.lower().lstrip("+-") in (".inf", ".nan")
    elif tag == STR:
        assert value == text
    elif tag == TIMESTAMP:
        assert value == parse_timestamp(text)


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=-(2**65), max_value=2**65)
       | st.integers(min_value=-(10**30), max_value=10**30),
       st.sampled_from(["dec", "0x", "0o", "0b", "octal", "underscores"]))
def test_integers_resolve_as_yaml_v3_does(n: int, form: str) -> None:
    """Go's ParseInt/ParseUint(s, 0, 64) after yaml.v3 drops underscores: every integer from
    int64's minimum to uint64's maximum, in any base Go knows, is that int; beyond, not an int."""
    sign, mag = "-" if n < 0 else "", abs(n)
    text = {"dec": f"{n}", "0x": f"{sign}0x{mag:x}", "0o": f"{sign}0o{mag:o}",
            "0b": f"{sign}0b{mag:b}", "octal": f"{sign}0{mag:o}",
            "underscores": sign + "_".join(str(mag))}[form]
    tag, value = resolve_plain(text)
    if -(2**63) <= n <= 2**64 - 1:
        assert (tag, value) == (INT, n)
    else:
        assert tag != INT


def test_parameter_inf_nan_decode_then_fail_at_json():
    kf = load_kitfile(MV + "model:\n  parameters:\n    a: .inf\n    b: -.Inf\n")
    with pytest.raises(KitfileError, match=r"^json: unsupported value: \+Inf$"):
        kf.to_config_json()
    kf.model.parameters = {"b": float("-inf")}
    with pytest.raises(KitfileError, match=r"^json: unsupported value: -Inf$"):
        kf.to_config_json()
    kf.model.parameters = [float("nan")]
    with pytest.raises(KitfileError, match=r"^json: unsupported value: NaN$"):
        kf.to_config_json()


def test_parameter_non_string_key_fails_at_json():
    kf = load_kitfile(MV + "datasets:\n  - path: d\n    parameters:\n      nested:\n        1: x\n")
    assert kf.datasets[0].parameters["nested"].plain_items() == [(1, "x")]
    with pytest.raises(KitfileError, match=r"unsupported type: map\[interface \{\}\]interface"):
        kf.to_config_json()
    # a quoted key is a string key
    kf = load_kitfile(MV + "model:\n  parameters:\n    '1': x\n")
    assert kf.to_config_json().endswith(b'"parameters":{"1":"x"}}}')


def test_parameters_keep_non_null_empty_values():
    kf = load_kitfile(MV + "model:\n  parameters: {}\ndatasets:\n  - path: d\n    parameters: ''\n"
                      "  - path: e\n    parameters:\n")
    assert kf.model.parameters == {}
    assert kf.datasets[0].parameters == ""
    assert kf.datasets[1].parameters is None


def test_anchors_aliases_and_merge_keys():
    kf = load_kitfile(MV + "datasets:\n  - &d\n    name: a\n    path: a\n    license: MIT\n"
                      "  - <<: *d\n    name: b\n    path: b\nmodel:\n  parameters:\n"
                      "    base: &p {x: 1, y: 2}\n    more:\n      <<: *p\n      y: 3\n")
    assert kf.datasets[1] == DataSet(name="b", path="b", license="MIT")
    assert kf.model.parameters["more"] == {"x": 1, "y": 3}


def test_recursive_alias_is_an_error_not_a_crash():
    findings = decode_kitfile(MV + "model:\n  parameters: &a\n    self: *a\n")[1]
    assert findings and "contains itself" in findings[0].message


# -- decode errors (spec §3.1) --------------------------------------------------------------------


def test_unknown_keys_all_reported_with_hints():
    text = (MV + "datasets:\n  - name: x\n    path: y\n    remotepath: s3://b/k\n"
            "    digest: sha256:abc\nmodle:\n  path: m\n")
    err = _err(text)
    assert err.problems == [
        "field remotepath not found in type artifact.DataSet",
        "field digest not found in type artifact.DataSet",
        "field modle not found in type artifact.KitFile",
    ]
    assert str(err) == ('line 5: field remotepath not found in datasets[0]; did you mean '
                        '"remotePath"? (and 2 more problems)')
    assert err.kit_text == (
        "yaml: unmarshal errors:\n"
        "  line 5: field remotepath not found in type artifact.DataSet\n"
        "  line 6: field digest not found in type artifact.DataSet\n"
        "  line 7: field modle not found in type artifact.KitFile"
    )
    assert err.line == 5 and err.field == "datasets[0].remotepath"
    findings = decode_kitfile(text)[1]
    assert [(f.severity, f.field, f.line) for f in findings] == [
        ("error", "datasets[0].remotepath", 5), ("error", "datasets[0].digest", 6),
        ("error", "modle", 7),
    ]
    # a finding is kit's line without its "line N: " (the line is its own column) plus our hint
    assert [f.message for f in findings] == [
        line.split(": ", 1)[1] for line in err.kit_text.splitlines()[1:]]
    assert [f.hint for f in findings] == [
        'did you mean "remotePath"?', None, 'did you mean "model"?']
    assert [f.fix for f in findings] == [("remotepath", "remotePath"), None, ("modle", "model")]


@pytest.mark.parametrize(
    "where,key,hint",
    [
        ("package", "autors", "authors"), ("model", "paramters", "parameters"),
        ("model.parts[0]", "Type", "type"), ("code[0]", "descripton", "description"),
        ("docs[0]", "pth", "path"), ("prompts[0]", "nmae", "name"),
        ("mcpServers[0]", "despcription", "description"),
    ],
)
def test_unknown_key_hint_uses_keys_of_that_type(where, key, hint):
    snippets = {
        "package": f"package:\n  {key}: x\n",
        "model": f"model:\n  {key}: x\n",
        "model.parts[0]": f"model:\n  parts:\n    - {key}: x\n",
        "code[0]": f"code:\n  - {key}: x\n",
        "docs[0]": f"docs:\n  - {key}: x\n",
        "prompts[0]": f"prompts:\n  - {key}: x\n",
        "mcpServers[0]": f"mcpServers:\n  - {key}: x\n",
    }
    (f,) = decode_kitfile(MV + snippets[where])[1]
    assert f.message.startswith(f"field {key} not found in type artifact.")
    assert f.hint == f'did you mean "{hint}"?' and f.fix == (key, hint)
    assert f.field == f"{where}.{key}"


def test_no_fix_when_the_suggestion_is_ambiguous_or_already_set():
    (f,) = decode_kitfile(MV + "package:\n  name: a\n  nme: b\n")[1]
    assert f.hint == 'did you mean "name"?' and f.fix is None  # "name" is already there
    (g,) = decode_kitfile(MV + "datasets:\n  - pat: x\n")[1]  # path? parameters?
    assert g.hint is not None
    from kit_jupyter.kitfile.model import DataSet, key_suggestions

    ambiguous = len(key_suggestions("pat", [k for k, _, _ in DataSet._schema])) > 1
    assert (g.fix is None) == ambiguous


def test_repeated_key():
    err = _err(MV + "model:\n  path: a\n  name: m\n  path: b\n")
    assert str(err) == 'line 5: mapping key "path" already defined at line 3 in model'
    assert err.kit_text == (
        'yaml: unmarshal errors:\n  line 5: mapping key "path" already defined at line 3'
    )
    assert err.field == "model.path" and err.line == 5


def test_repeated_key_three_times_reports_every_pair():
    err = _err(MV + "model:\n  parameters:\n    a: 1\n    a: 2\n    a: 3\n")
    assert err.kit_text.splitlines()[1:] == [
        '  line 5: mapping key "a" already defined at line 4',
        '  line 6: mapping key "a" already defined at line 4',
        '  line 6: mapping key "a" already defined at line 5',
    ]


@pytest.mark.parametrize(
    "snippet,kit,field",
    [
        ("package:\n  name: [a]\n", "line 3: cannot unmarshal !!seq into string", "package.name"),
        ("package:\n  version: {a: b}\n", "line 3: cannot unmarshal !!map into string",
         "package.version"),
        ("package: foo bar baz qux\n",
         "line 2: cannot unmarshal !!str `foo bar...` into artifact.Package", "package"),
        ("model: 3\n", "line 2: cannot unmarshal !!int `3` into artifact.Model", "model"),
        ("code: {path: x}\n", "line 2: cannot unmarshal !!map into []artifact.Code", "code"),
        ("datasets: x\n", "line 2: cannot unmarshal !!str `x` into []artifact.DataSet",
         "datasets"),
        ("package:\n  authors: me\n", "line 3: cannot unmarshal !!str `me` into []string",
         "package.authors"),
        ("package:\n  authors: [a, [b]]\n", "line 3: cannot unmarshal !!seq into string",
         "package.authors[1]"),
        ("mcpServers:\n  - [a]\n", "line 3: cannot unmarshal !!seq into artifact.MCPServer",
         "mcpServers[0]"),
    ],
)
def test_wrong_node_kind(snippet, kit, field):
    err = _err(MV + snippet)
    assert err.kit_text == "yaml: unmarshal errors:\n  " + kit
    assert err.field == field
    line, _, rest = kit.partition(": ")
    assert str(err) == f"{line}: {field}: {rest}"


def test_top_level_not_a_mapping():
    err = _err("- a\n- b\n")
    assert str(err) == "line 1: cannot unmarshal !!seq into artifact.KitFile"


@pytest.mark.parametrize(
    "text,line",
    [
        (MV + "model:\n  path: x\n   bad: indent\n", 4),
        (MV + "code: [a, b\n", None),
        (MV + "model:\n\tpath: x\n", 3),
        (MV + "name: *missing\n", 2),
        (MV + "a: 'unterminated\n", None),
    ],
)
def test_malformed_yaml_is_one_line_with_line_number(text, line):
    err = _err(text)
    assert str(err).startswith("yaml: ")
    if line is not None:
        assert str(err).startswith(f"yaml: line {line}: ")
        assert err.line == line
    (f,) = decode_kitfile(text)[1]
    assert f.severity == "error" and f.line == err.line
    assert str(f) == (f"line {f.line}: " if f.line else "") + f.message
    assert f.message == str(err).replace(f"line {line}: ", "") if line else str(err)


def test_decode_errors_empty_for_good_kitfile():
    assert decode_kitfile(MV + "model:\n  path: m\n")[1] == []


# -- lines ----------------------------------------------------------------------------------------


def test_lines_for_every_field_path():
    text = """manifestVersion: 1.0.0
package:
  name: demo
  authors: [a, b]
model:
  path: m.bin
  parts:
    - name: p
      path: p.bin
code:
  - path: src
datasets:
  - name: raw
    path: raw
    remotePath: s3://b/k
    remoteHash: abc
mcpServers:
  - name: fs
    path: fs.mcpb
"""
    kf = load_kitfile(text)
    expected = {
        "manifestVersion": 1, "package": 2, "package.name": 3, "package.authors": 4,
        "package.authors[0]": 4, "model": 5, "model.path": 6, "model.parts": 7,
        "model.parts[0]": 8, "model.parts[0].name": 8, "model.parts[0].path": 9, "code": 10,
        "code[0]": 11, "code[0].path": 11, "datasets": 12, "datasets[0]": 13,
        "datasets[0].name": 13, "datasets[0].path": 14, "datasets[0].remotePath": 15,
        "datasets[0].remoteHash": 16, "mcpServers[0].path": 19,
    }
    for k, v in expected.items():
        assert kf.lines[k] == v, k
    # absent keys fall back to the enclosing mapping's first line
    assert kf.line_of("code[0].description") == 11
    assert kf.line_of("model.name") == 6
    assert kf.line_of("datasets[0].license") == 13
    assert kf.line_of("mcpServers[0].name") == 18
    assert load_kitfile("model:\n  path: x\n").line_of("manifestVersion") == 1


# -- YAML output (spec §3.5) ----------------------------------------------------------------------


# kit's parameters fixtures (round trip) run in tests/test_kit_fixtures.py.


def test_yaml_style():
    kf = Kitfile(
        manifest_version="1.0",
        package=Package(name="yes", version="1.10", authors=["Zoë", "R&D", "a, b", ""]),
        model=Model(name="m", path="./m", parts=[ModelPart(path="p", type="gguf")],
                    parameters={"y": 1, "n": "no", "a10": 1, "a9": 2, "b": "x: y", "c": " pad",
                                "multi": "l1\nl2\n", "empty": "", "date": "2024-01-01"}),
        code=[Code(path="src", digest="sha256:" + "a" * 64)],
        docs=[Docs(description="d")],
        prompts=[Prompt(name="p", path="prompts")],
        mcp_servers=[MCPServer(name="fs", path="fs.mcpb")],
    )
    assert kf.to_yaml() == """manifestVersion: "1.0"
package:
  name: "yes"
  version: "1.10"
  authors: [Zoë, R&D, 'a, b', ""]
model:
  name: m
  path: ./m
  parts:
    - path: p
      type: gguf
  parameters:
    a9: 2
    a10: 1
    b: 'x: y'
    c: ' pad'
    date: "2024-01-01"
    empty: ""
    multi: |
      l1
      l2
    "n": "no"
    "y": 1
code:
  - path: src
docs:
  - path: ""
    description: d
prompts:
  - name: p
    path: prompts
mcpServers:
  - name: fs
    path: fs.mcpb
"""


def test_yaml_output_reads_back_identically():
    text = (KIT_DATA / "parameters" / "test-nested-parameters.yaml").read_text()
    kf = load_kitfile(yaml.safe_load(text)["kitfileYaml"])
    kf.datasets = [DataSet(name="d", path="data", remote_path="s3://b/k?versionId=1",
                           remote_hash='"etag-2"', parameters={"k": [1, "two", None, True]})]
    again = load_kitfile(kf.to_yaml())
    assert again.to_yaml() == kf.to_yaml()
    assert again.to_config_json() == kf.to_config_json()


def test_empty_kitfile_yaml():
    assert Kitfile().to_yaml() == 'manifestVersion: ""\n'
    assert Kitfile(manifest_version="1.0.0", model=Model()).to_yaml() == (
        "manifestVersion: 1.0.0\nmodel: {}\n"
    )


# -- config round trip --------------------------------------------------------------------------


def test_from_config_json_keeps_digests_and_turns_numbers_into_floats():
    data = (b'{"manifestVersion":"1.0.0","package":{},"model":{"path":"m","parameters":'
            b'{"big":123456789012345678,"i":1234567,"s":100000,"t":"2024-01-01T00:00:00Z"},'
            b'"digest":"sha256:aa","diffId":"sha256:bb"},"datasets":[{"path":"d",'
            b'"remotePath":"s3://b/k","remoteHash":"h"}],"unknownKey":1}')
    kf = Kitfile.from_config_json(data)
    assert kf.model.digest == "sha256:aa" and kf.model.diff_id == "sha256:bb"
    assert kf.datasets[0].remote_path == "s3://b/k" and kf.datasets[0].digest == ""
    assert isinstance(kf.model.parameters["s"], float)
    assert kf.to_yaml() == (
        "manifestVersion: 1.0.0\nmodel:\n  path: m\n  parameters:\n"
        "    big: 1.2345678901234568e+17\n    i: 1.234567e+06\n    s: 100000\n"
        '    t: "2024-01-01T00:00:00Z"\ndatasets:\n  - path: d\n    remotePath: s3://b/k\n'
        "    remoteHash: h\n"
    )
    # digests survive a re-serialisation of the config
    assert b'"digest":"sha256:aa","diffId":"sha256:bb"' in kf.to_config_json()


def test_from_config_json_rejects_garbage():
    with pytest.raises(KitfileError):
        Kitfile.from_config_json(b"not json")
    with pytest.raises(KitfileError):
        Kitfile.from_config_json(b'{"manifestVersion": 3}')


# -- files and layer entries ----------------------------------------------------------------------


def test_find_kitfile_order_and_message(tmp_path):
    with pytest.raises(KitfileError) as ei:
        find_kitfile(tmp_path)
    assert str(ei.value) == (
        f"No Kitfile found in {tmp_path}. Consider using the -f flag to specify its path"
    )
    (tmp_path / ".kitfile").write_text(MV)
    assert find_kitfile(tmp_path).name == ".kitfile"
    (tmp_path / "kitfile").write_text(MV)
    names = set(os.listdir(tmp_path))
    assert find_kitfile(tmp_path).name in ({"kitfile"} & names)
    (tmp_path / "Kitfile").write_text(MV)
    assert find_kitfile(tmp_path).name == "Kitfile"
    other = tmp_path / "custom.yaml"
    other.write_text(MV)
    assert find_kitfile(tmp_path, other) == other
    with pytest.raises(KitfileError):
        find_kitfile(tmp_path, tmp_path / "missing.yaml")


def test_load_kitfile_file(tmp_path):
    p = tmp_path / "Kitfile"
    p.write_text(MV + "package:\n  name: Zoë\n", encoding="utf-8")
    assert load_kitfile_file(p).package.name == "Zoë"
    with pytest.raises(KitfileError, match="no such file"):
        load_kitfile_file(tmp_path / "nope")


def test_layer_entries_order_and_skips():
    kf = load_kitfile(
        MV + "mcpServers:\n  - {name: s, path: s.mcpb}\nprompts:\n  - {name: pr, path: p}\n"
        "docs:\n  - {path: README.md}\ndatasets:\n  - {name: r, path: r, remotePath: s3://b/k,"
        " remoteHash: h}\n  - {name: l, path: l}\ncode:\n  - {path: src}\n"
        "model:\n  name: m\n  path: m.bin\n  parts:\n    - {name: a, path: a}\n"
    )
    got = [(e.kind, e.index, e.path, e.name, e.field) for e in kf.layer_entries()]
    assert got == [
        ("model", 0, "m.bin", "m", "model.path"),
        ("modelpart", 0, "a", "a", "model.parts[0].path"),
        ("code", 0, "src", "", "code[0].path"),
        ("dataset", 1, "l", "l", "datasets[1].path"),
        ("docs", 0, "README.md", "", "docs[0].path"),
        ("prompt", 0, "p", "pr", "prompts[0].path"),
        ("mcpserver", 0, "s.mcpb", "s", "mcpServers[0].path"),
    ]
    assert kf.layer_entries()[3].entity is kf.datasets[1]
    ref = load_kitfile(MV + "model:\n  path: registry.io/org/parent:v1\n  parts:\n"
                       "    - path: extra\n")
    assert [e.kind for e in ref.layer_entries()] == ["modelpart"]
    assert load_kitfile(MV + "model:\n  name: only\n").layer_entries() == []


@pytest.mark.parametrize(
    "text",
    [
        b"name: \xff\n",
        "a: \x00\n",
        MV + "model:\n  parameters: " + "[" * 600 + "]" * 600 + "\n",
        MV + "model:\n  parameters: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
    ],
    ids=["bad-utf8", "nul", "deep-600", "deep-5000"],
)
def test_hostile_input_gives_one_error_not_a_crash(text):
    (f,) = decode_kitfile(text)[1]
    assert f.severity == "error" and f.message.startswith("yaml: ")
    with pytest.raises(KitfileError):
        load_kitfile(text)


def test_moderately_deep_parameters_round_trip():
    text = MV + "model:\n  parameters: " + "{a: " * 200 + "1" + "}" * 200 + "\n"
    kf = load_kitfile(text)
    assert load_kitfile(kf.to_yaml()).to_config_json() == kf.to_config_json()


def test_null_document_is_an_empty_kitfile_with_lines():
    kf = load_kitfile("~\n")
    assert kf == Kitfile() and kf.line_of("manifestVersion") == 1


def test_utf16_with_bom_is_read():
    kf = load_kitfile("manifestVersion: 1.0.0\npackage:\n  name: é\n".encode("utf-16"))
    assert kf.package.name == "é"


def test_keep_chomped_literal_is_not_closed_with_dots():
    # checked against yaml.v3 v3.0.4: no "..." after a ``|+`` scalar
    kf = Kitfile(manifest_version="1.0.0", package=Package(description="a\n\n", license="x"))
    text = kf.to_yaml()
    assert text == "manifestVersion: 1.0.0\npackage:\n  description: |+\n    a\n\n  license: x\n"
    assert load_kitfile(text) == kf


def test_yamlv3_golden():
    """Byte-for-byte agreement with yaml.v3 + encoding/json on 1061 Kitfiles (see README)."""
    from kit_jupyter.kitfile.model import _decode

    cases = json.loads((DATA / "yamlv3" / "golden.json").read_text(encoding="utf-8"))
    bad = []
    for case in cases:
        res = _decode(case["in"])
        want_err = case.get("err", "")
        if res.kitfile is None or res.problems:  # a partial Kitfile is still kit's error
            got_err = res.kit_text
            if want_err.startswith("yaml: line ") or want_err == "EOF":
                ok = bool(want_err) and (got_err == want_err or got_err.startswith("yaml: "))
            else:
                ok = got_err == want_err
            if not ok:
                bad.append((case["in"], "err", want_err, got_err))
            continue
        if want_err:
            bad.append((case["in"], "err", want_err, ""))
            continue
        kf = res.kitfile
        got = {"yaml": kf.to_yaml()}
        try:
            got["config"] = kf.to_config_json().decode("utf-8")
        except KitfileError as exc:
            got["configErr"] = str(exc)
        if "config" in got:
            got["rtYaml"] = Kitfile.from_config_json(got["config"]).to_yaml()
        for key in ("yaml", "config", "configErr", "rtYaml"):
            want = case.get(key, case.get("yaml") if key == "rtYaml" and "config" in case else "")
            if got.get(key, "") != (want or ""):
                bad.append((case["in"], key, want, got.get(key, "")))
    assert not bad, f"{len(bad)} differences, first: {bad[:3]}"


def test_null_key_in_struct_is_ignored_and_collection_key_is_fatal():
    kf = load_kitfile(MV + "? \n: x\ncode:\n  - path: a\n")
    assert kf.code == [Code(path="a")]
    err = _err(MV + "model:\n  parameters:\n    ? [a, b]\n    : x\n")
    assert err.kit_text.startswith("yaml: invalid map key: ")
    assert err.line == 4 and err.field == "model.parameters"


def test_yamlv3_binary_golden():
    """A string that is not valid UTF-8 (a file name's bytes, held as ``os.fsdecode`` holds
    them) is written as yaml.v3 writes it -- ``!!binary``, byte for byte, as a value, a sequence
    item's value and a key -- and reads back to the same bytes (see README)."""
    cases = json.loads((DATA / "yamlv3" / "binary.json").read_text(encoding="utf-8"))
    assert len(cases) == 13
    for case in cases:
        raw = bytes.fromhex(case["in"])
        assert case["back"] == case["in"]  # Go reads its own text back to the bytes
        s = os.fsdecode(raw)
        doc = Struct([("path", s), ("parts", [Struct([("path", s)])]), ("keys", {s: s})])
        assert dump_document(doc) == case["yaml"], raw
        kf = load_kitfile("manifestVersion: 1.0.0\ncode:\n  - path: x\n")
        kf.code[0].path = s  # what init writes for a file of that name
        text = kf.to_yaml()
        assert "  - path: !!binary " in text
        assert [os.fsencode(c.path) for c in load_kitfile(text).code] == [raw]
