"""Extracting layers: kit's checks and messages, refusal of hostile archives, no partial files."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from kit_jupyter.errors import UnpackError
from kit_jupyter.oci.layers import extract_layer, list_layer_entries, write_layer
from kit_jupyter.reporting import NullReporter


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


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path]:
    """(target, outside): the target sits inside a sandbox so escapes land in `outside`."""
    sandbox = tmp_path / "sandbox"
    target = sandbox / "target"
    target.mkdir(parents=True)
    outside = sandbox
    return target, outside


# --- round trip --------------------------------------------------------------------------------

def test_round_trip_with_modes(tmp_path: Path) -> None:
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
        stats = extract_layer(io.BytesIO(blob.getvalue()), out)
    finally:
        os.umask(old)
    assert (stats.files, stats.dirs) == (3, 2)
    assert (out / "m/w.bin").read_bytes() == (ctx / "m/w.bin").read_bytes()
    assert (out / "m/sub/é.txt").read_text() == "u"
    assert (out / "m/run.sh").stat().st_mode & 0o777 == 0o755
    assert (out / "m/w.bin").stat().st_mode & 0o777 == 0o600
    assert not [p for p in out.rglob("*.part")]


def test_list_entries_without_extracting(tmp_path: Path) -> None:
    data = make_tar([directory("d"), reg("d/f", b"abc", 0o640), special("d/l", tarfile.SYMTYPE,
                                                                         "f")])
    entries = list_layer_entries(io.BytesIO(data))
    assert [(e.name, e.kind, e.size, e.mode) for e in entries] == [
        ("d", "dir", 0, 0o755), ("d/f", "file", 3, 0o640), ("d/l", "symlink", 0, 0o644)]
    assert entries[2].linkname == "f"
    assert list(tmp_path.iterdir()) == []


def test_empty_layer_and_empty_blob(tmp_path: Path) -> None:
    stats = extract_layer(io.BytesIO(b"\0" * 1024), tmp_path / "out")
    assert stats.files == 0 and (tmp_path / "out").is_dir()
    # Go's tar reader (and so kit) takes a stream ending on a block boundary as complete
    assert extract_layer(io.BytesIO(b""), tmp_path / "out2").files == 0
    with pytest.raises(UnpackError, match="failed to read layer: unexpected EOF"):
        extract_layer(io.BytesIO(b"\1" * 100), tmp_path / "out3")
    with pytest.raises(UnpackError, match="failed to read layer: invalid tar header"):
        extract_layer(io.BytesIO(b"\1" * 512), tmp_path / "out3")


def test_gzip_layer(tmp_path: Path) -> None:
    data = gzip.compress(make_tar([reg("a.txt", b"hi")]))
    extract_layer(io.BytesIO(data), tmp_path, compressed=True)
    assert (tmp_path / "a.txt").read_bytes() == b"hi"
    with pytest.raises(UnpackError, match="unsupported layer compression: zstd"):
        extract_layer(io.BytesIO(data), tmp_path, compressed="zstd")


def test_progress_counts_blob_bytes_and_reads_to_eof(tmp_path: Path) -> None:
    data = make_tar([reg("a.txt", b"hi")]) + b"\0" * 4096  # trailing padding after the end
    rep = NullReporter()
    task = rep.task("unpack", len(data))
    stream = io.BytesIO(data)
    extract_layer(stream, tmp_path, task=task)
    assert task.done == len(data) and stream.tell() == len(data)


# --- hostile archives --------------------------------------------------------------------------

@pytest.mark.parametrize("name,reason", [
    ("../x", "layer paths must stay within context directory"),
    ("a/../../x", "layer paths must stay within context directory"),
    ("/abs", "absolute paths are not supported (/abs)"),
    ("v1..2.txt", "paths must be within context directory"),  # kit's substring test
])
def test_escaping_names_refused(box: tuple[Path, Path], name: str, reason: str) -> None:
    target, outside = box
    data = make_tar([reg(name, b"evil")])
    with pytest.raises(UnpackError) as err:
        extract_layer(io.BytesIO(data), target)
    assert str(err.value) == f"illegal file path: {name}: {reason}"
    assert tree(outside) == {"target"}


@pytest.mark.parametrize("entry", [
    special("link", tarfile.SYMTYPE, "/etc/passwd"),
    special("hard", tarfile.LNKTYPE, "../../outside"),
    special("dev", tarfile.CHRTYPE),
    special("blk", tarfile.BLKTYPE),
    special("fifo", tarfile.FIFOTYPE),
])
def test_non_regular_entries_refused(box: tuple[Path, Path], entry) -> None:
    target, outside = box
    data = make_tar([reg("before.txt"), entry])
    with pytest.raises(UnpackError) as err:
        extract_layer(io.BytesIO(data), target)
    assert str(err.value) == f"unrecognized type in archive: {entry[0].name}"
    assert tree(outside) == {"target", "target/before.txt"}  # completed files stay, as with kit


def test_symlink_then_file_through_it_refused(box: tuple[Path, Path]) -> None:
    target, outside = box
    (outside / "secret").mkdir()
    os.symlink(outside / "secret", target / "d")  # planted before unpack
    data = make_tar([reg("d/x", b"evil")])
    with pytest.raises(UnpackError, match=r"^illegal file path: d/x: paths must be within"):
        extract_layer(io.BytesIO(data), target)
    assert list((outside / "secret").iterdir()) == []


def test_dangling_symlink_target_refused(box: tuple[Path, Path]) -> None:
    target, outside = box
    os.symlink(outside / "newfile", target / "f")
    with pytest.raises(UnpackError, match="illegal file path: f"):
        extract_layer(io.BytesIO(make_tar([reg("f", b"evil")])), target, overwrite=True)
    assert not (outside / "newfile").exists()


def test_symlink_back_inside_is_replaced_not_followed(box: tuple[Path, Path]) -> None:
    target, outside = box
    (target / "real").write_bytes(b"keep")
    os.symlink("real", target / "alias")
    extract_layer(io.BytesIO(make_tar([reg("alias", b"new")])), target, overwrite=True)
    assert (target / "real").read_bytes() == b"keep"
    assert not (target / "alias").is_symlink() and (target / "alias").read_bytes() == b"new"


def test_truncated_archive_leaves_no_partial_file(tmp_path: Path) -> None:
    data = make_tar([reg("ok.txt", b"fine"), reg("big.bin", os.urandom(200_000))])
    cut = data[: len(data) // 2]
    with pytest.raises(UnpackError, match="big.bin"):
        extract_layer(io.BytesIO(cut), tmp_path)
    assert tree(tmp_path) == {"ok.txt"}


def test_corrupt_gzip_data_leaves_no_partial_file(tmp_path: Path) -> None:
    payload = b"".join(b"line %d of a compressible file\n" % i for i in range(40_000))
    blob = bytearray(gzip.compress(make_tar([reg("f.txt", payload)])))
    blob[len(blob) // 3] ^= 0xFF
    with pytest.raises(UnpackError):
        extract_layer(io.BytesIO(bytes(blob)), tmp_path, compressed=True)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]


def test_gzip_crc_checked_at_end(tmp_path: Path) -> None:
    blob = bytearray(gzip.compress(make_tar([reg("f.txt", b"data")])))
    blob[-8] ^= 0xFF  # CRC32 of the uncompressed stream
    with pytest.raises(UnpackError, match="failed to read layer: CRC check failed"):
        extract_layer(io.BytesIO(bytes(blob)), tmp_path, compressed=True)


def test_setuid_bits_not_restored(tmp_path: Path) -> None:
    extract_layer(io.BytesIO(make_tar([reg("x", b"1", 0o4755)])), tmp_path)
    assert (tmp_path / "x").stat().st_mode & 0o7000 == 0


def test_read_only_directory_still_receives_files(tmp_path: Path) -> None:
    data = make_tar([directory("ro", 0o555), reg("ro/f", b"1")])
    extract_layer(io.BytesIO(data), tmp_path)
    assert (tmp_path / "ro/f").read_bytes() == b"1"
    assert (tmp_path / "ro").stat().st_mode & 0o777 == 0o555
    os.chmod(tmp_path / "ro", 0o755)


def test_file_without_directory_entry_gets_parents(tmp_path: Path) -> None:
    extract_layer(io.BytesIO(make_tar([reg("a/b/c.txt", b"c")])), tmp_path)
    assert (tmp_path / "a/b/c.txt").read_bytes() == b"c"


# --- existing files: -o / -i -------------------------------------------------------------------

def test_existing_file_without_flags(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")
    with pytest.raises(UnpackError) as err:
        extract_layer(io.BytesIO(make_tar([reg("f", b"new")])), tmp_path)
    assert str(err.value) == "path 'f' already exists"
    assert (tmp_path / "f").read_bytes() == b"old"


def test_overwrite_replaces(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old-and-longer")
    extract_layer(io.BytesIO(make_tar([reg("f", b"new")])), tmp_path, overwrite=True)
    assert (tmp_path / "f").read_bytes() == b"new"


def test_ignore_existing_skips(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")
    data = make_tar([reg("f", b"new"), reg("g", b"g")])
    stats = extract_layer(io.BytesIO(data), tmp_path, ignore_existing=True)
    assert (tmp_path / "f").read_bytes() == b"old" and (tmp_path / "g").read_bytes() == b"g"
    assert stats.skipped == ["f"] and stats.files == 1


def test_existing_directory_where_file_goes(tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    with pytest.raises(UnpackError) as err:
        extract_layer(io.BytesIO(make_tar([reg("f")])), tmp_path, overwrite=True)
    assert str(err.value) == "path 'f' already exists and is not a regular file"
    with pytest.raises(UnpackError, match=r"^path 'f' already exists$"):
        extract_layer(io.BytesIO(make_tar([reg("f")])), tmp_path)


def test_existing_file_where_directory_goes(tmp_path: Path) -> None:
    (tmp_path / "d").write_bytes(b"x")
    with pytest.raises(UnpackError) as err:
        extract_layer(io.BytesIO(make_tar([directory("d")])), tmp_path, overwrite=True)
    assert str(err.value) == "path 'd' already exists and is not a directory"


def test_existing_directory_is_fine(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    extract_layer(io.BytesIO(make_tar([directory("d"), directory("."), reg("d/f")])), tmp_path)
    assert (tmp_path / "d/f").exists()


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_reads_archives_from_other_writers(tmp_path: Path, fmt: int) -> None:
    long_dir = "p" * 90 + "/" + "q" * 60
    names = ["plain.txt", long_dir + "/f.bin"]
    if fmt != tarfile.USTAR_FORMAT:
        names += ["z" * 150, "données/é.txt"]
    entries: list = [directory("p" * 90), directory(long_dir)]
    if fmt != tarfile.USTAR_FORMAT:
        entries.append(directory("données"))
    entries += [reg(n, n.encode() * 3, 0o640) for n in names]
    data = make_tar(entries, fmt=fmt)
    listed = list_layer_entries(io.BytesIO(data))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        expected = [(m.name, m.size, m.mode) for m in tf]
    assert [(e.name, e.size, e.mode) for e in listed] == expected
    extract_layer(io.BytesIO(data), tmp_path)
    for n in names:
        assert (tmp_path / n).read_bytes() == n.encode() * 3
