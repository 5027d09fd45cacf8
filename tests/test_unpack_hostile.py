"""Hostile layers through the CLI (``python -m kit_jupyter unpack``): each is refused with one
``[ERROR]`` line and exit status 1 -- no traceback, bounded memory, nothing written outside the
target and nothing left behind (no ``.part`` file, no ``<dir>/Kitfile``, no directory the refused
unpack created).

The layers are hand-made (:func:`tests.test_unpack._store_code_layer` stores one as demo's only
code layer), PAX headers by :func:`tests.test_extract.pax_member`.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kit_jupyter.oci.manifest import Manifest
from kit_jupyter.oci.store import LocalStore
from tests.test_extract import directory, make_tar, pax_member, record, reg
from tests.test_unpack import _store_code_layer, packed  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parent.parent
# Peak RSS of the child, read by a wrapper process (RUSAGE_CHILDREN covers just that child).
_WRAP = ("import json, resource, subprocess, sys\n"
         "p = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=120)\n"
         "print(json.dumps([p.returncode, p.stdout, p.stderr,"
         " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024]))\n")
MAX_RSS = 200 << 20  # a 6 GiB PAX header used to be read whole


def kit(*args: str) -> tuple[int, str, str, int]:
    """``python -m kit_jupyter <args>``: exit status, stdout, stderr, peak RSS in bytes."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _WRAP, sys.executable, "-m", "kit_jupyter",
                          *args], capture_output=True, text=True, env=env, timeout=180,
                         check=True)
    code, stdout, stderr, rss = json.loads(out.stdout)
    return code, stdout, stderr, rss


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def refused(ref: str, out: Path, *flags: str) -> str:
    """Run the unpack, check the refusal's form, return its one line."""
    code, stdout, stderr, rss = kit("unpack", ref, "-d", str(out), *flags)
    assert code == 1, (stdout, stderr)
    assert "Traceback" not in stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[ERROR] "), stderr
    assert rss < MAX_RSS, f"peak RSS {rss / 2**20:.0f} MiB"
    return lines[0]


def tar_bytes(*members) -> bytes:
    return make_tar(list(members))


HOSTILE = {
    "file then a file inside it": (
        tar_bytes(directory("src"), reg("src/a", b"1"), reg("src/a/b", b"2")),
        "[ERROR] Failed to unpack: path 'src/a/b' is inside 'src/a', which is a file of the "
        "ModelKit"),
    "file then a directory of the same name": (
        tar_bytes(reg("src/a", b"1"), directory("src/a"), reg("src/a/b", b"2")),
        "[ERROR] Failed to unpack: path 'src/a' already exists and is not a directory"),
    "duplicate member": (
        tar_bytes(reg("src/a", b"harmless"), reg("src/a", b"evil")),
        "[ERROR] Failed to unpack: path 'src/a' occurs more than once in the ModelKit"),
    "a member named Kitfile": (
        tar_bytes(reg("src/a", b"1"), reg("Kitfile", b"manifestVersion: 1.0.0\n")),
        "[ERROR] Failed to unpack: illegal file path: Kitfile: a layer may not replace the "
        "ModelKit's Kitfile"),
    "PAX size=abc": (
        pax_member(record("size", b"abc"), "src/a"),
        "[ERROR] Failed to unpack: invalid tar header: PAX size 'abc' is not a number"),
    "PAX path with NUL": (
        pax_member(record("path", b"src/a\0b"), "src/a"),
        "[ERROR] Failed to unpack: invalid tar header: PAX path contains NUL"),
    "PAX size=-7": (
        pax_member(record("size", b"-7"), "src/a"),
        "[ERROR] Failed to unpack: invalid tar header: PAX size -7 is negative"),
}


def _claiming(size: int) -> bytes:
    """A PAX header whose size field claims ``size`` bytes (the bytes are not there)."""
    head = bytearray(pax_member(record("path", b"src/a"), "src/a"))
    head[124:136] = format(size, "011o").encode() + b"\0"
    head[148:156] = b" " * 8
    head[148:156] = format(sum(head[:512]), "06o").encode() + b"\0 "
    return bytes(head)


HOSTILE["PAX header claiming 6 GiB"] = (
    _claiming(6 << 30),
    "[ERROR] Failed to unpack: invalid tar header: a PAX or long-name header of 6442450944 "
    "bytes (more than 1 MiB)")


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_is_refused_with_one_line_and_leaves_nothing(packed, tmp_path,  # noqa: F811
                                                                   case):
    """With ``-o``, the flag that lets most through (without it, see test_extract.py)."""
    data, line = HOSTILE[case]
    ref = _store_code_layer(LocalStore(), data)
    sandbox = tmp_path / "sandbox"
    out = sandbox / "new" / "out"
    sandbox.mkdir()
    before = tree(tmp_path)
    assert refused(ref, out, "-o") == line
    assert tree(tmp_path) == before  # no out/, no new/, no Kitfile, no .part, nothing else


def test_refused_unpack_into_an_existing_directory_changes_nothing(packed, tmp_path):  # noqa: F811
    """The target's own files stay as they were; no Kitfile, no directories, no temp files."""
    out = tmp_path / "out"
    (out / "src").mkdir(parents=True)
    (out / "notes.txt").write_text("mine\n")
    (out / "src" / "a").write_text("mine too\n")
    ref = _store_code_layer(LocalStore(), tar_bytes(directory("src"), reg("src/new.py"),
                                                    directory("src/pkg", 0o555),
                                                    reg("src/pkg/x.py"), reg("src/a"),
                                                    reg("src/a", b"twice")))
    refused(ref, out, "-o")
    assert tree(out) == {"notes.txt", "src", "src/a"}
    assert (out / "src" / "a").read_text() == "mine too\n"


def test_overwrite_never_lets_a_layer_replace_the_unpacked_kitfile(packed, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    code, stdout, stderr, _ = kit("unpack", "demo:v1", "-d", str(out))
    assert code == 0, stderr
    kitfile = (out / "Kitfile").read_bytes()
    ref = _store_code_layer(LocalStore(), tar_bytes(reg("Kitfile", b"model:\n  path: evil\n")))
    refused(ref, out, "-o")
    assert (out / "Kitfile").read_bytes() == kitfile


def test_gzip_layers_are_refused_the_same_way(packed, tmp_path):  # noqa: F811
    """The same reader behind a gzip layer (the stream input, not the kernel-copy path)."""
    data, line = HOSTILE["duplicate member"]
    ref = _store_code_layer(LocalStore(), gzip.compress(data),
                            "application/vnd.kitops.modelkit.code.v1.tar+gzip")
    assert refused(ref, tmp_path / "out") == line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("config", [b"\xff\xfe not JSON", b"[1, 2]", b'{"model": "a string"}'])
def test_a_config_that_is_not_a_kitfile_is_refused_with_one_line(packed, tmp_path,  # noqa: F811
                                                                 config):
    store = LocalStore()
    stored = store.read_manifest(store.resolve_descriptor("localhost/demo", "v1"))
    manifest = json.loads(stored.raw)
    manifest["config"] = store.put_bytes(config, manifest["config"]["mediaType"]).to_json()
    store.add_manifest("localhost/demo", Manifest.parse(json.dumps(manifest).encode()),
                       ["badconfig"])
    line = refused("demo:badconfig", tmp_path / "out")
    assert line.startswith("[ERROR] ")
    assert not (tmp_path / "out").exists()
