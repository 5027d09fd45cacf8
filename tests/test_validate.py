"""Validation: kit's fixture set (spec §5.7) under the latest rules, with field paths and lines."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kit_jupyter.errors import ValidationError
from kit_jupyter.kitfile.model import load_kitfile
from kit_jupyter.kitfile.rules import (
    Finding,
    check_kitfile,
    classify_path,
    ensure_valid,
    error_text,
    go_clean,
    validate,
)

MV = "manifestVersion: 1.0.0\n"
LONG_TYPE = "valid-otherwise-but-w" + "a" * 37 + "y-too-long"
REF = "docker.io/kit-org/kit-repo:latest"

# (case, kitfile text, [(error, field, line)], [(warning, field, line)])
CASES = [
    ("absolute-path-for-prompts", MV + "prompts:\n  - path: /tmp/skills/personal/\n",
     [("absolute paths are not supported in a Kitfile (path /tmp/skills/personal in prompt "
       "layer 0)", "prompts[0].path", 3)], []),
    ("bad-manifest-version", "manifestVersion: v99.99.99\n", [],
     [("Unrecognized manifestVersion v99.99.99: treating Kitfile as 1.0.0", "manifestVersion",
       1)]),
    ("duplicate-path-in-kitfile_1",
     MV + "datasets:\n  - path: test-path\ncode:\n  - path: test-path\n",
     [("code layer 0 and dataset layer 0 use the same path test-path", "datasets[0].path", 3)],
     []),
    ("duplicate-path-in-kitfile_2", MV + "model:\n  path: test-path\ncode:\n  - path: test-path\n",
     [("model  and code layer 0 use the same path test-path", "code[0].path", 5)], []),
    ("duplicate-path-in-kitfile_3",
     MV + "model:\n  path: test-path/\ndatasets:\n  - path: test-path\n",
     [("model  and dataset layer 0 use the same path test-path", "datasets[0].path", 5)], []),
    ("duplicate-path-in-kitfile_4",
     MV + "model:\n  path: test-path/\n  parts:\n    - path: ./test-path\n",
     [("model  and modelpart  use the same path test-path", "model.parts[0].path", 5)], []),
    ("duplicate-path-in-kitfile_5",
     MV + "model:\n  path: test-path/\n  parts:\n    - path: ./some/meandering/../../test-path\n",
     [("model  and modelpart  use the same path test-path", "model.parts[0].path", 5)], []),
    ("duplicate-path-with-mcpserver",
     MV + "code:\n  - path: filesystem.mcpb\nmcpServers:\n  - name: filesystem\n"
     "    path: filesystem.mcpb\n",
     [("code layer 0 and mcpServer layer 0 use the same path filesystem.mcpb",
       "mcpServers[0].path", 6)], []),
    ("http-path-for-code", MV + "code:\n  - path: https://example.com\n",
     [("invalid path for code (https://example.com): HTTP urls are not supported in paths "
       "(https://example.com)", "code[0].path", 3),
      ("invalid path for code (https://example.com): only local paths are permitted",
       "code[0].path", 3)], []),
    ("http-path-for-datasets", MV + "datasets:\n  - path: https://example.com\n",
     [("invalid path for dataset (https://example.com): HTTP urls are not supported in paths "
       "(https://example.com)", "datasets[0].path", 3),
      ("invalid path for dataset (https://example.com): only local paths are permitted",
       "datasets[0].path", 3)], []),
    ("http-path-for-docs", MV + "docs:\n  - path: https://example.com\n",
     [("invalid path for doc (https://example.com): HTTP urls are not supported in paths "
       "(https://example.com)", "docs[0].path", 3),
      ("invalid path for doc (https://example.com): only local paths are permitted",
       "docs[0].path", 3)], []),
    ("http-path-for-model", MV + "model:\n  path: https://example.com\n",
     [("invalid path for model: HTTP urls are not supported in paths (https://example.com)",
       "model.path", 3),
      ("invalid path for model: only local paths and ModelKit references are permitted",
       "model.path", 3)], []),
    ("http-path-for-modelpart",
     MV + "model:\n  path: testpath\n  parts:\n    - path: https://example.com\n",
     [("invalid path for model part (https://example.com): HTTP urls are not supported in "
       "paths (https://example.com)", "model.parts[0].path", 5),
      ("invalid path for model part (https://example.com): only local paths are permitted",
       "model.parts[0].path", 5)], []),
    ("http-path-for-prompts", MV + "prompts:\n  - path: https://example.com\n",
     [("invalid path for prompt (https://example.com): HTTP urls are not supported in paths "
       "(https://example.com)", "prompts[0].path", 3),
      ("invalid path for prompt (https://example.com): only local paths are permitted",
       "prompts[0].path", 3)], []),
    ("invalid-model-part-type-length",
     MV + f"model:\n  path: test-path\n  parts:\n    - path: part-path\n      type: {LONG_TYPE}\n",
     [("modelpart  type is too long (must be fewer than 64 characters)",
       "model.parts[0].type", 6)], []),
    ("invalid-model-part-type",
     MV + "model:\n  path: test-path\n  parts:\n    - path: part-path\n"
     "      type: contains a space\n",
     [("modelpart  has invalid type (must be alphanumeric with dots, dashes, and underscores)",
       "model.parts[0].type", 6)], []),
    ("mcpserver-duplicate-name",
     MV + "mcpServers:\n  - name: filesystem\n    path: filesystem.mcpb\n"
     "  - name: filesystem\n    path: other.mcpb\n",
     [("duplicate mcpServer name filesystem: names must be unique", "mcpServers[1].name", 5)],
     []),
    ("mcpserver-missing-name", MV + "mcpServers:\n  - path: filesystem.mcpb\n",
     [("mcpServer with path filesystem.mcpb must have a name", "mcpServers[0].name", 3)], []),
    ("mcpserver-non-mcpb-path",
     MV + "mcpServers:\n  - name: filesystem\n    path: filesystem.zip\n",
     [("invalid path for mcpServer (filesystem.zip): path must point to a single .mcpb file",
       "mcpServers[0].path", 4)], []),
    ("mcpserver-valid",
     MV + "mcpServers:\n  - name: filesystem\n    path: filesystem.mcpb\n"
     "  - name: postgres\n    path: postgres.mcpb\n", [], []),
    ("modelkit-ref-for-code", MV + f"code:\n  - path: {REF}\n",
     [(f"invalid path for code ({REF}): only local paths are permitted", "code[0].path", 3)], []),
    ("modelkit-ref-for-datasets", MV + f"datasets:\n  - path: {REF}\n",
     [(f"invalid path for dataset ({REF}): only local paths are permitted",
       "datasets[0].path", 3)], []),
    ("modelkit-ref-for-docs", MV + f"docs:\n  - path: {REF}\n",
     [(f"invalid path for doc ({REF}): only local paths are permitted", "docs[0].path", 3)], []),
    ("modelkit-ref-for-model", MV + f"model:\n  path: {REF}\n", [], []),
    ("modelkit-ref-for-modelpart", MV + f"model:\n  path: testpath\n  parts:\n    - path: {REF}\n",
     [(f"invalid path for model part ({REF}): only local paths are permitted",
       "model.parts[0].path", 5)], []),
    ("modelkit-ref-for-prompts", MV + f"prompts:\n  - path: {REF}\n",
     [(f"invalid path for prompt ({REF}): only local paths are permitted",
       "prompts[0].path", 3)], []),
    ("relative-path-outside-context-for-datasets", MV + "datasets:\n  - path: data/../../outside\n",
     [("paths outside the context directory are not supported in a Kitfile (path ../outside in "
       "dataset layer 0)", "datasets[0].path", 3)], []),
    ("relative-path-outside-context-for-prompts",
     MV + "prompts:\n  - path: ../outside/skills/personal/\n",
     [("paths outside the context directory are not supported in a Kitfile (path "
       "../outside/skills/personal in prompt layer 0)", "prompts[0].path", 3)], []),
    ("relative-path-within-context-allowed",
     MV + "code:\n  - path: src/../lib\nprompts:\n  - path: ./skills/personal/\n", [], []),
    ("remote-dataset-collides-with-code",
     MV + f"datasets:\n  - path: data/train\n    remotePath: {REF}\ncode:\n"
     "  - path: data/train/code\n",
     [("code layer 0 uses a path (data/train/code) that is within the path for a remote dataset",
       "code[0].path", 6)], []),
    ("remote-dataset-collides-with-model",
     MV + f"model:\n  path: data/train/model.bin\ndatasets:\n  - path: data/train\n"
     f"    remotePath: {REF}\n",
     [("model  uses a path (data/train/model.bin) that is within the path for a remote dataset",
       "model.path", 3)], []),
    ("remote-dataset-collides-with-nested-dataset",
     MV + f"datasets:\n  - path: data/train\n    remotePath: {REF}\n  - path: data/train/extra\n",
     [("dataset layer 1 uses a path (data/train/extra) that is within the path for a remote "
       "dataset", "datasets[1].path", 5)], []),
    ("remote-dataset-modelkit-ref",
     MV + f"datasets:\n  - path: data/train\n    remotePath: {REF}\n", [], []),
    ("remote-dataset-must-use-s3",
     MV + "datasets:\n  - path: some/local/path\n"
     "    remotePath: mybucket.s3.us-east-2.amazonaws.com\n    remoteHash: testhash\n",
     [("only S3 URLs and ModelKit references are supported for remote dataset paths "
       "(mybucket.s3.us-east-2.amazonaws.com)", "datasets[0].remotePath", 4)], []),
    ("remote-dataset-requires-hash",
     MV + "datasets:\n  - path: some/local/path\n    remotePath: s3://mybucket/mykey\n",
     [("remoteHash is required when remote dataset paths are used (s3://mybucket/mykey)",
       "datasets[0].remoteHash", 3)], []),
    ("remote-dataset-sibling-paths-allowed",
     MV + f"model:\n  path: models/main.bin\ndatasets:\n  - path: data/train\n"
     f"    remotePath: {REF}\n  - path: data/train-eval\n  - path: data/eval\ncode:\n"
     "  - path: code\n", [], []),
    ("remote-datasets-supported",
     MV + "datasets:\n  - path: some/local/path\n    remotePath: s3://mybucket/mykey\n"
     "    remoteHash: testhash\n", [], []),
    ("s3-path-for-code", MV + "code:\n  - path: s3://test-s3/key\n",
     [("invalid path for code (s3://test-s3/key): only local paths are permitted",
       "code[0].path", 3)], []),
    ("s3-path-for-datasets", MV + "datasets:\n  - path: s3://test-s3/key\n",
     [("invalid path for dataset (s3://test-s3/key): only local paths are permitted",
       "datasets[0].path", 3)], []),
    ("s3-path-for-docs", MV + "docs:\n  - path: s3://test-s3/key\n",
     [("invalid path for doc (s3://test-s3/key): only local paths are permitted",
       "docs[0].path", 3)], []),
    ("s3-path-for-mcpserver", MV + "mcpServers:\n  - name: filesystem\n    path: s3://test-s3/key\n",
     [("invalid path for mcpServer (s3://test-s3/key): only local paths are permitted",
       "mcpServers[0].path", 4)], []),
    ("s3-path-for-model", MV + "model:\n  path: s3://test-s3/key\n",
     [("invalid path for model: only local paths and ModelKit references are permitted",
       "model.path", 3)], []),
    ("s3-path-for-modelpart",
     MV + "model:\n  path: testpath\n  parts:\n    - path: s3://test-s3/key\n",
     [("invalid path for model part (s3://test-s3/key): only local paths are permitted",
       "model.parts[0].path", 5)], []),
    ("s3-path-for-prompts", MV + "prompts:\n  - path: s3://test-s3/key\n",
     [("invalid path for prompt (s3://test-s3/key): only local paths are permitted",
       "prompts[0].path", 3)], []),
]

EXTRA = [
    ("version-1.10-kept", MV + "package:\n  name: x\n  version: 1.10\n", [], []),
    ("part-type-invalid-and-too-long",
     MV + "model:\n  path: m\n  parts:\n    - name: p\n      path: part\n      type: "
     + "a b" * 30 + "\n",
     [("modelpart p has invalid type (must be alphanumeric with dots, dashes, and underscores)",
       "model.parts[0].type", 7),
      ("modelpart p type is too long (must be fewer than 64 characters)",
       "model.parts[0].type", 7)], []),
    ("part-type-exactly-64", MV + "model:\n  path: m\n  parts:\n    - path: part\n      type: "
     + "a" * 64 + "\n", [], []),
    ("three-mcpservers-same-name",
     MV + "mcpServers:\n  - name: fs\n    path: a.mcpb\n  - name: fs\n    path: b.mcpb\n"
     "  - name: fs\n    path: c.mcpb\n",
     [("duplicate mcpServer name fs: names must be unique", "mcpServers[1].name", 5),
      ("duplicate mcpServer name fs: names must be unique", "mcpServers[2].name", 7)], []),
    ("http-remote-path",
     MV + "datasets:\n  - path: d\n    remotePath: https://x/y\n    remoteHash: abc\n",
     [("invalid remote path for dataset (https://x/y): HTTP urls are not supported in paths "
       "(https://x/y)", "datasets[0].remotePath", 4),
      ("only S3 URLs and ModelKit references are supported for remote dataset paths "
       "(https://x/y)", "datasets[0].remotePath", 4)], []),
    ("remote-hash-without-remote-path",
     MV + "datasets:\n  - name: d\n    path: d\n    remoteHash: abc\n",
     [("remote hash is only applicable when remotePath is set", "datasets[0].remoteHash", 5)],
     []),
    ("reference-remote-path-with-hash",
     MV + f"datasets:\n  - path: ./data/ref\n    remotePath: {REF}\n    remoteHash: abc\n", [],
     [("remoteHash is ignored for ModelKit references in datasets (./data/ref)",
       "datasets[0].remoteHash", 5)]),
    ("three-entries-one-path",
     MV + "code:\n  - path: a\ndatasets:\n  - path: ./a\ndocs:\n  - path: a/\n",
     [("code layer 0, dataset layer 0 and docs layer 0 use the same path a", "docs[0].path", 7)],
     []),
    ("no-model", MV + "code:\n  - path: src\n", [], []),
    ("only-manifest-version", MV, [], []),
    ("unrecognized-url", MV + "code:\n  - path: //server/x\n",
     [("absolute paths are not supported in a Kitfile (path /server/x in code layer 0)",
       "code[0].path", 3),
      ("invalid path for code (//server/x): only local paths are permitted", "code[0].path", 3),
      ("invalid path for code (//server/x): unrecognized URL in path: //server/x",
       "code[0].path", 3)], []),
    ("missing-manifest-version", "model:\n  path: m\n", [],
     [("Unrecognized manifestVersion : treating Kitfile as 1.0.0", "manifestVersion", 1)]),
    ("empty-model-path-is-context", MV + "model:\n  name: m\ncode:\n  - path: .\n",
     [("model m and code layer 0 use the same path .", "code[0].path", 5)], []),
    ("s3-remote-missing-hash-line-of-entry",
     MV + "datasets:\n  - name: a\n    path: a\n  - name: b\n    path: b\n"
     "    remotePath: s3://bkt/key\n",
     [("remoteHash is required when remote dataset paths are used (s3://bkt/key)",
       "datasets[1].remoteHash", 5)], []),
    ("remote-ref-parent-path-allowed",
     MV + f"code:\n  - path: data\ndatasets:\n  - path: data/train\n    remotePath: {REF}\n",
     [], []),
]


def _check(text, errors, warnings):
    findings = check_kitfile(text)[1]
    got_err = [(f.message, f.field, f.line) for f in findings if f.severity == "error"]
    got_warn = [(f.message, f.field, f.line) for f in findings if f.severity == "warning"]
    assert got_err == sorted(errors)
    assert got_warn == warnings
    expected_text = (
        "errors while validating Kitfile: \n" + "\n".join(f"  * {m}" for m, _, _ in sorted(errors))
        if errors else ""
    )
    assert error_text(findings) == expected_text


@pytest.mark.parametrize("case,text,errors,warnings", CASES, ids=[c[0] for c in CASES])
def test_kit_fixture_cases(case, text, errors, warnings):
    _check(text, errors, warnings)


@pytest.mark.parametrize("case,text,errors,warnings", EXTRA, ids=[c[0] for c in EXTRA])
def test_extra_cases(case, text, errors, warnings):
    _check(text, errors, warnings)


def test_fixture_count_is_44():
    assert len(CASES) == 44


def test_duplicate_related_locations():
    text = MV + "code:\n  - path: a\ndatasets:\n  - path: ./a\ndocs:\n  - path: a/\n"
    (f,) = [f for f in check_kitfile(text)[1] if f.severity == "error"]
    assert f.field == "docs[0].path"
    assert f.related == ("code[0].path", "datasets[0].path")


def test_error_wrapper_exact_text():
    text = MV + "model:\n  path: https://example.com\n"
    assert error_text(check_kitfile(text)[1]) == (
        "errors while validating Kitfile: \n"
        "  * invalid path for model: HTTP urls are not supported in paths (https://example.com)\n"
        "  * invalid path for model: only local paths and ModelKit references are permitted"
    )


def test_decode_errors_do_not_stop_validation():
    """kit stops at the first decode error; a notebook shows everything at once: kit's decode
    text first (its line said in ``line`` only), then the findings on what did decode."""
    text = "manifestVersion: 2\nmodel:\n  path: https://x\n  pth: y\n"
    findings = check_kitfile(text)[1]
    assert [(f.line, f.message) for f in findings] == [
        (4, "field pth not found in type artifact.Model"),
        (1, "Unrecognized manifestVersion 2: treating Kitfile as 1.0.0"),
        (3, "invalid path for model: HTTP urls are not supported in paths (https://x)"),
        (3, "invalid path for model: only local paths and ModelKit references are permitted"),
    ]
    assert findings[0].field == "model.pth" and findings[0].hint == 'did you mean "path"?'
    assert findings[0].fix is None  # path is set already: renaming pth would repeat it


def test_type_error_keeps_kit_text_and_adds_a_hint():
    kf, findings = check_kitfile(MV + "code: src\ndatasets:\n  - path: /abs\n")
    first, second = findings
    assert first.message == "cannot unmarshal !!str `src` into []artifact.Code"
    assert first.hint == "code must be a list: - path: src" and first.line == 2
    assert second.message.startswith("absolute paths are not supported")
    assert kf is not None and kf.partial and kf.code == [] and kf.datasets[0].path == "/abs"


def test_check_kitfile_text_never_raises():
    for text in ["", "{", ":\n:", "- a\n- b", "model: [", "\t\tx: y", "a: *nope"]:
        findings = check_kitfile(text)[1]
        assert findings and all(f.severity == "error" for f in findings)


def test_validate_programmatic_kitfile_has_no_lines():
    from kit_jupyter.kitfile.model import Code, Kitfile

    kf = Kitfile(manifest_version="1.0.0", code=[Code(path="/abs")])
    (f,) = validate(kf)
    assert f.line is None and f.field == "code[0].path"


def test_ensure_valid_raises_and_reports_warnings():
    class Rep:
        def __init__(self):
            self.warnings = []

        def warning(self, msg):
            self.warnings.append(msg)

    rep = Rep()
    kf = load_kitfile("manifestVersion: 1.0\ncode:\n  - path: /x\n  - path: ../y\n")
    with pytest.raises(ValidationError) as ei:
        ensure_valid(kf, reporter=rep)
    assert str(ei.value) == ei.value.kit_text == (          # kit's text, as pack shows it
        "errors while validating Kitfile: \n"
        "  * absolute paths are not supported in a Kitfile (path /x in code layer 0)\n"
        "  * paths outside the context directory are not supported in a Kitfile "
        "(path ../y in code layer 1)")
    assert rep.warnings == ["Unrecognized manifestVersion 1.0: treating Kitfile as 1.0.0"]
    assert all(isinstance(f, Finding) for f in ei.value.findings)
    ok = load_kitfile(MV + "code:\n  - path: x\n")
    assert ensure_valid(ok, reporter=rep) == []


@pytest.mark.parametrize(
    "path,expected",
    [
        ("s3://b/k", ("s3", None)),
        ("S3://b/k", ("s3", None)),
        ("mybucket.s3.us-east-2.amazonaws.com", ("local", None)),
        ("data:v1", ("reference", None)),
        ("//server/x", (None, "unrecognized URL in path: //server/x")),
        ("///server/x", ("local", None)),
        ("https://example.com", (None, "HTTP urls are not supported in paths (https://example.com)")),
        ("HTTP://example.com", (None, "HTTP urls are not supported in paths (HTTP://example.com)")),
        ("ftp://h/x", (None, "unrecognized URL in path: ftp://h/x")),
        ("model.gguf", ("local", None)),
        ("", ("local", None)),
        ("a b/c:d", ("local", None)),
        ("100%/x", ("local", None)),
        (":x", ("local", None)),
        ("C:\\models\\m.bin", (None, "unrecognized URL in path: C:\\models\\m.bin")),
        ("dir/file\x01", ("local", None)),
        ("docker.io/kit-org/kit-repo:latest", ("reference", None)),
        ("repo@sha256:" + "a" * 64, ("reference", None)),
    ],
)
def test_classify_path(path, expected):
    assert classify_path(path) == expected


@pytest.mark.parametrize(
    "path,cleaned",
    [("", "."), (".", "."), ("./a/", "a"), ("a//b", "a/b"), ("a/../../b", "../b"),
     ("/../a", "/a"), ("//a", "/a"), ("a/b/..", "a"), ("../..", "../.."), ("a/./b/.", "a/b")],
)
def test_go_clean(path, cleaned):
    assert go_clean(path) == cleaned


def test_finding_str_names_the_line_once():
    (f,) = check_kitfile(MV + "model:\n  pth: x\n")[1]
    assert str(f) == 'line 3: field pth not found in type artifact.Model; did you mean "path"?'
    (g,) = check_kitfile(MV + "code:\n  - path: /abs\n")[1]
    assert str(g) == (
        "line 3: absolute paths are not supported in a Kitfile (path /abs in code layer 0)"
    )


def _go_clean_slow(path: str) -> str:
    """An independent oracle for Go's path.Clean: posixpath.normpath, which differs only in
    keeping a leading ``//`` (POSIX leaves it implementation-defined; Go folds it)."""
    out = posixpath.normpath(path)
    return "/" + out.lstrip("/") if out.startswith("//") else out


@given(st.lists(st.sampled_from(["", ".", "..", "a", "b.c", ".d", "e..", "..f", "...", "g h"]),
                max_size=6).map("/".join))
def test_go_clean_fast_path_agrees(path: str) -> None:
    assert go_clean(path) == _go_clean_slow(path)
