"""``kit init``: generate a Kitfile for a directory, with kit's flags and messages.

The rules live in :mod:`kit_jupyter.kitfile.generate`; this module lists the directory as kit
does (regular files and directories in name order, symlinks and OS junk files skipped), writes
the Kitfile atomically, and returns an :class:`InitResult`. In a notebook ``%kit init DIR`` does
not write anything: the adapter puts :attr:`InitResult.cell` -- ``%%kitfile -o DIR/Kitfile``
followed by the generated Kitfile -- into a new cell below, so the user can edit it and run it
(which validates and writes it).
"""

from __future__ import annotations

import html
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit_jupyter._arguments import INT, OPT_PATH, PATH, TEXT, arguments
from kit_jupyter._fs import read_regular, write_bytes_atomic
from kit_jupyter.commands.results import Result
from kit_jupyter.errors import KitError
from kit_jupyter.gocompat.gojson import marshal
from kit_jupyter.gocompat.gopath import go_clean
from kit_jupyter.kitfile.generate import DirectoryListing, FileListing, generate_kitfile
from kit_jupyter.kitfile.model import KITFILE_NAMES, Kitfile, Package
from kit_jupyter.oci.layers import OS_JUNK_FILES
from kit_jupyter.reporting import NullReporter, Reporter

PathLike = str | os.PathLike[str]
#: ``-o`` / ``--output`` value meaning "print the Kitfile instead of writing it" (kit's).
STDOUT = "-"


def _go_error(op: str, path: str, exc: OSError) -> str:
    """Go's ``*PathError`` text, e.g. ``open data: no such file or directory``."""
    reason = (exc.strerror or str(exc)).lower()
    return f"{op} {path}: {reason}"


def listing_from_fs(context_dir: PathLike) -> DirectoryListing:
    """The directory as kit's ``DirectoryListingFromFS`` sees it (paths relative, with ``/``).

    Listed depth-first in name order as kit's recursion lists it, but from a stack of its own:
    a tree deeper than Python's recursion limit (a path of 4096 bytes holds 2048 levels) is
    listed, as kit lists it, instead of ending in a RecursionError."""
    root = os.fspath(context_dir) or "."
    top = DirectoryListing(name=".", path=".")
    todo = [top]
    while todo:
        subdirs = _list_dir(root, todo.pop())
        todo.extend(reversed(subdirs))  # the first subdirectory is listed next
    return top


def _list_dir(root: str, result: DirectoryListing) -> list[DirectoryListing]:
    """Fill ``result`` with its regular files and (still empty) subdirectories."""
    rel = result.path
    full = go_clean(f"{root}/{rel}") if rel != "." else go_clean(root)
    try:
        with os.scandir(full) as it:
            entries = sorted(it, key=lambda e: e.name)
    except NotADirectoryError as exc:
        raise KitError("failed to read directory " + full + ": "
                       + _go_error("readdirent", full, exc)) from None
    except OSError as exc:
        raise KitError(f"failed to read directory {full}: {_go_error('open', full, exc)}") \
            from None
    for entry in entries:
        if entry.name.lower() in OS_JUNK_FILES:
            continue
        child = entry.name if rel == "." else f"{rel}/{entry.name}"
        # like Go's DirEntry.Type(): a symlink is neither a directory nor a regular file
        if entry.is_dir(follow_symlinks=False):
            result.subdirs.append(DirectoryListing(name=entry.name, path=child))
        elif entry.is_file(follow_symlinks=False):
            try:
                size = entry.stat(follow_symlinks=False).st_size
            except OSError as exc:
                raise KitError(f"failed to stat file {go_clean(root + '/' + child)}: "
                               f"{exc.strerror}") from None
            result.files.append(FileListing(name=entry.name, path=child, size=size))
    return result.subdirs


#: LICENSE and SKILL.md are small; anything larger is not a licence text
_MAX_READ = 1 << 20


def _reader(root: PathLike) -> Any:
    base = Path(root)

    def read(rel: str) -> str | None:
        # listed as a regular file, but it may have been replaced since: a FIFO would block
        # for ever (an error here is "cannot read", which the generator takes as no text)
        data = read_regular(base / rel, _MAX_READ, follow_symlinks=False)
        if len(data) > _MAX_READ:
            return None
        # line ends as text mode reads them (universal newlines), as the rules always got them
        return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")

    return read


def default_kitfile_path(directory: PathLike) -> str:
    """kit's ``filepath.Join(DIR, "Kitfile")``."""
    return go_clean(f"{os.fspath(directory) or '.'}/{KITFILE_NAMES[0]}")


