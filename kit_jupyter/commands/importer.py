"""``import``: a Hugging Face or git repository into a ModelKit, as ``kit import`` does.

The steps and texts are kit's (``pkg/cmd/kitimport``):

1. the tag: ``-t`` (``latest`` filled in when it has none), else ``<org>/<repo>:latest`` from the
   repository's last two path segments; ``--tool`` (``git`` | ``hf``) else detected: a URL with a
   host that is not Hugging Face means git, anything else (``org/repo``, ``datasets/org/repo``,
   huggingface.co URLs) the Hub;
2. a working directory under ``$KITOPS_HOME/cache/import``;
3. git: clone with LFS (:mod:`kit_jupyter.transport.git`), drop git's metadata, use ``-f`` or
   the repository's own Kitfile, else generate one; Hub: pin the ref to a commit, list the tree,
   use ``-f`` or generate a Kitfile from the listing, then download only what the Kitfile packs
   (:mod:`kit_jupyter.transport.hf`);
4. the Kitfile generated is what ``init`` writes for the same files
   (:func:`kit_jupyter.kitfile.generate.generate_kitfile`, package name and author from the
   repository), shown as ``Generated Kitfile:`` and kept beside the files;
5. :func:`kit_jupyter.commands.pack.pack` packs the directory (same layers, same checks as
   ``pack``); the working directory is removed whatever happens.

Where we differ, on purpose: the working directory's name carries its owner (pid and start
time), and only it -- plus what killed imports left -- is removed afterwards; kit empties the
whole ``cache/import``, which would pull files from under another kernel's running import.
A git URL is cloned as given (kit prefixes everything that does not start with ``http`` with
huggingface.co, so ``file://`` and ``ssh://`` repositories cannot be imported); a bare
``org/repo`` with ``--tool git`` is cloned from ``$HF_ENDPOINT`` when set. kit offers to edit
the generated Kitfile in ``$EDITOR`` on a terminal; a notebook has ``%%kitfile`` for that, so we
pack what was generated (``-f`` packs a Kitfile of your own).
"""

from __future__ import annotations

import html
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit_jupyter._arguments import COUNT, OPT_PATH, OPT_TEXT, TEXT, arguments
from kit_jupyter._fs import sweep_stale, temp_path
from kit_jupyter.commands.init import _reader, listing_from_fs
from kit_jupyter.commands.pack import pack
from kit_jupyter.commands.results import PackResult, Result, html_table
from kit_jupyter.errors import KitError, PackError, ReferenceError_
from kit_jupyter.gocompat import gostrconv
from kit_jupyter.gocompat.gourl import URLError
from kit_jupyter.gocompat.gourl import parse as parse_url
from kit_jupyter.gocompat.ignore import IgnoreRules, layer_paths_from_kitfile
from kit_jupyter.kitfile.generate import DirectoryListing, generate_kitfile
from kit_jupyter.kitfile.model import (
    MAX_KITFILE_BYTES,
    Kitfile,
    Package,
    decode_kitfile_bytes,
    find_kitfile,
    load_kitfile,
    read_kitfile_text,
)
from kit_jupyter.kitfile.reference import DEFAULT_TAG, parse_reference, without_password
from kit_jupyter.kitfile.rules import ensure_valid
from kit_jupyter.oci.store import resolve_home
from kit_jupyter.reporting import NullReporter, Reporter, format_bytes
from kit_jupyter.transport import hf
from kit_jupyter.transport.git import (
    DEFAULT_GIT_REF,
    clean_git_metadata,
    clone_repository,
    sanitize_url,
)

TOOLS = ("git", "hf")
DEFAULT_CONCURRENCY = 5
#: where the files of a running import live: ``$KITOPS_HOME/cache/import/<owner-tagged>``
IMPORT_CACHE = "import"


