"""list, inspect, info, tag, remove on local storage, with kit's texts and data shapes."""

from __future__ import annotations

import json

import pytest

from kit_jupyter.commands.local import info, inspect, list_modelkits, remove, tag
from kit_jupyter.commands.pack import pack
from kit_jupyter.commands.unpack import unpack
from kit_jupyter.errors import KitError, NotFoundError, ReferenceError_
from kit_jupyter.oci.manifest import Descriptor, Index, Manifest
from kit_jupyter.oci.mediatypes import KIT_CONFIG, KIT_MANIFEST_ARTIFACT
from kit_jupyter.oci.store import LocalStore, repo_index_name
from kit_jupyter.reporting import NullReporter, format_bytes
from tests.test_cli import run as run_cli
from tests.test_pack import make_context, no_remote, write


@pytest.fixture
def two(kitops_home, tmp_path, monkeypatch):
    """demo:v1 (from the full context) and an untagged minimal ModelKit."""
    no_remote(monkeypatch)
    ctx = make_context(tmp_path)
    full = pack(ctx, tag="myorg/demo:v1")
    small = tmp_path / "small"
    write(small / "Kitfile", "manifestVersion: 1.0.0\ndocs:\n  - path: notes.md\n")
    write(small / "notes.md", "n\n")
    bare = pack(small)
    return full, bare


def test_list(two):
    full, bare = two
    res = list_modelkits()
    # .data: kit's objects with the size in bytes; to_json() writes kit's size text
    assert res.data == [
        {"repo": "<none>", "digest": bare.digest, "tags": None, "modelName": "<none>",
         "size": bare.size, "author": "<none>"},
        {"repo": "myorg/demo", "digest": full.digest, "tags": ["v1"],
         "modelName": "demo <&>", "size": full.size, "author": "Zoë"},
    ]
    assert [m["size"] for m in json.loads(res.to_json())] == [format_bytes(bare.size),
                                                              format_bytes(full.size)]
    lines = res.text().splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "MAINTAINER", "NAME", "SIZE", "DIGEST"]
    assert lines[1].split()[:2] == ["<none>", "<none>"]
    assert lines[2].startswith("myorg/demo   v1    ")
    # kit's --format json: HTML-escaped, two-space indent, null tags
    js = res.to_json()
    assert '"modelName": "demo \\u003c\\u0026\\u003e"' in js and '"tags": null' in js
    html = res._repr_html_()
    assert "demo &lt;&amp;&gt;" in html and "<table" in html


def test_inspect(two):
    full, _ = two
    res = inspect("myorg/demo:v1")
    assert list(res.data) == ["digest", "cliVersion", "kitfile", "manifest"]
    assert res.digest == full.digest
    assert res.cli_version.startswith("kit-jupyter/")
    assert res.kitfile["model"]["digest"] == full.layers[0]["digest"]
    assert res.manifest.layers[0].annotations["org.cncf.model.filepath"] == "model.bin"
    assert res.data["manifest"]["layers"][0]["annotations"] == {
        "org.cncf.model.filepath": "model.bin"}
    assert json.loads(res.text()) == json.loads(json.dumps(res.data))
    assert inspect(f"myorg/demo@{full.digest}").digest == full.digest
    with pytest.raises(NotFoundError, match="^Could not find modelkit myorg/demo:v9$"):
        inspect("myorg/demo:v9")
    with pytest.raises(ReferenceError_, match="^missing tag or digest from ModelKit reference "
                                              "'myorg/demo'$"):
        inspect("myorg/demo")
    with pytest.raises(ReferenceError_, match="extra tags are not supported: v2"):
        inspect("myorg/demo:v1,v2")


