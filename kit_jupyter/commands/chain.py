"""Parent ModelKits: the one walker of ``model.path`` references, with kit's limits and texts.

A Kitfile whose ``model.path`` is a ModelKit reference builds on that ModelKit (its parent),
which may name a parent of its own. pack (to leave the parents' paths out of its layers),
unpack (to unpack the parents' models first) and pull (to pull the parents too) follow the
chain through :func:`walk_parents`; each says how a reference is opened and read (local storage
then the registry, or the registry only) and what to announce, the walker owns the rules:

* the chain is kit's ``ResolveKitfile`` chain: it starts with the ModelKit being packed (or
  pulled: what kit shows as the reference), then each ``model.path`` as written. A reference
  that is already in the chain is a cycle, ``found cycle in modelkit references: [a=>b=>a]``
  (``Found`` at pack time, as kit writes it there); only the first parent is not compared with
  the start, so packing ``repo:v2`` on top of the stored ``repo:v2`` stays possible, as in kit;
* at most :data:`MAX_PARENTS` parents are read; the next one is ``reached maximum number of
  model references: [a=>b=>…]``. Both texts join the chain with ``=>``.

unpack starts its chain without the top ModelKit (kit's ``visitedRefs``), which gives kit's
texts there too; it compares references in kit's ``registry/repository:tag`` form, as the
newest kit's unpack does (``form="canonical"``). pull follows the newest kit's
``runPullRecursive`` (``pkg/cmd/pull/pull.go``): the chain starts with the pulled reference,
every reference, the first parent too, is compared and shown in kit's display form
(``FormatRepositoryForDisplay``: no ``localhost/``; ``form="display"``), and the pulled
ModelKit counts against the limit, so a pull follows at most nine parents
(``strict_start``). pack compares references as written, as kit's ``ResolveKitfile`` does.
``info`` and ``inspect`` show a ModelKit as stored and follow no parent, as kit does.

A dataset whose ``remotePath`` is a ModelKit reference (spec §12.6) is the other kind of
reference: unpack ``--include-remote`` follows it with :func:`walk_dataset_modelkits`, which
is a tree (a ModelKit may have several such datasets) rather than a chain; every branch of it
obeys the same two rules through :func:`extend_chain`, with the newest kit's texts.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Literal

from kit_jupyter.commands.sources import BlobSource, close_source, read_kitfile
from kit_jupyter.errors import KitError
from kit_jupyter.kitfile.filters import Filter, matches, restrict
from kit_jupyter.kitfile.model import DataSet, Kitfile
from kit_jupyter.kitfile.reference import Reference, is_modelkit_reference, parse_reference
from kit_jupyter.oci.manifest import Manifest

#: kit's ``constants.MaxModelRefChain``: the most parent ModelKits a ModelKit may have.
MAX_PARENTS = 10

#: the most ModelKits one unpack reads for datasets that name ModelKits (ours; kit has none)
MAX_DATASET_MODELKITS = 100

CYCLE = "found cycle in modelkit references"
CYCLE_AT_PACK = "Found cycle in modelkit references"  # kit's lib/kitfile/resolve.go


class ReferenceChainError(KitError):
    """The parent chain loops or is longer than kit allows."""


@dataclass(frozen=True)
class Parent:
    """One parent ModelKit: the ``model.path`` that named it and what it holds."""

    path: str
    reference: Reference
    source: BlobSource
    manifest: Manifest
    kitfile: Kitfile


#: How a command reads a parent: the source it lives in and its manifest.
Resolver = Callable[[Reference], tuple[BlobSource, Manifest]]


def parent_path(kitfile: Kitfile) -> str:
    """``model.path`` when it names a parent ModelKit, else ``""``."""
    path = kitfile.model.path if kitfile.model is not None else ""
    return path if path and is_modelkit_reference(path) else ""


def extend_chain(chain: list[str], key: str, *, limit: int = MAX_PARENTS,
                 cycle: str = CYCLE, check_cycle: bool = True) -> None:
    """Add ``key`` to ``chain`` with kit's two rules: a key already in the chain is a cycle
    (``<cycle>: [b=>a=>b]``, from its first occurrence), and a chain longer than ``limit`` is
    ``reached maximum number of model references: [a=>b=>…]``."""
    if check_cycle and key in chain:
        loop = "=>".join([*chain[chain.index(key):], key])
        raise ReferenceChainError(f"{cycle}: [{loop}]")
    chain.append(key)
    if len(chain) > limit:
        raise ReferenceChainError("reached maximum number of model references: "
                                  f"[{'=>'.join(chain)}]")


def walk_parents(kitfile: Kitfile, resolve: Resolver, stack: ExitStack, *,
                 start: str | None = None, cycle: str = CYCLE,
                 announce: Callable[[str], None] | None = None,
                 form: Literal["written", "canonical", "display"] = "written",
                 strict_start: bool = False,
                 read: Callable[[BlobSource, Manifest], Kitfile | None] = read_kitfile
                 ) -> Iterator[Parent]:
    """The parents of ``kitfile``, nearest first, each read through ``resolve``.

    ``announce(path)`` comes first, as kit prints its line before it checks or reads. ``start``
    begins the chain (the ModelKit being packed or pulled, as kit shows it). Every source opened
    is closed by ``stack``, so a caller can still read the parents' blobs while it is open.
    ``form``: how references are compared and shown -- as written (pack), in kit's
    ``registry/repository:tag`` form (the newest kit's unpack) or in its display form (its
    pull). ``strict_start``: the start counts against :data:`MAX_PARENTS` and the first parent
    is compared with it (kit's pull). ``read`` gives a ModelKit's Kitfile (None: it has
    none, an error here; unpack's generates kit's stand-in for a ModelPack)."""
    path = parent_path(kitfile)
    chain = [] if start is None else [start]
    limit = MAX_PARENTS if strict_start else MAX_PARENTS + len(chain)
    first = True
    while path:
        if announce is not None:
            announce(path)
        parsed = parse_reference(path)
        key = {"written": path, "canonical": str(parsed), "display": parsed.display()}[form]
        extend_chain(chain, key, limit=limit, cycle=cycle,
                     check_cycle=strict_start or not first)
        first = False
        ref, _ = parsed.with_default_tag()
        source, manifest = resolve(ref)
        stack.callback(close_source, source)
        parent = read(source, manifest)
        if parent is None:
            raise KitError("artifact does not contain a Kitfile")
        yield Parent(path, ref, source, manifest, parent)
        path = parent_path(parent)


# --------------------------------------------------------------------------------------------
# ModelKit-reference datasets (spec §12.6)


@dataclass(frozen=True)
class DatasetModelKit:
    """A ModelKit that a dataset's ``remotePath`` names, and where its datasets go.

    ``path`` is the directory, relative to the unpack target, that the referenced ModelKit's
    layer paths land beneath: the dataset's ``path``, joined through every level of nesting.
    ``filters`` are the ones its own datasets are selected with (kit's ``unpackRemote``)."""

    path: str
    dataset_path: str  # the dataset's own ``path``, as its Kitfile has it
    remote_path: str
    reference: Reference
    source: BlobSource
    manifest: Manifest
    kitfile: Kitfile
    filters: list[Filter]
    top: bool  # named by the ModelKit being unpacked itself (not by a referenced one)


def dataset_reference(remote_path: str) -> Reference:
    """A dataset ``remotePath`` that names a ModelKit, parsed (``latest`` when it has no tag),
    with kit's text when it does not parse."""
    try:
        ref = parse_reference(remote_path)
    except KitError as exc:
        raise KitError(f"failed to parse remote dataset reference {remote_path}: {exc}") \
            from None
    return ref.with_default_tag()[0]


def referenced_datasets(kitfile: Kitfile, filters: list[Filter]) -> list[DataSet]:
    """The datasets of ``kitfile`` that name a ModelKit and that ``filters`` select."""
    return [d for d in kitfile.datasets
            if d.remote_path and is_modelkit_reference(d.remote_path)
            and matches(filters, "dataset", d.name, d.path)]


def walk_dataset_modelkits(kitfile: Kitfile, filters: list[Filter], resolve: Resolver,
                           stack: ExitStack, *, announce: Callable[[str, str], None] | None = None,
                           check_path: Callable[[str, str], None] | None = None,
                           read: Callable[[BlobSource, Manifest], Kitfile | None] = read_kitfile,
                           base: str = "", chain: tuple[str, ...] = (),
                           _read: list[int] | None = None) -> Iterator[DatasetModelKit]:
    """Every ModelKit the selected datasets of ``kitfile`` name, and those their datasets name.

    kit's order (``handleRemoteData`` then ``unpackRecursive``): for each selected dataset,
    ``announce(reference, dataset path)``, the cycle and depth checks, the ModelKit is read,
    then what its own datasets reference comes out before it (a ModelKit's references are
    unpacked before its layers). Each branch has its own chain, which starts *without* the
    ModelKit being unpacked (kit's ``visitedRefs``), so ``a → b → a`` is reported as
    ``found cycle in modelkit references: [b=>a=>b]``; references are compared in kit's
    ``registry/repository:tag`` form. ``check_path(dataset path, base)`` refuses a dataset
    path that leaves the directory it is relative to before anything is read. ``read`` gives
    a ModelKit's Kitfile (None: it has none, an error here).

    kit bounds each branch's depth but not the tree: ten levels of ModelKits that each name the
    next from ten datasets would be read 10**10 times. We read at most
    :data:`MAX_DATASET_MODELKITS` in all (a hostile ModelKit ends in one line, not in hours)."""
    nested = restrict(filters, "datasets")
    if nested is None:
        return
    count = [0] if _read is None else _read
    for dataset in referenced_datasets(kitfile, filters):
        ref = dataset_reference(dataset.remote_path)
        if announce is not None:
            announce(str(ref), dataset.path)
        branch = list(chain)
        extend_chain(branch, str(ref))
        path = posixpath.join(base, dataset.path) if base else dataset.path
        if check_path is not None:
            check_path(dataset.path, base)
        count[0] += 1
        if count[0] > MAX_DATASET_MODELKITS:
            raise ReferenceChainError(f"too many ModelKit references in datasets: more than "
                                      f"{MAX_DATASET_MODELKITS}")
        source, manifest = resolve(ref)
        stack.callback(close_source, source)
        referenced = read(source, manifest)
        if referenced is None:
            raise KitError("artifact does not contain a Kitfile")
        yield from walk_dataset_modelkits(referenced, nested, resolve, stack, announce=announce,
                                          check_path=check_path, read=read, base=path,
                                          chain=tuple(branch), _read=count)
        yield DatasetModelKit(path, dataset.path, dataset.remote_path, ref, source, manifest,
                              referenced, nested, top=not chain)
