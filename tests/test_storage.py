"""Local storage: kit's file names and JSON shapes, locking, verification, GC."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_jupyter.errors import NotFoundError, StorageError
from kit_jupyter.gocompat.godigest import is_digest
from kit_jupyter.gocompat.gojson import marshal
from kit_jupyter.kitfile.reference import Reference
from kit_jupyter.oci.manifest import MAX_SIZE, Descriptor, Index, Manifest
from kit_jupyter.oci.mediatypes import OCI_INDEX
from kit_jupyter.oci.store import (
    LocalStore,
    repo_index_name,
    repo_tags_name,
    resolve_home,
)

MANIFEST_MT = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MT = "application/vnd.kitops.modelkit.config.v1+json"
LAYER_MT = "application/vnd.kitops.modelkit.model.v1.tar"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_manifest(store: LocalStore, layer_payloads: list[bytes], name: str = "m") -> Manifest:
    config = store.put_bytes(json.dumps({"manifestVersion": "1.0.0",
                                         "package": {"name": name}}).encode(), CONFIG_MT)
    layers = []
    for payload in layer_payloads:
        d = store.put_bytes(payload, LAYER_MT)
        layers.append(Descriptor(d.media_type, d.digest, d.size,
                                 annotations={"org.cncf.model.filepath": "model.bin"}))
    return Manifest(config, tuple(layers), {"ml.kitops.modelkit.cli-version": "test"},
                    artifact_type="application/vnd.kitops.modelkit.manifest.v1+json")


def test_resolve_home_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KITOPS_HOME", "relative-home")
    assert resolve_home() == tmp_path / "relative-home"
    assert resolve_home(tmp_path / "cfg") == tmp_path / "cfg"
    monkeypatch.delenv("KITOPS_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert resolve_home() == tmp_path / "xdg" / "kitops"
        monkeypatch.delenv("XDG_DATA_HOME")
        monkeypatch.setenv("HOME", str(tmp_path / "h"))
        assert resolve_home() == tmp_path / "h" / ".local" / "share" / "kitops"


def test_repo_file_names_are_kits():
    assert repo_index_name("localhost/_") == "bG9jYWxob3N0L18=-index.json"
    assert repo_tags_name("localhost/_") == "bG9jYWxob3N0L18=-tags.json"
    assert repo_index_name("localhost/myorg/model") == "bG9jYWxob3N0L215b3JnL21vZGVs-index.json"
    assert repo_index_name("ghcr.io/org/m") == "Z2hjci5pby9vcmcvbQ==-index.json"


def test_add_manifest_writes_kits_layout(kitops_home):
    store = LocalStore()
    manifest = make_manifest(store, [b"weights"])
    digest = store.add_manifest("localhost/myorg/model", manifest, ["v1", "latest"])
    desc = {"mediaType": MANIFEST_MT, "digest": sha(manifest.raw), "size": len(manifest.raw)}
    assert digest == desc["digest"]
    root = kitops_home / "storage"
    assert (root / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    desc_json = (f'{{"mediaType":"{MANIFEST_MT}","digest":"{digest}",'
                 f'"size":{len(manifest.raw)}}}')
    assert (root / "bG9jYWxob3N0L215b3JnL21vZGVs-index.json").read_text() == \
        f'{{"schemaVersion":2,"manifests":[{desc_json}]}}'
    assert (root / "bG9jYWxob3N0L215b3JnL21vZGVs-tags.json").read_text() == \
        f'{{"latest":{desc_json},"v1":{desc_json}}}'
    top = json.loads((root / "index.json").read_bytes())
    assert top["schemaVersion"] == 2
    assert top["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert top["manifests"] == [desc]
    for blob in (root / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    assert list((root / "ingest").iterdir()) == []
    assert store.repositories() == ["localhost/myorg/model"]
    typed = Descriptor(MANIFEST_MT, digest, len(manifest.raw))
    assert store.resolve_descriptor("localhost/myorg/model", "v1") == typed
    assert store.resolve_descriptor("localhost/myorg/model", digest) == typed
    assert store.resolve_descriptor("localhost/myorg/model", "nope") is None


def test_adding_twice_dedups(kitops_home):
    store = LocalStore()
    manifest = make_manifest(store, [b"w"])
    store.add_manifest("localhost/_", manifest, [])
    store.add_manifest("localhost/_", manifest, [])
    root = kitops_home / "storage"
    assert len(json.loads((root / "bG9jYWxob3N0L18=-index.json").read_bytes())["manifests"]) == 1
    assert len(json.loads((root / "index.json").read_bytes())["manifests"]) == 1
    assert not (root / "bG9jYWxob3N0L18=-tags.json").exists()


def test_manifest_with_missing_blob_is_refused(kitops_home):
    store = LocalStore()
    manifest = make_manifest(store, [b"layer"])
    os.unlink(store.blob_path(manifest.layers[0].digest))
    with pytest.raises(StorageError, match="is missing from local storage"):
        store.add_manifest("localhost/_", manifest, ["x"])
    assert not (kitops_home / "storage" / "index.json").exists()
    assert store.repositories() == []


def test_corrupted_blob_detected_at_eof(kitops_home):
    store = LocalStore()
    desc = store.put_bytes(b"A" * 3_000_000, LAYER_MT)
    path = store.blob_path(desc.digest)
    data = bytearray(path.read_bytes())
    data[1_500_000] ^= 1
    path.write_bytes(bytes(data))
    with store.open_blob(desc) as f:
        with pytest.raises(StorageError, match="is corrupt"):
            while f.read(1 << 20):
                pass
    with pytest.raises(StorageError, match="is corrupt"):
        store.read_blob(desc)
    # a truncated blob fails on size as well
    path.write_bytes(b"A" * 10)
    with pytest.raises(StorageError, match="is corrupt"):
        store.read_blob(desc)


def test_missing_blob_is_not_found(kitops_home):
    with pytest.raises(NotFoundError):
        LocalStore().open_blob("sha256:" + "0" * 64)


def test_interrupted_blob_write_leaves_nothing(kitops_home):
    store = LocalStore()
    with pytest.raises(KeyboardInterrupt):
        with store.ingest() as w:
            w.write(b"partial")
            raise KeyboardInterrupt
    assert list(store.ingest_dir.iterdir()) == []
    assert list(store.blobs_dir.iterdir()) == []
    with store.ingest() as w:
        w.write(b"abc")
        with pytest.raises(StorageError, match="failed verification"):
            w.commit("sha256:" + "1" * 64)
    assert list(store.ingest_dir.iterdir()) == []
    assert list(store.blobs_dir.iterdir()) == []


def test_tag_untag_remove_and_gc(kitops_home):
    store = LocalStore()
    m1 = make_manifest(store, [b"shared", b"only-one"], name="one")
    m2 = make_manifest(store, [b"shared", b"only-two"], name="two")
    d1 = store.add_manifest("localhost/a", m1, ["v1"])
    d2 = store.add_manifest("localhost/a", m2, ["v2"])
    store.tag("localhost/b", "copy", store.resolve_descriptor("localhost/a", "v1"))
    assert store.repositories() == ["localhost/a", "localhost/b"]
    # removing from a: m1 is still listed by b, so no blob goes
    assert store.remove_manifest("localhost/a", store.resolve_descriptor("localhost/a", d1)) == []
    assert store.tags("localhost/a").keys() == {"v2"}
    assert store.has_blob(d1)
    # removing the last listing deletes m1 and its own layer, keeps the shared one
    deleted = store.remove_manifest("localhost/b", store.resolve_descriptor("localhost/b", "copy"))
    assert d1 in deleted and sha(b"only-one") in deleted
    assert store.has_blob(sha(b"shared")) and store.has_blob(sha(b"only-two"))
    assert store.repositories() == ["localhost/a"]
    root = kitops_home / "storage"
    assert not (root / repo_index_name("localhost/b")).exists()
    assert not (root / repo_tags_name("localhost/b")).exists()
    top = json.loads((root / "index.json").read_bytes())
    assert [d["digest"] for d in top["manifests"]] == [d2]
    store.untag("localhost/a", "v2")
    assert not (root / repo_tags_name("localhost/a")).exists()
    with pytest.raises(NotFoundError):
        store.untag("localhost/a", "v2")


def test_gc_keeps_blobs_of_manifests_listed_only_in_index_json(kitops_home):
    """A manifest kit stored (listed in index.json) protects its layers from our GC."""
    store = LocalStore()
    ours = make_manifest(store, [b"common", b"mine"])
    theirs = make_manifest(store, [b"common"], name="kit")
    theirs_desc = store.put_bytes(theirs.raw, MANIFEST_MT)
    with store.locked():
        top = store._read_top_index()
        store._write_top_index(top.with_manifests([*top.manifests, theirs_desc]))
    d = store.add_manifest("localhost/_", ours, [])
    deleted = store.remove_manifest("localhost/_", store.resolve_descriptor("localhost/_", d))
    assert sha(b"mine") in deleted
    assert store.has_blob(sha(b"common"))
    assert [x.digest for x in store._read_top_index().manifests] == [theirs_desc.digest]


def test_reads_kit_written_json(kitops_home):
    """Files as kit writes them (maybe with extra fields) are read and kept."""
    store = LocalStore()
    manifest = make_manifest(store, [b"x"])
    desc = {"mediaType": MANIFEST_MT, "digest": sha(manifest.raw), "size": len(manifest.raw)}
    store.put_bytes(manifest.raw, MANIFEST_MT)
    root = kitops_home / "storage"
    (root / repo_index_name("localhost/k")).write_text(
        json.dumps({"schemaVersion": 2, "manifests": [desc]}, indent=1))
    (root / repo_tags_name("localhost/k")).write_text(json.dumps({"t": desc}))
    assert store.repositories() == ["localhost/k"]
    got = store.resolve(Reference("localhost", "k", "t"))
    assert got.raw == manifest.raw and got.digest == desc["digest"] and got == manifest


def test_rewriting_index_files_keeps_fields_a_newer_kit_wrote(kitops_home):
    """Unknown descriptor and index fields survive our read-modify-write, after ours."""
    store = LocalStore()
    first = make_manifest(store, [b"one"], name="one")
    second = make_manifest(store, [b"two"], name="two")
    root = kitops_home / "storage"
    entry = {"mediaType": MANIFEST_MT, "digest": first.digest, "size": len(first.raw),
             "annotations": {"z": "1", "a": "<2>"}, "future": [1, {"b": 2, "a": 1}]}
    store.put_bytes(first.raw, MANIFEST_MT)
    (root / "index.json").write_text(json.dumps({
        "manifests": [entry], "schemaVersion": 2, "newField": True,
        "mediaType": "application/vnd.oci.image.index.v1+json"}))
    store.add_manifest("localhost/k", second, [])
    assert (root / "index.json").read_bytes() == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'
        b'"manifests":[{"mediaType":"' + MANIFEST_MT.encode() + b'","digest":"'
        + first.digest.encode() + b'","size":' + str(len(first.raw)).encode()
        + b',"annotations":{"a":"\\u003c2\\u003e","z":"1"},"future":[1,{"a":1,"b":2}]},'
        b'{"mediaType":"' + MANIFEST_MT.encode() + b'","digest":"' + second.digest.encode()
        + b'","size":' + str(len(second.raw)).encode() + b'}],"newField":true}')


@pytest.mark.parametrize("content,problem", [
    (b"not json", "is not valid JSON"),
    (b"[]", "is not a JSON object"),
    (b'{"manifests":[{"mediaType":1,"digest":"sha256:' + b"0" * 64 + b'"}]}',
     "manifests[0].mediaType is a number, not a string"),
    (b'{"manifests":[{"digest":"sha256:abc","size":1}]}', "invalid checksum digest length"),
    (b'{"manifests":{}}', "manifests is an object, not an array"),
])
def test_a_broken_index_file_is_one_line(kitops_home, content, problem):
    store = LocalStore()
    (kitops_home / "storage").mkdir()
    (kitops_home / "storage" / "index.json").write_bytes(content)
    with pytest.raises(StorageError, match="^failed to parse index .*index.json") as info:
        store._read_top_index()
    assert problem in str(info.value) and "\n" not in str(info.value)


_WORKER = textwrap.dedent("""
    import hashlib, json, sys
    from kit_jupyter.oci.manifest import Manifest
    from kit_jupyter.oci.store import LocalStore
    store = LocalStore(sys.argv[1])
    who = sys.argv[2]
    for i in range(15):
        layer = store.put_bytes(f"{who}-{i}".encode(), "application/octet-stream")
        config = store.put_bytes(b"{}", "application/vnd.kitops.modelkit.config.v1+json")
        store.add_manifest("localhost/shared", Manifest(config, (layer,)), [f"{who}{i}"])