@dataclass(repr=False)
class ImportResult(Result):
    """What was imported from where, and the ModelKit it became (``.pack``)."""

    source: str                 # the repository, credentials removed
    tool: str                   # "git" or "hf"
    ref: str
    commit: str                 # the commit the files came from
    tag: str                    # the ModelKit reference
    kitfile_yaml: str
    generated: bool             # True when the Kitfile was generated
    files: list[tuple[str, int]]  # what was downloaded (git: what the clone holds)
    pack: PackResult
    messages: list[tuple[str, str]] = field(default_factory=list)
    _html_messages = False  # the reporter showed them while the command ran

    @property
    def digest(self) -> str:
        return self.pack.digest

    @property
    def data(self) -> dict[str, Any]:
        return {"source": self.source, "tool": self.tool, "ref": self.ref,
                "commit": self.commit, "tag": self.tag, "digest": self.digest,
                "generated": self.generated, "kitfile": self.kitfile_yaml,
                "files": [{"path": p, "size": s} for p, s in self.files],
                "pack": self.pack.data}

    def text(self) -> str:
        return ""  # kit's lines went to the reporter while importing

    def summary(self) -> str:
        return f"Model is packed as {self.tag} ({self.digest})"

    def _html_body(self) -> str:
        rows = [[p, format_bytes(s)] for p, s in self.files]
        caption = (f"{self.source} @ {self.commit[:12] or self.ref} -> {self.tag} "
                   f"({self.digest})")
        pre = ('<details><summary>Kitfile</summary><pre style="margin:4px 0;font-family:'
               f'monospace;white-space:pre">{html.escape(self.kitfile_yaml)}</pre></details>')
        return html_table(["FILE", "SIZE"], rows, caption=caption) + pre


# -- options -----------------------------------------------------------------------------------

def extract_repo_from_url(raw: str) -> str:
    """kit's ``extractRepoFromURL``: the last two path segments of a URL or ``org/repo``."""
    try:
        url = parse_url(raw)
    except URLError as exc:  # Go's text quotes the URL: a password in it is not shown
        text = str(exc).replace(gostrconv.quote(raw), gostrconv.quote(without_password(raw)))
        raise KitError(f"failed to parse url: {text}") from None
    path = url.path.strip("/")
    if len(path.split("/")) != 2:
        raise KitError(f"could not extract organization and repository from '{path}'")
    return path


def _modelkit_tag(repository: str, tag: str | None, rep: Reporter) -> str:
    if not tag:
        try:
            guessed = extract_repo_from_url(repository)
        except KitError as exc:
            rep.warning(f"Could not generate tag from URL: {exc}")
            raise KitError("use flag --tag to set a tag for ModelKit") from None
        tag = f"{guessed.lower()}:{DEFAULT_TAG}"
        rep.info(f"Using tag {tag}. Use flag --tag to override")
    try:
        ref = parse_reference(tag)
    except ReferenceError_ as exc:
        raise ReferenceError_(f"invalid argument: tag '{tag}' is invalid: {exc}") from None
    if not ref.reference:
        rep.info(f"No tag or digest provided with --tag flag. Using '{DEFAULT_TAG}' as default "
                 f"('{tag}:{DEFAULT_TAG}')")
        tag = f"{tag}:{DEFAULT_TAG}"
    return tag


def choose_tool(repository: str, tool: str | None) -> str:
    """``--tool``, else kit's guess: no host, or a Hugging Face host -> ``hf``; else ``git``."""
    if tool:
        return tool
    try:
        url = parse_url(repository)
    except URLError as exc:
        raise KitError(f"failed to parse {repository}: {exc}") from None
    return "hf" if not url.host or "huggingface" in url.host else "git"


def _git_url(repository: str, env: Any) -> str:
    """The URL to clone: as given when it names a transport git knows, else an ``org/repo`` on
    the Hub (``$HF_ENDPOINT`` when set)."""
    if "://" in repository or os.path.isabs(repository) or (
            ":" in repository and "@" in repository.split(":", 1)[0]):
        return repository
    return f"{hf.endpoint(env)}/{repository.strip('/')}"


# -- Kitfiles ----------------------------------------------------------------------------------

