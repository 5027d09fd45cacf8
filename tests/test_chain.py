"""Parent ModelKits (``model.path`` is a reference): one walker for pack, unpack and pull, with
kit's cycle and depth rules and texts -- kit's own fixtures first, then hand-made chains that
pack refuses to make (loops) read by unpack and pull."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from kit_jupyter.commands.chain import MAX_PARENTS
from kit_jupyter.commands.local import list_modelkits
from kit_jupyter.commands.pack import pack
from kit_jupyter.commands.remote import pull, push
from kit_jupyter.commands.unpack import unpack
from kit_jupyter.errors import KitError, PackError, RegistryError
from kit_jupyter.oci.manifest import Manifest
from kit_jupyter.oci.mediatypes import KIT_CONFIG, KIT_MANIFEST_ARTIFACT
from kit_jupyter.oci.store import LocalStore
from kit_jupyter.reporting import NullReporter

FIXTURES = Path(__file__).parent / "data" / "kit" / "modelkit-refs"


def _setup_files(root: Path, files: list[str]) -> None:
    """kit's ``setupFiles``: each file holds ``testing: <path>``."""
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"testing: {name}")


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.yaml")))
def test_kit_modelkit_ref_fixtures(fixture, kitops_home, tmp_path):
    """kit's ``TestModelKitReferences``: pack each ModelKit, list, unpack it into the next
    directory (parents' models come along), and every file named so far is there."""
    case = yaml.safe_load((FIXTURES / fixture).read_text())
    all_files: list[str] = []
    for i, modelkit in enumerate(case["modelkits"]):
        cur, nxt = tmp_path / f"modelkit-{i}", tmp_path / f"modelkit-{i + 1}"
        cur.mkdir(exist_ok=True)
        (cur / "Kitfile").write_text(modelkit["kitfile"])
        _setup_files(cur, modelkit.get("files") or [])
        all_files += modelkit.get("files") or []
        if "packErrRegexp" in modelkit:
            with pytest.raises(PackError) as info:
                pack(cur, tag=modelkit["tag"])
            assert re.search(modelkit["packErrRegexp"], str(info.value))
            assert "\n" not in str(info.value)
            continue
        pack(cur, tag=modelkit["tag"])
        list_modelkits()
        unpack(modelkit["tag"], dir=nxt)
        missing = [f for f in all_files if not (nxt / f).is_file()]
        assert missing == [], f"{modelkit['tag']}: not unpacked: {missing}"


def test_pack_loop_back_to_the_tag_being_packed_has_kits_text(kitops_home, tmp_path):
    """kit starts the chain with the tag being packed: re-packing model-1 on top of model-3
    (which builds on model-2, which builds on the stored model-1) is a cycle, and nothing is
    stored -- the tag still names the first model-1."""
    case = yaml.safe_load((FIXTURES / "test_reference-loop.yaml").read_text())
    contexts = []
    for i, modelkit in enumerate(case["modelkits"]):
        ctx = tmp_path / f"ctx{i}"
        ctx.mkdir()
        (ctx / "Kitfile").write_text(modelkit["kitfile"])
        _setup_files(ctx, modelkit.get("files") or [])
        contexts.append(ctx)
    first = pack(contexts[0], tag="test-ref:model-1")
    pack(contexts[1], tag="test-ref:model-2")
    pack(contexts[2], tag="test-ref:model-3")
    store = LocalStore()
    blobs = sorted(p.name for p in store.blobs_dir.iterdir())
    with pytest.raises(PackError) as info:
        pack(contexts[3], tag="test-ref:model-1")
    assert str(info.value) == (
        "Failed to pack model kit: Failed to resolve referenced modelkit test-ref:model-3: "
        "Found cycle in modelkit references: [test-ref:model-1=>test-ref:model-3=>"
        "test-ref:model-2=>test-ref:model-1]")
    assert store.resolve_descriptor("localhost/test-ref", "model-1").digest == first.digest
    assert sorted(p.name for p in store.blobs_dir.iterdir()) == blobs


