"""pack and init against a working directory an attacker controls or bad luck has shaped: FIFOs,
devices, files replaced between the walk and the read, a full disk, a very deep tree. One line,
bounded time and memory, nothing left in ``KITOPS_HOME``.

What is already refused elsewhere: a Kitfile that is no regular file
(``test_hostile_kitfiles.py``), FIFOs and symlinks inside a layer (skipped, ``test_layers.py``),
a file that grows or shrinks while it is packed (``test_layers.py``).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import kit_jupyter.oci.layers as layers
from kit_jupyter.commands.importer import _listing_files
from kit_jupyter.commands.init import init, listing_from_fs
from kit_jupyter.commands.pack import pack
from kit_jupyter.errors import PackError
from kit_jupyter.gocompat.ignore import MAX_IGNORE_FILE_BYTES, IgnoreRules
from tests.test_hostile_kitfiles import AS_LIMIT, ROOT, kit, one_line_error

KITFILE = "manifestVersion: 1.0.0\nmodel:\n  path: model.bin\ncode:\n  - path: src\n"


def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "Kitfile").write_text(KITFILE)
    (ctx / "model.bin").write_bytes(b"weights" * 100)
    (ctx / "src" / "a.py").write_text("print('a')\n")
    return ctx


def files_under(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())


# --- .kitignore ---------------------------------------------------------------------------------

@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "/dev/urandom"])
def test_a_kitignore_that_is_no_regular_file_is_refused_not_read(tmp_path, special,
                                                                 kitops_home):
    """kit opens ``.kitignore`` whatever it is: a FIFO blocks the open for ever and a device
    never ends. Through the CLI under an address-space limit, so reading /dev/zero into memory
    would die of a MemoryError, and with a timeout, so a blocked open fails the test."""
    ctx = context(tmp_path)
    if special == "fifo":
        os.mkfifo(ctx / ".kitignore")  # nobody ever writes to it
    else:
        os.symlink(special, ctx / ".kitignore")
    one_line_error(kit("pack", str(ctx)), "failed to open .kitignore file: not a regular file")
    assert not (kitops_home / "storage").exists()


def test_an_oversized_kitignore_is_refused(tmp_path):
    (tmp_path / ".kitignore").write_bytes(b"*.tmp\n" * (MAX_IGNORE_FILE_BYTES // 6 + 1))
    with pytest.raises(PackError, match=r"^failed to read .kitignore file: larger than 4 MiB$"):
        IgnoreRules.load(tmp_path)
    (tmp_path / ".kitignore").write_bytes(b"*.tmp\n" * (MAX_IGNORE_FILE_BYTES // 6))
    assert IgnoreRules.load(tmp_path).matches("x.tmp")  # up to the limit it is read


# --- a file replaced by a FIFO after the walk saw a regular file --------------------------------

@pytest.fixture
def fifo_rescue() -> Iterator[list[str]]:
    """If a test's FIFO blocks an open for reading (no writer ever comes), a writer comes after a
    minute and goes: the open returns and the test fails on the list this yields, instead of
    hanging the suite. Nothing is asserted about how long anything takes."""
    fifos: list[str] = []
    rescued: list[str] = []

    def rescue() -> None:
        for path in fifos:
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                rescued.append(path)
            except OSError:
                pass  # nobody was waiting on it

    timer = threading.Timer(60, rescue)
    timer.start()
    yield fifos
    timer.cancel()
    assert not rescued, f"an open of {rescued} blocked until a writer came"


@pytest.mark.parametrize("size", [100, 3 << 20], ids=["small", "large"])
def test_a_file_replaced_by_a_fifo_after_the_walk_fails_the_pack(tmp_path, monkeypatch,
                                                                  fifo_rescue, size):
    """The walk's ``lstat`` saw a regular file; by the time it is opened it is a FIFO (an
    attacker's swap). Opening it for reading would wait for a writer for ever: the pack fails
    as for any file that changed, and the half-written blob is gone."""
    ctx = context(tmp_path)
    (ctx / "src" / "a.py").write_bytes(b"a" * size)
    real_walk = layers.walk_layer

    def walk(*args, **kw):
        for entry in real_walk(*args, **kw):
            if entry.rel == "src/a.py":  # lstat taken; now the swap
                os.unlink(ctx / "src" / "a.py")
                os.mkfifo(ctx / "src" / "a.py")
                fifo_rescue.append(str(ctx / "src" / "a.py"))
            yield entry

    monkeypatch.setattr(layers, "walk_layer", walk)
    home = tmp_path / "home"
    with pytest.raises(PackError, match="^Failed to pack model kit: file src/a.py changed "
                                        "while it was being packed$"):
        pack(ctx, tag="swap:v1", home=home)
    assert not [f for f in files_under(home) if "cache/pack" in f or "index" in f]


# --- a full disk (the file-size limit stands in for it) -----------------------------------------

def _pack_under_fsize_limit(ctx: Path, home: Path, limit: int, *flags: str
                            ) -> subprocess.CompletedProcess:
    """``python -m kit_jupyter pack`` whose writes fail with EFBIG past ``limit`` bytes of a
    file (SIGXFSZ ignored, so the write returns the error instead of killing the process)."""

    def limits() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # stays ignored across the exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))

    env = dict(os.environ, PYTHONPATH=str(ROOT), KITOPS_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "kit_jupyter", "pack", str(ctx), "-t", "m:v2",
                           *flags], capture_output=True, timeout=120, env=env, preexec_fn=limits)


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_a_write_error_during_pack_is_one_line_and_leaves_storage_as_it_was(tmp_path,
                                                                           compression):
    """A layer larger than the file-size limit: EFBIG ("file too large", what FAT32 gives for
    a model over 4 GiB) is one line naming the directory, the layer's temp file is gone and
    the indexes and tags hold what they held before."""
    ctx = context(tmp_path)
    home = tmp_path / "home"
    pack(ctx, tag="m:v1", home=home)
    before = {f: (home / f).read_bytes() for f in files_under(home)}
    (ctx / "model.bin").write_bytes(os.urandom(3 << 20))  # incompressible: gzip is no smaller
    proc = _pack_under_fsize_limit(ctx, home, 1 << 20, "--compression", compression)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err[-3000:]
    assert err == f"[ERROR] File too large: {home / 'cache' / 'pack'}\n"
    after = {f: (home / f).read_bytes() for f in files_under(home)}
    assert {f: b for f, b in after.items() if "/blobs/" not in f} == \
        {f: b for f, b in before.items() if "/blobs/" not in f}
    assert set(after) == set(before) and os.listdir(home / "cache" / "pack") == []


# --- init ---------------------------------------------------------------------------------------

@pytest.fixture
def deep_tree(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory holding ``a/a/.../a/x.py``, 200 levels deeper than Python's recursion limit
    (made one level at a time: ``os.makedirs`` recurses), and that file's path. Removed by
    ``rm``: pytest's own clean-up of old temporary directories recurses (``shutil.rmtree`` in
    Python 3.11) and would fail on it."""
    base = tmp_path / "deep"
    base.mkdir()
    levels = sys.getrecursionlimit() + 200
    fd = os.open(base, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir("a", dir_fd=fd)
            inner = os.open("a", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(os.open("x.py", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    try:
        yield base, "/".join(["a"] * levels) + "/x.py"
    finally:
        subprocess.run(["rm", "-rf", "--", str(base)], check=True)


@pytest.mark.parametrize("depth", [0, -1])
def test_init_lists_a_tree_deeper_than_pythons_recursion_limit(deep_tree, depth):
    """kit lists (and with ``--depth -1`` examines) any depth; a path of 4 KiB holds 2,048
    levels, more than Python's default recursion limit of 1,000."""
    base, deepest = deep_tree
    result = init(base, output="-", depth=depth)
    # one unit at the top, or the one file of unknown type at the bottom
    assert [c.path for c in result.kitfile.code] == (["a/"] if depth == 0 else [deepest])


def test_import_lists_the_files_of_a_tree_deeper_than_pythons_recursion_limit(deep_tree):
    """``import`` lists a cloned repository's files from the same listing (a hostile repository
    can be that deep)."""
    base, deepest = deep_tree
    (base / "top.txt").write_text("top")
    assert _listing_files(listing_from_fs(base)) == [("top.txt", 3), (deepest, 0)]


def test_init_does_not_block_on_a_licence_replaced_by_a_fifo(tmp_path, monkeypatch,
                                                             fifo_rescue):
    """``init`` lists LICENSE as a regular file and reads it afterwards; replaced by a FIFO in
    between, the read would wait for a writer for ever. It is a licence that cannot be read."""
    import kit_jupyter.commands.init as init_mod

    (tmp_path / "LICENSE").write_text("MIT License\n")
    (tmp_path / "model.pkl").write_bytes(b"m")
    real_listing = init_mod.listing_from_fs

    def listing(directory):
        result = real_listing(directory)
        os.unlink(tmp_path / "LICENSE")
        os.mkfifo(tmp_path / "LICENSE")
        fifo_rescue.append(str(tmp_path / "LICENSE"))
        return result

    monkeypatch.setattr(init_mod, "listing_from_fs", listing)
    result = init(tmp_path, output="-")
    assert ("warning", "Unable to determine license type") in result.messages
    assert [d.path for d in result.kitfile.docs] == ["LICENSE"]