def _read_kitfile_option(file: str) -> str:
    """``-f``: a path, or ``-`` for standard input; decoded and validated before any download
    (kit's ``readExistingKitfile`` texts)."""
    if file == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise KitError("failed to read Kitfile from input: no data piped")
        data = sys.stdin.buffer.read(MAX_KITFILE_BYTES + 1)
        text = decode_kitfile_bytes(data, "from standard input")
        where = "standard input"
    else:
        try:
            text = read_kitfile_text(Path(file).expanduser())
        except KitError as exc:
            raise KitError(f"failed to read Kitfile: {exc}") from None
        where = file
    try:
        kf = load_kitfile(text)
    except KitError as exc:
        raise KitError(f"failed to load Kitfile from {where}: {exc}") from None
    try:
        ensure_valid(kf)
    except KitError as exc:
        raise KitError(f"kitfile ({where}) is invalid: {exc}") from None
    return text


def _package_for(repository: str) -> Package:
    """kit fills the package from the repository so that ``kit list`` shows something."""
    sections = repository.split("/")
    if len(sections) >= 2:
        return Package(name=sections[-1], authors=[sections[-2]])
    return Package()


def _generate(listing: DirectoryListing, repository: str, workdir: Path, rep: Reporter,
              read_text: Any = None) -> str:
    kf = generate_kitfile(listing, _package_for(repository), read_text=read_text,
                          warn=rep.warning)
    text = kf.to_yaml()
    (workdir / "Kitfile").write_text(text, encoding="utf-8")
    rep.info(f"Generated Kitfile:\n\n{text}\n")
    return text


def files_to_download(files: list[hf.HubFile], kitfile: Kitfile) -> list[hf.HubFile]:
    """The files some layer of ``kitfile`` would pack (newest kit's ``kitfilePathFilter``): a
    file counts when it lies under a layer's path (``.`` holds everything) and that layer does
    not leave it to another layer or to the always-ignored names."""
    layers = layer_paths_from_kitfile(kitfile)
    rules = IgnoreRules((), layers)

    def under(path: str, layer: str) -> bool:
        return layer == "." or path == layer or path.startswith(layer + "/")

    return [f for f in files
            if any(under(f.path, layer) and not rules.excludes(f.path, layer)
                   for layer in layers)]


def _listing_files(listing: DirectoryListing) -> list[tuple[str, int]]:
    return [(f.path, f.size) for f in listing.all_files()]


# -- the command -------------------------------------------------------------------------------

def _workdir(home: Path) -> Path:
    root = home / "cache" / IMPORT_CACHE
    root.mkdir(parents=True, exist_ok=True)
    sweep_stale(root, trees=True)  # what killed imports left
    path = temp_path(root)
    path.mkdir()
    return path


def _pack(workdir: Path, kitfile_path: Path, tag: str, home: Path, rep: Reporter) -> PackResult:
    rep.info(f"Packing model to {tag}")
    try:
        result = pack(workdir, file=kitfile_path, tag=tag, home=home, reporter=rep)
    except PackError as exc:
        text = str(exc).removeprefix("Failed to pack model kit: ")
        raise PackError(f"failed to pack ModelKit: {text}") from None
    rep.info(f"Model is packed as {tag}")
    return result


@arguments(repository=TEXT, ref=TEXT, token=OPT_TEXT, tag=OPT_TEXT, file=OPT_PATH,
           tool=OPT_TEXT, concurrency=COUNT, home=OPT_PATH)
