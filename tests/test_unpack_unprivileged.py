"""unpack run by an unprivileged user, through the CLI: setuid/setgid/sticky bits are never
restored, and a read-only (0555) directory with files in it unpacks (GNU tar's way: filled while
owner-writable, its mode applied at the end).

CI runs as root, and root would pass where a user fails (it writes into 0555 directories), so
the unpack runs in a forked child that drops to uid/gid 65534 (nobody) first. Forked rather than
exec'd: the interpreter may live where nobody cannot read it (a pyenv under /root); the child
keeps the modules the parent imported. Run as a normal user, the child is that user.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import pytest

import kit_jupyter.__main__ as kit_main
import kit_jupyter.commands.unpack  # noqa: F401 - imported before the fork (see above)
import kit_jupyter.ui.cli  # noqa: F401
from kit_jupyter.commands.pack import pack

NOBODY = 65534
KITFILE = """\
manifestVersion: 1.0.0
model:
  name: m
  path: model.bin
code:
  - path: src
"""


def run_cli_as(uid: int | None, argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """``python -m kit_jupyter <argv>`` in a forked child running as ``uid`` (None: as we
    are); returns its exit status and what it wrote to stdout and stderr."""
    out = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its result is checked by the parent
        code = 70
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - pytest's capture is
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - not the child's
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            os.environ.update(env)
            os.umask(0o022)
            code = kit_main.main(argv)
        except BaseException as exc:  # noqa: BLE001 - reported through the exit status
            os.write(2, f"child failed: {exc!r}\n".encode())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    out.seek(0)
    text = out.read().decode(errors="replace")
    out.close()
    return os.waitstatus_to_exitcode(status), text


@pytest.fixture
def sandbox():
    """A directory everyone can enter (pytest's own tmp_path is root's and 0700)."""
    base = Path(tempfile.mkdtemp(prefix="kj-unprivileged-"))
    os.chmod(base, 0o755)
    yield base
    for p in [base, *base.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            os.chmod(p, 0o755)
    shutil.rmtree(base)


def test_unpack_as_unprivileged_user_drops_special_bits_and_fills_read_only_dirs(sandbox):
    ctx = sandbox / "ctx"
    (ctx / "src" / "ro" / "inner").mkdir(parents=True)
    (ctx / "src" / "shared").mkdir()
    (ctx / "Kitfile").write_text(KITFILE)
    (ctx / "model.bin").write_bytes(b"weights" * 1000)
    (ctx / "src" / "tool.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (ctx / "src" / "ro" / "f.txt").write_text("in a read-only directory\n")
    (ctx / "src" / "ro" / "inner" / "g.txt").write_text("deeper\n")
    os.chmod(ctx / "src" / "tool.sh", 0o4755)  # setuid
    os.chmod(ctx / "src" / "shared", 0o3775)  # setgid + sticky
    os.chmod(ctx / "src" / "ro" / "inner", 0o555)
    os.chmod(ctx / "src" / "ro", 0o555)
    home = sandbox / "home"
    pack(ctx, tag="unpriv:v1", home=home)
    os.chmod(ctx / "src" / "ro", 0o755)
    os.chmod(ctx / "src" / "ro" / "inner", 0o755)

    work = sandbox / "work"
    work.mkdir()
    uid = None
    if os.geteuid() == 0:
        uid = NOBODY
        os.chown(work, NOBODY, NOBODY)
    out = work / "out"
    code, text = run_cli_as(uid, ["unpack", "unpriv:v1", "-d", str(out)],
                            {"KITOPS_HOME": str(home), "HOME": str(work)})
    assert code == 0, text
    if uid is not None:  # the drop really happened: the files are nobody's
        assert (out / "src" / "ro" / "f.txt").stat().st_uid == NOBODY
    assert (out / "src" / "ro" / "f.txt").read_text() == "in a read-only directory\n"
    assert (out / "src" / "ro" / "inner" / "g.txt").read_text() == "deeper\n"
    assert (out / "model.bin").read_bytes() == b"weights" * 1000

    def mode(rel: str) -> int:
        return stat.S_IMODE((out / rel).stat().st_mode)

    assert mode("src/tool.sh") == 0o755  # no setuid
    assert mode("src/shared") == 0o755  # no setgid, no sticky (umask 022 applied)
    assert mode("src/ro") == 0o555 and mode("src/ro/inner") == 0o555
    assert not [p for p in out.rglob("*") if ".part" in p.name]
