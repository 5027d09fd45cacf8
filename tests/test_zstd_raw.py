"""zstd and raw layers (issue 12): what we write is what kit's decoder reads, what we read is
bounded and refused in one line when hostile, and both work end to end through the CLI, ``%kit``
and a real registry (docker-registry on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from kit_jupyter.__main__ import main
from kit_jupyter.commands.results import layer_type
from kit_jupyter.errors import KitError, UnpackError
from kit_jupyter.oci.compression import ZSTD_MAX_WINDOW, ZstdFrames, ZstdReader
from kit_jupyter.oci.extract import Extraction, StreamInput
from kit_jupyter.oci.layers import pack_layer_to_file, pack_raw_layer_to_file
from kit_jupyter.oci.mediatypes import MediaTypeError, check_save_options
from kit_jupyter.oci.store import LocalStore
from tests.test_extract import directory, make_tar, reg
from tests.test_unpack import _store_code_layer, packed  # noqa: F401 - a fixture
from tests.test_unpack_hostile import kit as kit_process
from tests.test_unpack_hostile import refused, tree

KITFILE = """manifestVersion: 1.0.0
package:
  name: zr
model:
  path: model.bin
datasets:
  - name: d
    path: data/train.csv
docs:
  - path: README.md
"""


def make_context(root: Path) -> Path:
    ctx = root / "ctx"
    (ctx / "data").mkdir(parents=True)
    (ctx / "Kitfile").write_text(KITFILE)
    (ctx / "model.bin").write_bytes(os.urandom(3000) + b"\0" * 200_000)
    (ctx / "model.bin").chmod(0o755)
    (ctx / "data" / "train.csv").write_text("x,y\n1,2\n" * 1000)
    (ctx / "README.md").write_text("# zr\n")
    return ctx


def kit(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def stored_manifest(ref: str = "localhost/zr", tag: str = "v1") -> dict:
    store = LocalStore()
    return json.loads(store.read_manifest(store.resolve_descriptor(ref, tag)).raw)


def zstd_frame(data: bytes, **params) -> bytes:
    """One streamed frame (no content size unless asked), as a writer that does not know
    the length up front produces it."""
    cp = zstandard.ZstdCompressionParameters.from_level(3, **params)
    obj = zstandard.ZstdCompressor(compression_params=cp).compressobj()
    return obj.compress(data) + obj.flush()


# -- what we write ------------------------------------------------------------------------------

def test_zstd_layers_stay_within_what_kits_decoder_accepts(tmp_path):
    """klauspost's default decoder takes windows up to 512 MiB; we write level 3 (kit's
    SpeedDefault) with a checksum, and the layer decodes to the tar its diffId names."""
    ctx = make_context(tmp_path)
    packed_layer = pack_layer_to_file(ctx, ".", tmp_path / "tmp", base="model",
                                      compression="zstd")
    try:
        blob = packed_layer.path.read_bytes()
    finally:
        packed_layer.discard()
    assert packed_layer.media_type == "application/vnd.kitops.modelkit.model.v1.tar+zstd"
    params = zstandard.get_frame_parameters(blob)
    assert params.has_checksum and params.window_size <= 8 << 20
    tar = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)).read()
    assert "sha256:" + hashlib.sha256(tar).hexdigest() == packed_layer.diff_id
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == packed_layer.digest


def test_modelpack_refuses_compressed_raw_layers_in_kits_words():
    check_save_options("kit", "raw", "zstd")
    check_save_options("modelpack", "raw", "none")
    check_save_options("modelpack", "tar", "zstd")
    with pytest.raises(MediaTypeError, match="^compression for raw layers is not supported for "
                                             "ModelPack$"):
        check_save_options("modelpack", "raw", "gzip")


# -- the frame walker -------------------------------------------------------------------------

_frame = st.tuples(st.binary(max_size=3000), st.integers(0, 3), st.booleans(), st.booleans(),
                   st.booleans())


def _frames_bytes(specs) -> tuple[bytes, list[int]]:
    out, ends = b"", []
    for payload, repeat, checksum, size, skippable in specs:
        data = payload * (repeat * 50 + 1)
        if skippable:
            out += (0x184D2A53).to_bytes(4, "little") + len(payload).to_bytes(4, "little") \
                + payload
        else:
            out += zstandard.ZstdCompressor(level=3, write_checksum=checksum,
                                            write_content_size=size).compress(data)
        ends.append(len(out))
    return out, ends


@settings(max_examples=150, deadline=None)
@given(specs=st.lists(_frame, min_size=1, max_size=4), cuts=st.lists(st.integers(0, 10_000),
                                                                     max_size=5))
def test_property_frame_walker_knows_every_frame_end(specs, cuts):
    """Fed in arbitrary pieces, the walker is on a boundary exactly where a frame ends."""
    data, ends = _frames_bytes(specs)
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    frames = ZstdFrames()
    for lo, hi in zip(points, points[1:], strict=False):
        frames.feed(data[lo:hi])
        assert frames.at_boundary == (hi in ends), (hi, ends)
    assert frames.frames == len(specs)


# -- the decoding path of extract.py ----------------------------------------------------------

_TAR = make_tar([directory("d", 0o755), reg("d/a.txt", b"alpha" * 400), reg("b", b"")])
_ZTAR = zstd_frame(_TAR)


def _extract_zstd(data: bytes, target: Path, raw: bool = False) -> None:
    with Extraction(target) as tx:
        inp = StreamInput(io.BytesIO(data), compression="zstd")
        if raw:
            tx.raw(inp, "model.bin", 0o644)
        else:
            tx.tar(inp)
        inp.drain()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(0, len(_ZTAR)), flips=st.lists(st.tuples(st.integers(0, len(_ZTAR) - 1),
                                                                st.integers(1, 255)), max_size=3),
       tail=st.binary(max_size=64), raw=st.booleans())
def test_property_zstd_layers_only_raise_our_one_line_errors(cut, flips, tail, raw):
    """Cut, flipped and extended zstd streams: a clean unpack or one KitError line, and a
    refused unpack leaves nothing behind."""
    b = bytearray(_ZTAR[:cut])
    for at, x in flips:
        if at < len(b):
            b[at] ^= x
    with tempfile.TemporaryDirectory() as sandbox:
        target = Path(sandbox) / "t"
        try:
            _extract_zstd(bytes(b) + tail, target, raw)
        except KitError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("failed to unpack")
            event(f"refused: {str(exc).split(':')[1].strip()}")
            assert not target.exists()
        else:
            event("extracted")


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2000), raw=st.booleans())
def test_property_random_bytes_as_zstd_only_raise_our_errors(data, raw):
    with tempfile.TemporaryDirectory() as sandbox:
        target = Path(sandbox) / "t"
        try:
            _extract_zstd(data, target, raw)
        except KitError as exc:
            assert "\n" not in str(exc)
            assert not target.exists()


def test_truncated_zstd_is_refused_even_after_the_archive_ends(tmp_path):
    """Cut inside the last frame (its checksum): the tar reader has all it needs and libzstd
    says nothing, but the stream did not end on a frame boundary."""
    for raw in (False, True):
        with pytest.raises(UnpackError, match="^failed to unpack: layer is not valid zstd: "
                                              "unexpected EOF$"):
            _extract_zstd(_ZTAR[:-2], tmp_path / f"t{raw}", raw)
        assert not (tmp_path / f"t{raw}").exists()


def test_a_window_beyond_the_cap_is_refused_before_any_allocation(tmp_path):
    bomb = zstd_frame(b"x" * 1000, window_log=30)
    assert zstandard.get_frame_parameters(bomb).window_size > ZSTD_MAX_WINDOW
    with pytest.raises(UnpackError, match=r"^failed to unpack: layer is not valid zstd: window "
                                          r"size exceeded \(more than 128 MiB\)$"):
        _extract_zstd(bomb, tmp_path / "t")


def test_what_follows_the_archive_is_drained_not_decoded(tmp_path):
    """kit stops at the archive's end; so do we: 4 GiB of zeros behind it (a few hundred KiB
    compressed) are hashed for the digest, never inflated."""
    obj = zstandard.ZstdCompressor(level=3).compressobj()
    chunk = bytes(64 << 20)
    parts = [obj.compress(_TAR)] + [obj.compress(chunk) for _ in range(64)] + [obj.flush()]
    data = b"".join(parts)
    assert len(data) < 1 << 20
    decoded = 0
    real = ZstdReader.readinto

    def counting(self, buffer):
        nonlocal decoded
        n = real(self, buffer)
        decoded += n
        return n

    ZstdReader.readinto = counting  # type: ignore[method-assign]
    try:
        _extract_zstd(data, tmp_path / "t")
    finally:
        ZstdReader.readinto = real  # type: ignore[method-assign]
    assert (tmp_path / "t" / "d" / "a.txt").read_bytes() == b"alpha" * 400
    assert decoded < 4 << 20


# -- hostile layers through the CLI (a child process: one line, exit 1, bounded RSS) ---------

ZSTD_CODE = "application/vnd.kitops.modelkit.code.v1.tar+zstd"


@pytest.mark.parametrize("case, data, line", [
    ("window of 1 GiB", zstd_frame(_TAR, window_log=30),
     "[ERROR] Failed to unpack: layer is not valid zstd: window size exceeded (more than 128 "
     "MiB)"),
    ("truncated", _ZTAR[:-3],
     "[ERROR] Failed to unpack: layer is not valid zstd: unexpected EOF"),
    ("not zstd", b"PK\x03\x04" + bytes(600),
     "[ERROR] Failed to unpack: layer is not valid zstd: invalid input: magic number mismatch"),
])
def test_hostile_zstd_layers_are_refused_with_one_line(packed, tmp_path, case, data,  # noqa: F811
                                                       line):
    ref = _store_code_layer(LocalStore(), data, ZSTD_CODE)
    before = tree(tmp_path)
    assert refused(ref, tmp_path / "new" / "out", "-o") == line
    assert tree(tmp_path) == before


def test_a_zstd_blob_that_does_not_match_its_digest_is_reported_as_corrupt(packed,  # noqa: F811
                                                                           tmp_path):
    store = LocalStore()
    ref = _store_code_layer(store, _ZTAR, ZSTD_CODE)
    digest = "sha256:" + hashlib.sha256(_ZTAR).hexdigest()
    blob = store.blob_path(digest)
    os.chmod(blob, 0o644)
    blob.write_bytes(_ZTAR[:40] + bytes([_ZTAR[40] ^ 0xFF]) + _ZTAR[41:])
    line = refused(ref, tmp_path / "out", "-o")
    assert f"{digest} is corrupt" in line
    assert not (tmp_path / "out").exists()


# -- end to end: CLI, %kit, registry ----------------------------------------------------------

FLAGS = [("--compression", "zstd"), ("--layer-format", "raw"),
         ("--layer-format", "raw", "--compression", "zstd"),
         ("--layer-format", "raw", "--compression", "gzip")]


@pytest.mark.parametrize("flags", FLAGS, ids=["zstd", "raw", "raw-zstd", "raw-gzip"])
def test_cli_pack_and_unpack(kitops_home, tmp_path, capsys, flags):
    ctx = make_context(tmp_path)
    code, out, err = kit(capsys, "pack", str(ctx), "-t", "zr:v1", "--progress", "none", *flags)
    assert code == 0, err
    fmt = "raw" if "raw" in flags else "tar"
    comp = flags[-1] if "--compression" in flags else ""
    suffix = f"{fmt}+{comp}" if comp else fmt
    manifest = stored_manifest()
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        f"application/vnd.kitops.modelkit.{b}.v1.{suffix}" for b in ("model", "dataset", "docs")]
    for layer in manifest["layers"]:
        meta = layer["annotations"].get("org.cncf.model.file.metadata+json")
        assert (meta is not None) == (fmt == "raw")
    if fmt == "raw":
        meta = json.loads(manifest["layers"][0]["annotations"]
                          ["org.cncf.model.file.metadata+json"])
        assert meta["name"] == "model.bin" and meta["mode"] == 0o755 and meta["typeflag"] == 48
    assert "Saved model layer" in out
    out_dir = tmp_path / "out"
    code, _, err = kit(capsys, "unpack", "zr:v1", "-d", str(out_dir), "--progress", "none")
    assert code == 0, err
    for name in ("model.bin", "data/train.csv", "README.md"):
        assert (out_dir / name).read_bytes() == (ctx / name).read_bytes()
    if fmt == "raw":
        assert (out_dir / "model.bin").stat().st_mode & 0o777 == 0o755 & ~_umask()
    code, again, _ = kit(capsys, "pack", str(ctx), "-t", "zr:v2", "--progress", "none", *flags)
    assert code == 0 and "Already saved model layer" in again


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("make, line", [
    (lambda ctx: None, "[ERROR] Failed to pack model kit: file data is not a regular file"),
    (lambda ctx: (ctx / "model.bin").unlink() or (ctx / "model.bin").symlink_to("README.md"),
     "[ERROR] Failed to pack model kit: file model.bin is not a regular file"),
])
def test_cli_raw_refuses_what_is_not_one_file_before_writing_a_blob(kitops_home, tmp_path,
                                                                   capsys, make, line):
    ctx = make_context(tmp_path)
    (ctx / "Kitfile").write_text(KITFILE.replace("data/train.csv", "data"))
    make(ctx)
    code, out, err = kit(capsys, "pack", str(ctx), "-t", "zr:v1", "--layer-format", "raw",
                         "--progress", "none")
    assert code == 1 and err.strip() == line, err
    blobs = kitops_home / "storage" / "blobs" / "sha256"
    assert not blobs.exists() or not any(blobs.iterdir())


def test_magics_pack_unpack_zstd_and_raw(ip, kitops_home, tmp_path):
    ctx = make_context(tmp_path)
    res = ip.run_line_magic("kit", f"pack {ctx} -t zr:v1 --compression zstd --layer-format raw "
                                   "--progress none")
    assert all(layer["mediaType"].endswith(".v1.raw+zstd") for layer in res.layers)
    ip.run_line_magic("kit", f"unpack zr:v1 -d {tmp_path / 'out'} --progress none")
    assert (tmp_path / "out" / "model.bin").read_bytes() == (ctx / "model.bin").read_bytes()
    (ctx / "Kitfile").write_text(KITFILE.replace("data/train.csv", "data"))
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("kit", f"pack {ctx} --layer-format raw --progress none")
    assert type(info.value) is UsageError
    assert str(info.value) == "Failed to pack model kit: file data is not a regular file"


def test_registry_round_trip_of_zstd_and_raw_layers(registry, kitops_home, tmp_path, capsys):
    """push, unpack straight from the registry (the streaming zstd path), pull, inspect, info
    and diff all take the new media types."""
    ctx = make_context(tmp_path)
    ref = f"{registry.host}/acme/zr"
    net = ("--plain-http", "--progress", "none")
    assert kit(capsys, "pack", str(ctx), "-t", f"{ref}:zstd", "--compression", "zstd",
               "--progress", "none")[0] == 0
    assert kit(capsys, "pack", str(ctx), "-t", f"{ref}:raw", "--layer-format", "raw",
               "--compression", "zstd", "--progress", "none")[0] == 0
    for tag in ("zstd", "raw"):
        code, _, err = kit(capsys, "push", f"{ref}:{tag}", *net)
        assert code == 0, err
    assert kit(capsys, "remove", f"{ref}:zstd")[0] == 0
    assert kit(capsys, "remove", f"{ref}:raw")[0] == 0
    for tag in ("zstd", "raw"):
        out_dir = tmp_path / f"out-{tag}"
        code, _, err = kit(capsys, "unpack", f"{ref}:{tag}", "-d", str(out_dir), *net)
        assert code == 0, err
        assert (out_dir / "model.bin").read_bytes() == (ctx / "model.bin").read_bytes()
        assert (out_dir / "data" / "train.csv").read_bytes() == \
            (ctx / "data" / "train.csv").read_bytes()
        code, _, err = kit(capsys, "pull", f"{ref}:{tag}", *net)
        assert code == 0, err
        code, out, err = kit(capsys, "inspect", f"{ref}:{tag}")
        assert code == 0 and ("+zstd" in out), err
        code, out, err = kit(capsys, "info", f"{ref}:{tag}")
        assert code == 0, err
    code, out, err = kit(capsys, "diff", f"{ref}:zstd", f"{ref}:raw")
    assert code == 0, err


def test_peak_rss_of_a_zstd_unpack_is_bounded(packed, tmp_path):  # noqa: F811
    """A zstd code layer of 256 MiB (mostly zeros, so small on disk) through the CLI child:
    peak RSS stays far below the layer's size."""
    obj = zstandard.ZstdCompressor(level=3).compressobj()
    tar = io.BytesIO()
    big = make_tar([reg("big.bin", b"")])[:512]
    head = bytearray(big)
    size = 256 << 20
    head[124:136] = format(size, "011o").encode() + b"\0"
    head[148:156] = b" " * 8
    head[148:156] = format(sum(head), "06o").encode() + b"\0 "
    tar.write(obj.compress(bytes(head)))
    chunk = bytes(16 << 20)
    for _ in range(size // len(chunk)):
        tar.write(obj.compress(chunk))
    tar.write(obj.compress(bytes(1024)))
    tar.write(obj.flush())
    ref = _store_code_layer(LocalStore(), tar.getvalue(), ZSTD_CODE)
    code, _, stderr, rss = kit_process("unpack", ref, "-d", str(tmp_path / "out"),
                                       "--progress", "none")
    assert code == 0, stderr
    assert (tmp_path / "out" / "big.bin").stat().st_size == size
    assert rss < 150 << 20, f"peak RSS {rss / 2**20:.0f} MiB"


@pytest.mark.parametrize("media_type, shown", [
    ("application/vnd.kitops.modelkit.model.v1.tar", "model"),
    ("application/vnd.kitops.modelkit.model.v1.tar+zstd", "model (zstd)"),
    ("application/vnd.kitops.modelkit.dataset.v1.raw", "dataset (raw)"),
    ("application/vnd.kitops.modelkit.docs.v1.raw+gzip", "docs (raw, gzip)"),
    ("application/vnd.kitops.modelkit.mcpb.v1.raw", "mcpb"),
])
def test_tables_say_when_a_layer_is_raw_or_compressed(media_type, shown):
    assert layer_type(media_type) == shown


# -- kit's own zstd (klauspost/compress, tests/data/zstd/) --------------------------------------

ZSTD_DATA = Path(__file__).parent / "data" / "zstd"
GOLDEN_TAR_SHA256 = "e0b4012243d4acb33de4acfbddc9589350eb8e0fdd4851d0dc2694fcfd44b585"


def test_a_layer_compressed_by_kits_encoder_unpacks(tmp_path):
    """Golden data from klauspost's default writer (kit's pack): one frame, 8 MiB window."""
    blob = (ZSTD_DATA / "model-layer.tar.zst").read_bytes()
    reader = ZstdReader(io.BytesIO(blob))
    h, buf = hashlib.sha256(), bytearray(1 << 16)
    while n := reader.readinto(buf):
        h.update(memoryview(buf)[:n])
    reader.finish()
    assert h.hexdigest() == GOLDEN_TAR_SHA256
    _extract_zstd(blob, tmp_path / "t")
    assert (tmp_path / "t" / "model" / "d" / "c.txt").read_text() == "c\n"
    assert (tmp_path / "t" / "model" / "a.txt").read_text().count("quick brown fox") == 6000


@pytest.fixture(scope="module")
def kitzstd(tmp_path_factory) -> Path:
    """tests/data/zstd/kitzstd.go built against Debian's klauspost/compress."""
    gocode = Path("/usr/share/gocode/src/github.com/klauspost/compress/zstd")
    if not shutil.which("go") or not gocode.is_dir():
        if os.environ.get("CI"):
            pytest.fail("go and golang-github-klauspost-compress-dev are missing "
                        "(scripts/run-tests installs them)")
        pytest.skip("needs go and golang-github-klauspost-compress-dev")
    out = tmp_path_factory.mktemp("go") / "kitzstd"
    env = dict(os.environ, GOPATH="/usr/share/gocode", GO111MODULE="off",
               GOCACHE=str(out.parent / "cache"), GOFLAGS="")
    subprocess.run(["go", "build", "-o", str(out), str(ZSTD_DATA / "kitzstd.go")], env=env,
                   check=True, capture_output=True, timeout=600)
    return out


def _go(kitzstd: Path, mode: str, data: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([str(kitzstd), mode], input=data, capture_output=True, timeout=120)


@pytest.mark.parametrize("layer_format", ["tar", "raw"])
def test_kits_decoder_reads_our_zstd_layers(kitzstd, tmp_path, layer_format):
    """What we pack with --compression zstd, klauspost's default decoder (kit's unpack) reads,
    and it decodes to the bytes the layer's diffId names."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "m.bin").write_bytes(os.urandom(1 << 20) + bytes(20 << 20) + b"abc" * 1_000_000)
    pack_fn = pack_layer_to_file if layer_format == "tar" else pack_raw_layer_to_file
    layer = pack_fn(ctx, "m.bin", tmp_path / "tmp", base="model", compression="zstd")
    try:
        blob = layer.path.read_bytes()
    finally:
        layer.discard()
    done = _go(kitzstd, "decode", blob)
    assert done.returncode == 0, done.stderr
    assert "sha256:" + hashlib.sha256(done.stdout).hexdigest() == layer.diff_id


def test_kits_encoder_and_ours_agree_on_what_is_refused(kitzstd, tmp_path):
    """A stream kit's encoder wrote decodes here; cut short, both decoders say
    ``unexpected EOF``; not zstd, both say ``invalid input: magic number mismatch``."""
    data = _TAR * 40
    enc = _go(kitzstd, "encode", data).stdout
    reader = ZstdReader(io.BytesIO(enc))
    out = io.BytesIO()
    buf = bytearray(1 << 16)
    while n := reader.readinto(buf):
        out.write(buf[:n])
    reader.finish()
    assert out.getvalue() == data
    for bad, reason in ((enc[:-2], "unexpected EOF"),
                        (b"PK\x03\x04" + bytes(600), "invalid input: magic number mismatch")):
        assert _go(kitzstd, "decode", bad).stderr.decode().strip() == reason
        with pytest.raises(UnpackError, match=f"^failed to unpack: layer is not valid zstd: "
                                              f"{reason}$"):
            reader = ZstdReader(io.BytesIO(bad))
            while reader.readinto(buf):
                pass
            reader.finish()


def test_hostile_zstd_layers_in_a_notebook_are_one_plain_usage_error(ip, packed,  # noqa: F811
                                                                     tmp_path):
    """The same refusals through ``%kit``: a plain UsageError of one line, nothing written."""
    store = LocalStore()
    digest = "sha256:" + hashlib.sha256(_ZTAR).hexdigest()

    def corrupt() -> str:
        ref = _store_code_layer(store, _ZTAR, ZSTD_CODE)
        os.chmod(store.blob_path(digest), 0o644)
        store.blob_path(digest).write_bytes(_ZTAR[:-1] + bytes([_ZTAR[-1] ^ 1]))
        return ref

    cases = [  # one variant tag: each case stores its layer just before it is unpacked
        (lambda: _store_code_layer(store, zstd_frame(_TAR, window_log=30), ZSTD_CODE),
         "failed to unpack: layer is not valid zstd: window size exceeded (more than 128 mib)"),
        (lambda: _store_code_layer(store, _ZTAR[:-3], ZSTD_CODE),
         "failed to unpack: layer is not valid zstd: unexpected eof"),
        (corrupt, f"{digest} is corrupt"),
    ]
    for store_layer, text in cases:
        out = tmp_path / "out"
        ref = store_layer()
        with pytest.raises(UsageError) as info:
            ip.run_line_magic("kit", f"unpack {ref} -d {out} --progress none")
        assert type(info.value) is UsageError and "\n" not in str(info.value)
        assert text in str(info.value).lower(), str(info.value)
        assert not out.exists()
