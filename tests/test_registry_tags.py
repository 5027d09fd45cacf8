"""Listing a repository's tags from a registry that paginates, breaks or lies: a real
docker-registry behind a proxy that rewrites its ``/tags/list`` answers. Pages are followed by
their ``Link``; a page that is not a tags list, is too large, links back to a page already
read, links to another host, or is one of too many, is one line -- never a traceback or a
listing that never ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_jupyter.commands.remote import push
from kit_jupyter.errors import RegistryError
from kit_jupyter.transport import registry as registry_mod
from kit_jupyter.transport.registry import RegistryClient, _tags_page
from tests.test_manifest_verify import Rewrite, _Proxy
from tests.test_registry import make_modelkit

pytestmark = pytest.mark.registry

REPO = "acme/tagged"
TAGS = ["v1", "v2", "v3"]


@pytest.fixture(scope="module")
def tagged(registry, tmp_path_factory) -> str:
    """A repository on the real registry with three tags."""
    home = tmp_path_factory.mktemp("tags-home")
    make_modelkit(home, "localhost/tagged", "v1", seed="t")
    for tag in TAGS:
        push("tagged:v1", f"{registry.host}/{REPO}:{tag}", home=home, plain_http=True)
    return str(registry.host)


@pytest.fixture
def proxied(tagged) -> Iterator[object]:
    """Start a proxy in front of the registry with the rewrite a test passes."""
    started: list[_Proxy] = []

    def start(rewrite: Rewrite) -> str:
        proxy = _Proxy(tagged, rewrite=rewrite)
        started.append(proxy)
        return proxy.host

    yield start
    for proxy in started:
        proxy.shutdown()
        proxy.server_close()


def tags_only(rewrite_body: Rewrite) -> Rewrite:
    """A rewrite of ``/tags/list`` answers only (the manifests and blobs pass unchanged)."""
    def rewrite(path: str, body: bytes) -> tuple[bytes, dict[str, str]]:
        return rewrite_body(path, body) if "/tags/list" in path else (body, {})
    return rewrite


def list_tags(host: str) -> list[str]:
    with RegistryClient(host, plain_http=True) as client:
        return client.list_tags(REPO)


def test_pages_are_followed_to_the_end(proxied):
    """The registry's list is served a tag a page (this docker-registry ignores ``n``; the
    proxy pages its answer as a registry that honours ``n=1`` would), each page's ``next``
    link relative to the page; the pages end where a page has no link."""
    def one_a_page(path: str, body: bytes) -> tuple[bytes, dict[str, str]]:
        page = json.loads(body)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        last = query.get("last", [""])[0]
        rest = sorted(t for t in page["tags"] if t > last)
        links = {"Link": f'<list?n=1&last={rest[0]}>; rel="next"'} if rest[1:] else {}
        return json.dumps({"name": page["name"], "tags": rest[:1]}).encode(), links

    host = proxied(tags_only(one_a_page))
    assert list_tags(host) == TAGS


NOT_TAGS = "the registry's answer is not a list of tags"


@pytest.mark.parametrize("body, reason", [
    (b"[]", NOT_TAGS),
    (b'{"tags": "v1"}', NOT_TAGS),
    (b'{"tags": [1, 2]}', NOT_TAGS),
    (b'{"tags": [["v1"]]}', NOT_TAGS),
    (b"not json", "invalid JSON"),
    (b"[" * 100_000, "invalid JSON"),
])
def test_an_answer_that_is_not_a_tags_list_is_one_line(proxied, body, reason):
    host = proxied(tags_only(lambda path, _body: (body, {})))
    with pytest.raises(RegistryError) as err:
        list_tags(host)
    assert str(err.value) == f"listing tags of {host}/{REPO}: {reason}"


def test_null_tags_is_an_empty_repository(proxied):
    host = proxied(tags_only(lambda path, _body: (b'{"name": "x", "tags": null}', {})))
    assert list_tags(host) == []


def test_a_page_linking_back_ends_with_one_line(proxied, tmp_path):
    """A registry whose next page is the page itself: the CLI says so and exits 1 (without the
    check it would list forever)."""
    host = proxied(tags_only(lambda path, body: (
        body, {"Link": f'</v2/{REPO}/tags/list>; rel="next"'})))
    proc = subprocess.run([sys.executable, "-m", "kit_jupyter", "list", f"{host}/{REPO}",
                           "--plain-http"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "KITOPS_HOME": str(tmp_path / "home")})
    assert proc.returncode == 1
    assert proc.stderr == (f"[ERROR] Listing tags of {host}/{REPO}: the registry's next page "
                           "is one it sent before\n")


def test_endless_new_pages_stop_at_the_page_limit(proxied, monkeypatch):
    """Every page links to a page never seen: the listing stops at ``MAX_TAG_PAGES``."""
    seen: list[str] = []

    def endless(path: str, body: bytes) -> tuple[bytes, dict[str, str]]:
        seen.append(path)
        return (b'{"tags": []}',
                {"Link": f'</v2/{REPO}/tags/list?page={len(seen)}>; rel="next"'})

    monkeypatch.setattr(registry_mod, "MAX_TAG_PAGES", 5)
    host = proxied(tags_only(endless))
    with pytest.raises(RegistryError, match=r"^listing tags of .*: more than 5 pages$"):
        list_tags(host)
    assert len(seen) == 5


def test_a_next_page_on_another_host_is_refused(proxied):
    """Credentials are never sent to another host anyway; the listing does not go there."""
    host = proxied(tags_only(lambda path, body: (
        body, {"Link": '<http://127.0.0.1:9/v2/x/tags/list>; rel="next"'})))
    with pytest.raises(RegistryError, match="the registry's next page is on another host$"):
        list_tags(host)


def test_a_page_over_the_limit_is_refused_before_it_is_held(proxied, monkeypatch):
    monkeypatch.setattr(registry_mod, "MAX_TAGS_PAGE_BYTES", 1000)
    host = proxied(tags_only(lambda path, body: (
        json.dumps({"tags": [f"t{i}" for i in range(500)]}).encode(), {})))
    with pytest.raises(RegistryError) as err:
        list_tags(host)
    assert str(err.value).startswith(f"a tags page of {host}/{REPO} is larger than 1000 bytes")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["tags", "name", "x"]), inner, max_size=3),
    max_leaves=10)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_json.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64)))
def test_any_page_is_tags_or_one_line(data: bytes) -> None:
    """Whatever a page holds, it is a list of strings -- exactly the page's ``tags`` -- or a
    one-line RegistryError."""
    try:
        tags = _tags_page(data, "listing tags of r/x")
    except RegistryError as err:
        assert "\n" not in str(err) and str(err).startswith("listing tags of r/x: ")
    else:
        page = json.loads(data)
        assert isinstance(page, dict)
        assert tags == (page.get("tags") or [])
        assert all(isinstance(t, str) for t in tags)
