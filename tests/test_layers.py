"""The tar writer against the golden values of spec §14.1, Python's tarfile, and gzip."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import mmap
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_jupyter._fs import RangeCopier
from kit_jupyter.errors import PackError
from kit_jupyter.gocompat.gotar import tar_header
from kit_jupyter.gocompat.ignore import IgnoreRules
from kit_jupyter.oci.extract import Extraction, StreamInput
from kit_jupyter.oci.layers import (
    LayerStats,
    go_rel,
    layer_size,
    pack_layer_to_file,
    pack_raw_layer_to_file,
    write_layer,
)
from kit_jupyter.oci.mediatypes import (
    ANNOTATION_FILE_METADATA,
    ANNOTATION_FILEPATH,
    MediaTypeError,
    check_compression_flag,
    format_for_user,
    layer_media_type,
    parse_media_type,
)
from kit_jupyter.reporting import NullReporter
from tests.test_extract import entries
from tests.test_fs import address_of

#: the digest of an empty tar stream: two 512-byte zero blocks, what kit writes for an empty layer
EMPTY_LAYER_DIGEST = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def mkfile(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def mkdir(path: Path, mode: int = 0o755) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)


def layer(ctx: Path, path: str, **kw) -> tuple[bytes, NullReporter, LayerStats]:
    out = io.BytesIO()
    rep = NullReporter()
    stats = write_layer(ctx, path, out, reporter=rep, **kw)
    return out.getvalue(), rep, stats


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return [m.name for m in tf]


@pytest.fixture
def t1(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    mkdir(ctx)
    mkdir(ctx / "data")
    mkfile(ctx / "data/a.txt", b"hello\n", 0o644)
    mkfile(ctx / "data/b.bin", b"\x00\x01\x02", 0o755)
    mkdir(ctx / "data2")
    mkfile(ctx / "data2/x", b"decoy")
    os.symlink("a.txt", ctx / "data/link")
    return ctx


# --- golden values (spec §14.1) ----------------------------------------------------------------

def test_t1_two_file_directory_bytes(t1: Path) -> None:
    data, rep, stats = layer(t1, "data")
    assert len(data) == 3584
    assert sha(data) == "sha256:e4771edd1e9b7f4d31c9554bdb2ca3ccb6918b535beb27be6a3fe4b421455a9d"
    assert names(data) == ["data", "data/a.txt", "data/b.bin"]
    assert stats.entries == 3 and stats.files == 2 and stats.dirs == 1
    assert ("warning", "Skipping symlink data/link (symlinks are not supported)") in rep.messages


T1_FIELDS = [  # name, mode, size, chksum, type
    (b"data", b"0000755\0", b"00000000000\0", b"010054\0 ", b"5"),
    (b"data/a.txt", b"0000644\0", b"00000000006\0", b"011110\0 ", b"0"),
    (b"data/b.bin", b"0000755\0", b"00000000003\0", b"011042\0 ", b"0"),
]


@pytest.mark.parametrize("index,offset", [(0, 0), (1, 512), (2, 1536)])
def test_t1_header_fields(t1: Path, index: int, offset: int) -> None:
    data, _, _ = layer(t1, "data")
    h = data[offset:offset + 512]
    name, mode, size, chksum, typ = T1_FIELDS[index]
    assert h[0:100] == name.ljust(100, b"\0")
    assert h[100:108] == mode
    assert h[108:116] == b"0001750\0"
    assert h[116:124] == b"0000000\0"
    assert h[124:136] == size
    assert h[136:148] == b"00000000000\0"
    assert h[148:156] == chksum
    assert h[156:157] == typ
    assert h[157:257] == b"\0" * 100
    assert h[257:263] == b"ustar\0" and h[263:265] == b"00"
    assert h[265:329] == b"\0" * 64  # uname, gname
    assert h[329:337] == b"0000000\0" and h[337:345] == b"0000000\0"
    assert h[345:512] == b"\0" * 167


def test_t1_layout_and_end(t1: Path) -> None:
    data, _, _ = layer(t1, "data")
    assert data[1024:1030] == b"hello\n" and data[1030:1536] == b"\0" * 506
    assert data[2048:2051] == b"\x00\x01\x02" and data[2051:2560] == b"\0" * 509
    assert data[2560:] == b"\0" * 1024


def test_t2_single_file(t1: Path) -> None:
    data, rep, _ = layer(t1, "data/a.txt")
    assert len(data) == 2560
    assert sha(data) == "sha256:67603e208f35b2708e78f0986354f9ac1fb06449d2c68812531c33e689058314"
    assert names(data) == ["data", "data/a.txt"]
    assert rep.messages == []  # the symlink is not in this layer's tree


def test_t3_ustar_split_takes_last_slash(tmp_path: Path) -> None:
    mkdir(tmp_path / "a")
    mkdir(tmp_path / "a" / ("b" * 50))
    mkfile(tmp_path / "a" / ("b" * 50) / ("c" * 49), b"z\n")
    data, _, _ = layer(tmp_path, "a")
    assert len(data) == 3072
    assert sha(data) == "sha256:44c001a5e983efd1707d7f795bd044d79f840bae049b6566cdca25101e9babfa"
    h = data[1024:1536]
    assert h[345:345 + 52] == b"a/" + b"b" * 50 and h[397] == 0
    assert h[0:49] == b"c" * 49 and h[49] == 0


def test_ustar_split_differs_from_tarfile() -> None:
    # several valid splits: Go takes the last '/' within 156 bytes, tarfile the first
    name = b"p/q/" + b"r" * 98
    h = tar_header(name, 0o644, 0, False)
    assert h[345:349] == b"p/q\0" and h[0:99] == b"r" * 98 + b"\0"
    info = tarfile.TarInfo(name.decode())
    py = info.tobuf(tarfile.USTAR_FORMAT)
    assert py[345:347] == b"p\0"  # tarfile: prefix "p", name "q/rrr..."


def test_t4_non_ascii_pax(tmp_path: Path) -> None:
    mkdir(tmp_path / "données")
    mkfile(tmp_path / "données/é.txt", b"u\n")
    data, _, _ = layer(tmp_path, "données")
    assert len(data) == 4608
    assert sha(data) == "sha256:f4212764f2f1f8788ea3b61bd3145a8825f7bc174434d124c57dd58f3e3e424a"
    x1, rec1, main1 = data[0:512], data[512:1024], data[1024:1536]
    assert x1[0:20] == b"PaxHeaders.0/donnes\0" and x1[156:157] == b"x"
    assert x1[100:136] == b"0000000\0" * 3 + b"00000000021\0"  # 17 bytes of records
    assert x1[329:345] == b"\0" * 16  # devmajor/devminor NUL in the extended header
    assert rec1.rstrip(b"\0") == "17 path=données\n".encode()
    assert main1[0:7] == b"donnes\0" and main1[156:157] == b"5"
    assert main1[329:345] == b"0000000\0" * 2
    x2, rec2, main2 = data[1536:2048], data[2048:2560], data[2560:3072]
    assert x2[0:25] == b"donnes/PaxHeaders.0/.txt\0"
    assert rec2.rstrip(b"\0") == "24 path=données/é.txt\n".encode()
    assert main2[0:12] == b"donnes/.txt\0"
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert [m.name for m in tf] == ["données", "données/é.txt"]


def test_t5_eight_gib_sparse_file_headers(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(8 * 1024**3)
    os.chmod(big, 0o644)
    head = tar_header(b"big.bin", 0o644, big.stat().st_size, False)
    assert len(head) == 1536
    assert head[0:21] == b"PaxHeaders.0/big.bin\0" and head[156:157] == b"x"
    assert head[512:1024].rstrip(b"\0") == b"19 size=8589934592\n"
    main = head[1024:1536]
    assert main[0:8] == b"big.bin\0" and main[124:136] == b"00000000000\0"
    assert main[156:157] == b"0"
    # and the writer emits exactly these headers first (stop after them: 8 GiB of zeros follow)
    class Stop(Exception):
        pass

    class FirstBlocks(io.RawIOBase):
        def __init__(self) -> None:
            self.buf = bytearray()

        def write(self, b) -> int:  # type: ignore[override]
            self.buf += bytes(b)[: max(0, 1536 - len(self.buf))]
            if len(self.buf) >= 1536:
                raise Stop
            return len(b)

    sink = FirstBlocks()
    with pytest.raises(Stop):
        write_layer(tmp_path, "big.bin", sink)  # type: ignore[arg-type]
    assert bytes(sink.buf) == head


def test_long_ascii_name_without_split_uses_pax(tmp_path: Path) -> None:
    name = b"d" * 120  # no '/' at all: cannot be split
    h = tar_header(name, 0o644, 3, False)
    assert h[0:13] == b"PaxHeaders.0/" and h[13:100] == b"d" * 87  # cut to 100 bytes
    assert h[512:1024].rstrip(b"\0") == b"130 path=" + name + b"\n"
    assert h[1024:1124] == b"d" * 100


def test_pax_main_name_cut_drops_trailing_slashes() -> None:
    name = b"q" * 98 + b"//" + b"r" * 10  # cut at 100 ends in '/', non-splittable prefix rule
    h = tar_header("é".encode() + name, 0o644, 0, False)
    main = h[-512:]
    # Go's formatString puts one NUL terminator where the trailing slashes start
    assert main[0:98] == b"q" * 98 and main[98:100] == b"\0/"


def test_t6_walk_order_per_directory(tmp_path: Path) -> None:
    mkfile(tmp_path / "a/x", b"1")
    mkfile(tmp_path / "a-b/y", b"2")
    data, _, _ = layer(tmp_path, ".")
    assert names(data) == ["a", "a/x", "a-b", "a-b/y"]


def test_names_sorted_by_bytes_not_locale(tmp_path: Path) -> None:
    for n in ("b", "B", "a", "_", "é", "Z"):
        mkfile(tmp_path / "d" / n, b"x")
    data, _, _ = layer(tmp_path, "d")
    assert names(data) == ["d", "d/B", "d/Z", "d/_", "d/a", "d/b", "d/é"]


def test_t7_dotdot_quirk(tmp_path: Path) -> None:
    mkfile(tmp_path / "data/ok.txt", b"ok")
    mkfile(tmp_path / "data/v1..2.txt", b"dropped")
    data, rep, stats = layer(tmp_path, "data")
    assert len(data) == 2560 and names(data) == ["data", "data/ok.txt"]
    assert stats.skipped_dotdot == ["data/v1..2.txt"]
    assert any("v1..2.txt" in m for _, m in rep.messages)


def test_t8_symlinked_layer_path_is_empty(tmp_path: Path) -> None:
    mkfile(tmp_path / "real/x", b"x")
    os.symlink("real", tmp_path / "link")
    data, rep, _ = layer(tmp_path, "link")
    assert data == b"\0" * 1024 and sha(data) == EMPTY_LAYER_DIGEST
    assert ("warning", "No files detected in code layer with path link") in rep.messages
    assert ("warning", "Skipping symlink link (symlinks are not supported)") in rep.messages


def test_dotdot_quirk_drops_ancestor_of_dotted_layer(tmp_path: Path) -> None:
    # Rel("d/v1..2", "d") is ".." and Rel("d", "d/v1..2") is "v1..2": both contain "..",
    # so the ancestor is skipped and never entered: the layer comes out empty (spec T8)
    mkfile(tmp_path / "d/v1..2/f", b"x")
    data, _, stats = layer(tmp_path, "d/v1..2")
    assert data == b"\0" * 1024 and stats.skipped_dotdot == ["d"]
    assert go_rel("d/v1..2", "d") == ".." and go_rel("d", "d/v1..2") == "v1..2"
    mkfile(tmp_path / "x..y/in/f", b"x")  # a dotted *ancestor* is kept: "in" has no ".."
    data, _, _ = layer(tmp_path, "x..y/in")
    assert names(data) == ["x..y", "x..y/in", "x..y/in/f"]


def test_t9_empty_directory(tmp_path: Path) -> None:
    mkdir(tmp_path / "e")
    data, rep, _ = layer(tmp_path, "e", kind_label="dataset")
    assert len(data) == 1536 and data[0:2] == b"e\0" and data[156:157] == b"5"
    assert data[512:] == b"\0" * 1024
    assert ("warning", "No files detected in dataset layer with path e") in rep.messages


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(PackError, match=r"^path nope does not exist$"):
        layer(tmp_path, "nope")


@pytest.mark.parametrize("path,msg", [("/abs", r"absolute paths are not supported \(/abs\)"),
                                      ("../up", "layer paths must stay within context")])
def test_layer_path_must_be_inside(tmp_path: Path, path: str, msg: str) -> None:
    with pytest.raises(PackError, match=msg):
        layer(tmp_path, path)


def test_modes_keep_special_bits_and_hardlinks_are_files(tmp_path: Path) -> None:
    mkfile(tmp_path / "d/f", b"abc", 0o640)
    os.link(tmp_path / "d/f", tmp_path / "d/g")
    mkdir(tmp_path / "d/sticky", 0o1777)
    os.chmod(tmp_path / "d/sticky", 0o1777)
    data, _, _ = layer(tmp_path, "d")
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf}
    assert members["d/f"].mode == 0o640 and members["d/g"].isreg()
    assert members["d/g"].size == 3
    assert members["d/sticky"].mode == 0o1777


def test_os_junk_and_fifo_skipped(tmp_path: Path) -> None:
    mkfile(tmp_path / "d/keep", b"1")
    mkfile(tmp_path / "d/.DS_Store", b"junk")
    mkfile(tmp_path / "d/THUMBS.DB", b"junk")
    os.mkfifo(tmp_path / "d/pipe")
    data, _, _ = layer(tmp_path, "d")
    assert names(data) == ["d", "d/keep"]


def test_header_matches_tarfile_view(t1: Path) -> None:
    data, _, _ = layer(t1, ".")
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        got = {m.name: (m.type, m.mode, m.uid, m.gid, m.mtime, m.size) for m in tf}
        assert tf.extractfile("data/a.txt").read() == b"hello\n"  # type: ignore[union-attr]
    assert got["data"] == (tarfile.DIRTYPE, 0o755, 1000, 0, 0, 0)
    assert got["data/b.bin"] == (tarfile.REGTYPE, 0o755, 1000, 0, 0, 3)
    assert "data/link" not in got and "data2/x" in got


# --- ignore rules and other layers inside the writer -------------------------------------------

def test_kitfile_and_kitignore_always_ignored(tmp_path: Path) -> None:
    for n in ("Kitfile", "kitfile", ".kitfile", ".kitignore", "main.py"):
        mkfile(tmp_path / n, b"x")
    mkfile(tmp_path / "sub/Kitfile", b"x")  # only the root Kitfile matches the pattern
    data, _, _ = layer(tmp_path, ".", ignore=IgnoreRules.load(tmp_path))
    assert names(data) == ["main.py", "sub", "sub/Kitfile"]


def test_other_layers_whole_path_elements(tmp_path: Path) -> None:
    """Newest kit (PR #1280): a layer at ``data`` takes ``data/`` only. Older kit compared string
    prefixes and this layer came out as just ``main.py``."""
    for n in ("data/set1.txt", "data-v2/extra.txt", "database.txt", "main.py"):
        mkfile(tmp_path / n, b"x")
    rules = IgnoreRules.load(tmp_path, layer_paths=[".", "data"])
    data, _, _ = layer(tmp_path, ".", ignore=rules)
    assert names(data) == ["data-v2", "data-v2/extra.txt", "database.txt", "main.py"]
    sub, _, _ = layer(tmp_path, "data", ignore=rules)
    assert names(sub) == ["data", "data/set1.txt"]  # the parent layer "." is not excluded


def test_other_layer_paths_argument(tmp_path: Path) -> None:
    mkfile(tmp_path / "m/weights.bin", b"w")
    mkfile(tmp_path / "m/tok/vocab", b"v")
    data, _, _ = layer(tmp_path, "m", other_layer_paths=["m/tok"])
    assert names(data) == ["m", "m/weights.bin"]


def test_ignored_directory_pruned_or_walked(tmp_path: Path) -> None:
    mkfile(tmp_path / "src/a.py", b"a")
    mkfile(tmp_path / "src/cache/x.pyc", b"c")
    mkfile(tmp_path / "src/cache/keep.txt", b"k")
    (tmp_path / ".kitignore").write_text("src/cache\n")
    data, _, _ = layer(tmp_path, "src", ignore=IgnoreRules.load(tmp_path))
    assert names(data) == ["src", "src/a.py"]
    (tmp_path / ".kitignore").write_text("src/cache\n!src/cache/keep.txt\n")
    data, _, _ = layer(tmp_path, "src", ignore=IgnoreRules.load(tmp_path))
    # kit walks into the ignored directory and re-includes the file, without the directory entry
    assert names(data) == ["src", "src/a.py", "src/cache/keep.txt"]


def test_layer_path_ignored_warns(tmp_path: Path) -> None:
    mkfile(tmp_path / "docs/readme.md", b"r")
    (tmp_path / ".kitignore").write_text("docs\n")
    data, rep, stats = layer(tmp_path, "docs", ignore=IgnoreRules.load(tmp_path),
                             kind_label="docs")
    assert stats.ignored_layer_path and data == b"\0" * 1024
    assert ("warning", "Warning: docs layer path docs ignored by kitignore") in rep.messages


def test_layer_size_is_kits_total(t1: Path) -> None:
    assert layer_size(t1, "data") == 9
    assert layer_size(t1, "data/a.txt") == 6
    assert layer_size(t1, "data", other_layer_paths=["data/b.bin"]) == 6
    # newest kit (PR #1280): whole path elements, so a layer at data/b leaves data/b.bin alone
    assert layer_size(t1, "data", other_layer_paths=["data/b"]) == 9


# --- pack to file: digests, gzip, progress -----------------------------------------------------

def test_pack_none_digest_equals_diff_id(t1: Path, tmp_path: Path) -> None:
    packed = pack_layer_to_file(t1, "./data/", tmp_path / "cache", base="dataset")
    try:
        assert packed.path.name.startswith("kitops_layer_")
        assert packed.path.parent == tmp_path / "cache"
        assert packed.digest == packed.diff_id == \
            "sha256:e4771edd1e9b7f4d31c9554bdb2ca3ccb6918b535beb27be6a3fe4b421455a9d"
        assert packed.size == 3584 == packed.path.stat().st_size
        assert packed.media_type == "application/vnd.kitops.modelkit.dataset.v1.tar"
        assert packed.annotations == {ANNOTATION_FILEPATH: "data"}
        assert packed.descriptor()["size"] == 3584
    finally:
        packed.discard()
    assert not packed.path.exists()


@pytest.mark.parametrize("compression", ["gzip", "gzip-fastest"])
def test_pack_gzip_round_trip(t1: Path, tmp_path: Path, compression: str) -> None:
    rep = NullReporter()
    packed = pack_layer_to_file(t1, "data", tmp_path / "c", base="code",
                                compression=compression, reporter=rep, label="code data")
    blob = packed.path.read_bytes()
    assert packed.media_type == "application/vnd.kitops.modelkit.code.v1.tar+gzip"
    assert packed.digest == sha(blob) and packed.size == len(blob)
    raw = gzip.decompress(blob)
    assert sha(raw) == packed.diff_id == \
        "sha256:e4771edd1e9b7f4d31c9554bdb2ca3ccb6918b535beb27be6a3fe4b421455a9d"
    assert [e.name for e in entries(raw)] == ["data", "data/a.txt", "data/b.bin"]
    out = tmp_path / "out"
    with Extraction(out) as tx:
        inp = StreamInput(io.BytesIO(blob), compression="gzip")
        tx.tar(inp)
        inp.drain()
    assert (out / "data/a.txt").read_bytes() == b"hello\n"
    (task,) = rep.tasks
    assert task.total == 9 and task.done == 9 and task.ok is True


def test_pack_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(PackError):
        pack_layer_to_file(tmp_path, "missing", cache)
    assert list(cache.iterdir()) == []


def test_pack_streams_large_file_in_chunks(tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    mkfile(tmp_path / "m/w.bin", payload)
    writes: list[int] = []

    class Recorder(io.RawIOBase):
        def write(self, b) -> int:  # type: ignore[override]
            writes.append(len(b))
            return len(b)

    write_layer(tmp_path, "m", Recorder())  # type: ignore[arg-type]
    assert max(writes) <= 1 << 20 and sum(writes) == 512 * 2 + len(payload) + \
        (-len(payload) % 512) + 1024


def test_raw_layer(tmp_path: Path) -> None:
    mkfile(tmp_path / "srv/tool.mcpb", b"PK\x03\x04zip", 0o644)
    packed = pack_raw_layer_to_file(tmp_path, "srv/tool.mcpb", tmp_path / "c")
    try:
        assert packed.path.read_bytes() == b"PK\x03\x04zip"
        assert packed.media_type == "application/vnd.kitops.modelkit.mcpb.v1.raw"
        assert packed.digest == packed.diff_id == sha(b"PK\x03\x04zip")
        assert packed.annotations[ANNOTATION_FILEPATH] == "srv/tool.mcpb"
        assert '"name":"tool.mcpb"' in packed.annotations[ANNOTATION_FILE_METADATA]
    finally:
        packed.discard()
    with pytest.raises(PackError, match="file srv is not a regular file"):
        pack_raw_layer_to_file(tmp_path, "srv", tmp_path / "c")


# --- media types (spec §7.3) -------------------------------------------------------------------

@pytest.mark.parametrize("base,comp,expected", [
    ("model", "none", "application/vnd.kitops.modelkit.model.v1.tar"),
    ("modelpart", "gzip", "application/vnd.kitops.modelkit.modelpart.v1.tar+gzip"),
    ("dataset", "gzip-fastest", "application/vnd.kitops.modelkit.dataset.v1.tar+gzip"),
    ("code", "", "application/vnd.kitops.modelkit.code.v1.tar"),
    ("docs", "zstd", "application/vnd.kitops.modelkit.docs.v1.tar+zstd"),
    ("mcpb", "gzip", "application/vnd.kitops.modelkit.mcpb.v1.raw"),
])
def test_layer_media_type(base: str, comp: str, expected: str) -> None:
    assert layer_media_type(base, comp) == expected


@pytest.mark.parametrize("value,base,fmt,comp,model_format", [
    ("application/vnd.kitops.modelkit.dataset.v1.tar+gzip", "dataset", "tar", "gzip", "kit"),
    ("application/vnd.kitops.modelkit.config.v1+json", "config", "", "none", "kit"),
    ("application/vnd.cncf.model.weight.v1.tar", "model", "tar", "none", "modelpack"),
    ("application/vnd.cncf.model.weight.config.v1.tar+zstd", "modelpart", "tar", "zstd",
     "modelpack"),
    ("application/vnd.cncf.model.doc.v1.raw", "docs", "raw", "none", "modelpack"),
    ("application/vnd.cncf.model.config.v1+json", "config", "", "none", "modelpack"),
])
def test_parse_media_type(value: str, base: str, fmt: str, comp: str, model_format: str) -> None:
    mt = parse_media_type(value)
    assert (mt.base, mt.format, mt.compression, mt.model_format) == (base, fmt, comp,
                                                                     model_format)
    assert str(mt) == value


@pytest.mark.parametrize("value,msg", [
    ("application/vnd.kitops.modelkit.weights.v1.tar", "invalid base type weights"),
    ("application/vnd.kitops.modelkit.code.v1.zip", "invalid format zip"),
    ("application/vnd.kitops.modelkit.code.v1.tar+lz4", "invalid compression lz4"),
    ("application/vnd.cncf.model.weight.v1.raw+gzip", "model-spec does not support compression"),
    ("application/octet-stream", "unrecognized media type application/octet-stream"),
    ("application/vnd.kitops.modelkit.cöde.v1.tar", "unrecognized media type"),  # \w is ASCII
])
def test_parse_media_type_errors(value: str, msg: str) -> None:
    with pytest.raises(MediaTypeError, match=msg):
        parse_media_type(value)


def test_user_format_and_flags() -> None:  # ModelKit detection: tests/test_manifest.py
    assert format_for_user("application/vnd.oci.image.manifest.v1+json") == "manifest"
    assert format_for_user("application/vnd.cncf.model.weight.v1.tar") == "weight"
    assert check_compression_flag("gzip-fastest") == "gzip-fastest"
    with pytest.raises(MediaTypeError, match="must be one of 'none', 'gzip'"):
        check_compression_flag("bz2")


def _general_header(name: bytes, mode: int, size: int, is_dir: bool) -> bytes:
    """tar_header without its short-name shortcut (the general USTAR path)."""
    import kit_jupyter.gocompat.gotar as gt

    block = gt._v7_plus(name, mode, gt.KIT_UID, 0 if is_dir else size, b"5" if is_dir else b"0",
                        devnums=True)
    gt._checksum(block)
    return bytes(block)


@settings(max_examples=300, deadline=None)
@given(name=st.binary(min_size=1, max_size=100).filter(lambda b: b.isascii() and b"\0" not in b),
       mode=st.sampled_from([0o644, 0o755, 0o600, 0o4755, 0o777, 0o1777, 0, 0o7777]),
       size=st.one_of(st.integers(0, 10_000), st.integers(0, 8 ** 11 - 1)),
       is_dir=st.booleans())
def test_short_name_shortcut_gives_the_general_bytes(name: bytes, mode: int, size: int,
                                                     is_dir: bool) -> None:
    assert tar_header(name, mode, size, is_dir) == _general_header(name, mode, size, is_dir)


@pytest.mark.parametrize("size", [10, 2 << 20])  # read into the staging buffer / through it
@pytest.mark.parametrize("change", [b"more", None])  # grows, shrinks
@pytest.mark.parametrize("into", ["stream", "blob"])  # a writer / the blob file (kernel copy)
def test_a_file_changing_while_it_is_packed_is_an_error(tmp_path: Path, monkeypatch, size: int,
                                                        change: bytes | None, into: str) -> None:
    import kit_jupyter.oci.layers as layers

    mkfile(tmp_path / "src/a.py", b"a" * size)
    real_walk = layers.walk_layer

    def walk(*args, **kw):
        for entry in real_walk(*args, **kw):
            if entry.rel == "src/a.py":  # stat taken; now the file changes
                with open(tmp_path / "src/a.py", "ab" if change else "r+b") as f:
                    f.write(change) if change else f.truncate(size - 3)
            yield entry

    monkeypatch.setattr(layers, "walk_layer", walk)
    with pytest.raises(PackError, match="^file src/a.py changed while it was being packed$"):
        if into == "stream":
            layer(tmp_path, "src")
        else:
            pack_layer_to_file(tmp_path, "src", tmp_path / "tmp")
    if into == "blob":
        assert os.listdir(tmp_path / "tmp") == []  # the half-written blob is gone


@pytest.mark.parametrize("way", RangeCopier.WAYS)
def test_a_large_file_is_copied_by_the_kernel_and_hashed_from_the_blob(tmp_path: Path,
                                                                      monkeypatch,
                                                                      way: str) -> None:
    """A file larger than the staging buffer goes into an uncompressed blob by
    :class:`RangeCopier` (each of its ways), in several steps, between small files: the blob
    is byte for byte what the streaming writer gives, and its digest is of its bytes."""
    import kit_jupyter.oci.layers as layers

    mkfile(tmp_path / "c/a.txt", b"before")
    mkfile(tmp_path / "c/b.bin", os.urandom((2 * layers._SPLICE_STEP) + 12345))
    mkfile(tmp_path / "c/c.txt", b"after" * 999)
    ways: list[str] = []

    class Copier(RangeCopier):
        def __init__(self) -> None:
            super().__init__(way)
            ways.append(way)

    monkeypatch.setattr(layers, "RangeCopier", Copier)
    packed = pack_layer_to_file(tmp_path, "c", tmp_path / "tmp")
    blob = packed.path.read_bytes()
    assert ways == [way] and blob == layer(tmp_path, "c")[0]
    assert packed.digest == packed.diff_id == sha(blob) and packed.size == len(blob)


def test_many_small_files_and_a_large_one_match_tarfile_contents(tmp_path: Path) -> None:
    """The staging buffer's edges: files that fill it exactly, one that does not fit, padding
    carried over after a large file; contents and order read back by Python's tarfile."""
    sizes = [0, 1, 511, 512, 513, 4096, 1_048_000, 3 << 20, 7, 1 << 20, 100]
    for i, n in enumerate(sizes):
        mkfile(tmp_path / f"c/f{i:02d}", bytes([i]) * n)
    data, _, stats = layer(tmp_path, "c")
    assert stats.tar_bytes == len(data) and stats.files == len(sizes)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        got = {m.name: tf.extractfile(m).read() for m in tf if m.isfile()}  # type: ignore[union-attr]
    assert got == {f"c/f{i:02d}": bytes([i]) * n for i, n in enumerate(sizes)}


def test_large_writes_hash_beside_their_write_and_the_thread_ends(tmp_path: Path,
                                                                 monkeypatch) -> None:
    """Pack hashes a large file's bytes in a helper thread while it writes them (counted by the
    sink, not timed); digests are those of the bytes, and no thread outlives the pack, also
    when it fails."""
    import threading

    import kit_jupyter.oci.layers as layers

    data = os.urandom(3 << 20) + b"tail"
    mkfile(tmp_path / "ctx/m.bin", data)
    seen = []

    class Spy(layers._HashingSink):
        def close(self):
            seen.append(self.overlapped)
            super().close()

    monkeypatch.setattr(layers, "_HashingSink", Spy)
    packed = pack_layer_to_file(tmp_path / "ctx", "m.bin", tmp_path / "tmp", base="model")
    blob = packed.path.read_bytes()
    assert packed.digest == packed.diff_id == sha(blob)
    assert blob[512:512 + len(data)] == data
    assert seen[-1] >= 3 << 20
    with pytest.raises(PackError):
        pack_layer_to_file(tmp_path / "ctx", "gone", tmp_path / "tmp", base="model")
    assert not [t for t in threading.enumerate() if t.name.startswith("kit-pack-sha256")]


def _counting(monkeypatch, name: str) -> list[str]:
    """Record every path ``os.<name>`` is called with (the walk's stat and listing calls)."""
    calls: list[str] = []
    real = getattr(os, name)

    def wrapper(path, *args, **kw):
        calls.append(os.fspath(path))
        return real(path, *args, **kw)

    monkeypatch.setattr(os, name, wrapper)
    return calls


def test_a_layer_is_walked_once_for_its_total_and_its_entries(tmp_path: Path,
                                                              monkeypatch) -> None:
    """Pack's total (kit's getTotalSize) comes from the write walk: every path is listed and
    lstat'ed once, not once per walk (the second walk cost ~30 us of Python per file)."""
    for i in range(30):
        mkfile(tmp_path / f"code/d{i % 3}/f{i:02d}.py", b"x" * i)
    mkfile(tmp_path / "other/o.txt", b"o")
    lstats, listings = _counting(monkeypatch, "lstat"), _counting(monkeypatch, "listdir")
    data, _, stats = layer(tmp_path, "code")
    assert stats.files == 30 and stats.size_total == sum(range(30))
    under = [p for p in lstats if p.startswith(str(tmp_path / "code") + "/")]
    assert len(under) == len(set(under)) == 33  # 30 files, 3 directories
    assert len(listings) == len(set(listings))
    monkeypatch.undo()
    assert data == layer(tmp_path, "code", )[0]


@pytest.mark.parametrize("keep", [1, 5, 1 << 16])  # a second walk for the total / one walk
@pytest.mark.parametrize("case", ["plain", "dotdot", "excluded-base", "excluded-parent",
                                  "symlinked-parent", "junk-parent", "file", "dot", "dot-excluded",
                                  "dot-star"])
def test_the_total_from_the_walk_is_kits_total(tmp_path: Path, monkeypatch, case: str,
                                               keep: int) -> None:
    """Where the write walk can tell kit's total it gives layer_size's number, where it cannot
    (names with '..', a layer path not reached from '.', more entries than are kept) the second
    walk does; the layer's bytes are the same either way."""
    import kit_jupyter.oci.layers as layers

    for i in range(7):
        mkfile(tmp_path / f"p/code/d{i % 2}/f{i}", b"y" * (i + 1))
    mkfile(tmp_path / "p/code/a..b/inside", b"z" * 100)
    mkfile(tmp_path / "p/code/x..y", b"z" * 1000)
    mkfile(tmp_path / ".DS_Store/code/j", b"j" * 10)
    os.symlink("p", tmp_path / "link")
    path, patterns = {
        "plain": ("p/code/d0", ["p/code/d0/f2"]), "dotdot": ("p/code", []),
        "excluded-base": ("p/code", ["p/code", "!p/code/d1"]),
        "excluded-parent": ("p/code", ["p", "!p/code/d1/f1"]),
        "symlinked-parent": ("link/code", []), "junk-parent": (".DS_Store/code", []),
        "file": ("p/code/d0/f0", []), "dot": (".", ["p/code/d1"]),
        "dot-excluded": (".", ["."]), "dot-star": (".", ["*", "!p/code/d1"]),
    }[case]
    rules = IgnoreRules(patterns)
    expected = layer_size(tmp_path, path, ignore=rules)
    monkeypatch.setattr(layers, "WALK_KEEP", keep)
    data, _, stats = layer(tmp_path, path, ignore=rules)
    assert stats.size_total == expected
    monkeypatch.setattr(layers, "WALK_KEEP", 1 << 16)
    assert layer(tmp_path, path, ignore=rules)[0] == data


@settings(max_examples=60, deadline=None)
@given(raw=st.lists(st.binary(min_size=1, max_size=6).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")), unique=True,
    max_size=8))
def test_names_are_walked_in_byte_order(tmp_path_factory, raw: list[bytes]) -> None:
    """Go sorts a directory's names by bytes; the ASCII shortcut must agree, and names with
    undecodable bytes must not take it."""
    from kit_jupyter.oci.layers import _sorted_names

    d = tmp_path_factory.mktemp("names")
    for name in raw:
        with open(os.path.join(os.fsencode(d), name), "wb"):
            pass
    assert [os.fsencode(n) for n in _sorted_names(str(d))] == sorted(raw)


def test_the_entries_kept_for_the_total_are_small(tmp_path: Path) -> None:
    """The one walk keeps each entry's name, mode and size (not its stat_result, ~4x that):
    traced peak memory of writing a layer grows by under 400 bytes per extra file."""
    import tracemalloc

    class Sink:
        def write(self, data) -> int:
            return len(data)

    def peak(n: int) -> int:
        ctx = tmp_path / f"c{n}"
        for i in range(n):
            mkfile(ctx / f"code/d{i % 4}/file-{i:05d}.py", b"x")
        tracemalloc.start()
        try:
            write_layer(ctx, "code", Sink())  # type: ignore[arg-type]
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(500), peak(2500)
    assert (large - small) / 2000 < 400, (small, large)


@settings(max_examples=300, deadline=None)
@given(name=st.one_of(st.binary(min_size=1, max_size=160),
                      st.text(min_size=1, max_size=120).map(lambda t: t.encode("utf-8"))),
       mode=st.sampled_from([0o644, 0o755, 0o4755, 0o7777, 0o7777777, 0o10000000, -1]),
       size=st.one_of(st.integers(0, 10_000), st.integers(8 ** 11 - 2, 8 ** 11 + 1)),
       is_dir=st.booleans(), pos=st.integers(0, 3))
def test_a_header_built_in_place_is_tar_headers_block(name: bytes, mode: int, size: int,
                                                      is_dir: bool, pos: int) -> None:
    """header_into writes the one block tar_header gives -- or, where tar_header needs PAX
    (long, non-ASCII, NUL), or a number does not fit, nothing -- and touches no other byte."""
    from kit_jupyter.gocompat.gotar import header_into

    buf = bytearray(b"\xa5" * (4 * 512))
    n = header_into(buf, pos * 256, name, mode, size, is_dir)
    if n:
        assert n == 512
        assert bytes(buf[pos * 256:pos * 256 + 512]) == tar_header(name, mode, size, is_dir)
        assert bytes(buf[pos * 256:pos * 256 + 512]) == _general_header(name, mode, size, is_dir)
        buf[pos * 256:pos * 256 + 512] = b"\xa5" * 512
    else:
        assert len(name) > 100 or not name.isascii() or b"\0" in name or not is_dir and \
            size >= 8 ** 11 or not 0 <= mode < 0o7777777
    assert buf == b"\xa5" * (4 * 512)


def _file_members(blob: bytes) -> dict[str, bytes]:
    """The regular files of a tar layer, by name, in the archive's order."""
    with tarfile.open(fileobj=io.BytesIO(blob)) as tf:
        return {m.name: tf.extractfile(m).read()  # type: ignore[union-attr]
                for m in tf.getmembers() if m.isfile()}


def _files_under(root: Path, names: dict[str, bytes]) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in names}


