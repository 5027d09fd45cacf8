"""unpack's fast path (kernel copy from the blob file + background sha256): nothing is renamed
into place before the blob verified, corrupt/truncated/garbled blobs leave nothing behind, the
fallbacks (sendfile, pread/pwrite) give the same files, interrupts leave no thread or temp file."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from pathlib import Path

import pytest

from kit_jupyter.commands.pack import pack
from kit_jupyter.commands.unpack import unpack
from kit_jupyter.errors import StorageError, UnpackError
from kit_jupyter.oci.extract import FileInput
from kit_jupyter.oci.store import BackgroundVerifier, LocalStore

KITFILE = """\
manifestVersion: 1.0.0
model:
  name: m
  path: model.bin
code:
  - path: src
"""
MODEL = bytes(range(256)) * 1000 + b"tail"  # 256004 bytes: not a multiple of 512


def files(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def packed(kitops_home, tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "src" / "pkg").mkdir(parents=True)
    (ctx / "Kitfile").write_text(KITFILE)
    (ctx / "model.bin").write_bytes(MODEL)
    (ctx / "src" / "a.py").write_text("print('a')\n")
    (ctx / "src" / "pkg" / "b.py").write_bytes(b"b" * 5000)
    (ctx / "src" / "empty.txt").write_bytes(b"")
    pack(ctx, tag="speed:v1")
    store = LocalStore()
    stored = store.read_manifest(store.resolve_descriptor("localhost/speed", "v1"))
    manifest = json.loads(stored.raw)
    return ctx, store, manifest


def _rewrite_blob(store: LocalStore, digest: str, change) -> None:
    path = store.blob_path(digest)
    data = bytearray(path.read_bytes())
    data = change(data)
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


def _flip(offset: int):
    def change(data: bytearray) -> bytearray:
        data[offset] ^= 0xFF
        return data
    return change


def test_fast_path_round_trip_uses_kernel_copy(packed, tmp_path, monkeypatch):
    ctx, _, _ = packed
    calls = []
    real = os.copy_file_range

    def counting(*args):
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(os, "copy_file_range", counting)
    out = tmp_path / "out"
    unpack("speed:v1", dir=out)
    got = files(out)
    assert got["model.bin"] == MODEL
    assert got["src/pkg/b.py"] == b"b" * 5000
    assert got["src/empty.txt"] == b""
    # the model goes file to file in the kernel; small members are written from the blob's
    # read-ahead window (FileInput)
    assert sum(calls) == len(MODEL)
    assert not [p for p in out.rglob("*.part")]


@pytest.mark.parametrize("broken", ["copy_file_range", "sendfile"])
def test_fallbacks_give_identical_files(packed, tmp_path, monkeypatch, broken):
    def refuse(*_args):
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    if broken == "sendfile":
        monkeypatch.setattr(os, "sendfile", refuse)
    out = tmp_path / "out"
    unpack("speed:v1", dir=out)
    got = files(out)
    assert got["model.bin"] == MODEL
    assert got["src/a.py"] == b"print('a')\n"


@pytest.mark.parametrize("where", ["content", "header", "truncated", "appended"])
def test_corrupt_blob_leaves_nothing(packed, tmp_path, where):
    _, store, manifest = packed
    model = manifest["layers"][0]
    if where == "content":
        change = _flip(512 + 100_000)
    elif where == "header":
        change = _flip(100)  # mode field of the first header: checksum no longer matches
    elif where == "truncated":
        def change(data: bytearray) -> bytearray:
            return data[:-2048]
    else:
        def change(data: bytearray) -> bytearray:
            return data + b"\0" * 512
    _rewrite_blob(store, model["digest"], change)
    out = tmp_path / "out"
    with pytest.raises(StorageError, match="is corrupt"):
        unpack("speed:v1", dir=out, filters=["model"])
    assert files(out) == {}  # neither model.bin nor a temp file


def test_corrupt_blob_keeps_existing_file_with_overwrite(packed, tmp_path):
    _, store, manifest = packed
    code = manifest["layers"][1]
    _rewrite_blob(store, code["digest"], _flip(code["size"] - 1500))  # trailing zero blocks
    out = tmp_path / "out"
    (out / "src").mkdir(parents=True)
    (out / "src" / "a.py").write_text("mine\n")
    with pytest.raises(StorageError, match="is corrupt"):
        unpack("speed:v1", dir=out, filters=["code"], overwrite=True)
    assert files(out) == {"src/a.py": b"mine\n"}


def test_nothing_renamed_before_verification_ends(packed, tmp_path, monkeypatch):
    gate = threading.Event()
    hashing = threading.Event()
    real = BackgroundVerifier._hash

    def slow_hash(self):
        hashing.set()
        assert gate.wait(10)
        real(self)

    monkeypatch.setattr(BackgroundVerifier, "_hash", slow_hash)
    out = tmp_path / "out"
    errors: list[BaseException] = []

    def run():
        try:
            unpack("speed:v1", dir=out, filters=["model"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert hashing.wait(10)
        deadline = time.monotonic() + 10
        parts: list[Path] = []
        while time.monotonic() < deadline:
            parts = [p for p in out.glob(".model.bin.*.part") if p.stat().st_size == len(MODEL)]
            if parts:
                break
            time.sleep(0.01)
        assert parts, "the copy should finish while the hash is held back"
        time.sleep(0.05)
        assert not (out / "model.bin").exists()
    finally:
        gate.set()
        worker.join(10)
    assert not errors
    assert (out / "model.bin").read_bytes() == MODEL
    assert not list(out.glob("*.part"))


def test_interrupt_during_copy_leaves_no_temp_and_no_thread(packed, tmp_path, monkeypatch):
    def interrupted(self, out, size):
        raise KeyboardInterrupt

    monkeypatch.setattr(FileInput, "copy_to", interrupted)
    before = {t.ident for t in threading.enumerate()}
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        unpack("speed:v1", dir=out, filters=["model"])
    assert files(out) == {}
    assert {t.ident for t in threading.enumerate()
            if t.name.startswith(("verify ", "kit-background-sync"))} - before == set()


def test_existing_file_error_stops_hashing(packed, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.bin").write_bytes(b"old")
    with pytest.raises(UnpackError, match="^failed to unpack: path 'model.bin' already exists$"):
        unpack("speed:v1", dir=out, filters=["model"])
    assert files(out) == {"model.bin": b"old"}
    assert not [t for t in threading.enumerate() if t.name.startswith("verify ")]


class _StreamOnly:
    """A BlobSource that is not a LocalStore: exercises the streaming path."""

    def __init__(self, store: LocalStore):
        self._store = store

    def resolve(self, ref):
        return self._store.resolve(ref)

    def open_blob(self, descriptor):
        return self._store.open_blob(descriptor)


def test_streaming_path_still_verifies(packed, tmp_path):
    _, store, manifest = packed
    out = tmp_path / "ok"
    unpack("speed:v1", dir=out, source=_StreamOnly(store))
    assert files(out)["model.bin"] == MODEL
    _rewrite_blob(store, manifest["layers"][0]["digest"], _flip(512 + 7))
    bad = tmp_path / "bad"
    with pytest.raises(StorageError, match="is corrupt"):
        unpack("speed:v1", dir=bad, filters=["model"], source=_StreamOnly(store))
    assert files(bad) == {}


def test_background_verifier_reports_progress_and_mismatch(tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(b"x" * 10_000)

    class Task:
        done = 0

        def advance(self, n):
            Task.done += n

    import hashlib

    good = "sha256:" + hashlib.sha256(b"x" * 10_000).hexdigest()
    BackgroundVerifier(blob, good, 10_000, task=Task(), chunk=4096).start().result()
    assert Task.done == 10_000
    with pytest.raises(StorageError, match="larger than its descriptor size 9999"):
        BackgroundVerifier(blob, good, 9999, chunk=4096).start().result()
    with pytest.raises(StorageError, match="content hashes to"):
        BackgroundVerifier(blob, "sha256:" + "0" * 64, None).start().result()


@pytest.mark.parametrize("fail", [False, True])
def test_large_members_are_flushed_while_written(packed, tmp_path, monkeypatch, flush_spy,
                                                 fail):
    """A member fsynced as soon as it is written (from ``_SYNC_AT_ONCE`` bytes, lowered here
    so the model is one) is also flushed while it is written; the small ones are not (one
    syncfs at commit covers them), and the passes end with the write. An I/O error a pass met
    fails the unpack in one line and leaves nothing behind: Linux reports such an error once,
    so the fsync after it would not have."""
    import kit_jupyter.oci.extract as extract

    monkeypatch.setattr(extract, "_SYNC_AT_ONCE", 100_000)
    flush_spy.watch(extract, fail=fail)
    out = tmp_path / "out"
    if fail:
        with pytest.raises(UnpackError, match=r"^failed to unpack: model\.bin: .*Input/output"):
            unpack("speed:v1", dir=out)
        assert not out.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    else:
        unpack("speed:v1", dir=out)
        assert files(out)["model.bin"] == MODEL
    assert [Path(f).name.split(".kj-")[0] for f in flush_spy.files] == [".model.bin"]
    assert flush_spy.all_ended


@pytest.mark.parametrize("fail", [False, True])
def test_pack_flushes_each_layer_blob_while_written(kitops_home, tmp_path, flush_spy, fail):
    """Every layer blob pack writes is flushed while it is written (the fsync before it goes
    into storage then finds little left); an I/O error a pass met fails the pack and leaves
    no blob file behind."""
    import kit_jupyter.oci.layers as layers

    flush_spy.watch(layers, fail=fail)
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "Kitfile").write_text(KITFILE)
    (ctx / "model.bin").write_bytes(MODEL)
    (ctx / "src" / "a.py").write_text("print('a')\n")
    if fail:
        with pytest.raises(OSError) as err:  # worded by the adapters, as a full disk is
            pack(ctx, tag="flushed:v1")
        assert err.value.errno == errno.EIO and err.value.filename  # names the directory
        assert not [p for p in kitops_home.rglob("kitops_layer_*")]
    else:
        pack(ctx, tag="flushed:v1")
    names = [Path(f).name for f in flush_spy.files]
    assert len(names) == (1 if fail else 2) and all(n.startswith("kitops_layer_") for n in names)
    assert flush_spy.all_ended
