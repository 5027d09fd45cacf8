"""Local storage: kit's file names and JSON shapes, locking, verification, GC."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kit_jupyter.errors import NotFoundError, StorageError
from kit_jupyter.kitfile.reference import Reference
from kit_jupyter.oci.manifest import Descriptor, Manifest
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