""")


def test_two_processes_updating_the_same_repository(tmp_path):
    home = tmp_path / "home"
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(home), who])
             for who in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=60) == 0
    store = LocalStore(home)
    tags = store.tags("localhost/shared")
    assert set(tags) == {f"{w}{i}" for w in "ab" for i in range(15)}
    assert len(store.manifests("localhost/shared")) == 30
    assert len(store._read_top_index().manifests) == 30


def test_lock_file_location(kitops_home):
    store = LocalStore()
    with store.locked():
        assert (kitops_home / "storage" / ".kit-jupyter.lock").exists()
        with store.locked():  # re-entrant
            pass


def test_storage_paths_are_under_home(tmp_path):
    store = LocalStore(tmp_path / "x")
    assert store.root == Path(tmp_path / "x" / "storage")
    assert store.repositories() == []


# --------------------------------------------------------------------------------------------
# hostile index files, property-based (the strategies serve the other local parsers' tests too)

#: strings a generated document may hold that stand for JSON ``json.dumps`` never writes
RAW_TOKENS = {
    "@@huge-float@@": b"1e400",
    "@@too-many-digits@@": b"9" * 5000,
    "@@deep@@": b"[" * 5000 + b"]" * 5000,
    "@@nan@@": b"NaN",
}


_HOSTILE_KEYS = ("x", "mediaType", "digest", "size", "manifests", "auths", "auth", "password",
                 "blobs", "version", "verification")
#: any JSON value: wrong types, huge numbers, NaN, deep nesting (see :func:`dumps`)
hostile_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-10**400, 10**400) | st.floats()
    | st.text(max_size=8) | st.sampled_from(sorted(RAW_TOKENS)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(_HOSTILE_KEYS) | st.text(max_size=4), inner, max_size=3),
    max_leaves=8)


def dumps(value: object) -> bytes:
    data = json.dumps(value).encode()
    for token, raw in RAW_TOKENS.items():
        data = data.replace(json.dumps(token).encode(), raw)
    return data


@st.composite
def mutated(draw: st.DrawFn, valid: object) -> object:
    """``valid`` with some of its values, at any depth, dropped or replaced by hostile ones."""
    if draw(st.integers(0, 5)) == 0:
        return draw(hostile_values)
    if isinstance(valid, dict):
        return {k: draw(mutated(v)) for k, v in valid.items() if draw(st.integers(0, 7))}
    if isinstance(valid, list):
        return [draw(mutated(v)) for v in valid]
    return valid


@st.composite
def corrupted(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` whole, truncated (a crash), with bytes overwritten or inserted (a bad disk, an
    editor), or in another encoding."""
    i = draw(st.integers(0, len(data)))
    junk = draw(st.binary(min_size=1, max_size=4) | st.sampled_from(
        [b"\xff", b"\xc3", b"\x00", b"\\ud800", *RAW_TOKENS.values()]))
    return draw(st.sampled_from([
        data, data[:i], data[:i] + junk + data[i + len(junk):], data[:i] + junk + data[i:],
        b"\xef\xbb\xbf" + data, data.decode("utf-8").encode("utf-16")]))


