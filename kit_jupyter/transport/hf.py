"""Hugging Face Hub repositories through ``huggingface_hub``: names, a pinned commit, the file
tree as a listing, verified downloads with a task per file.

kit talks to the Hub's REST API itself; we go through ``huggingface_hub`` because notebook users
already have it configured: ``HF_ENDPOINT`` (mirrors, on-premise hubs), ``HF_TOKEN`` or the token
``hf auth login`` stored, proxies, and Xet-backed files, which plain HTTP cannot always fetch.
The library is imported only when an import runs (it is optional: ``pip install
kit-jupyter[hf]``).

As in the newest kit, the ref is first resolved to a commit and everything after uses that
commit, so a branch that moves during the import cannot mix two snapshots. Each downloaded file
is checked against the tree listing before it is packed: its size, and its SHA-256 (LFS files)
or git blob id (other files).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit_jupyter.errors import KitError, one_line
from kit_jupyter.gocompat.gopath import is_clean
from kit_jupyter.gocompat.gourl import URLError
from kit_jupyter.gocompat.gourl import parse as parse_url
from kit_jupyter.kitfile.generate import DirectoryListing, FileListing
from kit_jupyter.reporting import NullReporter, Reporter, Task
from kit_jupyter.transport.deadline import Timeouts

DEFAULT_ENDPOINT = "https://huggingface.co"
MODEL = "model"
DATASET = "dataset"
_CHUNK = 1 << 20


def endpoint(env: Mapping[str, str] | None = None) -> str:
    """The Hub to talk to: ``HF_ENDPOINT`` read now (not at import time), else huggingface.co."""
    value = (env if env is not None else os.environ).get("HF_ENDPOINT", "")
    return (value or DEFAULT_ENDPOINT).rstrip("/")


def _hub_host(host: str, hub: str) -> bool:
    """Whether ``host`` is the Hub: huggingface.co (or a subdomain), or the configured
    endpoint's host."""
    hub_host = parse_url(hub).host if "://" in hub else ""
    return host in ("huggingface.co", hub_host) or host.endswith(".huggingface.co")


def _valid_pair(s: str) -> bool:
    parts = s.split("/")
    return len(parts) == 2 and all(parts)