def test_info(two):
    res = info("myorg/demo:v1")
    assert res.text().startswith("manifestVersion: 1.0.0\npackage:\n  name: demo <&>\n")
    assert 'version: "1.10"' in res.text()
    assert "digest" not in res.text()
    assert res.data["package"]["name"] == "demo <&>"
    assert info("myorg/demo:v1", filter=".package.name").text() == "demo <&>\n"
    assert info("myorg/demo:v1", filter="model.path").text() == "./model.bin\n"
    assert info("myorg/demo:v1", filter=".package.authors").text() == "- Zoë\n- R&D\n"
    with pytest.raises(KitError, match="cannot find required node"):
        info("myorg/demo:v1", filter=".nothing")
    with pytest.raises(KitError, match="array access using"):
        info("myorg/demo:v1", filter=".code[0]")
    with pytest.raises(NotFoundError, match="^Could not find modelkit nothing:v1$"):
        info("nothing:v1")
    with pytest.raises(KitError, match="^can not check remote: myorg/demo:v1 does not contain "
                                       "registry$"):
        info("myorg/demo:v1", remote=True)


def test_tag_same_and_other_repository(two):
    full, _ = two
    res = tag("myorg/demo:v1", "myorg/demo:prod")
    assert res.messages == [("info", "Modelkit localhost/myorg/demo:v1 tagged as "
                                     "localhost/myorg/demo:prod")]
    assert res.text() == ("Modelkit localhost/myorg/demo:v1 tagged as "
                          "localhost/myorg/demo:prod\n")
    tag("myorg/demo:v1", "registry.example.com/team/demo:1.0")
    store = LocalStore()
    assert store.resolve_descriptor("registry.example.com/team/demo", "1.0").digest == full.digest
    assert {m["repo"] for m in list_modelkits().data} >= {"registry.example.com/team/demo"}
    with pytest.raises(NotFoundError, match="^Failed to tag modelkit: model "
                                            "localhost/myorg/demo:v7 not found$"):
        tag("myorg/demo:v7", "myorg/demo:x")
    with pytest.raises(ReferenceError_, match="target ModelKit reference requires a tag"):
        tag("myorg/demo:v1", "myorg/other")


def test_remove_tag_then_digest(two):
    full, _ = two
    tag("myorg/demo:v1", "myorg/demo:v2")
    store = LocalStore()
    res = remove("myorg/demo:v2")  # another tag remains: only untagged
    assert res.messages == [("info", f"Removed myorg/demo:v2 (digest {full.digest})")]
    assert set(store.tags("localhost/myorg/demo")) == {"v1"}
    assert store.has_blob(full.digest)
    res = remove("myorg/demo:v1")  # last tag: the ModelKit goes, with its blobs
    assert res.data[0]["action"] == "removed"
    assert store.repositories() == ["localhost/_"]
    assert not store.has_blob(full.digest)
    assert not any(store.has_blob(x["digest"]) for x in full.layers)
    with pytest.raises(NotFoundError, match="^failed to remove: model myorg/demo:v1 not found$"):
        remove("myorg/demo:v1")
    with pytest.raises(ReferenceError_, match=r"tag or digest is required when removing "
                                              r"\(myorg/demo:<tag>\)"):
        remove("myorg/demo")


def test_remove_force_and_by_digest(two):
    full, _ = two
    tag("myorg/demo:v1", "myorg/demo:v2")
    tag("myorg/demo:v1", "other:v1")
    store = LocalStore()
    remove("myorg/demo:v1", force=True)  # all tags of the manifest in this repository
    assert not store.tags("localhost/myorg/demo")
    assert store.has_blob(full.digest)  # still listed by localhost/other
    remove(f"other@{full.digest}")
    assert not store.has_blob(full.digest)


def test_remove_all(two):
    full, bare = two
    res = remove(all=True)  # only untagged ones
    assert res.messages == [("info", f"Removed @{bare.digest}")]
    store = LocalStore()
    assert store.repositories() == ["localhost/myorg/demo"]
    res = remove(all=True, force=True)
    assert res.messages == [("info", "Untagged myorg/demo:v1"),
                            ("info", f"Removed myorg/demo@{full.digest}")]
    assert store.repositories() == []
    assert not list(store.blobs_dir.iterdir())
    with pytest.raises(KitError, match="should not be specified when --all"):
        remove("x:v1", all=True)