@dataclass(repr=False)
class InitResult(Result):
    """What ``init`` generated, and where it went (written, printed, or into a new cell)."""

    directory: str
    path: str                 # DIR/Kitfile or the -o path (also when nothing was written)
    kitfile: Kitfile
    yaml: str
    written: bool
    to_stdout: bool
    messages: list[tuple[str, str]] = field(default_factory=list)
    _html_messages = False  # warnings were shown by the reporter while the command ran

    @property
    def cell(self) -> str:
        """The notebook cell that validates this Kitfile and writes it to :attr:`path`."""
        return f"%%kitfile -o {shlex.quote(self.path)}\n{self.yaml}".rstrip("\n")

    @property
    def data(self) -> dict[str, Any]:
        return {"path": None if self.to_stdout else self.path, "written": self.written,
                "kitfile": json.loads(marshal(self.kitfile._top(json_mode=True))),
                "yaml": self.yaml}

    def text(self) -> str:
        if self.to_stdout:
            return self.yaml
        if self.written:
            return f"Generated Kitfile:\n\n{self.yaml}Saved to path '{self.path}'\n"
        return self.yaml

    def summary(self) -> str:
        if self.written:
            return f"Saved to path '{self.path}'"
        if self.to_stdout:
            return self.yaml.rstrip("\n")
        return (f"Generated a Kitfile for {self.directory} into a new cell below: "
                f"run it to validate it and write {self.path}")

    def _html_body(self) -> str:
        esc = html.escape
        pre = ('<pre style="margin:4px 0;padding:6px;border:1px solid rgba(128,128,128,.35);'
               f'font-family:monospace;white-space:pre">{esc(self.yaml)}</pre>')
        note = f'<div style="font-family:monospace">{esc(self.summary())}</div>'
        if self.written:
            return note + f"<details><summary>Kitfile</summary>{pre}</details>"
        if self.to_stdout:
            return pre
        return note


@arguments(directory=PATH, name=TEXT, desc=TEXT, author=TEXT, output=OPT_PATH, depth=INT)
def init(directory: PathLike = ".", *, name: str = "", desc: str = "", author: str = "",
         force: bool = False, output: str | None = None, write: bool = True, depth: int = 0,
         reporter: Reporter | None = None) -> InitResult:
    """Generate a Kitfile for a directory and write it to ``DIR/Kitfile`` (``kit init DIR``).

    Args:
        directory: the project directory to describe.
        name: the package name (``--name``).
        desc: the package description (``--desc``).
        author: the package author (``--author``).
        force: overwrite an existing Kitfile (``-f``).
        output: kit's ``-o``: another path to write, or ``"-"`` to only return the text.
        write: ``False`` generates without writing (the notebook puts the result into a new
            cell); the existing-Kitfile check still applies, since running that cell would
            overwrite it.
        depth: how many levels of subdirectories are examined file by file (``--depth``).
        reporter: receives warnings (an unrecognised licence).

    Returns:
        InitResult: the generated ``kitfile`` and its ``yaml``, the ``path`` and whether it was
        ``written``.

    Raises:
        KitError: with kit's messages (an existing Kitfile without ``force`` ...).
    """
    rep = reporter if reporter is not None else NullReporter()
    directory = os.fspath(directory) or "."
    to_stdout = output == STDOUT
    path = output if output and not to_stdout else default_kitfile_path(directory)

    try:
        listing = listing_from_fs(directory)
    except KitError as exc:
        raise KitError(f"Error processing directory: {exc}") from None
    package = Package(name=name, description=desc, authors=[author] if author else [])
    kitfile = generate_kitfile(listing, package, depth=depth, read_text=_reader(directory),
                               warn=rep.warning)
    text = kitfile.to_yaml()

    written = False
    if not to_stdout:
        try:
            os.stat(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise KitError(f"Error checking for existing Kitfile: "
                           f"{_go_error('stat', path, exc)}") from None
        else:
            if not force:
                raise KitError(f"Kitfile already exists at {path}. Use '--force' to overwrite")
        if write:
            try:
                write_bytes_atomic(path, text.encode("utf-8"))
            except OSError as exc:
                raise KitError(f"Failed to write Kitfile: {_go_error('open', path, exc)}") \
                    from None
            written = True
    return InitResult(directory=directory, path=path, kitfile=kitfile, yaml=text,
                      written=written, to_stdout=to_stdout, messages=list(rep.messages))