def import_repository(repository: str, *, ref: str = DEFAULT_GIT_REF, token: str | None = None,
                      tag: str | None = None, file: str | None = None, tool: str | None = None,
                      concurrency: int = DEFAULT_CONCURRENCY,
                      home: str | os.PathLike[str] | None = None,
                      reporter: Reporter | None = None, env: Any = None) -> ImportResult:
    """Download a Hugging Face or git repository and pack it (``kit import REPOSITORY``).

    Args:
        repository: ``org/repo``, ``datasets/org/repo``, a Hugging Face URL, or a git URL
            (``https://``, ``ssh://``, ``file://``, ``user@host:path``).
        ref: the branch or tag to import (on the Hub also a commit); ``main`` takes a git
            repository's default branch (``--ref``).
        token: authenticates with the repository (``--token``); on the Hub the library's own
            ``HF_TOKEN`` or stored login is used when not given. Never shown in any output.
        tag: the ModelKit reference (``-t``); default ``<org>/<repo>:latest``.
        file: a Kitfile to pack with instead of generating one, ``"-"`` for standard input
            (``-f``); checked before anything is downloaded.
        tool: ``"git"`` or ``"hf"`` (``--tool``); default: detected from ``repository``.
        concurrency: how many Hub files download at once (``--concurrency``).
        home: the storage root (``--config``); default ``$KITOPS_HOME``.
        reporter: receives kit's lines and one progress task per downloaded file.
        env: replaces ``os.environ`` for ``HF_ENDPOINT`` and git's environment.

    Returns:
        ImportResult: the ModelKit (``tag``, ``digest``, ``pack``), where it came from
        (``source``, ``tool``, ``commit``), the Kitfile packed and the files.

    Raises:
        KitError: with kit's messages (``use flag --tag to set a tag for ModelKit``, ``error
            cloning repository: ...``, ``failed to list files from HuggingFace API: ...``).
    """
    rep = reporter if reporter is not None else NullReporter()
    start = len(rep.messages)
    tag = _modelkit_tag(repository, tag, rep)
    if tool and tool not in TOOLS:
        raise KitError(f"invalid value for --tool flag. Valid options are: {', '.join(TOOLS)}")
    if concurrency < 1:
        raise KitError(f"invalid argument for concurrency ({concurrency}): must be at least 1")
    tool = choose_tool(repository, tool)
    kitfile_text = _read_kitfile_option(file) if file else None

    home_dir = resolve_home(home)
    workdir = _workdir(home_dir)
    try:
        if tool == "git":
            url = _git_url(repository, env)
            source = sanitize_url(url)
            commit = clone_repository(url, ref, workdir, token=token, reporter=rep, env=env)
            clean_git_metadata(workdir)
            generated = False
            if kitfile_text is None:
                try:
                    own = find_kitfile(workdir)
                except KitError:
                    own = None
                if own is not None:
                    kitfile_text = _read_kitfile_option(str(own))
                else:
                    try:
                        listing = listing_from_fs(workdir)
                    except KitError as exc:
                        raise KitError(f"error processing directory: {exc}") from None
                    kitfile_text = _generate(listing, repository, workdir, rep,
                                             read_text=_reader(workdir))
                    generated = True
            files = _listing_files(listing_from_fs(workdir))
        else:
            repo, repo_type = hf.parse_repository(repository, env=env)
            source = f"{hf.endpoint(env)}/{'datasets/' if repo_type == hf.DATASET else ''}{repo}"
            commit = hf.pin_commit(repo, ref, repo_type=repo_type, token=token, env=env)
            listing, hub_files = hf.list_files(repo, commit, repo_type=repo_type, token=token,
                                               env=env)
            generated = kitfile_text is None
            if kitfile_text is None:
                kitfile_text = _generate(listing, repo, workdir, rep)
            wanted = files_to_download(hub_files, load_kitfile(kitfile_text))
            hf.download_files(repo, commit, workdir, wanted, repo_type=repo_type, token=token,
                              concurrency=concurrency, reporter=rep, env=env)
            files = [(f.path, f.size) for f in wanted]
        # beside the files, under a name pack never puts in a layer
        kitfile_path = workdir / "Kitfile"
        kitfile_path.write_text(kitfile_text, encoding="utf-8")
        packed = _pack(workdir, kitfile_path, tag, home_dir, rep)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return ImportResult(source=source, tool=tool, ref=ref, commit=commit, tag=tag,
                        kitfile_yaml=kitfile_text, generated=generated, files=files,
                        pack=packed, messages=list(rep.messages[start:]))

