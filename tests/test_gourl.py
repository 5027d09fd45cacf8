"""Go's net/url parser (gocompat/gourl.py): golden data recorded from Go, Go's error texts, and
properties over arbitrary strings for every parser that takes user text (URL, s3:// reference,
ModelKit reference, --filter)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit_jupyter.errors import FilterError, ReferenceError_, RemoteDatasetError
from kit_jupyter.gocompat import gourl
from kit_jupyter.gocompat.gopath import go_clean
from kit_jupyter.kitfile.filters import parse_filter
from kit_jupyter.kitfile.reference import _registry_ok, parse_reference
from kit_jupyter.transport.s3 import parse_s3_url

GOLDEN = Path(__file__).parent / "data" / "kitfiles" / "gourl.json"


def _scheme_host(s: str) -> tuple[str, str] | None:
    try:
        u = gourl.parse(s)
    except gourl.URLError:
        return None
    return u.scheme, u.host


def test_go_net_url_golden():
    """url.Parse (scheme, host or failure), oras's registry check (ParseRequestURI) and
    filepath.Clean outputs recorded from Go (491 strings)."""
    cases = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert len(cases) == 491
    bad = []
    for case in cases:
        s = case["in"]
        want_url = tuple(case["url"]) if case["url"] is not None else None
        if _scheme_host(s) != want_url:
            bad.append((s, "url", want_url, _scheme_host(s)))
        if s and _registry_ok(s) != case["registry"]:
            bad.append((s, "registry", case["registry"]))
        if go_clean(s) != case["clean"]:
            bad.append((s, "clean", case["clean"], go_clean(s)))
    assert not bad, bad[:5]


@pytest.mark.parametrize("raw,text", [
    ("s3://bkt/%zz", 'parse "s3://bkt/%zz": invalid URL escape "%zz"'),
    ("s3://bkt/a%2", 'parse "s3://bkt/a%2": invalid URL escape "%2"'),
    ("s3://bkt/a\x7f", 'parse "s3://bkt/a\\x7f": net/url: invalid control character in URL'),
    ("a\tb", 'parse "a\\tb": net/url: invalid control character in URL'),
    (":x", 'parse ":x": missing protocol scheme'),
    ("a:b/c", None),                                     # a scheme with an opaque part
    ("ab:c", None),
    ("a/b:c", None),
    ("b:c/d", None),
    ("./a:b", None),
    ("1a:b", 'parse "1a:b": first path segment in URL cannot contain colon'),
    ("s3://b k/x", 'parse "s3://b k/x": invalid character " " in host name'),
    ("s3://b:x/k", 'parse "s3://b:x/k": invalid port ":x" after host'),
    ("s3://[::1/k", 'parse "s3://[::1/k": missing \']\' in host'),
    ("s3://[::1]x/k", 'parse "s3://[::1]x/k": invalid port "x" after host'),
    ("s3://b%41/k", 'parse "s3://b%41/k": invalid URL escape "%41"'),
    ("s3://u s@b/k", 'parse "s3://u s@b/k": net/url: invalid userinfo'),
    ("s3://u%4:x@b/k", 'parse "s3://u%4:x@b/k": invalid URL escape "%4"'),
    ('s3://b/"q"#%zz', 'parse "s3://b/\\"q\\"#%zz": invalid URL escape "%zz"'),
    ("s3://b/%zz#frag", 'parse "s3://b/%zz": invalid URL escape "%zz"'),  # Go drops the fragment
    ("s3://b/\u00e9%e9", None),
    ("s3://b/%\u00e9", 'parse "s3://b/%\u00e9": invalid URL escape "%\u00e9"'),
    ("s3://b/%x\u00e9", 'parse "s3://b/%x\u00e9": invalid URL escape "%x\\xc3"'),  # 3 bytes
])
def test_go_error_texts(raw, text):
    if text is None:
        gourl.parse(raw)
        return
    with pytest.raises(gourl.URLError) as e:
        gourl.parse(raw)
    assert str(e.value) == text


def test_parts_and_query():
    u = gourl.parse("S3://us%3Aer:pw@b%C3%A9:9/a%2Fb+c?versionId=v%2B1+x&versionId=2&x;y=1#f%20g")
    assert (u.scheme, u.username, u.password, u.host, u.path, u.fragment) == \
        ("s3", "us:er", "pw", "b\u00e9:9", "/a/b+c", "f g")
    assert u.query() == {"versionId": ["v+1 x", "2"]}
    assert gourl.parse("s3:bucket/key").opaque == "bucket/key"
    assert gourl.parse("a?").force_query
    assert gourl.parse("*").path == "*"
    assert gourl.get_scheme("S3://b/%zz") == "s3" and gourl.get_scheme(":x") == ""
    with pytest.raises(gourl.URLError, match=r'^parse "": empty url$'):
        gourl.parse_request_uri("")
    with pytest.raises(gourl.URLError, match="invalid URI for request"):
        gourl.parse_request_uri("a/b")


# -- properties: arbitrary text never escapes as anything but our error types ----------------

# URL-ish alphabet plus anything else: the structure characters are frequent enough to reach
# every branch (scheme, authority, userinfo, brackets, ports, escapes, query, fragment)
_URLISH = st.text(
    alphabet=st.one_of(st.sampled_from(list("s3:/?#@[]%25%zZ.:-_~+!$&'()*,;= \t\x7f")),
                       st.characters()),
    max_size=60)
_PROPS = settings(max_examples=400, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])


@_PROPS
@given(_URLISH)
def test_property_go_url_parser(s):
    for fn in (gourl.parse, gourl.parse_request_uri):
        try:
            u = fn(s)
        except gourl.URLError as e:
            assert str(e).startswith('parse "') and "\n" not in str(e)
            continue
        assert u.scheme == u.scheme.lower()
        u.query()
    gourl.get_scheme(s)


@_PROPS
@given(st.one_of(_URLISH.map(lambda s: "s3://" + s), _URLISH), st.text(max_size=8))
def test_property_s3_url_parser(s, remote_hash):
    try:
        obj = parse_s3_url(s, remote_hash)
    except RemoteDatasetError as e:
        assert "\n" not in str(e)
        return
    assert obj.bucket and obj.key and remote_hash


_REFISH = st.text(
    alphabet=st.one_of(st.sampled_from(list("abc019:/@.,_-sha256:ABC")), st.characters()),
    max_size=80)


@_PROPS
@given(_REFISH)
def test_property_reference_parser(s):
    try:
        ref = parse_reference(s)
    except ReferenceError_:
        return
    assert ref.registry and ref.repository


@_PROPS
@given(st.lists(st.one_of(st.sampled_from(
    ["model", "datasets", "code", "docs", "kitfile", "prompts", "mcpservers", ",", ":"]),
    st.characters()), max_size=12).map("".join))
def test_property_filter_parser(s):
    try:
        f = parse_filter(s)
    except FilterError as e:
        assert str(e).startswith(f"Invalid filter '{s}': ")
        return
    assert f.types and f.kinds
