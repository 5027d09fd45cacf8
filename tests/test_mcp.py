"""mcpServers: each .mcpb packed as a raw layer (bytes verbatim), kit's bundle checks and texts,
unpacked back to its path (filter type ``mcpservers``), verified like every blob."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from kit_jupyter.commands.pack import pack
from kit_jupyter.commands.unpack import unpack
from kit_jupyter.errors import PackError, StorageError, UnpackError
from kit_jupyter.oci.store import LocalStore
from kit_jupyter.reporting import NullReporter
from tests.test_unpack_speed_safety import _StreamOnly

MCPB_MEDIA_TYPE = "application/vnd.kitops.modelkit.mcpb.v1.raw"
KITFILE = """\
manifestVersion: 1.0.0
model:
  name: m
  path: model.bin
mcpServers:
  - name: filesystem
    path: servers/fs.mcpb
  - name: postgres
    path: pg.mcpb
"""


def make_bundle(path: Path, *, manifest_at: str | None = "manifest.json",
                extra: dict[str, bytes] | None = None) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if manifest_at is not None:
            zf.writestr(manifest_at, json.dumps({"manifest_version": "0.2",
                                                 "name": path.stem, "version": "1.0.0"}))
        zf.writestr("server/index.js", "console.log('hi')\n" * 50)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path.read_bytes()


@pytest.fixture
def ctx(kitops_home, tmp_path) -> Path:
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "Kitfile").write_text(KITFILE)
    (root / "model.bin").write_bytes(b"weights" * 100)
    make_bundle(root / "servers" / "fs.mcpb")
    make_bundle(root / "pg.mcpb", extra={"lib/big.bin": os.urandom(70_000)})
    os.chmod(root / "pg.mcpb", 0o600)
    return root


def files(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def blobs() -> set[str]:
    store = LocalStore()
    return {p.name for p in store.blobs_dir.iterdir()} if store.blobs_dir.exists() else set()


def test_pack_stores_each_bundle_verbatim_as_raw_layer(ctx):
    res = pack(ctx, tag="mcp:v1")
    store = LocalStore()
    layers = store.read_manifest(store.resolve_descriptor("localhost/mcp", "v1")).layers
    assert [x.media_type for x in layers] == [
        "application/vnd.kitops.modelkit.model.v1.tar", MCPB_MEDIA_TYPE, MCPB_MEDIA_TYPE]
    for layer, rel in zip(layers[1:], ["servers/fs.mcpb", "pg.mcpb"], strict=True):
        data = (ctx / rel).read_bytes()
        assert store.blob_path(layer.digest).read_bytes() == data
        assert layer.digest == "sha256:" + hashlib.sha256(data).hexdigest()
        assert layer.size == len(data)
        assert layer.annotations["org.cncf.model.filepath"] == rel
    servers = res.config["mcpServers"]
    assert [s["name"] for s in servers] == ["filesystem", "postgres"]
    assert [s["digest"] for s in servers] == [x.digest for x in layers[1:]]
    assert all(s["diffId"] == s["digest"] for s in servers)  # raw, uncompressed
    # compression applies to tar layers only; mcpb stays raw
    res2 = pack(ctx, tag="mcp:gz", compression="gzip")
    assert [x["mediaType"] for x in res2.layers][1:] == [MCPB_MEDIA_TYPE, MCPB_MEDIA_TYPE]


def test_unpack_round_trip_and_filters(ctx, tmp_path):
    pack(ctx, tag="mcp:v1")
    out = tmp_path / "out"
    rep = NullReporter()
    res = unpack("mcp:v1", dir=out, reporter=rep)
    got = files(out)
    assert got["servers/fs.mcpb"] == (ctx / "servers" / "fs.mcpb").read_bytes()
    assert got["pg.mcpb"] == (ctx / "pg.mcpb").read_bytes()
    assert (out / "pg.mcpb").stat().st_mode & 0o777 == 0o600  # from the file metadata
    assert zipfile.ZipFile(out / "pg.mcpb").read("manifest.json")
    assert ("info", "Unpacking MCP server filesystem to servers/fs.mcpb") in rep.messages
    assert [x["type"] for x in res.layers] == ["model", "mcpserver", "mcpserver"]
    assert not list(out.rglob("*.part"))

    only = tmp_path / "only"
    unpack("mcp:v1", dir=only, filters=["mcpservers"])
    assert sorted(files(only)) == ["pg.mcpb", "servers/fs.mcpb"]
    by_name = tmp_path / "by-name"
    unpack("mcp:v1", dir=by_name, filters=["mcpservers:postgres"])
    assert sorted(files(by_name)) == ["pg.mcpb"]
    model_only = tmp_path / "model-only"
    unpack("mcp:v1", dir=model_only, filters=["model"])
    assert sorted(files(model_only)) == ["model.bin"]


def test_unpack_existing_bundle_rules(ctx, tmp_path):
    pack(ctx, tag="mcp:v1")
    out = tmp_path / "out"
    out.mkdir()
    (out / "pg.mcpb").write_bytes(b"mine")
    with pytest.raises(UnpackError, match="^failed to unpack: path 'pg.mcpb' already exists$"):
        unpack("mcp:v1", dir=out, filters=["mcpservers:postgres"])
    unpack("mcp:v1", dir=out, filters=["mcpservers:postgres"], ignore_existing=True)
    assert (out / "pg.mcpb").read_bytes() == b"mine"
    unpack("mcp:v1", dir=out, filters=["mcpservers:postgres"], overwrite=True)
    assert (out / "pg.mcpb").read_bytes() == (ctx / "pg.mcpb").read_bytes()


@pytest.mark.parametrize("streaming", [False, True])
def test_corrupt_bundle_blob_leaves_nothing(ctx, tmp_path, streaming):
    pack(ctx, tag="mcp:v1")
    store = LocalStore()
    manifest = store.read_manifest(store.resolve_descriptor("localhost/mcp", "v1"))
    path = store.blob_path(manifest.layers[2].digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    out = tmp_path / "out"
    source = _StreamOnly(store) if streaming else None
    with pytest.raises(StorageError, match="is corrupt"):
        unpack("mcp:v1", dir=out, filters=["mcpservers"], source=source)
    # a refused unpack publishes nothing: not fs.mcpb (an earlier, intact layer), not pg.mcpb
    assert files(out) == {} and not out.exists()


@pytest.mark.parametrize("case, message", [
    ("directory", "MCP bundle path pg.mcpb must be a single .mcpb file"),
    ("not-zip", "MCP bundle pg.mcpb is not a valid ZIP archive: zip: not a valid zip file"),
    ("no-manifest", "MCP bundle pg.mcpb does not contain a manifest.json at its root"),
    ("nested-manifest", "MCP bundle pg.mcpb does not contain a manifest.json at its root"),
    ("missing", "failed to read MCP bundle pg.mcpb: stat pg.mcpb: no such file or directory"),
])
def test_pack_bundle_checks(ctx, case, message):
    bundle = ctx / "pg.mcpb"
    bundle.unlink()
    if case == "directory":
        bundle.mkdir()
        (bundle / "manifest.json").write_text("{}")
    elif case == "not-zip":
        bundle.write_bytes(b"this is not a zip archive")
    elif case == "no-manifest":
        make_bundle(bundle, manifest_at=None)
    elif case == "nested-manifest":
        make_bundle(bundle, manifest_at="inner/manifest.json")
    before = blobs()
    with pytest.raises(PackError) as info:
        pack(ctx, tag="mcp:v1")
    assert str(info.value) == ("Failed to pack model kit: invalid MCP bundle for mcpServer "
                               f"postgres: {message}")
    assert blobs() == before  # checked before the first blob was written
    assert LocalStore().resolve_descriptor("localhost/mcp", "v1") is None
