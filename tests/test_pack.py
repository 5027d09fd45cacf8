"""pack: storage files, JSON shapes, byte-exact layers/config, tags, failures leave no trace."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from kit_jupyter.commands.pack import pack
from kit_jupyter.errors import KitError, KitfileError, ValidationError
from kit_jupyter.kitfile.model import load_kitfile
from kit_jupyter.oci.store import LocalStore
from kit_jupyter.reporting import NullReporter

T1_DIGEST = "sha256:e4771edd1e9b7f4d31c9554bdb2ca3ccb6918b535beb27be6a3fe4b421455a9d"
T2_DIGEST = "sha256:67603e208f35b2708e78f0986354f9ac1fb06449d2c68812531c33e689058314"
EMPTY_LAYER = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

KITFILE = """\
manifestVersion: 1.0.0
package:
  name: demo <&>
  version: 1.10
  authors: [Zoë, "R&D"]
model:
  name: m
  path: ./model.bin
  parameters:
    lr: 0.001
    epochs: 3
code:
  - path: src
datasets:
  - name: train
    path: data/train
  - name: raw
    path: raw/file.csv
    remotePath: s3://bucket/raw/file.csv
    remoteHash: 9b2cf535f27731c974343645a3985328
docs:
  - path: README.md
prompts:
  - name: system
    path: prompts/system.txt
