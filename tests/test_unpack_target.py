"""unpack into an unlucky target directory: something that is no directory where the target
(or a directory on the way to a remote dataset) goes, and a write error (a full disk; the
file-size limit stands in for it) in the middle. Each ends in one line and exit status 1,
with nothing half-made left: no ``.part`` file, no journal, no directory the failed step made,
and what was in the target before untouched.

The tar members themselves are ``tests/test_extract.py``'s and ``tests/test_unpack_hostile.py``'s
business; symlinks already in the target are ``tests/test_extract.py``'s
(``test_symlink_then_file_through_it_refused``,
``test_a_symlink_where_a_file_goes_is_never_written_through``).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kit_jupyter._fs import make_dirs, remove_dirs
from kit_jupyter.commands.pack import pack
from kit_jupyter.commands.unpack import unpack_remote_datasets
from kit_jupyter.errors import UnpackError
from tests.test_s3 import kitfile, no_litter
from tests.test_unpack import packed  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parent.parent
KiB = 1024


def kit(*args: str, fsize: int | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    """``python -m kit_jupyter <args>``; with ``fsize``, its writes fail with EFBIG past that
    many bytes of a file (SIGXFSZ ignored, so the write returns the error instead of killing
    the process)."""

    def limits() -> None:
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # stays ignored across the exec
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-m", "kit_jupyter", *args], capture_output=True,
                          text=True, timeout=180, preexec_fn=limits,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[ERROR] "), proc.stderr
    return lines[0]


def listing(root: Path) -> dict[str, bytes | None]:
    """Everything under ``root`` (hidden files too): a file's bytes, None for anything else."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() and not p.is_symlink()
            else None for p in sorted(root.rglob("*"))}


# --- the target is no directory -------------------------------------------------------------

@pytest.mark.parametrize("kind", ["file", "fifo", "dangling symlink", "file on the way"])
def test_a_target_that_is_no_directory_is_one_line_naming_what_is_in_the_way(
        packed, tmp_path, kind):  # noqa: F811
    """``-d`` names a file, a FIFO (never opened: nothing blocks), a symlink to nothing, or a
    path below a file: one line naming the thing in the way, as Go's ``os.MkdirAll`` names it
    (``mkdir <it>: not a directory``) -- it used to be mkdir's "File exists", which says
    nothing of a dangling symlink or a FIFO, or named a directory below the file -- and the
    thing is left as it was."""
    box = tmp_path / "box"
    box.mkdir()
    thing = box / "t"
    if kind == "fifo":
        os.mkfifo(thing)
    elif kind == "dangling symlink":
        os.symlink(tmp_path / "nowhere", thing)
    else:
        thing.write_bytes(b"mine")
    target = thing / "sub" / "dir" if kind == "file on the way" else thing
    before = listing(box)
    line = one_error_line(kit("unpack", "demo:v1", "-d", str(target)))
    assert line == f"[ERROR] Failed to create directory {thing}: Not a directory"
    assert listing(box) == before
    assert not (tmp_path / "nowhere").exists()


def test_make_dirs_reports_what_it_made_and_takes_back_only_that(tmp_path):
    (tmp_path / "a").mkdir()
    made = make_dirs(tmp_path / "a" / "b" / "c")
    assert made == [str(tmp_path / "a" / "b"), str(tmp_path / "a" / "b" / "c")]
    assert make_dirs(tmp_path / "a" / "b") == []
    (tmp_path / "a" / "b" / "keep").write_bytes(b"")  # something else put there meanwhile
    remove_dirs(made)
    assert sorted(p.name for p in (tmp_path / "a").rglob("*")) == ["b", "keep"]


# --- remote datasets: what is in the way ----------------------------------------------------

@pytest.fixture
def obj(s3):
    bucket = s3.bucket("data")
    body = os.urandom(300 * KiB + 5)
    return body, s3.put(bucket, "obj.bin", body)["etag"], s3.env()


def test_a_file_on_the_way_to_a_remote_dataset_is_one_line(obj, tmp_path):
    """The dataset ``d/sub/f.bin`` with a file at ``d``: looking for an existing file at the
    dataset's path raised ``NotADirectoryError`` (a traceback in the CLI)."""
    _, etag, env = obj
    target = tmp_path / "t"
    target.mkdir()
    (target / "d").write_bytes(b"mine")
    with pytest.raises(UnpackError) as err:
        unpack_remote_datasets(kitfile(("d/sub/f.bin", "s3://data/obj.bin", etag)), target,
                               include_remote=True, env=env)
    assert str(err.value) == ("failed to unpack remote dataset: path 'd/sub/f.bin': a parent "
                              "already exists and is not a directory")
    assert listing(target) == {"d": b"mine"}


