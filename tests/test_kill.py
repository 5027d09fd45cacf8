"""SIGKILL at random moments, then the next run: exactly the expected tree, nothing left behind.

A real ``python -m kit_jupyter unpack`` process reads a ModelKit from local storage and its remote
datasets from a real S3 server (moto over HTTP, one multipart object and one plain one), and is
killed with SIGKILL -- no ``finally`` runs -- after a seeded random delay or at a chosen moment
(mid-extraction, mid-download of the multipart object). The next unpack into the same target,
with the same flags (no ``-o``), must end with the tree an uninterrupted unpack gives, byte for
byte, and leave no temporary file, journal or empty directory behind: not in the target, not in
``$KITOPS_HOME``. ``cache clear`` removes what a killed download left in the cache. ``pack`` and
``pull`` (from a real docker-registry) are killed too: the next one leaves nothing of them.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit_jupyter.commands.cache import cache_clear
from kit_jupyter.commands.pack import pack
from kit_jupyter.errors import ExistingPathError, KitError
from kit_jupyter.oci.extract import JOURNAL_PREFIX, Extraction
from tests.test_fs import _kill_when

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
SEED = 20261130

pytestmark = pytest.mark.timeout(120)
KEPT_EMPTY = ("cache", "cache/pack", "storage/ingest")  # kit's own directories in $KITOPS_HOME


class Project:
    """A packed ModelKit (``k:v1``) with a model, many small code files and two S3 datasets."""

    def __init__(self, s3, tmp_path: Path):
        rnd = random.Random(SEED)
        self.home = tmp_path / "home"
        ctx = tmp_path / "ctx"
        (ctx / "src").mkdir(parents=True)
        (ctx / "model.bin").write_bytes(rnd.randbytes(8 * MiB))
        for i in range(300):  # many small files: a commit with many renames
            sub = ctx / "src" / f"pkg{i % 6}"
            sub.mkdir(exist_ok=True)
            (sub / f"m{i}.py").write_text(f"X = {i}\n")
        bucket = s3.bucket("data")
        self.train = rnd.randbytes(8 * MiB + 12345)  # 4 parts of 2 MiB and a bit
        train_etag = s3.put_multipart(bucket, "train.bin", self.train, 2 * MiB)["etag"]
        self.val = rnd.randbytes(300 * 1024 + 7)
        val_etag = s3.put(bucket, "val.bin", self.val)["etag"]
        (ctx / "Kitfile").write_text(
            "manifestVersion: 1.0.0\npackage:\n  name: k\nmodel:\n  path: model.bin\n"
            "code:\n  - path: src\ndatasets:\n"
            f"  - name: val\n    path: data/val/val.bin\n    remotePath: s3://data/val.bin\n"
            f"    remoteHash: {val_etag}\n"
            f"  - name: train\n    path: data/train.bin\n    remotePath: s3://data/train.bin\n"
            f"    remoteHash: {train_etag}\n")
        self.s3_env = s3.env()
        pack(ctx, tag="k:v1", home=self.home, env=self.s3_env)
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), KITOPS_HOME=str(self.home),
                        **self.s3_env)
        self.expected: dict[str, str] = {}
        self.log = tmp_path / "logs" / "stderr"

    def command(self, target: Path, *flags: str) -> list[str]:
        return [sys.executable, "-m", "kit_jupyter", "unpack", "k:v1", "-d", str(target),
                "--include-remote", "--progress", "none", *flags]

    def run(self, target: Path, *flags: str) -> float:
        """An unpack that must succeed; returns its wall time."""
        t0 = time.monotonic()
        proc = subprocess.run(self.command(target, *flags), env=self.env, capture_output=True,
                              text=True, timeout=90)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        return time.monotonic() - t0

    def start(self, target: Path, *flags: str) -> subprocess.Popen:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            return subprocess.Popen(self.command(target, *flags), env=self.env,
                                    stdout=subprocess.DEVNULL, stderr=log)

    def kill_after(self, target: Path, delay: float, *flags: str) -> bool:
        """Start an unpack and SIGKILL it after ``delay`` seconds; False if it finished first
        (then a rerun without ``-o`` rightly refuses the files it published), also when the
        kill landed after its work was done (every file in place, its journal already gone)
        and before the interpreter exited."""
        proc = self.start(target, *flags)
        try:
            assert proc.wait(timeout=delay) == 0, self.log.read_text()
            return False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return not (tree(target) == self.expected and litter(target) == [])


def tree(directory: Path) -> dict[str, str]:
    """Every file (relative path -> SHA-256) and every directory (-> "dir") under ``directory``."""
    out = {}
    for p in sorted(directory.rglob("*")):
        rel = p.relative_to(directory).as_posix()
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def litter(directory: Path) -> list[str]:
    """Temporary files, journals and empty directories."""
    if not directory.exists():
        return []
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                  if "kj-" in p.name or p.name.endswith(".part")
                  or p.name.startswith(JOURNAL_PREFIX)
                  or (p.is_dir() and not any(p.iterdir())
                      and p.relative_to(directory).as_posix() not in KEPT_EMPTY))


@pytest.fixture
def project(s3, tmp_path) -> Project:
    p = Project(s3, tmp_path)
    reference = tmp_path / "reference"
    p.reference_seconds = p.run(reference, "--no-cache")  # the cache stays empty
    p.expected = tree(reference)
    assert p.expected["data/train.bin"] == hashlib.sha256(p.train).hexdigest()
    assert p.expected["data/val/val.bin"] == hashlib.sha256(p.val).hexdigest()
    assert litter(reference) == [] and litter(p.home) == []
    return p


def assert_clean(project: Project, target: Path) -> None:
    assert tree(target) == project.expected
    assert litter(target) == []
    assert litter(project.home) == []


@pytest.mark.parametrize("flags", [(), ("--no-cache",)], ids=["cache", "no-cache"])
def test_unpacks_killed_at_random_moments_then_one_that_finishes(project, tmp_path, flags):
    """Several kills into the same target at seeded random moments, one after the other (each
    finds what the last one left), then an unpack that runs to the end."""
    rnd = random.Random(f"{SEED}-{flags}")
    target = tmp_path / "target"
    span = project.reference_seconds
    for _ in range(4):
        if not project.kill_after(target, rnd.uniform(0.1, span * 0.9), *flags):
            break
    else:
        project.run(target, *flags)
    assert_clean(project, target)


def _parts(directory: Path, size: int | None = None) -> list[Path]:
    """Temporary files under ``directory`` (of ``size`` bytes: a download sets its file to the
    object's size before the first byte arrives, which tells the objects apart)."""
    if not directory.exists():
        return []
    found = []
    for p in directory.rglob("*.part"):
        try:
            if size is None or p.stat().st_size == size:
                found.append(p)
        except FileNotFoundError:
            pass  # renamed meanwhile
    return found


def test_killed_mid_extraction(project, tmp_path):
    """Killed while layer files are being written (temp files, directories, no journal yet)."""
    target = tmp_path / "target"
    proc = project.start(target)
    _kill_when(proc, lambda: any(_parts(target)))
    assert not (target / "Kitfile").exists()
    project.run(target)
    assert_clean(project, target)


@pytest.mark.parametrize("flags", [(), ("--no-cache",)], ids=["cache", "no-cache"])
def test_killed_mid_download_of_a_multipart_object(project, tmp_path, flags):
    """Killed while the 5-part object downloads: the layers are published (the journal names
    them), the object's temporary file is half written -- in the cache, or beside its target
    with ``--no-cache``. The rerun, without ``-o``, replaces what the killed run published and
    downloads the object again."""
    target = tmp_path / "target"
    where = target / "data" if flags else project.home / "cache" / "remote" / "objects"
    proc = project.start(target, *flags)
    _kill_when(proc, lambda: any(_parts(where, len(project.train))))
    assert (target / "Kitfile").exists() and not (target / "data" / "train.bin").exists()
    assert [p.name for p in target.iterdir() if p.name.startswith(JOURNAL_PREFIX)]
    project.run(target, *flags)
    assert_clean(project, target)


def test_cache_clear_removes_what_a_killed_download_left(project, tmp_path):
    target = tmp_path / "target"
    objects = project.home / "cache" / "remote" / "objects"
    proc = project.start(target)
    _kill_when(proc, lambda: any(_parts(objects)))
    assert _parts(objects)
    result = cache_clear(home=project.home)
    assert "remote" in result.removed and result.kept == []
    assert not (project.home / "cache" / "remote").exists()
    assert litter(project.home) == []


def test_a_file_the_killed_unpack_published_is_kept_when_it_verifies(project, tmp_path):
    """Killed after the first remote dataset arrived (the second one is downloading): the
    rerun checks the first against its ETag and keeps it instead of downloading it again."""
    target = tmp_path / "target"
    proc = project.start(target, "--no-cache")
    _kill_when(proc, lambda: (target / "data" / "val" / "val.bin").exists()
               and any(_parts(target / "data", len(project.train))))
    out = subprocess.run(project.command(target, "--no-cache"), env=project.env,
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert "Remote S3 dataset for path data/val/val.bin is up to date" in out.stdout + out.stderr
    assert_clean(project, target)


class Bytes:
    """A raw layer's input (:meth:`Extraction.raw`): copies these bytes into the file."""

    def __init__(self, data: bytes):
        self.data = data

    def copy_rest_to(self, fd: int) -> None:
        os.write(fd, self.data)


def test_a_dead_unpacks_journal_lets_the_next_one_replace_only_what_it_names(tmp_path):
    """The journal, deterministically: a process publishes ``a`` and ``b/c`` with the journal
    kept (as unpack keeps it while remote datasets download) and is SIGKILLed. The next
    Extraction replaces those two without ``-o``, still refuses a file the user put there,
    and leaves no journal when done; a failed one keeps the dead one's journal for the next."""
    target = tmp_path / "t"
    code = textwrap.dedent(f"""
        import os, time
        from kit_jupyter.oci.extract import Extraction

        class Bytes:  # a raw layer's input: copies itself into the file
            def __init__(self, data): self.data = data
            def copy_rest_to(self, fd): os.write(fd, self.data)

        with Extraction({str(target)!r}, keep_journal=True) as tx:
            tx.add_bytes("a", b"old a", 0o644)
            tx.raw(Bytes(b"old c"), "b/c", 0o644)
        print("published", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "published"
    proc.kill()
    proc.wait()
    journals = [p for p in target.iterdir() if p.name.startswith(JOURNAL_PREFIX)]
    assert len(journals) == 1
    (target / "user.txt").write_text("mine")

    with pytest.raises(ExistingPathError), Extraction(target) as tx:
        tx.add_bytes("a", b"new a", 0o644)          # allowed: the dead unpack wrote it
        tx.raw(Bytes(b"x"), "user.txt", 0o644)      # refused: the user's
    assert journals[0].exists()                      # still there for the next attempt
    assert (target / "a").read_bytes() == b"old a"

    with Extraction(target) as tx:
        tx.add_bytes("a", b"new a", 0o644)
        tx.raw(Bytes(b"new c"), "b/c", 0o644)
    assert (target / "a").read_bytes() == b"new a"
    assert (target / "b" / "c").read_bytes() == b"new c"
    assert sorted(p.name for p in target.iterdir()) == ["a", "b", "user.txt"]


def _blob_names(home: Path) -> set[str]:
    blobs = home / "storage" / "blobs" / "sha256"
    return {p.name for p in blobs.iterdir()} if blobs.exists() else set()


def test_packs_killed_at_random_moments_then_one_that_finishes(tmp_path):
    """``pack`` SIGKILLed at seeded random moments (hashing, writing the layer, ingesting,
    writing the index), then a pack that finishes: no temporary file in ``KITOPS_HOME``, the
    pack cache empty, the ModelKit complete. (A kill between storing the manifest blob and
    writing the index can leave that manifest unreferenced: a verified blob, as kit would.)"""
    from kit_jupyter.commands.local import inspect

    rnd = random.Random(f"{SEED}-pack")
    home = tmp_path / "home"
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "model.bin").write_bytes(rnd.randbytes(32 * MiB))
    for i in range(200):
        (ctx / "src" / f"m{i}.py").write_text(f"X = {i}\n")
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\npackage:\n  name: k\n"
                                 "model:\n  path: model.bin\ncode:\n  - path: src\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), KITOPS_HOME=str(home))
    cmd = [sys.executable, "-m", "kit_jupyter", "pack", str(ctx), "-t", "k:v1",
           "--progress", "none"]
    t0 = time.monotonic()
    subprocess.run(cmd, env=dict(env, KITOPS_HOME=str(tmp_path / "ref")), check=True,
                   capture_output=True, timeout=90)
    span = time.monotonic() - t0
    for _ in range(4):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rnd.uniform(0.1, span * 0.9))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=90)
    assert litter(home) == []
    assert list((home / "cache" / "pack").iterdir()) == []
    data = inspect("k:v1", home=home).data
    manifest = data["manifest"]
    wanted = {d["digest"].split(":")[1] for d in [manifest["config"], *manifest["layers"]]}
    wanted.add(data["digest"].split(":")[1])
    stored = _blob_names(home)
    assert wanted <= stored


DEAD_OWNER = "kj-4194311-1"  # above any pid_max: no such process, ever


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(journal=st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(["a", "b/c", "../outside", "/etc/passwd", "Kitfile", "user.txt",
                              "b", "", ".", "b/../a", "a\n", "\udcff", "b/", "../", "/",
                              "./", "user.txt/", ".//"]),
             max_size=8).map(lambda ps: b"\0".join(os.fsencode(p) for p in ps))))
def test_property_a_dead_journal_never_reaches_outside_the_target(tmp_path, journal):
    """Whatever a dead unpack's journal holds, the next unpack writes only inside its target,
    replaces only files it writes itself, and leaves no journal behind."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as work:
        root = Path(work)
        target = root / "t"
        target.mkdir()
        (root / "outside").write_text("outside")
        (target / "user.txt").write_text("mine")
        (target / f"{JOURNAL_PREFIX}{DEAD_OWNER}-00000000.journal").write_bytes(journal)
        try:
            with Extraction(target) as tx:
                tx.raw(Bytes(b"new a"), "a", 0o644)
        except KitError as e:  # pragma: no cover - nothing here should refuse
            pytest.fail(str(e))
        assert (root / "outside").read_text() == "outside"
        assert (target / "user.txt").read_text() == "mine"
        assert sorted(p.name for p in target.iterdir()) == ["a", "user.txt"]


def test_a_dead_unpacks_staged_directory_is_swept_and_its_published_tree_replaced(tmp_path):
    """A directory an unpack makes is filled under a hidden, owner-tagged name and renamed
    into place at commit. A dead owner's hidden directory goes with everything in it (the
    next unpack writing beside it sweeps it); a directory a dead unpack renamed into place
    and named in its journal (``dir/``) has its files replaced without ``-o``."""
    target = tmp_path / "t"
    hidden = target / f".src.{DEAD_OWNER}-00000000.part"
    (hidden / "pkg").mkdir(parents=True)
    (hidden / "pkg" / "m.py").write_text("half written")
    (target / "done" / "pkg").mkdir(parents=True)
    (target / "done" / "pkg" / "m.py").write_text("published by the dead unpack")
    (target / f"{JOURNAL_PREFIX}{DEAD_OWNER}-00000000.journal").write_bytes(b"done/\0")
    with Extraction(target) as tx:
        tx.raw(Bytes(b"new"), "src/pkg/m.py", 0o644)
        tx.raw(Bytes(b"new"), "done/pkg/m.py", 0o644)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
        "done", "done/pkg", "done/pkg/m.py", "src", "src/pkg", "src/pkg/m.py"]
    assert (target / "done" / "pkg" / "m.py").read_bytes() == b"new"


@pytest.mark.registry
@pytest.mark.parametrize("concurrency", ["4", "1"], ids=["ranged", "one-stream"])
def test_a_pull_killed_mid_blob_then_one_that_finishes(registry, tmp_path, concurrency):
    """A real ``python -m kit_jupyter pull`` of a 96 MiB layer from docker-registry, SIGKILLed
    while the layer's temporary file in ``storage/ingest`` is being written (as 4 ranged
    streams, or one stream with ``--concurrency 1``). The next pull stores the same verified
    blob and leaves nothing in ``storage/ingest``."""
    rnd = random.Random(f"{SEED}-pull")
    src, dst, ctx = tmp_path / "src", tmp_path / "dst", tmp_path / "ctx"
    ctx.mkdir()
    model = rnd.randbytes(96 * MiB)
    (ctx / "model.bin").write_bytes(model)
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: model.bin\n")
    ref = f"{registry.host}/kill/pull:v1"
    pack(ctx, tag=ref, home=src)
    env = dict(os.environ, PYTHONPATH=str(ROOT), KITOPS_HOME=str(src))
    subprocess.run([sys.executable, "-m", "kit_jupyter", "push", ref, "--plain-http"],
                   env=env, check=True, capture_output=True, timeout=120)
    env["KITOPS_HOME"] = str(dst)
    pull = [sys.executable, "-m", "kit_jupyter", "pull", ref, "--plain-http",
            "--concurrency", concurrency, "--progress", "none"]
    ingest = dst / "storage" / "ingest"

    def mid_blob() -> bool:  # the layer's temp file is there, past its first MiB
        try:
            return ingest.exists() and any(p.stat().st_size > MiB for p in ingest.glob("*"))
        except FileNotFoundError:  # renamed between the listing and the stat
            return False

    proc = subprocess.Popen(pull, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, mid_blob)
    assert any(ingest.iterdir())  # the killed pull left its temporary blob
    done = subprocess.run(pull, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert _blob_names(dst) == _blob_names(src)  # layer, config, manifest: each verified
    for name in _blob_names(dst):
        blob = dst / "storage" / "blobs" / "sha256" / name
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == name
    assert list(ingest.iterdir()) == []
    assert litter(dst) == []