"""


def write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)


def make_context(root: Path, kitfile: str = KITFILE, model: bytes = b"\x00weights\xff" * 100
                 ) -> Path:
    """A context with every local component kind (the remote dataset is skipped by pack)."""
    ctx = root / "ctx"
    write(ctx / "Kitfile", kitfile)
    write(ctx / "model.bin", model)
    write(ctx / "src" / "train.py", "print('hi')\n", 0o755)
    write(ctx / "data" / "train" / "a.csv", "x,y\n1,2\n")
    write(ctx / "README.md", "# demo\n")
    write(ctx / "prompts" / "system.txt", "be nice\n")
    return ctx


def no_remote(monkeypatch) -> list:
    """Stand-in for the S3 HEAD check (tested against a real server in the s3 tests); records
    how many blobs existed when it ran."""
    calls: list = []

    def verify(kf, *, reporter=None, env=None):
        home = Path(os.environ["KITOPS_HOME"])
        blobs = home / "storage" / "blobs" / "sha256"
        calls.append(len(list(blobs.iterdir())) if blobs.exists() else 0)

    monkeypatch.setattr("kit_jupyter.commands.pack.verify_remote_datasets", verify)
    return calls


def golden_context(root: Path) -> Path:
    """Spec §14.1 T1/T2 inputs (explicit modes, decoys that must not be packed)."""
    ctx = root / "golden"
    (ctx / "data").mkdir(parents=True)
    os.chmod(ctx / "data", 0o755)
    write(ctx / "data" / "a.txt", "hello\n", 0o644)
    write(ctx / "data" / "b.bin", b"\x00\x01\x02", 0o755)
    write(ctx / "data2" / "x", "decoy\n")
    os.symlink("a.txt", ctx / "data" / "link")
    return ctx


def test_untagged_pack_storage_layout(kitops_home, tmp_path, monkeypatch):
    calls = no_remote(monkeypatch)
    ctx = make_context(tmp_path)
    rep = NullReporter()
    res = pack(ctx, reporter=rep)
    assert calls == [0], "remote datasets must be verified before any blob is written"
    root = kitops_home / "storage"
    names = sorted(p.name for p in root.iterdir())
    assert names == [".kit-jupyter.lock", "bG9jYWxob3N0L18=-index.json", "blobs", "index.json",
                     "ingest", "oci-layout"]
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": res.digest,
            "size": LocalStore().blob_path(res.digest).stat().st_size}
    assert json.loads((root / "bG9jYWxob3N0L18=-index.json").read_bytes()) == \
        {"schemaVersion": 2, "manifests": [desc]}
    assert desc in json.loads((root / "index.json").read_bytes())["manifests"]
    for blob in (root / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    assert list((kitops_home / "cache" / "pack").iterdir()) == []
    assert res.repository == "localhost/_" and res.tags == []
    messages = [m for _, m in rep.messages]
    assert messages[-1] == f"Model saved: {res.digest}"
    assert f"Saved manifest to storage: {res.digest}" in messages


def test_manifest_and_config(kitops_home, tmp_path, monkeypatch):
    no_remote(monkeypatch)
    ctx = make_context(tmp_path)
    res = pack(ctx, tag="myorg/demo:v1")
    store = LocalStore()
    stored = store.read_manifest(store.resolve_descriptor("localhost/myorg/demo", "v1"))
    manifest = json.loads(stored.raw)
    # the newest kit's createManifest sets the mediaType field (PR-era kit left it out)
    assert list(manifest) == ["schemaVersion", "mediaType", "artifactType", "config", "layers",
                              "annotations"]
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["artifactType"] == "application/vnd.kitops.modelkit.manifest.v1+json"
    assert manifest["annotations"]["ml.kitops.modelkit.cli-version"].startswith("kit-jupyter")
    # the newest kit's pack time: Go's time.RFC3339 in UTC
    created = manifest["annotations"]["org.opencontainers.image.created"]
    assert datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ")
    kinds = [(x["mediaType"].split(".")[-3], x["annotations"]) for x in manifest["layers"]]
    assert kinds == [
        ("model", {"org.cncf.model.filepath": "model.bin"}),
        ("code", {"org.cncf.model.filepath": "src"}),
        ("dataset", {"org.cncf.model.filepath": "data/train"}),
        ("docs", {"org.cncf.model.filepath": "README.md"}),
        ("code", {"ml.kitops.modelkit.layer-subtype": "prompt",
                  "org.cncf.model.filepath": "prompts/system.txt"}),
    ]
    assert all(x["mediaType"].endswith(".v1.tar") for x in manifest["layers"])
    # the config is exactly what the Kitfile model serialises once digests are filled in
    kf = load_kitfile(KITFILE)
    entries = [kf.model, kf.code[0], kf.datasets[0], kf.docs[0], kf.prompts[0]]
    for entry, layer in zip(entries, manifest["layers"], strict=True):
        entry.digest = entry.diff_id = layer["digest"]
    config = store.read_blob(stored.config)
    assert config == kf.to_config_json()
    assert manifest["config"]["mediaType"] == "application/vnd.kitops.modelkit.config.v1+json"
    assert b'"remotePath":"s3://bucket/raw/file.csv"' in config
    assert res.config["package"]["name"] == "demo <&>"


def test_layer_digests_match_golden_tars(kitops_home, tmp_path):
    ctx = golden_context(tmp_path)
    write(ctx / "Kitfile", "manifestVersion: 1.0.0\ndatasets:\n  - name: d\n    path: data\n")
    res = pack(ctx)
    assert [x["digest"] for x in res.layers] == [T1_DIGEST]
    assert LocalStore().blob_path(T1_DIGEST).stat().st_size == 3584
    write(ctx / "Kitfile", "manifestVersion: 1.0.0\ncode:\n  - path: data/a.txt\n")
    assert [x["digest"] for x in pack(ctx).layers] == [T2_DIGEST]


def test_kitfile_outside_context_and_tags(kitops_home, tmp_path, monkeypatch):
    no_remote(monkeypatch)
    ctx = make_context(tmp_path)
    outside = tmp_path / "elsewhere" / "my.kitfile"
    write(outside, (ctx / "Kitfile").read_text())
    (ctx / "Kitfile").unlink()
    with pytest.raises(KitfileError, match="No Kitfile found in"):
        pack(ctx)
    rep = NullReporter()
    res = pack(ctx, file=outside, tag="demo:v1,v2,stable", reporter=rep)
    store = LocalStore()
    assert set(store.tags("localhost/demo")) == {"v1", "v2", "stable"}
    assert res.tags == ["v1", "v2", "stable"]
    rep = NullReporter()
    again = pack(ctx, file=outside, tag="demo", reporter=rep)
    assert ("info", "No tag or digest specified with --tag flag. Using 'latest' as default "
                    "('demo:latest')") in rep.messages
    assert store.resolve_descriptor("localhost/demo", "latest").digest == again.digest
    # same layers and config; the manifest differs only by its pack time (newest kit)
    assert again.layers == res.layers and again.config == res.config
    messages = [m for _, m in rep.messages]
    assert any(m.startswith("Configuration already exists in storage:") for m in messages)


def test_validation_errors_stop_before_storage(kitops_home, tmp_path):
    ctx = make_context(tmp_path, kitfile="manifestVersion: 1.0.0\nmodel:\n  path: /abs/model\n"
                                          "code:\n  - path: https://example.com\n")
    with pytest.raises(ValidationError) as err:
        pack(ctx)
    assert str(err.value).startswith("errors while validating Kitfile: \n  * ")
    assert "absolute paths are not supported in a Kitfile (path /abs/model in model m" \
        not in str(err.value)  # model has no name: label is "model "
    assert "(path /abs/model in model )" in str(err.value)
    assert not (kitops_home / "storage").exists()


def test_validation_warnings_are_reported(kitops_home, tmp_path):
    ctx = make_context(tmp_path, kitfile="manifestVersion: 1.0\ndocs:\n  - path: README.md\n")
    rep = NullReporter()
    pack(ctx, reporter=rep)
    assert ("warning", "Unrecognized manifestVersion 1.0: treating Kitfile as 1.0.0") \
        in rep.messages


def test_failing_remote_check_writes_nothing(kitops_home, tmp_path, monkeypatch):
    from kit_jupyter.errors import RemoteDatasetError

    def verify(kf, *, reporter=None, env=None):
        raise RemoteDatasetError("failed to verify remote object for raw/file.csv: missing "
                                 "ETag on object")

    monkeypatch.setattr("kit_jupyter.commands.pack.verify_remote_datasets", verify)
    ctx = make_context(tmp_path)
    with pytest.raises(RemoteDatasetError, match="^Failed to pack model kit: failed to verify"):
        pack(ctx, tag="demo:v1")
    assert not (kitops_home / "storage" / "blobs").exists() or \
        not list((kitops_home / "storage" / "blobs" / "sha256").iterdir())


def test_missing_layer_path_is_an_error(kitops_home, tmp_path):
    ctx = make_context(tmp_path, kitfile="manifestVersion: 1.0.0\ncode:\n  - path: nothere\n")
    with pytest.raises(KitError, match="^Failed to pack model kit: path nothere does not exist"):
        pack(ctx)
    assert LocalStore().repositories() == []


def test_gzip_layers(kitops_home, tmp_path):
    ctx = golden_context(tmp_path)
    write(ctx / "Kitfile", "manifestVersion: 1.0.0\ndatasets:\n  - name: d\n    path: data\n")
    res = pack(ctx, compression="gzip", tag="gz:v1")
    (layer,) = res.layers
    assert layer["mediaType"] == "application/vnd.kitops.modelkit.dataset.v1.tar+gzip"
    assert res.config["datasets"][0]["diffId"] == T1_DIGEST
    assert res.config["datasets"][0]["digest"] == layer["digest"] != T1_DIGEST


def test_interrupted_pack_leaves_storage_consistent(kitops_home, tmp_path, monkeypatch):
    no_remote(monkeypatch)
    ctx = make_context(tmp_path)
    first = pack(ctx, tag="demo:v1")
    root = kitops_home / "storage"
    before = {p.name: p.read_bytes() for p in root.glob("*.json")}
    write(ctx / "model.bin", b"changed" * 1000)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    original = LocalStore.add_manifest
    monkeypatch.setattr(LocalStore, "add_manifest", boom)
    with pytest.raises(KeyboardInterrupt):
        pack(ctx, tag="demo:v1")
    assert {p.name: p.read_bytes() for p in root.glob("*.json")} == before
    assert list((kitops_home / "cache" / "pack").iterdir()) == []
    assert list((root / "ingest").iterdir()) == []
    assert not [p for p in (root / "blobs" / "sha256").iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(LocalStore, "add_manifest", original)
    second = pack(ctx, tag="demo:v1")
    assert second.digest != first.digest
    assert LocalStore().resolve_descriptor("localhost/demo", "v1").digest == second.digest


_PACKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from kit_jupyter.commands.pack import pack
    ctx, who = Path(sys.argv[1]), sys.argv[2]
    for i in range(6):
        (ctx / "model.bin").write_bytes(f"{who}-{i}".encode() * 1000)
        pack(ctx, tag=f"shared/model:{who}{i}")
""")