def test_pack_on_top_of_the_stored_version_of_its_own_tag(kitops_home, tmp_path):
    """The first parent is not compared with the tag being packed (kit's ResolveKitfile), so a
    ModelKit may build on the version it replaces."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: weights.bin\n")
    (base / "weights.bin").write_text("w")
    pack(base, tag="self:v1")
    child = tmp_path / "child"
    child.mkdir()
    (child / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: self:v1\n"
                                   "docs:\n  - path: README.md\n")
    (child / "README.md").write_text("r")
    (child / "weights.bin").write_text("w")  # the parent's path: not in our layers
    res = pack(child, tag="self:v1")
    assert [x["annotations"]["org.cncf.model.filepath"] for x in res.layers] == ["README.md"]


# -- chains pack would refuse, written straight into storage ------------------------------------

def _store_kitfile(store: LocalStore, tag: str, config: dict) -> str:
    """A layerless ModelKit whose config is ``config`` (what a loop needs: pack refuses one)."""
    cfg = store.put_bytes(json.dumps(config).encode(), KIT_CONFIG)
    repo, _, name = tag.rpartition(":")
    if "/" not in repo.split(":")[0] and "." not in repo.split("/")[0]:
        repo = f"localhost/{repo}"
    return store.add_manifest(repo, Manifest(cfg, artifact_type=KIT_MANIFEST_ARTIFACT), [name])


def _pack_base(tmp_path: Path, tag: str, **kw: Any) -> None:
    """The root of a chain: a packed ModelKit whose model ``w.bin`` holds ``weights``."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: w.bin\n")
    (base / "w.bin").write_text("weights")
    pack(base, tag=tag, **kw)


def _child_of(parent: str) -> dict:
    return {"manifestVersion": "1.0.0", "model": {"name": "m", "path": parent}}


def test_unpack_of_a_loop_has_kits_text(kitops_home, tmp_path):
    """kit's unpack chain starts with the first parent: a->b->a is ``[b=>a=>b]``, in the
    newest kit's ``registry/repository:tag`` form (its unpack compares ``ref.String()``)."""
    store = LocalStore()
    _store_kitfile(store, "a:1", _child_of("b:1"))
    _store_kitfile(store, "b:1", _child_of("a:1"))
    rep = NullReporter()
    with pytest.raises(KitError) as info:
        unpack("a:1", dir=tmp_path / "out", reporter=rep)
    assert str(info.value) == ("found cycle in modelkit references: "
                               "[localhost/b:1=>localhost/a:1=>localhost/b:1]")
    said = [m for _, m in rep.messages if m.startswith("Unpacking referenced")]
    assert said == ["Unpacking referenced ModelKit b:1", "Unpacking referenced ModelKit a:1",
                    "Unpacking referenced ModelKit b:1"]
    assert not (tmp_path / "out" / "Kitfile").exists()


def test_unpack_follows_at_most_ten_parents(kitops_home, tmp_path):
    store = LocalStore()
    _pack_base(tmp_path, "p:0")
    for i in range(1, MAX_PARENTS + 2):
        _store_kitfile(store, f"p:{i}", _child_of(f"p:{i - 1}"))
    res = unpack(f"p:{MAX_PARENTS}", dir=tmp_path / "ten")  # ten parents: fine
    assert (tmp_path / "ten" / "w.bin").read_text() == "weights" and res.layers == []
    with pytest.raises(KitError) as info:
        unpack(f"p:{MAX_PARENTS + 1}", dir=tmp_path / "eleven")
    chain = "=>".join(f"localhost/p:{i}" for i in range(MAX_PARENTS, -1, -1))
    assert str(info.value) == f"reached maximum number of model references: [{chain}]"


def test_a_filter_without_model_reads_no_parent(kitops_home, tmp_path):
    store = LocalStore()
    _store_kitfile(store, "lone:1", _child_of("missing:1"))
    rep = NullReporter()
    res = unpack("lone:1", dir=tmp_path / "out", filters=["kitfile"], reporter=rep)
    assert res.kitfile_path and ("info", "Unpacking referenced ModelKit missing:1") \
        in rep.messages
    with pytest.raises(KitError, match="^failed to find reference missing:1: not found$"):
        unpack("lone:1", dir=tmp_path / "all")


