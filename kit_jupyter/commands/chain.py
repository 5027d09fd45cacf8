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
texts there too. pull starts it with the pulled reference, as kit does; kit's own pull walker
also compares the first parent with it and counts the pulled ModelKit against the limit (so it
stops one parent earlier than pack and unpack): we apply the one rule above instead. References
are compared as written, as kit compares them. ``info`` and ``inspect`` show a ModelKit as
stored and follow no parent, as kit does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

from kit_jupyter.commands.sources import BlobSource, close_source, read_kitfile
from kit_jupyter.errors import KitError
from kit_jupyter.kitfile.model import Kitfile
from kit_jupyter.kitfile.reference import Reference, is_modelkit_reference, parse_reference
from kit_jupyter.oci.manifest import Manifest

#: kit's ``constants.MaxModelRefChain``: the most parent ModelKits a ModelKit may have.
MAX_PARENTS = 10

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


def walk_parents(kitfile: Kitfile, resolve: Resolver, stack: ExitStack, *,
                 start: str | None = None, cycle: str = CYCLE,
                 announce: Callable[[str], None] | None = None) -> Iterator[Parent]:
    """The parents of ``kitfile``, nearest first, each read through ``resolve``.

    ``announce(path)`` comes first, as kit prints its line before it checks or reads. ``start``
    begins the chain (the ModelKit being packed or pulled, as kit shows it). Every source opened
    is closed by ``stack``, so a caller can still read the parents' blobs while it is open."""
    path = parent_path(kitfile)
    chain = [] if start is None else [start]
    limit = MAX_PARENTS + len(chain)
    first = True
    while path:
        if announce is not None:
            announce(path)
        if not first and path in chain:
            loop = "=>".join([*chain[chain.index(path):], path])
            raise ReferenceChainError(f"{cycle}: [{loop}]")
        chain.append(path)
        if len(chain) > limit:
            raise ReferenceChainError("reached maximum number of model references: "
                                      f"[{'=>'.join(chain)}]")
        first = False
        ref, _ = parse_reference(path).with_default_tag()
        source, manifest = resolve(ref)
        stack.callback(close_source, source)
        parent = read_kitfile(source, manifest)
        if parent is None:
            raise KitError("artifact does not contain a Kitfile")
        yield Parent(path, ref, source, manifest, parent)
        path = parent_path(parent)