def assert_one_line(err: BaseException) -> None:
    text = str(err)
    assert text and "\n" not in text and len(text.splitlines()) == 1, repr(text)


_REPO = "localhost/acme/model"


def _descriptor_json(i: int) -> dict[str, object]:
    return {"mediaType": MANIFEST_MT, "digest": sha(bytes([i])), "size": 100 + i,
            "urls": ["https://example.com/x"], "annotations": {"org.example": f"v{i}"},
            "data": "AA==", "platform": {"os": "linux"}, "artifactType": LAYER_MT}


_VALID_INDEX = {"schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": LAYER_MT,
                "manifests": [_descriptor_json(0), _descriptor_json(1)],
                "subject": _descriptor_json(2), "annotations": {"a": "b"}, "future": [1]}
_VALID_TAGS = {"v1": _descriptor_json(0), "latest": _descriptor_json(1)}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["index", "repo-index", "tags"]), st.data())
def test_any_index_file_reads_or_is_one_line(which, data):
    """A corrupt or hand-edited index, repository index or tags file is one line and is never
    rewritten; what reads is well-formed and reads back equal once written."""
    raw = data.draw(corrupted(dumps(data.draw(mutated(
        _VALID_TAGS if which == "tags" else _VALID_INDEX)))))
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(tmp)
        store.root.mkdir(parents=True)
        path = {"index": store.index_path, "repo-index": store.root / repo_index_name(_REPO),
                "tags": store.root / repo_tags_name(_REPO)}[which]
        path.write_bytes(raw)
        try:
            if which == "index":
                index = store._read_top_index()
                got = list(index.manifests)
            elif which == "repo-index":
                got = store.manifests(_REPO)
            else:
                tags = store.tags(_REPO)
                got = list(tags.values())
                assert store.tags_for(_REPO, sha(b"\x00")) == sorted(
                    t for t, d in tags.items() if d.digest == sha(b"\x00"))
        except StorageError as err:
            assert_one_line(err)
            assert str(err).startswith("failed to parse ") and str(path) in str(err)
            assert path.read_bytes() == raw
            return
        assert all(is_digest(d.digest) and isinstance(d.size, int) and 0 <= d.size
                   for d in got)
        # compared as written: a read ``"platform": {}`` is written without it, as Go omits it
        if which == "index":
            store._write_top_index(index)
            again = store._read_top_index()
            assert again.to_bytes() == dataclasses.replace(
                index, media_type=index.media_type or OCI_INDEX).to_bytes()
        elif which == "repo-index":
            store._write_repo_index(_REPO, got)
            assert [_go(d) for d in store.manifests(_REPO)] == [
                _go(d) for d in _first_per_digest(got)]
        else:
            store._write_tags(_REPO, tags)
            assert {t: _go(d) for t, d in store.tags(_REPO).items()} == {
                t: _go(d) for t, d in tags.items()}