def parse_repository(text: str, *, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``(org/name, "model" | "dataset")`` for what a user typed: ``org/name``,
    ``datasets/org/name``, or a URL of the Hub (``https://huggingface.co/org/name``,
    ``.../datasets/org/name``; a trailing ``/`` is fine). Raises KitError with kit's texts, on
    one line."""
    if text.startswith("datasets/"):
        repo = text[len("datasets/"):].strip("/")
        if not _valid_pair(repo):
            raise KitError(f"invalid dataset repository format: {one_line(text)}")
        return repo, DATASET
    if "://" in text or text.startswith("huggingface.co/"):
        try:
            url = parse_url(text if "://" in text else "https://" + text)
        except URLError as exc:
            raise KitError(f"invalid URL format: {one_line(str(exc))}") from None
        hostname = url.host.rsplit(":", 1)[0] if not url.host.startswith("[") else url.host
        if not _hub_host(url.host, endpoint(env)) and not _hub_host(hostname, endpoint(env)):
            raise KitError(f"unsupported hostname: {one_line(hostname)} "
                           "(only huggingface.co is supported)")
        segments = url.path.strip("/").split("/")
        if segments and segments[0] == "datasets":
            if len(segments) >= 3 and segments[1] and segments[2]:
                return "/".join(segments[1:3]), DATASET
            raise KitError("invalid dataset URL: expected datasets/org/repo, got "
                           f"'{one_line(url.path)}'")
        if len(segments) == 2 and all(segments):
            return "/".join(segments), MODEL
        raise KitError(f"unrecognized HuggingFace URL pattern: {one_line(text)}")
    if _valid_pair(text):
        return text, MODEL
    raise KitError(f"invalid repository format: {one_line(text)}")


@dataclass(frozen=True)
class HubFile:
    """One file of the tree: its path, size and what it must hash to."""

    path: str
    size: int
    sha256: str | None  # LFS files
    blob_id: str | None  # git blob id (sha1 of "blob <size>\\0" + content)


def _api(hub: str, token: str | None) -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub, token=token or None)


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _hub_errors() -> tuple[type[BaseException], ...]:
    """What ``huggingface_hub`` raises for a Hub that cannot be reached or answers badly: its
    HTTP error and every base of it, which include the HTTP library's own base error
    (``requests``' is an OSError; ``httpx``'s, whose ``ConnectError`` an offline machine meets,
    is not)."""
    from huggingface_hub.errors import HfHubHTTPError

    bases = tuple(c for c in HfHubHTTPError.__mro__
                  if issubclass(c, Exception) and c is not Exception)
    return (*bases, OSError, ValueError)


def pin_commit(repo: str, ref: str, *, repo_type: str = MODEL, token: str | None = None,
               env: Mapping[str, str] | None = None) -> str:
    """The commit ``ref`` (branch, tag or commit) names now (kit's ``PinCommit``)."""
    api = _api(endpoint(env), token)
    try:
        info = api.repo_info(repo, revision=ref, repo_type=repo_type,
                             timeout=Timeouts.from_env(env).total)
    except _hub_errors() as exc:
        status = _status(exc)
        why = (f"revision lookup got status {status}" if status is not None
               else str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise KitError(f"failed to pin commit for {repo}@{ref}: {why}") from None
    if not getattr(info, "sha", None):
        raise KitError(f"failed to pin commit for {repo}@{ref}: revision response missing sha "
                       f"for {repo}@{ref}")
    return str(info.sha)


def list_files(repo: str, commit: str, *, repo_type: str = MODEL, token: str | None = None,
               env: Mapping[str, str] | None = None) -> tuple[DirectoryListing, list[HubFile]]:
    """The repository's tree at ``commit`` as kit lists it (``.gitignore`` and
    ``.gitattributes`` left out, names in order), and every file with its checksums."""
    from huggingface_hub.hf_api import RepoFile

    api = _api(endpoint(env), token)
    files: list[HubFile] = []
    dirs: set[str] = set()
    try:
        for entry in api.list_repo_tree(repo, revision=commit, recursive=True,
                                        repo_type=repo_type):
            if not is_clean(entry.path) or entry.path.startswith("/"):
                # a Hub (or HF_ENDPOINT's mirror) naming "../x" or "/x": not ours to write,
                # whatever the huggingface_hub installed would do with it
                raise KitError("failed to list files from HuggingFace API: the listing names "
                               f"{entry.path!r}, not a path inside the repository")
            if not isinstance(entry, RepoFile):
                dirs.add(entry.path)
                continue
            if entry.path.rsplit("/", 1)[-1] in (".gitignore", ".gitattributes"):
                continue
            lfs = entry.lfs
            files.append(HubFile(path=entry.path, size=int(entry.size),
                                 sha256=getattr(lfs, "sha256", None) if lfs else None,
                                 blob_id=entry.blob_id or None))
    except _hub_errors() as exc:
        status = _status(exc)
        why = (f"got error code {status} from API" if status is not None
               else str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise KitError(f"failed to list files from HuggingFace API: {why}") from None
    return listing_from_paths(files, dirs), files


def listing_from_paths(files: Sequence[HubFile], dirs: Sequence[str] | set[str] = ()
                       ) -> DirectoryListing:
    """A :class:`DirectoryListing` (kit's shape: files and subdirectories in name order) from
    slash paths."""
    root = DirectoryListing(name=".", path=".")
    index: dict[str, DirectoryListing] = {".": root}

    def directory(path: str) -> DirectoryListing:
        if path in index:
            return index[path]
        parent, _, name = path.rpartition("/")
        d = DirectoryListing(name=name, path=path)
        directory(parent or ".").subdirs.append(d)
        index[path] = d
        return d

    for name in sorted(dirs):
        directory(name)
    for f in files:
        parent, _, name = f.path.rpartition("/")
        directory(parent or ".").files.append(FileListing(name=name, path=f.path, size=f.size))
    for d in index.values():
        d.files.sort(key=lambda x: x.name)
        d.subdirs.sort(key=lambda x: x.name)
    return root


def _task_tqdm(task: Task) -> type:
    """A ``tqdm`` class for ``hf_hub_download(tqdm_class=...)`` that draws nothing and moves
    ``task`` instead (the library reports bytes through it, resumed ones as ``initial``)."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class ReporterTqdm(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            initial = int(kwargs.get("initial") or 0)
            if initial:
                task.advance(initial)

        def update(self, n: float | None = 1) -> bool | None:
            if n:
                task.advance(int(n))
            return None

        def close(self) -> None:
            pass

    return ReporterTqdm


def verify_file(path: Path, f: HubFile) -> None:
    """Size and checksum of a downloaded file against the tree listing; KitError if they
    differ. Reads the file once, in chunks."""
    size = path.stat().st_size
    if size != f.size:
        raise KitError(f"mismatched file size for {f.path}: expected {f.size} but got {size}")
    if f.sha256:
        h = hashlib.sha256()
        want, kind = f.sha256, "sha256"
    elif f.blob_id and len(f.blob_id) == 40:
        h = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
        want, kind = f.blob_id, "git blob id"
    else:
        return
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    if h.hexdigest() != want:
        raise KitError(f"{f.path} does not match its {kind} in the repository "
                       f"(expected {want}, got {h.hexdigest()})")


def download_files(repo: str, commit: str, dest: str | os.PathLike[str],
                   files: Sequence[HubFile], *, repo_type: str = MODEL,
                   token: str | None = None, concurrency: int = 5,
                   reporter: Reporter | None = None, env: Mapping[str, str] | None = None,
                   cancelled: Callable[[], bool] | None = None) -> None:
    """Download ``files`` at ``commit`` into ``dest`` (their repository paths below it),
    ``concurrency`` at a time, one task per file, each verified. The library's bookkeeping
    (``dest/.cache/huggingface``) is removed afterwards. The first failure cancels what has not
    started and raises ``KitError("error downloading repository: ...")``."""
    from huggingface_hub import hf_hub_download

    rep = reporter if reporter is not None else NullReporter()
    hub = endpoint(env)
    timeout = Timeouts.from_env(env).total
    dest = Path(dest)
    stop = threading.Event()

    def one(f: HubFile) -> None:
        if stop.is_set() or (cancelled is not None and cancelled()):
            return
        rep.info(f"Downloading file {f.path}")
        task = rep.task(f.path, f.size)
        ok = False
        try:
            hf_hub_download(repo, f.path, repo_type=repo_type, revision=commit, local_dir=dest,
                            endpoint=hub, token=token or None, etag_timeout=timeout,
                            tqdm_class=_task_tqdm(task))
            verify_file(dest / f.path, f)
            ok = True
        finally:
            task.finish(ok)

    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency),
                                thread_name_prefix="kit-hf") as pool:
            futures = [pool.submit(one, f) for f in files]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((fut for fut in done if fut.exception() is not None), None)
            if failed is not None:
                stop.set()
                for fut in futures:
                    fut.cancel()
                exc = failed.exception()
                assert exc is not None
                if isinstance(exc, KitError):
                    raise KitError(f"error downloading repository: {exc}") from None
                if isinstance(exc, _hub_errors()):
                    status = _status(exc)
                    why = (f"received status code {status}" if status is not None
                           else str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                    raise KitError(f"error downloading repository: {why}") from None
                raise exc
    finally:
        shutil.rmtree(dest / ".cache" / "huggingface", ignore_errors=True)
        try:
            (dest / ".cache").rmdir()
        except OSError:
            pass