@pytest.mark.registry
def test_pull_follows_the_same_chain_with_kits_texts(registry, tmp_path):
    home = tmp_path / "h"
    store = LocalStore(home)
    host = registry.host
    _pack_base(tmp_path, "base:v1", home=home)
    push("base:v1", f"{host}/acme/base:v1", home=home, plain_http=True)
    for name, parent in (("mid", f"{host}/acme/base:v1"), ("top", f"{host}/acme/mid:v1"),
                         ("x", f"{host}/acme/y:v1"), ("y", f"{host}/acme/x:v1"),
                         ("orphan", "local-only:v1")):
        _store_kitfile(store, f"{name}:v1", _child_of(parent))
        push(f"{name}:v1", f"{host}/acme/{name}:v1", home=home, plain_http=True)

    rep = NullReporter()
    got = pull(f"{host}/acme/top:v1", home=tmp_path / "fresh", plain_http=True, reporter=rep)
    assert [m for _, m in rep.messages] == [
        f"Pulling {host}/acme/top:v1", f"Pulling referenced image {host}/acme/mid:v1",
        f"Pulling referenced image {host}/acme/base:v1", f"Pulled {got.digest}"]
    assert [p.reference for p in got.parents] == [f"{host}/acme/mid:v1"]
    assert [p.reference for p in got.parents[0].parents] == [f"{host}/acme/base:v1"]
    fresh = LocalStore(tmp_path / "fresh")
    assert fresh.resolve_descriptor(f"{host}/acme/base", "v1") is not None

    # the newest kit's runPullRecursive: each level of its recursion wraps the error once
    with pytest.raises(RegistryError) as info:
        pull(f"{host}/acme/x:v1", home=tmp_path / "loop", plain_http=True)
    assert str(info.value) == ("failed to pull referenced modelkits: " * 2
                               + f"found cycle in modelkit references: [{host}/acme/x:v1=>"
                               f"{host}/acme/y:v1=>{host}/acme/x:v1]")
    with pytest.raises(RegistryError, match="^failed to pull referenced modelkits: "
                                            "local-only:v1 has no registry$"):
        pull(f"{host}/acme/orphan:v1", home=tmp_path / "orphan", plain_http=True)


@pytest.mark.registry
def test_pull_chain_is_kits_pull_chain(registry, tmp_path):
    """The newest kit's pull (``pkg/cmd/pull/pull.go``): the pulled reference is in the chain
    from the start, so a ModelKit naming itself is a cycle at its first parent, and it counts
    against the limit (nine parents at most); references shown as kit displays them."""
    home = tmp_path / "h"
    store = LocalStore(home)
    host = registry.host
    _store_kitfile(store, "self:v1", _child_of(f"{host}/acme/self:v1"))
    push("self:v1", f"{host}/acme/self:v1", home=home, plain_http=True)
    with pytest.raises(RegistryError) as info:
        pull(f"{host}/acme/self:v1", home=tmp_path / "self", plain_http=True)
    assert str(info.value) == ("failed to pull referenced modelkits: found cycle in modelkit "
                               f"references: [{host}/acme/self:v1=>{host}/acme/self:v1]")

    _pack_base(tmp_path, "d:0", home=home)
    push("d:0", f"{host}/acme/d:0", home=home, plain_http=True)
    for i in range(1, MAX_PARENTS + 1):
        _store_kitfile(store, f"d:{i}", _child_of(f"{host}/acme/d:{i - 1}"))
        push(f"d:{i}", f"{host}/acme/d:{i}", home=home, plain_http=True)
    nine = pull(f"{host}/acme/d:{MAX_PARENTS - 1}", home=tmp_path / "nine", plain_http=True)
    depth, node = 0, nine
    while node.parents:
        depth, node = depth + 1, node.parents[0]
    assert depth == MAX_PARENTS - 1
    with pytest.raises(RegistryError) as info:
        pull(f"{host}/acme/d:{MAX_PARENTS}", home=tmp_path / "ten", plain_http=True)
    chain = "=>".join(f"{host}/acme/d:{i}" for i in range(MAX_PARENTS, -1, -1))
    assert str(info.value) == ("failed to pull referenced modelkits: " * MAX_PARENTS
                               + f"reached maximum number of model references: [{chain}]")


def test_pack_leaves_out_every_ancestors_paths(kitops_home, tmp_path):
    """kit merges the whole chain's Kitfiles (ResolveKitfile): a grandparent's paths are left
    out of our layers as well as the parent's."""
    ctx = tmp_path / "ctx"
    for name in ("w.bin", "src/train.py", "docs/guide.md", "app/main.py"):
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(name)
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: w.bin\n"
                                 "code:\n  - path: src\n")
    pack(ctx, tag="gp:v1")
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: gp:v1\n"
                                 "docs:\n  - path: docs\n")
    pack(ctx, tag="parent:v1")
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: parent:v1\n"
                                 "code:\n  - path: .\n")
    res = pack(ctx, tag="child:v1")
    (layer,) = res.layers
    with tarfile.open(LocalStore().blob_path(layer["digest"])) as tf:
        names = sorted(tf.getnames())
    assert names == ["app", "app/main.py"]  # no w.bin, src/ (grandparent), docs/ (parent)