_text = st.text(max_size=6)
# (not -0.0: Go writes it ``-0``, which Python's json reads as the integer 0)
_json_leaf = (st.none() | st.booleans() | st.integers() | _text
              | st.floats(allow_nan=False, allow_infinity=False)
              .filter(lambda f: math.copysign(1, f) > 0 or f != 0))
_json_any = st.recursive(_json_leaf, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(_text, inner, max_size=3), max_leaves=6)
_descriptors = st.builds(
    Descriptor, media_type=_text, digest=st.binary(max_size=2).map(sha),
    size=st.integers(0, MAX_SIZE), annotations=st.dictionaries(_text, _text, max_size=2),
    artifact_type=_text, urls=st.lists(_text, max_size=2).map(tuple), data=_text,
    platform=st.none() | st.dictionaries(_text, _json_any, min_size=1, max_size=2),
    extra=st.dictionaries(st.sampled_from(["future", "x-new"]), _json_any, max_size=2))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _descriptors, max_size=3),
       st.lists(_descriptors, max_size=3),
       st.builds(Index, manifests=st.lists(_descriptors, max_size=2).map(tuple),
                 media_type=st.just(OCI_INDEX), artifact_type=_text,
                 annotations=st.dictionaries(_text, _text, max_size=2),
                 subject=st.none() | _descriptors, schema_version=st.integers(0, MAX_SIZE),
                 extra=st.dictionaries(st.sampled_from(["future", "x-new"]), _json_any,
                                       max_size=2)))
