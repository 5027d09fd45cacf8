"""ModelKit references (spec §6)."""

from __future__ import annotations

import pytest

from kit_jupyter.errors import ReferenceError_
from kit_jupyter.kitfile.reference import (
    Reference,
    default_tag_message,
    display_repository,
    is_modelkit_reference,
    parse_reference,
)

D = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


@pytest.mark.parametrize(
    "text,registry,repository,reference,extra",
    [
        ("testregistry.io/test-organization/test-repository:test-tag", "testregistry.io",
         "test-organization/test-repository", "test-tag", ()),
        ("testregistry.io/test-organization/test-repository:test-tag,extraTag1,extraTag2",
         "testregistry.io", "test-organization/test-repository", "test-tag",
         ("extraTag1", "extraTag2")),
        ("test-repository:test-tag,extraTag1,extraTag2", "localhost", "test-repository",
         "test-tag", ("extraTag1", "extraTag2")),
        ("localhost:5000/test-organization/test-repository:test-tag,t1", "localhost:5000",
         "test-organization/test-repository", "test-tag", ("t1",)),
        (D, "localhost", "_", D, ()),
        ("test-organization/test-repository:test-tag", "localhost",
         "test-organization/test-repository", "test-tag", ()),
        ("a/b/c/d", "localhost", "a/b/c/d", "", ()),
        ("test.io/a/b/c/d", "test.io", "a/b/c/d", "", ()),
        (f"testrepo@{D}", "localhost", "testrepo", D, ()),
        (f"testrepo:ignoredtag@{D}", "localhost", "testrepo", D, ()),
        (f"testorg/testrepo@{D}", "localhost", "testorg/testrepo", D, ()),
        (f"testorg.com/testrepo@{D}", "testorg.com", "testrepo", D, ()),
        ("localhost/foo", "localhost", "localhost/foo", "", ()),
        ("myorg/model", "localhost", "myorg/model", "", ()),
        ("data:v1", "localhost", "data", "v1", ()),
        ("docker.io/kit-org/kit-repo:latest", "docker.io", "kit-org/kit-repo", "latest", ()),
    ],
)
def test_parse_reference(text, registry, repository, reference, extra):
    ref = parse_reference(text)
    assert ref == Reference(registry, repository, reference, extra)


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "repository () must start and end with a letter or number"),
        ("MyRepo:v1", "repository (MyRepo) name must be lowercase"),
        ("reg.io/Org/repo", "repository (Org/repo) name must be lowercase"),
        ("---:v1", "repository (---) must start and end with a letter or number"),
        ("-repo-:v1", 'invalid reference: invalid repository "-repo-"'),
        ("repo:bad/tag", 'invalid reference: invalid registry "repo:bad"'),
        ("repo:-tag", 'invalid reference: invalid tag "-tag"'),
        ("repo:" + "t" * 129, f'invalid reference: invalid tag "{"t" * 129}"'),
        ("repo@sha256:abc", 'invalid reference: invalid digest "sha256:abc": '
         "invalid checksum digest length"),
        ("repo@md5:abc", 'invalid reference: invalid digest "md5:abc": '
         "unsupported digest algorithm"),
        ("bad host.io/repo:v1", 'invalid reference: invalid registry "bad host.io"'),
        ("user@host.io/repo:v1", None),
    ],
)
def test_parse_reference_errors(text, message):
    with pytest.raises(ReferenceError_) as ei:
        parse_reference(text)
    if message is not None:
        assert str(ei.value) == message


def test_tag_and_digest_properties_and_str():
    r = parse_reference("reg.io/org/repo:v1")
    assert (r.tag, r.digest, r.repo_key, str(r)) == ("v1", "", "reg.io/org/repo",
                                                     "reg.io/org/repo:v1")
    r = parse_reference(f"org/repo@{D}")
    assert (r.tag, r.digest, str(r)) == ("", D, f"localhost/org/repo@{D}")
    r = parse_reference("repo")
    assert (r.tag, r.digest, str(r)) == ("", "", "localhost/repo")
    assert r.display() == "repo"


def test_with_default_tag():
    r, msg = parse_reference("org/repo").with_default_tag()
    assert r.reference == "latest" and str(r) == "localhost/org/repo:latest"
    assert msg == "Using 'latest' as default ('localhost/org/repo:latest')"
    same, none = parse_reference("org/repo:v2").with_default_tag()
    assert same.reference == "v2" and none is None
    assert default_tag_message("unpack", parse_reference("org/repo")) == (
        "No tag specified for unpack. Using 'latest' as default ('org/repo:latest')"
    )
    assert default_tag_message("pack", parse_reference("reg.io/x")) == (
        "No tag or digest specified with --tag flag. Using 'latest' as default "
        "('reg.io/x:latest')"
    )


@pytest.mark.parametrize(
    "text,expected",
    [
        ("docker.io/kit-org/kit-repo:latest", True), ("s3://b/k", False), ("model.gguf", False),
        ("data:v1", True), ("org/repo", False), (f"repo@{D}", True), (D, True),
        ("https://example.com", False), ("C:\\models", False), ("Repo:v1", False),
    ],
)
def test_is_modelkit_reference(text, expected):
    assert is_modelkit_reference(text) is expected


@pytest.mark.parametrize(
    "repo,shown",
    [
        ("localhost/_", ""), ("localhost/org/repo", "org/repo"),
        ("reg.io/org/repo", "reg.io/org/repo"),
        (f"localhost/_@{D}", D), ("localhost/_:v1", ":v1"), ("_x", "x"),
    ],
)
def test_display_repository(repo, shown):
    assert display_repository(repo) == shown


def test_default_tag_message_uses_text_as_typed():
    assert default_tag_message("push", "localhost/foo") == (
        "No tag specified for push. Using 'latest' as default ('localhost/foo:latest')"
    )
