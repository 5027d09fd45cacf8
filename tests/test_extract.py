"""The one tar reader and extractor (gocompat.gotar + oci.extract), through every input unpack
uses: a stored blob read by position (kernel copies), a plain stream, a gzip stream.

kit's checks and messages, refusal of hostile archives (nothing written outside the target, and
a refused extraction leaves nothing at all), modes (never setuid/setgid/sticky; read-only
directories filled first, their modes applied last), and Go's header rules. Property tests at
the end: random and mutated archives never raise anything but our errors (200 examples each).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import tarfile
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kit_jupyter.errors import KitError, UnpackError
from kit_jupyter.gocompat.gotar import TarFormatError, TarReader
from kit_jupyter.oci.extract import Extraction, ExtractStats, FileInput, StreamInput
from kit_jupyter.oci.layers import write_layer
from kit_jupyter.reporting import NullReporter

VIAS = ["file", "stream", "gzip"]


def make_tar(entries: list[tuple[tarfile.TarInfo, bytes | None]], fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def reg(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def special(name: str, typ: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = typ
    info.linkname = linkname
    return info, None


def directory(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    return info, None


def pax_member(records: bytes, name: str = "f", data: bytes = b"abc") -> bytes:
    """A hand-made PAX header (any records, even ones tarfile would refuse to write) followed
    by a regular file and the end of the archive."""
    def block(name_: bytes, size: int, typeflag: bytes) -> bytes:
        b = bytearray(512)
        b[0:len(name_)] = name_
        b[100:108] = b"0000644\0"
        b[108:116] = b"0000000\0"
        b[116:124] = b"0000000\0"
        b[124:136] = format(size, "011o").encode() + b"\0"
        b[136:148] = b"00000000000\0"
        b[156:157] = typeflag
        b[257:265] = b"ustar\x0000"
        b[148:156] = b" " * 8
        b[148:156] = format(sum(b), "06o").encode() + b"\0 "
        return bytes(b)

    def pad(n: int) -> bytes:
        return b"\0" * (-n % 512)

    return (block(b"PaxHeaders.0/" + name.encode(), len(records), b"x") + records
            + pad(len(records)) + block(name.encode(), len(data), b"0") + data + pad(len(data))
            + b"\0" * 1024)


def record(key: str, value: bytes) -> bytes:
    body = key.encode() + b"=" + value + b"\n"
    n = len(body) + 1
    n += len(str(n))
    rec = str(n).encode() + b" " + body
    if len(rec) != n:
        rec = str(len(rec)).encode() + b" " + body
    return rec


def extract(data: bytes, target: Path, *, via: str = "stream", overwrite: bool = False,
            ignore_existing: bool = False, task=None) -> ExtractStats:
    """What unpack does with one layer: one Extraction, the blob through the chosen input,
    committed if everything went well, rolled back otherwise."""
    with Extraction(target, overwrite=overwrite, ignore_existing=ignore_existing) as tx:
        if via == "file":
            fd, path = tempfile.mkstemp(prefix="blob-")  # outside every test's sandbox
            try:
                os.write(fd, data)
                os.close(fd)
                with FileInput(path) as inp:
                    tx.tar(inp)
            finally:
                os.unlink(path)
        else:
            blob = gzip.compress(data) if via == "gzip" else data
            inp = StreamInput(io.BytesIO(blob), compression="gzip" if via == "gzip" else "",
                              task=task)
            tx.tar(inp)
            inp.drain()
    return tx.stats


def entries(data: bytes) -> list:
    reader = TarReader(StreamInput(io.BytesIO(data)))
    out = []
    while (header := reader.next()) is not None:
        out.append(header)
    return out


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path]:
    """(target, outside): the target sits inside a sandbox so escapes land in `outside`."""
    sandbox = tmp_path / "sandbox"
    target = sandbox / "target"
    target.mkdir(parents=True)
    return target, sandbox


# --- round trip --------------------------------------------------------------------------------

@pytest.mark.parametrize("via", VIAS)
def test_round_trip_with_modes(tmp_path: Path, via: str) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "m/sub").mkdir(parents=True)
    (ctx / "m/w.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    (ctx / "m/run.sh").write_bytes(b"#!/bin/sh\n")
    os.chmod(ctx / "m/run.sh", 0o755)
    os.chmod(ctx / "m/w.bin", 0o600)
    (ctx / "m/sub/é.txt").write_text("u")
    blob = io.BytesIO()
    write_layer(ctx, "m", blob)
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        stats = extract(blob.getvalue(), out, via=via)
    finally:
        os.umask(old)
    assert (stats.files, stats.dirs) == (3, 2)
    assert (out / "m/w.bin").read_bytes() == (ctx / "m/w.bin").read_bytes()
    assert (out / "m/sub/é.txt").read_text() == "u"
    assert (out / "m/run.sh").stat().st_mode & 0o777 == 0o755
    assert (out / "m/w.bin").stat().st_mode & 0o777 == 0o600
    assert not [p for p in out.rglob("*.part")]


def test_file_input_reads_small_members_a_window_at_a_time(tmp_path: Path,
                                                         monkeypatch) -> None:
    """A stored blob of many small members costs one read per MiB, not a read per header and
    a kernel copy per member; members up to the window limit are written from the window
    (including ones that straddle its end), larger ones still go by the kernel copy."""
    import kit_jupyter.oci.extract as ex

    limit = ex._WRITE_FROM_WINDOW
    rnd = os.urandom
    members = [reg(f"d/f{i:04d}", rnd(i * 37 % 9000)) for i in range(600)]
    members += [reg("d/at-limit", rnd(limit)), reg("d/over-limit", rnd(limit + 1))]
    members += [reg(f"e/g{i:03d}", rnd(700)) for i in range(300)]
    data = make_tar(members)
    preads: list[int] = []
    copied: list[int] = []
    real_preadv, real_copy = os.preadv, os.copy_file_range
    monkeypatch.setattr(os, "preadv", lambda fd, bufs, off: (preads.append(off),
                                                             real_preadv(fd, bufs, off))[1])
    monkeypatch.setattr(os, "copy_file_range", lambda *a: (copied.append(a[2]),
                                                           real_copy(*a))[1])
    out = tmp_path / "o"
    stats = extract(data, out, via="file")
    assert stats.files == len(members)
    for info, body in members:
        assert (out / info.name).read_bytes() == body, info.name
    assert sum(copied) == limit + 1  # only the member over the limit
    assert len(preads) <= len(data) // ex.CHUNK + 4


@pytest.mark.parametrize("via", ["file", "stream"])
def test_names_near_the_file_systems_limit(tmp_path: Path, via: str) -> None:
    """A file or directory name of 250 bytes (kit writes it; 255 is ext4's limit) leaves no
    room for the temp name's token: the temp name takes a digest of it instead, in a
    directory that was there (a temp file per file) and for a staged directory alike."""
    long_file, long_dir = "f" * 246 + ".txt", "d" * 250
    data = make_tar([reg(f"old/{long_file}", b"a"), reg(f"{long_dir}/{long_file}", b"b"),
                     reg(f"{long_dir}/{long_file[:-1]}", b"c")])
    (tmp_path / "o" / "old").mkdir(parents=True)
    stats = extract(data, tmp_path / "o", via=via)
    assert stats.files == 3
    assert (tmp_path / "o" / "old" / long_file).read_bytes() == b"a"
    assert (tmp_path / "o" / long_dir / long_file).read_bytes() == b"b"
    assert (tmp_path / "o" / long_dir / long_file[:-1]).read_bytes() == b"c"
    assert not [p for p in tree(tmp_path / "o") if ".part" in p or "kj-" in p]
    with pytest.raises(UnpackError, match="occurs more than once"):
        extract(make_tar([reg(f"old/{long_file}", b"x"), reg(f"old/{long_file}", b"y")]),
                tmp_path / "o", via=via, overwrite=True)


def test_list_entries_without_extracting(tmp_path: Path) -> None:
    data = make_tar([directory("d"), reg("d/f", b"abc", 0o640), special("d/l", tarfile.SYMTYPE,
                                                                         "f")])
    got = entries(data)
    assert [(e.name, e.kind, e.size, e.mode) for e in got] == [
        ("d", "dir", 0, 0o755), ("d/f", "file", 3, 0o640), ("d/l", "symlink", 0, 0o644)]
    assert got[2].linkname == "f"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("via", VIAS)
def test_empty_layer_and_empty_blob(tmp_path: Path, via: str) -> None:
    stats = extract(b"\0" * 1024, tmp_path / "out", via=via)
    assert stats.files == 0 and (tmp_path / "out").is_dir()
    # Go's tar reader (and so kit) takes a stream ending on a block boundary as complete
    assert extract(b"", tmp_path / "out2", via=via).files == 0
    with pytest.raises(UnpackError, match="^failed to unpack: unexpected EOF in layer archive$"):
        extract(b"\1" * 100, tmp_path / "out3", via=via)
    with pytest.raises(TarFormatError, match="^failed to unpack: invalid tar header: checksum "
                                             "mismatch$"):
        extract(b"\1" * 512, tmp_path / "out3", via=via)
    assert not (tmp_path / "out3").exists()  # refused: the directory it made is gone again


def test_gzip_layer_and_unsupported_compression(tmp_path: Path) -> None:
    data = gzip.compress(make_tar([reg("a.txt", b"hi")]))
    with Extraction(tmp_path) as tx:
        inp = StreamInput(io.BytesIO(data), compression="gzip")
        tx.tar(inp)
        inp.drain()
    assert (tmp_path / "a.txt").read_bytes() == b"hi"
    with pytest.raises(UnpackError, match="^failed to unpack: lz4-compressed layers are not "
                                          "supported$"):
        StreamInput(io.BytesIO(data), compression="lz4")


def test_progress_counts_blob_bytes_and_reads_to_eof(tmp_path: Path) -> None:
    data = make_tar([reg("a.txt", b"hi")]) + b"\0" * 4096  # trailing padding after the end
    rep = NullReporter()
    task = rep.task("unpack", len(data))
    stream = io.BytesIO(data)
    with Extraction(tmp_path) as tx:
        inp = StreamInput(stream, task=task)
        tx.tar(inp)
        inp.drain()
    assert task.done == len(data) and stream.tell() == len(data)


# --- hostile archives --------------------------------------------------------------------------

@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("name,reason", [
    ("../x", "layer paths must stay within context directory"),
    ("a/../../x", "layer paths must stay within context directory"),
    ("/abs", "absolute paths are not supported (/abs)"),
    ("v1..2.txt", "paths must be within context directory"),  # kit's substring test
])
def test_escaping_names_refused(box: tuple[Path, Path], name: str, reason: str,
                                via: str) -> None:
    target, outside = box
    data = make_tar([reg("good.txt"), directory("d"), reg(name, b"evil")])
    with pytest.raises(UnpackError) as err:
        extract(data, target, via=via)
    assert str(err.value) == f"failed to unpack: illegal file path: {name}: {reason}"
    assert tree(outside) == {"target"}  # not even the good file or the directory


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("entry", [
    special("link", tarfile.SYMTYPE, "/etc/passwd"),
    special("hard", tarfile.LNKTYPE, "../../outside"),
    special("dev", tarfile.CHRTYPE),
    special("blk", tarfile.BLKTYPE),
    special("fifo", tarfile.FIFOTYPE),
])
def test_non_regular_entries_refused(box: tuple[Path, Path], entry, via: str) -> None:
    target, outside = box
    data = make_tar([reg("before.txt"), entry])
    with pytest.raises(UnpackError) as err:
        extract(data, target, via=via)
    assert str(err.value) == f"failed to unpack: unrecognized type in archive: {entry[0].name}"
    assert tree(outside) == {"target"}  # the file before it is not published either


def test_symlink_then_file_through_it_refused(box: tuple[Path, Path]) -> None:
    target, outside = box
    (outside / "secret").mkdir()
    os.symlink(outside / "secret", target / "d")  # planted before unpack
    data = make_tar([reg("d/x", b"evil")])
    with pytest.raises(UnpackError, match=r"^failed to unpack: illegal file path: d/x: paths "
                                          r"must be within"):
        extract(data, target)
    assert list((outside / "secret").iterdir()) == []


@pytest.mark.parametrize("flag", ["overwrite", "ignore_existing"])
def test_a_symlink_where_a_file_goes_is_never_written_through(box: tuple[Path, Path],
                                                              flag: str) -> None:
    target, outside = box
    os.symlink(outside / "newfile", target / "f")  # dangling, pointing outside
    (target / "real").write_bytes(b"keep")
    os.symlink("real", target / "alias")  # pointing inside
    for name in ("f", "alias"):
        data = make_tar([reg(name, b"evil")])
        if flag == "overwrite":
            with pytest.raises(UnpackError, match=f"^failed to unpack: path '{name}' already "
                                                  "exists and is not a regular file$"):
                extract(data, target, overwrite=True)
        else:
            assert extract(data, target, ignore_existing=True).skipped == [name]
    assert not (outside / "newfile").exists()
    assert (target / "real").read_bytes() == b"keep"


@pytest.mark.parametrize("via", VIAS)
def test_truncated_archive_leaves_nothing(tmp_path: Path, via: str) -> None:
    data = make_tar([reg("ok.txt", b"fine"), reg("big.bin", os.urandom(200_000))])
    cut = data[: len(data) // 2]
    with pytest.raises(UnpackError, match="unexpected EOF"):
        extract(cut, tmp_path / "out", via=via)
    assert not (tmp_path / "out").exists()


def test_corrupt_gzip_data_leaves_nothing(tmp_path: Path) -> None:
    payload = b"".join(b"line %d of a compressible file\n" % i for i in range(40_000))
    blob = bytearray(gzip.compress(make_tar([reg("f.txt", payload)])))
    blob[len(blob) // 3] ^= 0xFF
    (tmp_path / "out").mkdir()
    with pytest.raises(UnpackError, match="^failed to unpack: layer is not valid gzip"), \
            Extraction(tmp_path / "out") as tx:
        tx.tar(StreamInput(io.BytesIO(bytes(blob)), compression="gzip"))
    assert tree(tmp_path / "out") == set()


def test_gzip_crc_checked_at_end(tmp_path: Path) -> None:
    blob = bytearray(gzip.compress(make_tar([reg("f.txt", b"data")])))
    blob[-8] ^= 0xFF  # CRC32 of the uncompressed stream
    with pytest.raises(UnpackError, match="^failed to unpack: layer is not valid gzip: CRC "
                                          "check failed"), Extraction(tmp_path / "o") as tx:
        inp = StreamInput(io.BytesIO(bytes(blob)), compression="gzip")
        tx.tar(inp)
        inp.drain()
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("via", VIAS)
def test_setuid_setgid_sticky_never_restored(tmp_path: Path, via: str) -> None:
    data = make_tar([directory("d", 0o3777), reg("d/x", b"1", 0o4755), reg("y", b"2", 0o2750),
                     reg("z", b"3", 0o1644)])
    old = os.umask(0o022)
    try:
        extract(data, tmp_path / "o", via=via)
    finally:
        os.umask(old)
    modes = {n: (tmp_path / "o" / n).stat().st_mode & 0o7777 for n in ("d", "d/x", "y", "z")}
    assert modes == {"d": 0o755, "d/x": 0o755, "y": 0o750, "z": 0o644}


@pytest.mark.parametrize("via", VIAS)
def test_read_only_directories_still_receive_files(tmp_path: Path, via: str) -> None:
    """GNU tar's way: owner-writable while filling, the recorded mode at the end, deepest
    first (a parent without its search bit would otherwise block the child's chmod)."""
    data = make_tar([directory("ro", 0o555), reg("ro/f", b"1"), directory("ro/inner", 0o500),
                     reg("ro/inner/g", b"2"), directory("nox", 0o600), reg("nox/h", b"3")])
    out = tmp_path / "o"
    old = os.umask(0o022)
    try:
        extract(data, out, via=via)
        assert (out / "ro/f").read_bytes() == b"1"
        assert (out / "ro/inner/g").read_bytes() == b"2"
        assert (out / "ro").stat().st_mode & 0o777 == 0o555
        assert (out / "ro/inner").stat().st_mode & 0o777 == 0o500
        assert (out / "nox").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
        for d in ("ro", "ro/inner", "nox"):
            os.chmod(out / d, 0o755)
    assert (out / "nox/h").read_bytes() == b"3"


def test_file_without_directory_entry_gets_parents(tmp_path: Path) -> None:
    extract(make_tar([reg("a/b/c.txt", b"c")]), tmp_path)
    assert (tmp_path / "a/b/c.txt").read_bytes() == b"c"


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("members,message", [
    ([reg("src/a", b"1"), reg("src/a", b"2")],
     "path 'src/a' occurs more than once in the ModelKit"),
    ([reg("src/a", b"1"), reg("src/a/b", b"2")],
     "path 'src/a/b' is inside 'src/a', which is a file of the ModelKit"),
    ([reg("src/a", b"1"), directory("src/a")],
     "path 'src/a' already exists and is not a directory"),
    ([reg("src/a", b"1"), directory("src/a/d")],
     "path 'src/a/d' is inside 'src/a', which is a file of the ModelKit"),
    # src/ is new: a file there is written without asking the disk, except where this run
    # made a directory of its name
    ([directory("src/a"), reg("src/a", b"1")],
     "path 'src/a' already exists and is not a regular file"),
    ([reg("Kitfile", b"manifestVersion: 1.0.0\n")],
     "illegal file path: Kitfile: a layer may not replace the ModelKit's Kitfile"),
    ([reg("./.kitfile", b"x")],
     "illegal file path: ./.kitfile: a layer may not replace the ModelKit's Kitfile"),
])
def test_names_that_clash_are_refused_and_leave_nothing(tmp_path: Path, members, message,
                                                        via: str) -> None:
    out = tmp_path / "a" / "out"
    with pytest.raises(UnpackError) as err:
        extract(make_tar(members), out, via=via, overwrite=True)
    assert str(err.value) == f"failed to unpack: {message}"
    assert tree(tmp_path) == set()  # neither files, temp files nor the directories it made


def test_kitfile_deeper_down_is_an_ordinary_file(tmp_path: Path) -> None:
    extract(make_tar([reg("sub/Kitfile", b"k")]), tmp_path)
    assert (tmp_path / "sub/Kitfile").read_bytes() == b"k"


def test_a_directory_twice_is_fine(tmp_path: Path) -> None:
    """kit writes a layer's ancestor directories into every layer: they repeat across layers."""
    extract(make_tar([directory("d"), reg("d/x"), directory("d"), reg("d/y")]), tmp_path)
    assert tree(tmp_path) == {"d", "d/x", "d/y"}


def test_clashes_are_found_across_layers_of_one_unpack(tmp_path: Path) -> None:
    with pytest.raises(UnpackError, match="occurs more than once"), \
            Extraction(tmp_path / "o", overwrite=True) as tx:
        tx.tar(StreamInput(io.BytesIO(make_tar([reg("m.bin", b"1")]))))
        tx.tar(StreamInput(io.BytesIO(make_tar([reg("m.bin", b"2")]))))
    assert not (tmp_path / "o").exists()


# --- Go's header rules -------------------------------------------------------------------------

@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("records,message", [
    (record("size", b"abc"), "PAX size 'abc' is not a number"),
    (record("size", b"-7"), "PAX size -7 is negative"),
    (record("size", b"99999999999999999999"), "PAX size '99999999999999999999' is out of range"),
    (record("path", b"a\0b"), "PAX path contains NUL"),
    (record("mtime", b"12x"), "PAX mtime '12x' is not a number"),
    (record("uid", b" 1"), "PAX uid ' 1' is not a number"),
    (b"4 a=\n", "malformed PAX record length"),
    (b"30 path=x\n", "malformed PAX record length"),
    (b"7 path\n", "malformed PAX record"),
    (b"6 =ab\n", "malformed PAX record"),
])
def test_bad_pax_records_are_refused(tmp_path: Path, records: bytes, message: str,
                                     via: str) -> None:
    with pytest.raises(TarFormatError) as err:
        extract(pax_member(records), tmp_path / "o", via=via)
    assert str(err.value) == f"failed to unpack: invalid tar header: {message}"
    assert not (tmp_path / "o").exists()


def test_pax_records_go_accepts(tmp_path: Path) -> None:
    data = pax_member(record("path", "données/é.txt".encode()) + record("size", b"+3")
                      + record("mtime", b"1.5") + record("comment", b"hi"), "x")
    extract(data, tmp_path)
    assert (tmp_path / "données/é.txt").read_bytes() == b"abc"
    # an empty value keeps the USTAR field (Go's mergePAX)
    extract(pax_member(record("path", b""), "kept"), tmp_path / "2")
    assert (tmp_path / "2/kept").read_bytes() == b"abc"


class _Counted(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_total = 0

    def readinto(self, b) -> int:  # type: ignore[override]
        n = super().readinto(b)
        self.read_total += n
        return n


def test_huge_metadata_headers_are_refused_before_they_are_read(tmp_path: Path) -> None:
    """A PAX header (or GNU long name) claiming 6 GiB: refused from its size field, like Go's
    1 MiB maxSpecialFileSize -- nothing of it is read or held."""
    for typeflag in (b"x", b"L"):
        head = bytearray(pax_member(record("path", b"x"))[:512])
        head[124:136] = format(6 << 30, "011o").encode() + b"\0"
        head[156:157] = typeflag
        head[148:156] = b" " * 8
        head[148:156] = format(sum(head), "06o").encode() + b"\0 "
        stream = _Counted(bytes(head) + b"\0" * (4 << 20))
        with pytest.raises(TarFormatError, match="^failed to unpack: invalid tar header: a PAX "
                                                 "or long-name header of 6442450944 bytes"):
            with Extraction(tmp_path / "o") as tx:
                tx.tar(StreamInput(stream))
        assert stream.read_total <= 1 << 20  # one buffer fill, not the claimed 6 GiB


def test_numbers_go_accepts_and_refuses(tmp_path: Path) -> None:
    data = bytearray(make_tar([reg("f", b"hello")], fmt=tarfile.USTAR_FORMAT))

    def with_field(start: int, end: int, value: bytes) -> bytes:
        b = bytearray(data)
        b[start:end] = value.ljust(end - start, b"\0")
        b[148:156] = b" " * 8
        b[148:156] = format(sum(b[:512]), "06o").encode() + b"\0 "
        return bytes(b)

    # base-256 size (GNU), spaces around octal digits
    (got,) = entries(with_field(124, 136, b"\x80" + (5).to_bytes(11, "big")))
    assert got.size == 5
    (got,) = entries(with_field(100, 108, b"  644 \0"))
    assert got.mode == 0o644
    for start, end, value, what in [(124, 136, b"\xff" * 12, "negative size -1"),
                                    (124, 136, b"0x12", "size field '0x12' is not an octal"),
                                    (100, 108, b"+644", "mode field '+644' is not an octal"),
                                    (136, 148, b"1_0", "mtime field '1_0' is not an octal")]:
        with pytest.raises(TarFormatError, match="^failed to unpack: invalid tar header: "
                                                 + re.escape(what)):
            entries(with_field(start, end, value))


def test_signed_checksums_and_the_end_of_the_archive(tmp_path: Path) -> None:
    data = bytearray(make_tar([reg("f", b"x")], fmt=tarfile.USTAR_FORMAT))
    data[265:270] = b"\xe9\xe9\xe9\xe9\xe9"  # uname, high bytes: the signed sum differs
    data[148:156] = b" " * 8
    signed = sum(b - 256 if b > 127 else b for b in data[:512])
    data[148:156] = format(signed, "06o").encode() + b"\0 "
    assert [e.name for e in entries(bytes(data))] == ["f"]
    # a zero block followed by a header is not an end (Go: invalid header)
    two = make_tar([reg("a")], fmt=tarfile.USTAR_FORMAT)
    head = two[:1024]
    with pytest.raises(TarFormatError, match="a zero block followed by data"):
        entries(head + b"\0" * 512 + head + b"\0" * 1024)


# --- existing files: -o / -i -------------------------------------------------------------------

def test_existing_file_without_flags(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")
    with pytest.raises(UnpackError) as err:
        extract(make_tar([reg("f", b"new")]), tmp_path)
    assert str(err.value) == "failed to unpack: path 'f' already exists"
    assert (tmp_path / "f").read_bytes() == b"old"


@pytest.mark.parametrize("via", VIAS)
def test_overwrite_replaces(tmp_path: Path, via: str) -> None:
    (tmp_path / "f").write_bytes(b"old-and-longer")
    extract(make_tar([reg("f", b"new")]), tmp_path, overwrite=True, via=via)
    assert (tmp_path / "f").read_bytes() == b"new"


@pytest.mark.parametrize("via", VIAS)
def test_ignore_existing_skips(tmp_path: Path, via: str) -> None:
    (tmp_path / "f").write_bytes(b"old")
    data = make_tar([reg("f", b"new"), reg("g", b"g")])
    stats = extract(data, tmp_path, ignore_existing=True, via=via)
    assert (tmp_path / "f").read_bytes() == b"old" and (tmp_path / "g").read_bytes() == b"g"
    assert stats.skipped == ["f"] and stats.files == 1


def test_existing_directory_where_file_goes(tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    with pytest.raises(UnpackError) as err:
        extract(make_tar([reg("f")]), tmp_path, overwrite=True)
    assert str(err.value) == "failed to unpack: path 'f' already exists and is not a regular file"
    with pytest.raises(UnpackError, match=r"^failed to unpack: path 'f' already exists$"):
        extract(make_tar([reg("f")]), tmp_path)


def test_existing_file_where_directory_goes(tmp_path: Path) -> None:
    (tmp_path / "d").write_bytes(b"x")
    with pytest.raises(UnpackError) as err:
        extract(make_tar([directory("d")]), tmp_path, overwrite=True)
    assert str(err.value) == "failed to unpack: path 'd' already exists and is not a directory"
    with pytest.raises(UnpackError, match=r"^failed to unpack: path 'd/f': 'd' already exists "
                                          r"and is not a directory$"):
        extract(make_tar([reg("d/f")]), tmp_path, overwrite=True)
    assert tree(tmp_path) == {"d"}


def test_existing_directory_is_fine(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    extract(make_tar([directory("d"), directory("."), reg("d/f")]), tmp_path)
    assert (tmp_path / "d/f").exists()


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_reads_archives_from_other_writers(tmp_path: Path, fmt: int) -> None:
    long_dir = "p" * 90 + "/" + "q" * 60
    names = ["plain.txt", long_dir + "/f.bin"]
    if fmt != tarfile.USTAR_FORMAT:
        names += ["z" * 150, "données/é.txt"]
    members: list = [directory("p" * 90), directory(long_dir)]
    if fmt != tarfile.USTAR_FORMAT:
        members.append(directory("données"))
    members += [reg(n, n.encode() * 3, 0o640) for n in names]
    data = make_tar(members, fmt=fmt)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        expected = [(m.name, m.size, m.mode) for m in tf]
    assert [(e.name, e.size, e.mode) for e in entries(data)] == expected
    extract(data, tmp_path)
    for n in names:
        assert (tmp_path / n).read_bytes() == n.encode() * 3


# --- property tests: nothing but our errors, and nothing left behind -----------------------------
#
# 200 examples each (deadline off: CI machines are slow and shared). A good archive is mutated
# (bytes flipped, cut, spliced, numbers rewritten) or replaced by random bytes; whatever happens,
# the only exceptions are KitError subclasses, and a refused extraction leaves an empty sandbox.

_GOOD = make_tar([directory("d", 0o555), reg("d/a.txt", b"alpha" * 100), reg("b", b""),
                  reg("c/" + "n" * 120, b"long name"), reg("é", b"pax")])
_PROPERTY = settings(max_examples=200, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


def _outcome(data: bytes, via: str) -> None:
    with tempfile.TemporaryDirectory() as sandbox:
        target = Path(sandbox) / "t"
        try:
            extract(data, target, via=via)
        except KitError as exc:
            event(f"refused: {str(exc).split(':')[1].strip()}")
            assert not target.exists()
        else:
            event("extracted")
            for p in [target, *target.rglob("*")]:
                if p.is_dir():
                    os.chmod(p, 0o755)


_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(_GOOD) - 1), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, len(_GOOD)), st.just(0)),
    st.tuples(st.just("splice"), st.integers(0, len(_GOOD)), st.integers(0, len(_GOOD))),
    st.tuples(st.just("field"), st.sampled_from([100, 124, 148, 156, 257, 345]),
              st.integers(0, 2 ** 40)),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    b = bytearray(data)
    for kind, at, arg in mutations:
        at = min(at, len(b))
        if kind == "flip" and at < len(b):
            b[at] ^= arg
        elif kind == "cut":
            del b[at:]
        elif kind == "splice":
            b[at:at] = data[arg:arg + 700]
        elif kind == "field" and len(b) >= 512:
            b[at:at + 12] = format(arg, "o").encode()[:12].ljust(12, b"\0")
    return bytes(b)


def _fix_checksums(data: bytes) -> bytes:
    """Give every whole block a valid header checksum, so the fields behind it get parsed."""
    b = bytearray(data)
    for start in range(0, len(b) - 511, 512):
        block = b[start:start + 512]
        if any(block):
            block[148:156] = b" " * 8
            block[148:156] = format(sum(block), "06o").encode() + b"\0 "
            b[start:start + 512] = block
    return bytes(b)


@_PROPERTY
@given(mutations=st.lists(_mutation, min_size=1, max_size=4), fix=st.booleans(),
       via=st.sampled_from(VIAS))
def test_property_mutated_archives_only_raise_our_errors(mutations, fix: bool, via) -> None:
    data = _mutate(_GOOD, mutations)
    _outcome(_fix_checksums(data) if fix else data, via)


@_PROPERTY
@given(blocks=st.lists(st.binary(min_size=512, max_size=512), max_size=6),
       tail=st.binary(max_size=600), header=st.booleans(), via=st.sampled_from(VIAS))
def test_property_random_blocks_only_raise_our_errors(blocks: list[bytes], tail: bytes,
                                                      header: bool, via) -> None:
    data = _fix_checksums(b"".join(blocks)) + tail
    _outcome(_GOOD[:512] + data if header else data, via)


@_PROPERTY
@given(records=st.lists(st.tuples(st.sampled_from(["path", "size", "linkpath", "mtime", "uid",
                                                   "GNU.sparse.map", "x"]),
                                  st.binary(max_size=30)), max_size=4),
       garbage=st.binary(max_size=20), via=st.sampled_from(VIAS))
def test_property_pax_records_only_raise_our_errors(records, garbage: bytes, via) -> None:
    body = b"".join(record(k, v) if b"\n" not in v else garbage for k, v in records)
    _outcome(pax_member(body + garbage), via)


# --- many small files: one sync, memory independent of the file count -----------------------

def _many(n: int) -> bytes:
    return make_tar([reg(f"src/p{i % 7}/f{i:04d}.py", f"print({i})\n".encode())
                     for i in range(n)])


@pytest.mark.parametrize("via", ["file", "stream"])
@pytest.mark.parametrize("src_exists", [False, True], ids=["new-dir", "existing-dir"])
def test_small_files_cost_one_syncfs_not_an_fsync_each(tmp_path: Path, monkeypatch,
                                                       via: str, src_exists: bool) -> None:
    """Durability of the small files is one ``syncfs`` of the target's file system, made before
    the first rename (a crash never publishes a file whose bytes are not on disk). In a
    directory that was there, each file has a temp file renamed into place; a directory the
    unpack makes is staged -- filled under a hidden name and renamed once, whatever it holds."""
    import kit_jupyter._fs as fs
    import kit_jupyter.oci.extract as ex

    calls: list[str] = []
    real_sync, real_fsync = fs.sync_filesystem, os.fsync
    real_replace, real_rename = os.replace, os.rename

    def sync(path):
        calls.append("sync")
        return real_sync(path)

    monkeypatch.setattr(ex, "sync_filesystem", sync)
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("rename"), real_replace(a, b))[1])
    monkeypatch.setattr(os, "rename", lambda a, b: (calls.append("rename"), real_rename(a, b))[1])
    if src_exists:
        for i in range(7):
            (tmp_path / "o" / "src" / f"p{i}").mkdir(parents=True)
    stats = extract(_many(300), tmp_path / "o", via=via)
    assert stats.files == 300
    assert calls[0] == "sync" and calls.count("sync") == 1 and "fsync" not in calls
    assert calls.count("rename") == (300 if src_exists else 1)
    assert (tmp_path / "o/src/p3/f0010.py").read_bytes() == b"print(10)\n"
    assert not [p for p in tree(tmp_path / "o") if ".part" in p or "kj-" in p]


def test_sync_failure_publishes_nothing(tmp_path: Path, monkeypatch) -> None:
    import errno

    import kit_jupyter.oci.extract as ex

    def broken(path):
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(ex, "sync_filesystem", broken)
    with pytest.raises(UnpackError, match="Input/output error"):
        extract(_many(20), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_sync_filesystem_really_syncs(tmp_path: Path) -> None:
    """The production helper itself (syncfs via libc on Linux, os.sync elsewhere)."""
    from kit_jupyter._fs import sync_filesystem

    (tmp_path / "f").write_bytes(b"x")
    sync_filesystem(tmp_path)  # no error; a missing directory is one
    with pytest.raises(OSError):
        sync_filesystem(tmp_path / "missing")


@pytest.mark.parametrize("via", ["file", "stream"])
def test_pending_files_spill_beyond_the_memory_limit(tmp_path: Path, monkeypatch,
                                                     via: str) -> None:
    """The list of files to rename holds at most PENDING_IN_MEMORY entries in memory whatever
    the file count (the rest go to an unnamed file in the target): counted, not timed."""
    import kit_jupyter.oci.extract as ex

    monkeypatch.setattr(ex, "PENDING_IN_MEMORY", 16)
    seen: list[tuple[int, int]] = []
    real_commit = Extraction.commit

    def commit(self):
        seen.append((self._pending.peak_in_memory, self._pending.spilled))
        real_commit(self)

    monkeypatch.setattr(Extraction, "commit", commit)
    for i in range(7):  # directories that are there: each file has its temp file and rename
        (tmp_path / "o" / "src" / f"p{i}").mkdir(parents=True)
    extract(_many(500), tmp_path / "o", via=via)
    (peak, spilled), = seen
    assert peak <= 16 and spilled >= 500 - 16
    got = {p for p in tree(tmp_path / "o") if p.endswith(".py")}
    assert got == {f"src/p{i % 7}/f{i:04d}.py" for i in range(500)}
    assert (tmp_path / "o/src/p0/f0497.py").read_bytes() == b"print(497)\n"
    assert set(os.listdir(tmp_path / "o")) == {"src"}  # the spill file has no name


def test_rollback_after_a_spill_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    import kit_jupyter.oci.extract as ex

    monkeypatch.setattr(ex, "PENDING_IN_MEMORY", 8)
    data = make_tar([*(reg(f"d/f{i}", b"x") for i in range(100)), reg("d/f42", b"again")])
    with pytest.raises(UnpackError, match="'d/f42' occurs more than once"):
        extract(data, tmp_path / "o", overwrite=True)
    assert tree(tmp_path) == set()


def _full_after(renames: int, real):
    """``os.replace``/``os.rename`` that does ``renames`` renames, then finds the disk full."""
    done: list[str] = []

    def rename(a, b):
        if len(done) == renames:
            raise OSError(28, "No space left on device", b)
        done.append(b)
        return real(a, b)
    return rename


def test_a_failed_rename_midway_removes_the_rest(tmp_path: Path, monkeypatch) -> None:
    import kit_jupyter.oci.extract as ex

    monkeypatch.setattr(ex, "PENDING_IN_MEMORY", 8)
    monkeypatch.setattr(os, "replace", _full_after(30, os.replace))
    for i in range(7):
        (tmp_path / "o" / "src" / f"p{i}").mkdir(parents=True)
    with pytest.raises(UnpackError, match="No space left on device"):
        extract(_many(60), tmp_path / "o")
    assert not [p for p in tree(tmp_path) if ".part" in p]  # no temp file is left
    assert len([p for p in tree(tmp_path) if p.endswith(".py")]) == 30


def test_a_failed_rename_of_a_staged_directory_removes_the_rest(tmp_path: Path,
                                                                monkeypatch) -> None:
    """New directories are staged and renamed into place at commit, one rename each: if
    the second one fails, the first stays published (as renamed files do) and the rest of
    the staged trees go with nothing left behind."""
    monkeypatch.setattr(os, "rename", _full_after(1, os.rename))
    data = make_tar([reg(f"{top}/s/f{i}", b"x") for top in ("a", "b", "c") for i in range(5)])
    with pytest.raises(UnpackError, match="No space left on device"):
        extract(data, tmp_path / "o")
    assert tree(tmp_path / "o") == {"a", "a/s", *(f"a/s/f{i}" for i in range(5))}


_FIELD_BYTES = st.sampled_from(list(b"0123456789 \0x") + [0x80])


@settings(max_examples=400, deadline=None)
@given(fields=st.lists(st.binary(min_size=0, max_size=12), min_size=8, max_size=8),
       pattern=st.lists(_FIELD_BYTES, min_size=56 + 16, max_size=56 + 16), ustar=st.booleans(),
       use_pattern=st.booleans())
def test_plain_octal_shortcut_agrees_with_go_parsing(fields, pattern, ustar: bool,
                                                     use_pattern: bool) -> None:
    """The reader parses plain octal fields in one go; wherever it does, the numbers are those
    Go's per-field parser gives, and wherever that parser fails the shortcut declines."""
    from kit_jupyter.gocompat.gotar import (
        _DEV_SPANS,
        _PLAIN_SPANS,
        _parse_numeric,
        _plain_octals,
    )

    block = bytearray(512)
    spans = _PLAIN_SPANS + _DEV_SPANS
    if use_pattern:  # any mix of digits, separators and junk
        block[100:156] = bytes(pattern[:56])
        block[329:345] = bytes(pattern[56:])
    else:  # well-formed fields of every width, as writers make them
        for (start, end), raw in zip(spans, fields, strict=True):
            digits = format(int.from_bytes(raw[:4] or b"\0", "big") % 8 ** (end - start - 1),
                            "o").encode()
            text = digits.rjust(end - start - 1, b"0") + b"\0"
            block[start:end] = text[-(end - start):]
    if ustar:
        block[257:263] = b"ustar\0"
    fast = _plain_octals(bytes(block))
    try:
        slow = [_parse_numeric(bytes(block[a:b]), "f") for a, b in
                (spans if ustar else _PLAIN_SPANS)][:6]
    except TarFormatError:
        assert fast is None
        return
    if not use_pattern:
        assert fast is not None
    if fast is not None:
        assert fast == slow


def test_extraction_memory_does_not_grow_with_the_file_count(tmp_path: Path,
                                                             monkeypatch) -> None:
    """Python's traced allocations at their peak (extraction and commit), for 4x the files in
    the same directories: the same within a margin (counted bytes, not time)."""
    import tracemalloc

    import kit_jupyter.oci.extract as ex

    monkeypatch.setattr(ex, "PENDING_IN_MEMORY", 64)
    monkeypatch.setattr(ex, "_SPILL_READ", 4096)

    def peak(n: int) -> int:
        data = make_tar([reg(f"c/d{i % 20}/f{i:06d}", b"x") for i in range(n)])
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            extract(data, tmp_path / f"o{n}")
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(1500), peak(6000)
    # the 4500 more paths held in memory would add about 600 kB
    assert large < small + 100_000, (small, large)


@pytest.mark.parametrize("fail", [False, True])
def test_small_files_start_a_background_sync_that_ends_with_the_extraction(tmp_path, fail,
                                                                             monkeypatch):
    """The EARLY_SYNC_AFTER-th small file starts the early syncs (not one before); commit
    (before its own syncfs) and rollback end them: no thread outlives the extraction."""
    def running() -> list[threading.Thread]:  # this test's own: not another test's leftover
        return [t for t in threading.enumerate()
                if t.name == "kit-background-sync" and t.ident not in before]

    before = {t.ident for t in threading.enumerate()}
    monkeypatch.setattr("kit_jupyter.oci.extract.EARLY_SYNC_AFTER", 2)
    with pytest.raises(RuntimeError) if fail else contextlib.nullcontext():
        with Extraction(tmp_path / "out") as tx:
            tx.add_bytes("a.txt", b"a", 0o644)
            assert running() == []
            tx.add_bytes("b.txt", b"b", 0o644)
            assert len(running()) == 1
            if fail:
                raise RuntimeError("stop")
    assert running() == []
    assert (tmp_path / "out" / "b.txt").exists() != fail


@settings(max_examples=300, deadline=None)
@given(block=st.one_of(st.binary(min_size=512, max_size=512),
                       st.sampled_from([b"\xff" * 512, b"\0" * 512, b"\x7f" * 512])))
def test_header_sum_by_adler32_is_the_exact_sum(block: bytes) -> None:
    """The reader sums a header with zlib (two Adler-32 halves); it must be the plain sum,
    the checksum field counted as spaces, for every block (all 0xFF: the largest sums)."""
    from kit_jupyter.gocompat.gotar import _unsigned_sum

    assert _unsigned_sum(block) == sum(block) - sum(block[148:156]) + 8 * 32


def test_relative_keeps_a_staged_directorys_slash(tmp_path: Path) -> None:
    """The journal names a staged directory ``dir/``; the slash survives the slow path of
    :meth:`Extraction._relative` (a path not under the target's real path as written)."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with Extraction(tmp_path / "real") as tx:
        assert tx._relative(str(tmp_path / "link" / "code") + "/", real=True) == "code/"
        assert tx._relative(str(tmp_path / "link" / "code"), real=True) == "code"
        assert tx._relative(str(tmp_path / "link") + "/", real=True) == "."


@settings(max_examples=400, deadline=None)
@given(mode=st.integers(0, 8 ** 7 - 1), size=st.integers(0, 8 ** 11 - 1),
       chk=st.integers(0, 8 ** 6 - 1), ustar=st.booleans(),
       flips=st.lists(st.tuples(st.integers(100, 155), st.sampled_from(list(b"0789 \0x"))),
                      max_size=2),
       devs=st.sampled_from([b"0000000\0" * 2, b"0000001\0" + b"0000000\0", b"\0" * 16]))
def test_kit_number_shortcut_agrees_with_the_general_one(mode, size, chk, ustar, flips,
                                                         devs) -> None:
    """The reader's first shortcut takes only the numbers exactly as kit writes them; wherever
    it answers, the general parser of plain octal fields gives the same mode, size and
    checksum (and wherever that one declines, so does the shortcut)."""
    from kit_jupyter.gocompat.gotar import _kit_numbers, _plain_octals

    block = bytearray(512)
    block[100:156] = (b"%07o\0" % mode + b"0000000\0" * 2 + b"%011o\0" % size
                      + b"00000000000\0" + b"%06o\0 " % chk)
    if ustar:
        block[257:263] = b"ustar\0"
        block[329:345] = devs
    for at, value in flips:
        block[at] = value
    kit = _kit_numbers(bytes(block))
    if kit is not None:
        plain = _plain_octals(bytes(block))
        assert plain is not None
        assert kit == (plain[0], plain[3], plain[5])
    if not flips and (not ustar or devs == b"0000000\0" * 2):
        assert kit == (mode, size, chk)


@pytest.mark.parametrize("made", ["directory", "file"])
def test_a_path_made_by_another_process_before_the_commit(tmp_path: Path, made: str) -> None:
    """A staged directory's final name taken while the unpack ran (another kernel unpacking
    into the same target, say): one line naming the path, the other process's work kept,
    nothing of ours left."""
    target = tmp_path / "o"
    tx = Extraction(target)
    tx.open()
    inp = StreamInput(io.BytesIO(make_tar([reg("code/a.py", b"ours"), reg("code/s/b.py")])))
    tx.tar(inp)
    if made == "directory":
        (target / "code").mkdir()
        (target / "code" / "a.py").write_bytes(b"theirs")
    else:
        (target / "code").write_bytes(b"theirs")
    with pytest.raises(UnpackError, match=r"^failed to unpack: path 'code' was made by another "
                                          r"process while unpacking$"):
        tx.commit()
    assert tree(target) == ({"code", "code/a.py"} if made == "directory" else {"code"})


def test_file_input_reads_more_than_its_window(tmp_path: Path) -> None:
    """A read larger than the read-ahead window goes straight to the file, short only at its
    end; reads after it come from the window again, at the right position."""
    data = os.urandom(2 * (1 << 20) + 5)
    path = tmp_path / "blob"
    path.write_bytes(data)
    with FileInput(path) as inp:
        first = inp.read_upto((1 << 20) + 100)
        assert first == data[:(1 << 20) + 100]
        assert inp.read_upto(512) == data[(1 << 20) + 100:(1 << 20) + 612]
        assert inp.read_upto(3 << 20) == data[(1 << 20) + 612:]
        assert inp.read_upto(512) == b""
