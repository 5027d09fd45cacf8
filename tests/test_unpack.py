"""unpack: round trip, filters, kit's existing-file rules, verification, positional matching."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kit_jupyter.__main__ import main
from kit_jupyter.commands.local import info
from kit_jupyter.commands.pack import pack
from kit_jupyter.commands.unpack import _raw_mode, unpack
from kit_jupyter.errors import (
    FilterError,
    KitError,
    KitfileError,
    NotFoundError,
    StorageError,
    UnpackError,
)
from kit_jupyter.oci.manifest import Manifest
from kit_jupyter.oci.mediatypes import ANNOTATION_FILE_METADATA
from kit_jupyter.oci.store import LocalStore
from kit_jupyter.reporting import NullReporter
from tests.test_pack import KITFILE, make_context, no_remote, write

FILES = ["model.bin", "src/train.py", "data/train/a.csv", "README.md", "prompts/system.txt"]


@pytest.fixture
def packed(kitops_home, tmp_path, monkeypatch):
    no_remote(monkeypatch)
    ctx = make_context(tmp_path)
    res = pack(ctx, tag="demo:v1")
    return ctx, res


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_round_trip_reproduces_files(packed, tmp_path):
    ctx, res = packed
    out = tmp_path / "out"
    rep = NullReporter()
    result = unpack("demo:v1", dir=out, reporter=rep)
    got = tree(out)
    assert sorted(got) == sorted(["Kitfile", *FILES])
    for name in FILES:
        assert got[name] == (ctx / name).read_bytes()
    assert os.stat(out / "src" / "train.py").st_mode & 0o777 == 0o755 & ~_umask()
    assert result.digest == res.digest
    assert [x["type"] for x in result.layers] == ["model", "dataset", "code", "docs", "prompt"]
    text = [m for _, m in rep.messages]
    assert text[:3] == [f"Unpacking to {out}", f"Unpacking config to {out / 'Kitfile'}",
                        "Unpacking model m to ./model.bin"]
    assert "Unpacking code to src" in text
    assert "Unpacking dataset train to data/train" in text
    assert "Unpacking docs to README.md" in text
    # the newest kit's generateUnpackPlan names a prompt (code and docs never)
    assert "Unpacking prompt system to prompts/system.txt" in text
    # the remote dataset: kit's warning, no file
    assert ("warning", "ModelKit contains remote datasets. To unpack, specify the "
                       "--include-remote flag") in rep.messages
    assert not (out / "raw").exists()
    # the written Kitfile is the config's Kitfile in kit's YAML
    kitfile = (out / "Kitfile").read_text()
    assert 'version: "1.10"' in kitfile and "remotePath: s3://bucket/raw/file.csv" in kitfile
    assert "digest" not in kitfile


def _umask() -> int:
    m = os.umask(0o22)
    os.umask(m)
    return m


def test_default_tag_and_errors(packed, tmp_path):
    from kit_jupyter.commands.local import tag

    with pytest.raises(NotFoundError, match="^failed to find reference demo:latest: not found"):
        unpack("demo", dir=tmp_path / "a")
    tag("demo:v1", "demo:latest")
    rep = NullReporter()
    res = unpack("demo", dir=tmp_path / "b", reporter=rep)
    assert res.digest == packed[1].digest
    assert rep.messages[0] == ("info", "No tag specified for unpack. Using 'latest' as default "
                                       "('demo:latest')")
    with pytest.raises(KitError, match="^can not unpack multiple tags$"):
        unpack("demo:v1,v2", dir=tmp_path / "c")
    with pytest.raises(NotFoundError, match="^failed to find reference nope:v1: not found$"):
        unpack("nope:v1", dir=tmp_path / "d")


def test_filters_select_layers_and_fetch_only_needed_blobs(packed, tmp_path):
    store = LocalStore()
    opened: list[str] = []

    class Counting:
        def resolve(self, ref):
            return store.resolve(ref)

        def open_blob(self, desc):
            opened.append(desc.digest)
            return store.open_blob(desc)

    out = tmp_path / "f1"
    res = unpack("demo:v1", dir=out, filters=["datasets:train"], source=Counting())
    assert sorted(tree(out)) == ["data/train/a.csv"]
    config = store.read_manifest(store.resolve_descriptor("localhost/demo", "v1")).config
    assert opened == [config.digest, res.layers[0]["digest"]]
    assert res.kitfile_path is None

    out = tmp_path / "f2"
    unpack("demo:v1", dir=out, filters=["model", "kitfile"])
    assert sorted(tree(out)) == ["Kitfile", "model.bin"]
    out = tmp_path / "f3"
    unpack("demo:v1", dir=out, filters=["code:src", "prompts:system", "docs:README.md"])
    assert sorted(tree(out)) == ["README.md", "prompts/system.txt", "src/train.py"]
    out = tmp_path / "f4"
    unpack("demo:v1", dir=out, filters=["datasets:nosuch"])
    assert tree(out) == {}
    with pytest.raises(FilterError, match="^Invalid filter 'weights'"):
        unpack("demo:v1", dir=tmp_path / "f5", filters=["weights"])


def test_existing_file_rules(packed, tmp_path):
    out = tmp_path / "out"
    unpack("demo:v1", dir=out)
    # same Kitfile: accepted with kit's info line; existing layer file: error
    rep = NullReporter()
    with pytest.raises(UnpackError, match="^failed to unpack: path 'model.bin' already exists$"):
        unpack("demo:v1", dir=out, reporter=rep)
    assert ("info", f"Found existing Kitfile at {out / 'Kitfile'}") in rep.messages
    # -i skips existing files and keeps their content
    (out / "model.bin").write_bytes(b"mine")
    unpack("demo:v1", dir=out, ignore_existing=True)
    assert (out / "model.bin").read_bytes() == b"mine"
    # -o overwrites
    unpack("demo:v1", dir=out, overwrite=True)
    assert (out / "model.bin").read_bytes() == (packed[0] / "model.bin").read_bytes()
    # Kitfile: different size / same size different bytes / not a regular file
    kitfile = (out / "Kitfile").read_bytes()
    (out / "Kitfile").write_bytes(kitfile + b"# extra\n")
    with pytest.raises(UnpackError, match=r"^failed to unpack config: path .*Kitfile already "
                                          r"exists$"):
        unpack("demo:v1", dir=out, ignore_existing=True)
    (out / "Kitfile").write_bytes(kitfile.replace(b"demo", b"DEMO"))
    with pytest.raises(UnpackError, match="^failed to unpack: Kitfile exists and does not "
                                          "match model's Kitfile$"):
        unpack("demo:v1", dir=out, ignore_existing=True)
    (out / "Kitfile").unlink()
    (out / "Kitfile").mkdir()
    with pytest.raises(UnpackError, match="exists and is not a regular file$"):
        unpack("demo:v1", dir=out, overwrite=True)
    # a directory entry where a file is
    out2 = tmp_path / "out2"
    write(out2 / "src", "not a dir")
    with pytest.raises(UnpackError, match="^failed to unpack: path 'src' already exists and is "
                                          "not a directory$"):
        unpack("demo:v1", dir=out2, filters=["code"])
    # an existing directory where a file goes
    out3 = tmp_path / "out3"
    (out3 / "model.bin").mkdir(parents=True)
    with pytest.raises(UnpackError, match="already exists and is not a regular file$"):
        unpack("demo:v1", dir=out3, filters=["model"], overwrite=True)


def test_corrupted_blob_leaves_no_file(packed, tmp_path):
    store = LocalStore()
    manifest = store.read_manifest(store.resolve_descriptor("localhost/demo", "v1"))
    path = store.blob_path(manifest.layers[0].digest)
    data = bytearray(path.read_bytes())
    data[700] ^= 0xFF  # inside model.bin's content
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(StorageError, match="is corrupt"):
        unpack("demo:v1", dir=out, filters=["model"])
    assert tree(out) == {}  # neither model.bin nor a temp file


def test_gzip_round_trip(kitops_home, tmp_path, monkeypatch):
    no_remote(monkeypatch)
    ctx = make_context(tmp_path)
    pack(ctx, tag="gz:v1", compression="gzip-fastest")
    out = tmp_path / "out"
    unpack("gz:v1", dir=out)
    for name in FILES:
        assert (out / name).read_bytes() == (ctx / name).read_bytes()


def _store_variant(store: LocalStore, mutate) -> str:
    """Re-store demo:v1 with a changed config/manifest; returns the new tag."""
    stored = store.read_manifest(store.resolve_descriptor("localhost/demo", "v1"))
    manifest, config = mutate(json.loads(stored.raw), json.loads(store.read_blob(stored.config)))
    manifest["config"] = store.put_bytes(json.dumps(config).encode(),
                                         manifest["config"]["mediaType"]).to_json()
    store.add_manifest("localhost/demo", Manifest.parse(json.dumps(manifest).encode()),
                       ["variant"])
    return "demo:variant"


def test_a_config_too_deep_for_a_kitfile_is_one_line(packed, tmp_path):
    """A stored ModelKit whose config nests its parameters 900 levels deep (a registry may
    serve one; Python's json reads it, the Kitfile writers could not write it back out):
    ``unpack`` and ``info`` answer one KitfileError line; nothing is written."""
    def deep(manifest, config):
        config["model"]["parameters"] = json.loads("[" * 900 + "]" * 900)  # json's own bound
        return manifest, config

    store = LocalStore()
    ref = _store_variant(store, deep)
    raw = store.read_blob(store.read_manifest(store.resolve_descriptor(
        "localhost/demo", "variant")).config)
    assert raw.count(b"[") >= 900
    for run in (lambda: unpack(ref, dir=tmp_path / "out"), lambda: info(ref)):
        with pytest.raises(KitfileError) as err:
            run()
        assert "\n" not in str(err.value) and "nested deeper than 250 levels" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_entry_whose_digest_no_layer_has(packed, tmp_path):
    """The newest kit finds each entry's layer by digest (``generateUnpackPlan``): an entry
    whose digest is in no layer fails the plan, before anything is written."""
    store = LocalStore()
    zeros = "sha256:" + "0" * 64

    def mutate(manifest, config):
        config["code"][0]["digest"] = zeros
        return manifest, config

    ref = _store_variant(store, mutate)
    with pytest.raises(UnpackError) as info:
        unpack(ref, dir=tmp_path / "out")
    assert str(info.value) == f"failed to plan unpack: digest {zeros} not found in manifest"
    assert not (tmp_path / "out").exists()


def test_layer_no_entry_names_is_left_out(packed, tmp_path):
    """A layer that no Kitfile entry names (here one of a media type nobody knows) is not
    unpacked, silently, as in kit; an entry naming such a layer fails the plan with kit's
    media-type text."""
    store = LocalStore()
    odd = store.put_bytes(b"not a layer", "application/x-something")

    def extra(manifest, config):
        manifest["layers"].append(odd.to_json())
        return manifest, config

    rep = NullReporter()
    unpack(_store_variant(store, extra), dir=tmp_path / "out", reporter=rep)
    assert not [m for level, m in rep.messages if "media type" in m]
    assert odd.digest not in {x["digest"] for x in unpack("demo:variant",
                                                           dir=tmp_path / "again").layers}

    def named(manifest, config):
        manifest["layers"].append(odd.to_json())
        config["code"][0]["digest"] = odd.digest
        return manifest, config

    with pytest.raises(UnpackError, match="^failed to plan unpack: unrecognized media type "
                                          "application/x-something$"):
        unpack(_store_variant(store, named), dir=tmp_path / "out2")


def test_positional_matching_skips_remote_datasets(kitops_home, tmp_path, monkeypatch):
    """A dataset layer belongs to the next dataset *without* remotePath (since #1085)."""
    no_remote(monkeypatch)
    kitfile = KITFILE.replace("datasets:\n", "datasets:\n  - name: far\n    path: far/x.csv\n"
                              "    remotePath: s3://b/far.csv\n    remoteHash: abc\n")
    ctx = make_context(tmp_path, kitfile=kitfile)
    pack(ctx, tag="pos:v1")
    rep = NullReporter()
    res = unpack("pos:v1", dir=tmp_path / "out", reporter=rep, filters=["datasets"])
    assert [(x["name"], x["path"]) for x in res.layers] == [("train", "data/train")]
    assert (tmp_path / "out" / "data" / "train" / "a.csv").exists()


def _store_code_layer(store: LocalStore, tar_bytes: bytes,
                      media_type: str = "application/vnd.kitops.modelkit.code.v1.tar") -> str:
    """demo:v1 re-stored with a hand-made (possibly hostile) tar as its only code layer."""
    evil = store.put_bytes(tar_bytes, media_type)

    def mutate(manifest, config):
        layer = dict(manifest["layers"][1], mediaType=media_type, digest=evil.digest,
                     size=evil.size)
        manifest["layers"] = [layer]
        code = dict(config["code"][0], digest=evil.digest)
        # the layer is the ModelKit's only one, so the code entry is its only entry (the
        # newest kit plans the unpack from the entries' digests)
        config = {"manifestVersion": config["manifestVersion"], "package": config["package"],
                  "code": [code]}
        return manifest, config

    return _store_variant(store, mutate)


def test_unsafe_archive_entries_are_refused(packed, tmp_path):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"evil"))
    ref = _store_code_layer(LocalStore(), buf.getvalue())
    with pytest.raises(UnpackError, match="illegal file path: ../evil.txt"):
        unpack(ref, dir=tmp_path / "out", filters=["code"])
    assert not (tmp_path / "evil.txt").exists()