def test_what_storage_writes_it_reads_back_equal(tags, manifests, top):
    """Compared as Go writes them: ``1e16`` in an unknown field is written ``10000000000000000``
    (Go's float format) and read back as that integer, the same number to Go."""
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(tmp)
        store._write_tags(_REPO, tags)
        assert {t: _go(d) for t, d in store.tags(_REPO).items()} == {
            t: _go(d) for t, d in tags.items()}
        store._write_repo_index(_REPO, manifests)
        assert [_go(d) for d in store.manifests(_REPO)] == [
            _go(d) for d in _first_per_digest(manifests)]
        store._write_top_index(top)
        assert store._read_top_index().to_bytes() == top.to_bytes()


def _go(d: Descriptor) -> bytes:
    return marshal(d.to_json())


def _first_per_digest(descriptors: list[Descriptor]) -> list[Descriptor]:
    first: dict[str, Descriptor] = {}
    for d in descriptors:
        first.setdefault(d.digest, d)
    return list(first.values())


def test_an_index_path_that_is_no_file_is_one_line(kitops_home):
    store = LocalStore()
    store.index_path.mkdir(parents=True)
    with pytest.raises(StorageError) as info:
        store._read_top_index()
    assert_one_line(info.value)
    assert str(store.index_path) in str(info.value)


def test_a_tag_with_a_lone_surrogate_lists_as_go_reads_it(kitops_home):
    """A tags file naming a tag ``"x\\ud800"`` (an escape Go reads as U+FFFD; another tool or a
    hand edit may write one): ``list`` shows the tag as Go would, instead of a
    UnicodeEncodeError traceback where it is printed."""
    store = LocalStore()
    store.add_manifest("localhost/acme/m", make_manifest(store, [b"w"]), ["v1"])
    tags = kitops_home / "storage" / repo_tags_name("localhost/acme/m")
    tags.write_bytes(tags.read_bytes().replace(b'"v1"', b'"x\\ud800"'))
    proc = subprocess.run([sys.executable, "-m", "kit_jupyter", "list"], capture_output=True,
                          env={**os.environ, "KITOPS_HOME": str(kitops_home),
                               "PYTHONIOENCODING": "utf-8"}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "x\ufffd".encode() in proc.stdout