@pytest.mark.parametrize("cache", [True, False])
def test_a_dangling_symlink_on_the_way_to_a_remote_dataset_is_one_line(obj, tmp_path, cache):
    """``d/sub`` a symlink to nothing (inside the target, so the path check lets it be): making
    the dataset's directory failed with ``FileExistsError`` (a traceback through the cache,
    ``[Errno 17]`` and the temporary file's full path without it); now one line naming it,
    before anything is downloaded."""
    _, etag, env = obj
    target = tmp_path / "t"
    (target / "d").mkdir(parents=True)
    os.symlink("missing", target / "d" / "sub")
    with pytest.raises(UnpackError) as err:
        unpack_remote_datasets(kitfile(("d/sub/f.bin", "s3://data/obj.bin", etag)), target,
                               include_remote=True, env=env, cache=cache)
    assert str(err.value) == "failed to create directory d/sub: Not a directory"
    assert listing(target) == {"d": None, "d/sub": None}
    assert not (Path(os.environ["KITOPS_HOME"]) / "cache" / "remote" / "objects").exists()


# --- a write error in the middle ------------------------------------------------------------

@pytest.mark.parametrize("how", ["cache miss", "cache hit", "no cache"])
def test_a_write_error_during_a_remote_download_is_one_line_and_takes_back_its_directories(
        obj, tmp_path, how):
    """EFBIG while a remote dataset is written (downloaded into the cache and the target,
    copied out of the cache, or downloaded straight): one line with the dataset's path and the
    reason -- it used to carry ``[Errno 27]``, or, copied out of the cache, no path at all --
    and the directories made for it gone again (they stayed, empty). What was in the target
    stays; a rerun that can write finishes the unpack."""
    body, etag, env = obj
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Kitfile").write_text(
        "manifestVersion: 1.0.0\npackage:\n  name: r\ndatasets:\n  - name: raw\n"
        f"    path: d/sub/f.bin\n    remotePath: s3://data/obj.bin\n    remoteHash: {etag}\n")
    pack(ctx, tag="r:v1", env=env)
    flags = ["--include-remote", "--progress", "none"] + (["--no-cache"] if how == "no cache"
                                                          else [])
    if how == "cache hit":
        kit("unpack", "r:v1", "-d", str(tmp_path / "first"), *flags, env=env).check_returncode()
    target = tmp_path / "t"
    target.mkdir()
    (target / "keep").write_bytes(b"mine")
    proc = kit("unpack", "r:v1", "-d", str(target), *flags, fsize=100 * KiB, env=env)
    assert one_error_line(proc) == "[ERROR] Failed to write file d/sub/f.bin: File too large"
    assert listing(target) == {"Kitfile": (target / "Kitfile").read_bytes(), "keep": b"mine"}
    home = Path(os.environ["KITOPS_HOME"])
    assert no_litter(home) == []

    proc = kit("unpack", "r:v1", "-d", str(target), *flags, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (target / "d" / "sub" / "f.bin").read_bytes() == body
    assert sorted(listing(target)) == ["Kitfile", "d", "d/sub", "d/sub/f.bin", "keep"]


def test_a_write_error_on_the_journal_names_it_and_publishes_nothing(kitops_home, tmp_path):
    """The journal an unpack writes before its renames, larger than the file-size limit (many
    files, one of them replaced with ``-o``): the error named no file ("Failed to unpack: File
    too large"); it names the journal, in the target, and nothing is published."""
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\ncode:\n  - path: src\n")
    names = [f"src/a_file_with_a_long_name_that_makes_the_journal_grow_{i:03}.py"
             for i in range(200)]
    for name in names:
        (ctx / name).write_bytes(b"x = 1\n")
    pack(ctx, tag="many:v1")
    target = tmp_path / "t"
    (target / "src").mkdir(parents=True)
    (target / names[0]).write_bytes(b"mine")
    before = listing(target)
    line = one_error_line(kit("unpack", "many:v1", "-d", str(target), "-o", fsize=4 * KiB))
    assert line.startswith(f"[ERROR] Failed to unpack: {target}/.kitops-unpack.kj-")
    assert line.endswith(".journal: File too large")
    assert listing(target) == before


# --- filters --------------------------------------------------------------------------------

@pytest.mark.parametrize(("filters", "written"), [
    (["model", "kitfile"], ["Kitfile", "model.bin"]),
    (["model,code"], ["model.bin", "src", "src/train.py"]),
    # ids are matched exactly against names and paths, never used as paths: these select
    # nothing, and nothing is written anywhere
    (["code:../src"], []), (["code:/etc"], []), (["code:*"], []), (["code:./src"], []),
    (["datasets:train,../x"], ["data", "data/train", "data/train/a.csv"]),
])
def test_kits_short_filter_flag_and_odd_ids(packed, tmp_path, filters, written):  # noqa: F811
    """kit's ``-f`` (``--filter``) works as kit's does -- it was an unrecognised argument (exit
    2) -- and ids that look like paths out of the target select nothing."""
    out = tmp_path / "out"
    args = [a for f in filters for a in ("-f", f)]
    proc = kit("unpack", "demo:v1", "-d", str(out), *args)
    assert proc.returncode == 0, proc.stderr
    assert sorted(listing(out)) == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx", "kitops-home", "out"]