def test_small_files_past_the_buffers_end_are_read_into_it(tmp_path: Path,
                                                          monkeypatch) -> None:
    """A small file that does not fit what is left of the staging buffer is read into it after
    a flush; only a file larger than the buffer is copied by _copy_file (the kernel copy and its
    hashing thread cost more than they save on a few KiB)."""
    import kit_jupyter.oci.layers as layers

    for i in range(400):
        mkfile(tmp_path / f"code/f{i:03d}", bytes([i % 256]) * (3000 + i))
    mkfile(tmp_path / "code/zz-large", b"L" * (layers.CHUNK + 1))
    copied: list[str] = []
    real = layers._copy_file

    def counting(path, rel, *args):
        copied.append(rel)
        return real(path, rel, *args)
    monkeypatch.setattr(layers, "_copy_file", counting)
    data, _, stats = layer(tmp_path, "code")
    assert copied == ["code/zz-large"]
    assert stats.files == 401 and stats.tar_bytes == len(data)
    assert _file_members(data) == _files_under(tmp_path, _file_members(data))


def test_staging_buffers_are_hashed_and_written_by_the_helper_in_order(tmp_path: Path,
                                                                       monkeypatch) -> None:
    """A layer of small files reaches the sink as 1 MiB staging buffers; each is handed to the
    helper thread, which hashes and writes them in the order they came (the
    calling thread goes on walking), and a large file spliced between them waits for the ones
    before it: the blob is the layer, byte for byte, and its digest that of its bytes."""
    import threading

    import kit_jupyter.oci.layers as layers

    for i in range(300):
        mkfile(tmp_path / f"ctx/code/f{i:03d}", os.urandom(5000))
    mkfile(tmp_path / "ctx/code/m-large", os.urandom(2 * layers.CHUNK + 3))  # between them
    for i in range(300):
        mkfile(tmp_path / f"ctx/code/z{i:03d}", os.urandom(5000))
    writers: list[str] = []

    class Spy(layers._HashingSink):
        def _write_behind(self, data: bytes) -> None:
            writers.append(threading.current_thread().name)
            super()._write_behind(data)

    monkeypatch.setattr(layers, "_HashingSink", Spy)
    packed = pack_layer_to_file(tmp_path / "ctx", "code", tmp_path / "tmp")
    blob = packed.path.read_bytes()
    assert packed.digest == packed.diff_id == sha(blob)
    # the two buffers before the large file go to the helper whatever the timing; after it,
    # the caller writes them itself while the large file's hash is still behind
    assert len(writers) >= 2 and all(w.startswith("kit-pack-sha256") for w in writers)
    members = _file_members(blob)
    assert list(members) == sorted(members) and len(members) == 601
    assert members == _files_under(tmp_path / "ctx", members)
    assert not [t for t in threading.enumerate() if t.name.startswith("kit-pack-sha256")]


