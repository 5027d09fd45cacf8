"""Cloning a git repository with its Git LFS files, through the real ``git`` and ``git-lfs``.

``kit import --tool git`` runs ``git clone --depth 1`` without LFS smudging, then ``git lfs
pull``; so do we, with the same environment tricks: ``--token`` reaches git through a one-off
credential helper that reads it from the environment (never from the command line, where ``ps``
would show it), and without a token git is told never to prompt. Two things kit leaves to the
user's git configuration are made explicit here, because a notebook cannot answer a prompt and a
stalled server must end the command:

* ``git lfs install --local`` in the fresh clone, so ``git lfs pull`` checks the files out even
  when the machine never ran ``git lfs install`` (otherwise it only fetches, and the ModelKit
  would hold 130-byte pointer files);
* deadlines: git aborts a transfer slower than 1 byte/s for ``KIT_JUPYTER_TIMEOUT`` seconds
  (``http.lowSpeedLimit``/``Time``), git-lfs one idle for as long (``lfs.activitytimeout``).

Per-file progress comes from git-lfs itself: ``GIT_LFS_PROGRESS`` names a file to which it
appends ``download <n>/<files> <bytes>/<total> <path>`` lines; a thread follows that file and
advances one :class:`~kit_jupyter.reporting.Task` per LFS file (sizes from ``git lfs ls-files
--json``). Output of git is kept to its last lines, with credentials removed, for error texts.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from kit_jupyter.errors import KitError
from kit_jupyter.reporting import NullReporter, Reporter, Task
from kit_jupyter.transport.deadline import Timeouts
from kit_jupyter.transport.redact import redact

#: kit's ``git.DefaultGitRef``: with this ref the clone takes the remote's default branch.
DEFAULT_GIT_REF = "main"
#: ``git version`` and friends answer at once; anything longer is a broken installation
LOCAL_SECONDS = 30
#: what kit removes from the clone before packing (``git.CleanGitMetadata``)
GIT_METADATA = (".git", ".gitattributes", ".gitignore")

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@?#]*@")
_PROGRESS = re.compile(r"^(\w+) (\d+)/(\d+) (\d+)/(-?\d+) (.+)$")


def sanitize_url(url: str) -> str:
    """``url`` without its userinfo (kit's ``SanitizeURL``): ``https://u:t@host/x`` ->
    ``https://host/x``. Anything else is returned as given."""
    return _USERINFO.sub(r"\1", url)


def check_git(env: Mapping[str, str] | None = None) -> None:
    """kit's ``checkGit``: both ``git`` and ``git lfs`` must run."""
    for cmd, what in ((["git", "version"], "git"), (["git", "lfs", "version"], "git-lfs")):
        try:
            subprocess.run(cmd, env=dict(env) if env is not None else None,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=LOCAL_SECONDS, check=True)
        except (OSError, subprocess.SubprocessError):
            raise KitError(f"{what} is not installed") from None


def _check_destination(dest: Path) -> None:
    """kit's ``checkDestination``: absent, or an empty directory."""
    if not dest.exists():
        return
    if not dest.is_dir():
        raise KitError(f"path {dest} exists and is not a directory")
    if any(dest.iterdir()):
        raise KitError("cannot clone to a non-empty directory")


def git_environment(token: str | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment git and git-lfs run with: kit's credential helper for ``token`` (or no
    prompts at all), and the stall deadlines (``KIT_JUPYTER_TIMEOUT``, whole seconds), as
    ``GIT_CONFIG_*`` entries that leave the user's own configuration alone."""
    env = dict(os.environ if base is None else base)
    stall = str(max(1, math.ceil(Timeouts.from_env(env).total)))
    config: list[tuple[str, str]] = [
        ("http.lowSpeedLimit", "1"),
        ("http.lowSpeedTime", stall),
        ("lfs.activitytimeout", stall),
        ("lfs.dialtimeout", stall),
        ("advice.detachedHead", "false"),
    ]
    if token:
        env["KIT_IMPORT_TOKEN"] = token
        config += [("credential.username", "token"),
                   ("credential.helper",
                    '!f() { test "$1" = get && echo "password=${KIT_IMPORT_TOKEN}"; }; f')]
    else:
        env["GIT_ASKPASS"] = "true"
    env["GIT_TERMINAL_PROMPT"] = "0"
    start = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
    for i, (key, value) in enumerate(config, start):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    env["GIT_CONFIG_COUNT"] = str(start + len(config))
    return env


class _Tail:
    """The last lines a process wrote to a pipe (bounded memory), read by a thread."""

    def __init__(self, stream: IO[bytes], lines: int = 20):
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            for part in raw.decode("utf-8", "replace").replace("\r", "\n").split("\n"):
                if part.strip():
                    self.lines.append(part.rstrip())

    def join(self) -> None:
        self._thread.join(timeout=5)


def _run(args: list[str], *, cwd: Path | None, env: dict[str, str], what: str,
         secrets: Sequence[str], poll: Callable[[], None] | None = None) -> None:
    """Run git; on failure raise ``KitError("<what>: exit status N: <git's last line>")``."""
    try:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as exc:
        raise KitError(f"{what}: {exc.strerror}") from None
    assert proc.stdout is not None
    tail = _Tail(proc.stdout)
    try:
        while proc.poll() is None:
            if poll is not None:
                poll()
            time.sleep(0.1)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        tail.join()
    if poll is not None:
        poll()
    if proc.returncode:
        last = next((line for line in reversed(tail.lines)
                     if line.startswith(("fatal:", "error:", "remote:"))),
                    tail.lines[-1] if tail.lines else "")
        detail = f": {redact(last, secrets)}" if last else ""
        raise KitError(f"{what}: exit status {proc.returncode}{detail}")


class _LfsProgress:
    """Follows ``GIT_LFS_PROGRESS`` lines and advances one task per LFS file."""

    def __init__(self, path: Path, sizes: Mapping[str, int], reporter: Reporter):
        self.path = path
        self.sizes = sizes
        self.reporter = reporter
        self.tasks: dict[str, Task] = {}
        self.done: dict[str, int] = {}
        self._offset = 0
        self._partial = b""

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read(1 << 20)
        except FileNotFoundError:
            return
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            m = _PROGRESS.match(raw.decode("utf-8", "replace").strip())
            if m is None or m.group(1) != "download":
                continue
            name, got = m.group(6), int(m.group(4))
            task = self.tasks.get(name)
            if task is None:
                total = self.sizes.get(name)
                if total is None and int(m.group(5)) >= 0:
                    total = int(m.group(5))
                task = self.tasks[name] = self.reporter.task(name, total)
                self.done[name] = 0
            if got > self.done[name]:
                task.advance(got - self.done[name])
                self.done[name] = got
            if task.total is not None and got >= task.total:
                task.finish(True)

    def close(self, ok: bool) -> None:
        for task in self.tasks.values():
            task.finish(ok)


def _lfs_sizes(dest: Path, env: dict[str, str]) -> dict[str, int]:
    """Path -> size of the LFS files in the checkout (empty if git-lfs cannot say)."""
    try:
        out = subprocess.run(["git", "lfs", "ls-files", "--json"], cwd=dest, env=env,
                             capture_output=True, timeout=LOCAL_SECONDS * 4, check=True).stdout
        return {f["name"]: int(f["size"]) for f in json.loads(out or b"{}").get("files") or []}
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return {}


def clone_repository(url: str, ref: str, dest: str | os.PathLike[str], *,
                     token: str | None = None, reporter: Reporter | None = None,
                     env: Mapping[str, str] | None = None) -> str:
    """``git clone --depth 1`` ``url`` at ``ref`` (a branch or tag; :data:`DEFAULT_GIT_REF` means
    the default branch) into ``dest``, then ``git lfs pull`` with a task per LFS file.

    Returns the commit checked out. Raises KitError with kit's texts (``git is not installed``,
    ``error cloning repository: ...``, ``error downloading LFS files: ...``); credentials never
    appear in them.
    """
    rep = reporter if reporter is not None else NullReporter()
    dest = Path(dest)
    git_env = git_environment(token, env)
    check_git(git_env)
    _check_destination(dest)
    secrets = [token] if token else []

    args = ["git", "clone", "--depth", "1"]
    if ref != DEFAULT_GIT_REF:
        args += ["--branch", ref]
    args += ["--", url, str(dest)]
    rep.info(f"Cloning repository {sanitize_url(url)}")
    _run(args, cwd=None, env={**git_env, "GIT_LFS_SKIP_SMUDGE": "1"},
         what="error cloning repository", secrets=secrets)

    _run(["git", "lfs", "install", "--local"], cwd=dest, env=git_env,
         what="error downloading LFS files", secrets=secrets)
    sizes = _lfs_sizes(dest, git_env)
    progress_file = dest / ".git" / "kit-lfs-progress"
    progress = _LfsProgress(progress_file, sizes, rep)
    rep.info("Pulling large files")
    ok = False
    try:
        _run(["git", "lfs", "pull"], cwd=dest,
             env={**git_env, "GIT_LFS_PROGRESS": str(progress_file)},
             what="error downloading LFS files", secrets=secrets, poll=progress.poll)
        ok = True
    finally:
        progress.close(ok)
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=dest, env=git_env,
                              capture_output=True, text=True, timeout=LOCAL_SECONDS, check=True)
    except (OSError, subprocess.SubprocessError):
        raise KitError("failed to resolve git HEAD") from None
    return head.stdout.strip()


def clean_git_metadata(directory: str | os.PathLike[str]) -> None:
    """kit's ``CleanGitMetadata``: drop ``.git`` and every ``.gitignore``/``.gitattributes``,
    which describe the repository rather than the model."""
    root = Path(directory)
    for name in GIT_METADATA:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name in (".gitignore", ".gitattributes"):
                os.unlink(os.path.join(dirpath, name))