def test_results_render(two):
    full, _ = two
    for res in (inspect("myorg/demo:v1"), info("myorg/demo:v1"), list_modelkits()):
        html = res._repr_html_()
        assert "<script" not in html and "&lt;&amp;&gt;" in html
    from IPython.lib.pretty import pretty

    assert "myorg/demo" in pretty(list_modelkits())
    assert pretty(info("myorg/demo:v1")).startswith("manifestVersion: 1.0.0")


def _hand_made(store: LocalStore, tag: str, config: bytes, *, layer_size: int | None = None,
               config_size: int | None = None) -> str:
    """A ModelKit written straight into storage (as a hostile or buggy tool could)."""
    cfg = store.put_bytes(config, KIT_CONFIG)
    layer = store.put_bytes(b"weights", "application/vnd.kitops.modelkit.model.v1.tar")
    manifest = Manifest(
        Descriptor(cfg.media_type, cfg.digest, cfg.size if config_size is None else config_size),
        (Descriptor(layer.media_type, layer.digest,
                    layer.size if layer_size is None else layer_size),),
        artifact_type=KIT_MANIFEST_ARTIFACT)
    repo, _, name = tag.partition(":")
    return store.add_manifest(f"localhost/{repo}", manifest, [name])


def test_bad_modelkits_in_storage_are_one_line_and_never_break_list(two, tmp_path):
    """Hostile storage (issue 10): a config that is not JSON, one with wrong types, sizes no
    blob has. ``list`` shows the good ModelKits and says which it skipped; reading a bad one
    is one line, never a traceback."""
    full, bare = two
    store = LocalStore()
    not_json = _hand_made(store, "bad:json", b"\xff\xfe not json")
    wrong = _hand_made(store, "bad:types", b'{"manifestVersion":"1.0.0","package":"x"}')
    huge = _hand_made(store, "bad:huge", b'{"manifestVersion":"1.0.0"}', layer_size=1 << 62)
    big_config = _hand_made(store, "bad:cfg", b'{"manifestVersion":"1.0.0"}',
                            config_size=1 << 62)
    rep = NullReporter()
    res = list_modelkits(reporter=rep)
    assert [m["digest"] for m in res.data] == [bare.digest, huge, full.digest]
    assert res.data[1]["size"] == 1 << 62 and '"size": "4096.0 PiB"' in res.to_json()
    warned = [text for level, text in rep.messages if level == "warning"]
    assert sorted(w.split(":")[0] for w in warned) == ["Skipping bad@sha256"] * 3
    assert {w.split()[1].split("@")[1].rstrip(":") for w in warned} == {not_json, wrong,
                                                                        big_config}
    assert all("\n" not in w for w in warned)
    for ref, text in (("bad:json", "invalid config JSON"),
                      ("bad:types", "cannot unmarshal string into Go value of type artifact"),
                      ("bad:cfg", "is too large")):
        for command in (inspect, info):
            with pytest.raises(KitError, match=text) as caught:
                command(ref)
            assert "\n" not in str(caught.value)
        with pytest.raises(KitError, match=text):
            unpack(ref, dir=tmp_path / ref.replace(":", "-"))


def test_list_through_the_terminal_skips_a_broken_manifest(two, kitops_home):
    full, _ = two
    store = LocalStore()
    junk = store.put_bytes(b'{"schemaVersion":2,"config":{"digest":"sha256:nope"}}',
                           "application/vnd.oci.image.manifest.v1+json")
    index = kitops_home / "storage" / repo_index_name("localhost/junk")
    index.write_bytes(Index((junk,)).to_bytes())
    out = run_cli("list")
    assert out.returncode == 0, out.stderr
    assert full.digest in out.stdout
    assert "Skipping junk@" in out.stderr and "invalid checksum digest length" in out.stderr
    assert "Traceback" not in out.stderr