def test_parent_modelkit_reference(kitops_home, tmp_path):
    """model.path naming another ModelKit: pack makes no model layer and leaves the parent's
    paths out; unpack unpacks the parent's model first (spec §6.4)."""
    base = tmp_path / "base"
    write(base / "Kitfile", "manifestVersion: 1.0.0\nmodel:\n  name: base\n  path: weights\n")
    write(base / "weights" / "w.bin", b"W" * 1000)
    pack(base, tag="base:v1")
    child = tmp_path / "child"
    write(child / "Kitfile", "manifestVersion: 1.0.0\nmodel:\n  name: tuned\n  path: base:v1\n"
                             "code:\n  - path: .\n")
    write(child / "train.py", "fit()\n")
    write(child / "weights" / "stale.bin", b"old")  # the parent's layer path: not packed
    res = pack(child, tag="child:v1")
    assert [x["mediaType"].split(".")[-3] for x in res.layers] == ["code"]
    assert res.config["model"] == {"name": "tuned", "path": "base:v1"}
    rep = NullReporter()
    out = tmp_path / "out"
    unpack("child:v1", dir=out, reporter=rep)
    assert (out / "weights" / "w.bin").read_bytes() == b"W" * 1000
    assert not (out / "weights" / "stale.bin").exists()
    assert (out / "train.py").exists()
    assert ("info", "Unpacking referenced ModelKit base:v1") in rep.messages
    # a filter without model skips the parent entirely
    out2 = tmp_path / "out2"
    unpack("child:v1", dir=out2, filters=["code"])
    assert not (out2 / "weights").exists() and (out2 / "train.py").exists()