def test_the_next_large_files_copy_goes_on_beside_the_hash_of_the_one_before(
        tmp_path: Path, monkeypatch) -> None:
    """Two large files with a small one between: the second file's kernel copy starts while
    the first file's last hash job is still held (it waits for that copy, with a time limit),
    so consecutive large files overlap their copy and hash; the small file's bytes are written
    by the caller meanwhile. The blob is still the layer, byte for byte."""
    import threading

    import kit_jupyter.oci.layers as layers

    step = layers._SPLICE_STEP
    mkfile(tmp_path / "c/a.bin", os.urandom(step + 5))
    mkfile(tmp_path / "c/b.txt", b"small, between them")
    mkfile(tmp_path / "c/c.bin", os.urandom(step + 7))
    second_copy = threading.Event()
    held: list[bool] = []

    class Spy(layers._HashingSink):
        def splice(self, src: int, size: int, task) -> int:  # type: ignore[no-untyped-def]
            if self.overlapped:  # the second large file
                second_copy.set()
            return super().splice(src, size, task)

        def _hash_back(self, fd: int, offset: int, n: int) -> None:
            if not held:  # the first file's last step: hold it until the next copy starts
                if n < step:
                    held.append(second_copy.wait(timeout=10))
            super()._hash_back(fd, offset, n)

    monkeypatch.setattr(layers, "_HashingSink", Spy)
    packed = pack_layer_to_file(tmp_path, "c", tmp_path / "tmp")
    assert held == [True]
    blob = packed.path.read_bytes()
    assert packed.digest == packed.diff_id == sha(blob)
    assert _file_members(blob) == _files_under(tmp_path, _file_members(blob))