def test_two_processes_packing_at_once(kitops_home, tmp_path):
    procs = []
    for who in ("a", "b"):
        ctx = tmp_path / who
        write(ctx / "Kitfile", "manifestVersion: 1.0.0\nmodel:\n  path: model.bin\n")
        procs.append(subprocess.Popen([sys.executable, "-c", _PACKER, str(ctx), who],
                                      stderr=subprocess.PIPE))
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    store = LocalStore()
    tags = store.tags("localhost/shared/model")
    assert set(tags) == {f"{w}{i}" for w in "ab" for i in range(6)}
    listed = {d.digest for d in store._read_top_index().manifests}
    assert {d.digest for d in tags.values()} <= listed
    for d in tags.values():
        for layer in store.read_manifest(d).layers:
            assert store.has_blob(layer.digest)


def test_repack_reports_layers_already_saved(kitops_home, tmp_path):
    """kit's saveFileToRepo: a layer blob already in storage is "Already saved <type> layer",
    named by its media-type base (prompts are code layers), and nothing is stored twice."""
    kitfile = KITFILE.replace("  - name: raw\n    path: raw/file.csv\n"
                              "    remotePath: s3://bucket/raw/file.csv\n"
                              "    remoteHash: 9b2cf535f27731c974343645a3985328\n", "")
    kitfile = kitfile.replace("  path: ./model.bin\n", "  path: ./model.bin\n  parts:\n"
                              "    - name: tok\n      path: tok.json\n")
    ctx = make_context(tmp_path, kitfile)
    write(ctx / "tok.json", "{}\n")
    first = NullReporter()
    pack(ctx, tag="demo:1", reporter=first)
    blobs = sorted(os.listdir(kitops_home / "storage" / "blobs" / "sha256"))
    second = NullReporter()
    again_digest = pack(ctx, tag="demo:2", reporter=second).digest
    saved = [m for lvl, m in first.messages if "layer:" in m]
    again = [m for lvl, m in second.messages if "layer:" in m]
    kinds = ["model", "modelpart", "code", "dataset", "docs", "code"]
    assert [m.split(" layer:")[0] for m in saved] == [f"Saved {k}" for k in kinds]
    assert [m.split(" layer:")[0] for m in again] == [f"Already saved {k}" for k in kinds]
    assert [m.split(": ")[1] for m in saved] == [m.split(": ")[1] for m in again]
    # only the manifest may be new: its creation time is to the second (org.opencontainers.
    # image.created), so a pack in the next second is another manifest over the same blobs
    after = set(os.listdir(kitops_home / "storage" / "blobs" / "sha256"))
    assert set(blobs) <= after and after - set(blobs) <= {again_digest.split(":")[1]}
