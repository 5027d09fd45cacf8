"""The exception tree: what a caller can read off an error is a constructor field, set once."""

from __future__ import annotations

import pytest

from kit_jupyter.commands.pack import pack
from kit_jupyter.errors import AuthError, KitError, KitfileError, ReferenceError_, ValidationError
from kit_jupyter.kitfile.finding import Finding
from kit_jupyter.kitfile.model import load_kitfile
from kit_jupyter.kitfile.rules import ensure_valid

MV = "manifestVersion: 1.0.0\n"


def test_kitfile_error_carries_every_problem_and_kits_text():
    with pytest.raises(KitfileError) as ei:
        load_kitfile(MV + "modle: {}\ncode: x\n")
    err = ei.value
    assert str(err) == 'line 2: field modle not found in Kitfile; did you mean "model"? ' \
                       "(and 1 more problem)"
    assert (err.line, err.field) == (2, "modle")
    assert [(f.field, f.line) for f in err.findings] == [("modle", 2), ("code", 3)]
    assert all(isinstance(f, Finding) for f in err.findings)
    assert err.problems == [f.message for f in err.findings]
    assert err.kit_text == ("yaml: unmarshal errors:\n"
                            "  line 2: field modle not found in type artifact.KitFile\n"
                            "  line 3: cannot unmarshal !!str `x` into []artifact.Code")
    plain = KitfileError("open Kitfile: no such file or directory")
    assert plain.kit_text == str(plain) and plain.problems == [str(plain)]
    assert plain.findings == () and plain.line is None


def test_validation_error_is_kits_text_with_findings(tmp_path, kitops_home):
    kf = load_kitfile(MV + "code:\n  - path: /x\n")
    with pytest.raises(ValidationError) as ei:
        ensure_valid(kf)
    assert str(ei.value) == ("errors while validating Kitfile: \n  * absolute paths are not "
                             "supported in a Kitfile (path /x in code layer 0)")
    assert [(f.severity, f.field, f.line) for f in ei.value.findings] == \
        [("error", "code[0].path", 3)]
    (tmp_path / "Kitfile").write_text(MV + "code:\n  - path: /x\n")
    with pytest.raises(ValidationError) as pe:          # pack raises the same error
        pack(tmp_path)
    assert str(pe.value) == str(ei.value) and pe.value.findings == ei.value.findings


def test_auth_error_fields():
    refused = AuthError("denied", status=401, reason="Unauthorized")
    assert (refused.status, refused.reason) == (401, "Unauthorized")
    early = AuthError("login: a username is required")
    assert (early.status, early.reason) == (None, "")


def test_pack_wraps_a_bad_tag_as_a_reference_error(tmp_path, kitops_home):
    (tmp_path / "Kitfile").write_text(MV)
    with pytest.raises(ReferenceError_) as ei:
        pack(tmp_path, tag="Bad/Repo:v1")
    assert str(ei.value) == ("Invalid arguments: failed to parse reference: repository (Bad/Repo) "
                             "name must be lowercase")
    assert isinstance(ei.value, KitError)