def test_staging_buffers_are_handed_over_and_used_again(tmp_path: Path, monkeypatch) -> None:
    """The sink keeps each full staging buffer it is handed (no copy) and gives it back as a
    spare once the helper has written it: a layer of 24 MiB of small files goes through at most
    the buffers the helper may hold plus the two being filled, not a new one per MiB."""
    import kit_jupyter.oci.layers as layers

    for i in range(4000):
        mkfile(tmp_path / f"ctx/code/f{i:04d}", os.urandom(6000))
    handed: list[memoryview] = []  # kept alive: a new buffer cannot take a handed one's id

    class Spy(layers._HashingSink):
        def hand_over(self, buf: memoryview, n: int) -> None:
            handed.append(buf)
            super().hand_over(buf, n)

    monkeypatch.setattr(layers, "_HashingSink", Spy)
    packed = pack_layer_to_file(tmp_path / "ctx", "code", tmp_path / "tmp")
    blob = packed.path.read_bytes()
    assert packed.digest == packed.diff_id == sha(blob)
    assert len(handed) > layers._HASH_LAG + 4
    assert len({id(b) for b in handed}) <= layers._HASH_LAG + 2
    # the files are read into them: page-aligned (_fs.io_buffer), not a bytearray's odd start
    assert all(address_of(b) % mmap.PAGESIZE == 0 for b in handed)
    members = _file_members(blob)
    assert len(members) == 4000 and members == _files_under(tmp_path / "ctx", members)