def _entry(kind: str):
    import tarfile

    info = tarfile.TarInfo("src/entry")
    if kind == "absolute":
        info.name = "/tmp/kit-jupyter-absolute-evil"
        info.size = 4
    elif kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, "src/a.py"
    elif kind == "chardev":
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    elif kind == "fifo":
        info.type = tarfile.FIFOTYPE
    return info


@pytest.mark.parametrize("kind, message", [
    ("absolute", "illegal file path: /tmp/kit-jupyter-absolute-evil"),
    ("symlink", "unrecognized type in archive: src/entry"),
    ("hardlink", "unrecognized type in archive: src/entry"),
    ("chardev", "unrecognized type in archive: src/entry"),
    ("fifo", "unrecognized type in archive: src/entry"),
])
def test_links_devices_and_absolute_names_are_refused(packed, tmp_path, kind, message):
    """A hostile layer (built by hand, not by pack) writes nothing, not even its good files."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        good = tarfile.TarInfo("src/good.txt")
        good.size = 2
        tf.addfile(good, io.BytesIO(b"ok"))
        bad = _entry(kind)
        tf.addfile(bad, io.BytesIO(b"evil") if bad.size else None)
    ref = _store_code_layer(LocalStore(), buf.getvalue())
    out = tmp_path / "out"
    with pytest.raises(UnpackError, match=message):
        unpack(ref, dir=out, filters=["code"])
    assert not Path("/tmp/kit-jupyter-absolute-evil").exists()
    written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert written == []


@pytest.mark.parametrize("meta, mode", [
    ('{"mode": 384}', 0o600),
    ('{"mode": 0}', 0o644),
    ('{"mode": "384"}', 0o644),
    ("[]", 0o644),
    ("not json", 0o644),
    ("[" * 100_000, 0o644),  # past json's recursion bound: still the default, no traceback
])
def test_a_raw_layer_s_mode_comes_from_its_metadata_or_is_0644(meta, mode):
    assert _raw_mode({ANNOTATION_FILE_METADATA: meta}) == mode


def test_kits_deprecated_flags_filter_unless_filter_is_given(packed, tmp_path):
    """kit unpack still takes ``--kitfile --model --code --datasets --docs`` (one filter of
    those types) and ignores them when ``-f/--filter`` is given (kit's unpackOptions.complete);
    ``-f`` is ``--filter``'s short form."""
    def run(*flags: str) -> list[str]:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        assert main(["unpack", "demo:v1", "-d", str(out), "--progress", "none", *flags]) == 0
        return sorted(tree(out))

    assert run("--model", "--kitfile") == ["Kitfile", "model.bin"]
    assert run("--datasets", "--docs") == ["README.md", "data/train/a.csv"]
    assert run("--code") == ["src/train.py"]
    assert run("--model", "-f", "code") == ["src/train.py"]
    assert run("--model", "--filter", "docs", "-f", "prompts") == ["README.md",
                                                                   "prompts/system.txt"]
