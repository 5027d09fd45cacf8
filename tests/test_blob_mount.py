"""Cross-repository blob mounts against a real docker-registry: a ModelKit pushed (or pulled)
once is pushed to another repository of the same registry without sending its blobs again, and
a mount the registry refuses falls back to an upload. The registry's access log counts the
requests."""

from __future__ import annotations

import itertools
import json
import math
import tempfile
import urllib.request
from types import SimpleNamespace as NS
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_jupyter.commands.remote import login, pull, push
from kit_jupyter.transport import blobinfo
from kit_jupyter.transport.blobinfo import MAX_REPOS, BlobLocations
from tests.test_registry import make_modelkit
from tests.test_storage import corrupted, dumps, hostile_values

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_docker_config")]


def uploads(reqs: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """Requests that carry blob bytes (PUT/PATCH of an upload session)."""
    return [r for r in reqs if r[0] in ("PUT", "PATCH") and "/blobs/uploads/" in r[1]]


def mounts(reqs: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    return [r for r in reqs if r[0] == "POST" and "mount=" in r[1]]


def test_push_to_a_second_repository_mounts_every_blob(registry, tmp_path):
    home = tmp_path / "h"
    kit = make_modelkit(home, "localhost/mnt", "v1", seed="m")
    first = push("mnt:v1", f"{registry.host}/team/a:v1", home=home, plain_http=True)
    assert len(first.uploaded) == 5 and not first.mounted
    mark = registry.mark()
    res = push("mnt:v1", f"{registry.host}/team/b:v1", home=home, plain_http=True)
    reqs = registry.requests(mark)
    assert uploads(reqs) == []                                  # no blob byte sent again
    assert len(res.mounted) == 5 and not res.uploaded and res.digest == kit["digest"]
    assert sorted(s for _, _, s in mounts(reqs)) == [201] * 5
    assert all("from=team%2Fa" in path for _, path, _ in mounts(reqs))
    assert "5 mounted" in res.summary()
    # the mounted repository is whole: a pull elsewhere verifies every blob
    got = pull(f"{registry.host}/team/b:v1", home=tmp_path / "other", plain_http=True)
    assert got.digest == kit["digest"] and len(got.downloaded) == 5
    where = BlobLocations(home).sources(registry.host, kit["manifest"]["config"]["digest"])
    assert where == ["team/b", "team/a"]                        # most recent first


def test_a_pull_is_remembered_too(registry, tmp_path):
    home = tmp_path / "h"
    make_modelkit(home, "localhost/pm", "v1", seed="p")
    push("pm:v1", f"{registry.host}/team/pulled:v1", home=home, plain_http=True)
    other = tmp_path / "other"
    pull(f"{registry.host}/team/pulled:v1", home=other, plain_http=True)
    mark = registry.mark()
    res = push(f"{registry.host}/team/pulled:v1", f"{registry.host}/team/copy:v1", home=other,
               plain_http=True)
    assert len(res.mounted) == 5 and uploads(registry.requests(mark)) == []


def test_a_refused_mount_falls_back_to_an_upload(registry, tmp_path):
    """The record is stale: the source repository no longer links the blobs (deleted). The
    registry answers 202 and opens an upload session instead; the push uploads, cancels the
    unused sessions and forgets the stale source."""
    home = tmp_path / "h"
    kit = make_modelkit(home, "localhost/stale", "v1", seed="z")
    push("stale:v1", f"{registry.host}/team/gone:v1", home=home, plain_http=True)
    digests = [d["digest"] for d in [kit["manifest"]["config"], *kit["manifest"]["layers"]]]
    for digest in digests:
        req = urllib.request.Request(f"{registry.url}/v2/team/gone/blobs/{digest}",
                                     method="DELETE")
        assert urllib.request.urlopen(req, timeout=10).status == 202
    mark = registry.mark()
    res = push("stale:v1", f"{registry.host}/team/fresh:v1", home=home, plain_http=True)
    reqs = registry.requests(mark)
    assert len(res.uploaded) == 5 and not res.mounted
    assert sorted(s for _, _, s in mounts(reqs)) == [202] * 5
    assert len([r for r in uploads(reqs) if r[0] == "PUT"]) == 5
    assert len([r for r in reqs if r[0] == "DELETE" and "/blobs/uploads/" in r[1]]) == 5
    locations = BlobLocations(home)
    assert all(locations.sources(registry.host, d) == ["team/fresh"] for d in digests)
    got = pull(f"{registry.host}/team/fresh:v1", home=tmp_path / "other", plain_http=True)
    assert got.digest == kit["digest"]


def test_mounts_with_tokens_and_a_source_the_token_cannot_read(token_registry, tmp_path,
                                                               monkeypatch):
    """Bearer auth: the mount needs pull on the source repository, which the token service
    grants (one renewal for the wider scope) -- or refuses, as for a repository of another
    team: then the push uploads, and asks about that source once, not per blob."""
    reg = token_registry
    home = tmp_path / "h"
    login(reg.host, reg.username, reg.password, home=home, plain_http=True)
    make_modelkit(home, "localhost/tm", "v1", seed="t")
    push("tm:v1", f"{reg.host}/team/src:v1", home=home, plain_http=True)
    before = len(reg.token.scopes)
    mark = reg.mark()
    res = push("tm:v1", f"{reg.host}/team/dst:v1", home=home, plain_http=True)
    assert len(res.mounted) == 5 and uploads(reg.requests(mark)) == []
    assert "repository:team/src:pull" in [s for _, s in reg.token.scopes[before:]]

    real_jwt = reg.token._jwt

    def no_access_to_src(user: str, access: list[dict]) -> str:
        return real_jwt(user, [a for a in access if a["name"] != "team/src"])

    monkeypatch.setattr(reg.token, "_jwt", no_access_to_src)
    home2 = tmp_path / "h2"         # no token cached from the first pushes
    (home2 / "cache").mkdir(parents=True)
    (home2 / "credentials.json").write_bytes((home / "credentials.json").read_bytes())
    make_modelkit(home2, "localhost/tm", "v1", seed="t")
    BlobLocations(home2).record(reg.host, "team/src", [b.digest for b in res.blobs])
    mark = reg.mark()
    res2 = push("tm:v1", f"{reg.host}/team/other:v1", home=home2, plain_http=True,
                concurrency=1)
    reqs = reg.requests(mark)
    assert len(res2.uploaded) == 5 and not res2.mounted
    assert len(mounts(reqs)) == 2                     # asked once (and once more with a new token)
    assert {s for _, _, s in mounts(reqs)} == {401}
    assert BlobLocations(home2).sources(reg.host, res.blobs[0].digest,
                                        exclude="team/other") == ["team/src"]  # not forgotten


def test_blob_locations_are_bounded_and_survive_a_bad_file(tmp_path):
    loc = BlobLocations(tmp_path)
    for i in range(MAX_REPOS + 3):
        loc.record("r.example", f"repo{i}", ["sha256:" + "a" * 64])
    got = loc.sources("r.example", "sha256:" + "a" * 64)
    assert got == [f"repo{i}" for i in reversed(range(3, MAX_REPOS + 3))]
    assert loc.sources("other.example", "sha256:" + "a" * 64) == []
    loc.forget("r.example", got[0], "sha256:" + "a" * 64)
    assert got[0] not in loc.sources("r.example", "sha256:" + "a" * 64)
    loc.path.write_text("{not json")
    assert loc.sources("r.example", "sha256:" + "a" * 64) == []
    loc.record("r.example", "x", ["sha256:" + "b" * 64])
    assert loc.sources("r.example", "sha256:" + "b" * 64) == ["x"]



@pytest.mark.parametrize("blobs", [
    {"sha256:" + "a" * 64: ["r.example"]},                        # a list where a map belongs
    {"sha256:" + "a" * 64: {"r.example": "repo"}},                # a string for the repositories
    {"sha256:" + "a" * 64: {"r.example": {"repo": "yesterday"}}},  # a time that is no number
    {"sha256:" + "a" * 64: {"r.example": {"repo": True}}},
], ids=["list", "string", "text-time", "bool-time"])
def test_a_well_formed_file_of_the_wrong_shape_is_a_cache_miss(tmp_path, blobs):
    """Another version or a hand edit: what does not have the expected shape is forgotten,
    and recording over it works (it was an AttributeError in the middle of a push)."""
    loc = BlobLocations(tmp_path)
    loc.dir.mkdir(parents=True)
    loc.path.write_text(json.dumps({"version": 1, "blobs": blobs}))
    assert loc.sources("r.example", "sha256:" + "a" * 64) == []
    loc.record("r.example", "new", ["sha256:" + "a" * 64])
    assert loc.sources("r.example", "sha256:" + "a" * 64) == ["new"]
    loc.forget("r.example", "new", "sha256:" + "a" * 64)
    assert loc.sources("r.example", "sha256:" + "a" * 64) == []


def test_a_blob_info_cache_that_cannot_be_written_does_not_fail_a_push(registry, tmp_path):
    home = tmp_path / "h"
    make_modelkit(home, "localhost/ro", "v1", seed="r")
    (home / "cache").mkdir(parents=True, exist_ok=True)
    (home / "cache" / "blobinfo").write_text("a file where the directory should be")
    res = push("ro:v1", f"{registry.host}/team/ro:v1", home=home, plain_http=True)
    assert len(res.uploaded) == 5
    assert BlobLocations(home).sources(registry.host, res.blobs[0].digest) == []


# --------------------------------------------------------------------------------------------
# a hostile locations file, property-based

_DIGESTS = ["sha256:" + c * 64 for c in "abc"]
_times = (st.integers() | st.integers(10**300, 10**400) | st.floats() | st.booleans()
          | st.text(max_size=4) | st.none())
_locations_docs = st.fixed_dictionaries({
    "version": st.just(1) | hostile_values,
    "blobs": st.dictionaries(
        st.sampled_from(_DIGESTS) | st.text(max_size=4),
        st.dictionaries(st.sampled_from(["r.example", "q.example"]),
                        st.dictionaries(st.text(max_size=6), _times, max_size=6)
                        | hostile_values, max_size=2) | hostile_values,
        max_size=3) | hostile_values})


@settings(max_examples=150, deadline=None)
@given(_locations_docs, st.data())
def test_any_locations_file_is_read_or_treated_as_empty(doc, data):
    """A hint cache: whatever is in the file (wrong types, times no float holds, NaN, deep
    nesting, broken bytes) gives repositories or nothing, never an exception, and recording
    over it works."""
    raw = data.draw(corrupted(dumps(doc)))
    with tempfile.TemporaryDirectory() as tmp:
        loc = BlobLocations(tmp)
        loc.dir.mkdir(parents=True)
        loc.path.write_bytes(raw)
        loaded = loc._load()
        assert all(isinstance(t, float) and math.isfinite(t) for regs in loaded.values()
                   for repos in regs.values() for t in repos.values())
        for digest in _DIGESTS:
            got = loc.sources("r.example", digest)
            assert len(got) <= MAX_REPOS and all(isinstance(r, str) for r in got)
            assert set(got) <= set(loaded.get(digest, {}).get("r.example", {}))
        loc.record("r.example", "new", _DIGESTS[:1])
        again = BlobLocations(tmp)._load()
        assert set(again.get(_DIGESTS[0], {}).get("r.example", {})) <= {
            "new", *loaded.get(_DIGESTS[0], {}).get("r.example", {})}
        loc.forget("r.example", "new", _DIGESTS[0])
        assert "new" not in loc.sources("r.example", _DIGESTS[0])


_ops = st.lists(st.tuples(st.sampled_from(["record", "forget"]),
                          st.sampled_from(["r.example", "q.example"]),
                          st.sampled_from([f"repo{i}" for i in range(6)]),
                          st.lists(st.sampled_from(_DIGESTS), min_size=1, max_size=3)),
                max_size=15)


@settings(max_examples=150, deadline=None)
@given(_ops)
def test_recorded_locations_read_back_as_recorded(ops):
    """What ``record`` and ``forget`` write, a fresh reader reads: the most recent
    :data:`MAX_REPOS` repositories per blob and registry, newest first (a model of the rules
    with a clock that ticks once per call)."""
    clock = itertools.count(1_700_000_000)
    model: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(
            blobinfo, "time", NS(time=lambda: float(next(clock)))):
        loc = BlobLocations(tmp)
        for op, registry, repo, digests in ops:
            if op == "record":
                loc.record(registry, repo, digests)
                now = float(next(clock) - 1)
                for digest in digests:
                    repos = model.setdefault(digest, {}).setdefault(registry, {})
                    repos[repo] = now
                    for old in sorted(repos, key=repos.__getitem__)[:-MAX_REPOS]:
                        del repos[old]
            else:
                loc.forget(registry, repo, digests[0])
                regs = model.get(digests[0], {})
                regs.get(registry, {}).pop(repo, None)
                if not regs.get(registry, True):
                    del regs[registry]
                if not model.get(digests[0], True):
                    del model[digests[0]]
        fresh = BlobLocations(tmp)
        assert fresh._load() == model
        for digest in _DIGESTS:
            for registry in ("r.example", "q.example"):
                repos = model.get(digest, {}).get(registry, {})
                assert fresh.sources(registry, digest, exclude="repo0") == [
                    r for r in sorted(repos, key=lambda r: -repos[r]) if r != "repo0"]