def test_a_failed_staging_write_fails_the_pack_and_leaves_nothing(tmp_path: Path,
                                                                  monkeypatch) -> None:
    """A write the helper makes that fails (a full disk) fails the pack with that error, named
    after the directory whose disk is full, and the blob file is removed."""
    import threading

    import kit_jupyter.oci.layers as layers

    for i in range(600):
        mkfile(tmp_path / f"ctx/code/f{i:03d}", os.urandom(5000))
    calls: list[int] = []

    class Full(layers._HashingSink):
        def _write_behind(self, data: bytes) -> None:
            calls.append(len(data))
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            super()._write_behind(data)

    monkeypatch.setattr(layers, "_HashingSink", Full)
    with pytest.raises(OSError, match="No space left on device") as err:
        pack_layer_to_file(tmp_path / "ctx", "code", tmp_path / "tmp")
    assert err.value.filename == str(tmp_path / "tmp")  # the directory whose disk is full
    assert os.listdir(tmp_path / "tmp") == [] and len(calls) >= 2
    assert not [t for t in threading.enumerate() if t.name.startswith("kit-pack-sha256")]


def test_a_large_files_hash_goes_on_during_the_fsync_and_its_error_leaves_nothing(
        tmp_path: Path, monkeypatch) -> None:
    """The read-back hash of a spliced file may still run when the blob is fsynced; the
    digests wait for it, and an error in it fails the pack and removes the blob."""
    import threading

    import kit_jupyter.oci.layers as layers

    data = os.urandom(3 * layers._SPLICE_STEP + 5)
    mkfile(tmp_path / "c/m.bin", data)
    mkfile(tmp_path / "c/z.txt", b"after the large file")  # hashed behind it, in order
    packed = pack_layer_to_file(tmp_path, "c", tmp_path / "tmp")
    assert packed.digest == packed.diff_id == sha(packed.path.read_bytes())
    packed.discard()

    class Failing(layers._HashingSink):
        def _hash_back(self, fd: int, offset: int, n: int) -> None:
            if offset > layers._SPLICE_STEP:
                raise OSError(errno.EIO, "Input/output error")
            super()._hash_back(fd, offset, n)

    monkeypatch.setattr(layers, "_HashingSink", Failing)
    with pytest.raises(OSError, match="Input/output error"):
        pack_layer_to_file(tmp_path, "c", tmp_path / "tmp")
    assert os.listdir(tmp_path / "tmp") == []
    assert not [t for t in threading.enumerate() if t.name.startswith("kit-pack-sha256")]
