"""Where a ModelKit is read from: local storage if it is there, else its registry.

kit's rule (spec §11.1), shared by unpack, inspect, info and the parent-chain walker: a reference
that resolves in local storage is read locally; otherwise a ``localhost`` reference is simply not
found, and any other is read straight from its registry (streamed, nothing saved locally).
Both are a :class:`BlobSource`: ``resolve`` gives the parsed manifest, ``open_blob`` a verified
stream, and :func:`read_config` the Kitfile JSON of either ModelKit format (for a ModelPack
without one, :func:`generated_kitfile` builds kit's stand-in).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, TypeVar

from kit_jupyter.errors import KitError, NotFoundError
from kit_jupyter.kitfile.model import Kitfile
from kit_jupyter.kitfile.reference import Reference
from kit_jupyter.oci.manifest import Descriptor, Manifest
from kit_jupyter.oci.mediatypes import ANNOTATION_KITFILE, KIT_FORMAT, MODELPACK_CONFIG
from kit_jupyter.oci.modelpack import generate_kitfile, parse_modelpack_config
from kit_jupyter.oci.store import LocalStore
from kit_jupyter.transport.registry import RegistryOptions, RemoteSource

CONFIG_LIMIT = 16 << 20  # a config (a Kitfile as JSON) larger than this is not one

_R = TypeVar("_R", bound="BlobReader")


class BlobReader(Protocol):
    """A blob's bytes, verified against its digest by the time they have all been read."""

    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...

    def __enter__(self: _R) -> _R: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None, /) -> object: ...


class BlobSource(Protocol):
    """Local storage or a registry, as unpack, inspect and info read them."""

    def resolve(self, ref: Reference) -> Manifest: ...

    def open_blob(self, descriptor: Descriptor) -> BlobReader: ...


def remote_source(ref: Reference, *, home: str | os.PathLike[str] | None = None,
                  registry_options: RegistryOptions | None = None,
                  warn: Callable[[str], Any] | None = None) -> RemoteSource:
    """The registry as a BlobSource (``registry.RemoteSource``); ``warn`` receives what the
    result should say (a manifest the registry sent no digest for)."""
    options = registry_options or RegistryOptions()
    if home is not None and options.home is None:
        options = dataclasses.replace(options, home=home)
    return RemoteSource(ref, options, warn=warn)


#: the next step when a reference is not in local storage
LOCAL_HINT = "'list' shows the ModelKits in local storage"


def open_source(ref: Reference, *, home: str | os.PathLike[str] | None = None,
                registry_options: RegistryOptions | None = None,
                store: LocalStore | None = None,
                warn: Callable[[str], Any] | None = None) -> LocalStore | RemoteSource:
    """Local storage if ``ref`` resolves there, else the registry (never for ``localhost``).
    Raises kit's ``failed to find reference <ref>: not found`` for a missing local ref."""
    store = store or LocalStore(home)
    if store.resolve_descriptor(ref.repo_key, ref.reference) is not None:
        return store
    if ref.registry == "localhost":
        raise NotFoundError(f"failed to find reference {ref.display()}: not found").with_hint(
            LOCAL_HINT)
    return remote_source(ref, home=home, registry_options=registry_options, warn=warn)


def open_and_resolve(ref: Reference, *, home: str | os.PathLike[str] | None = None,
                     registry_options: RegistryOptions | None = None
                     ) -> tuple[LocalStore | RemoteSource, Manifest]:
    """:func:`open_source` then :func:`resolve_in`: where ``ref`` lives and its manifest (the
    source is closed again when resolving fails)."""
    source = open_source(ref, home=home, registry_options=registry_options)
    try:
        return source, resolve_in(source, ref)
    except BaseException:
        close_source(source)
        raise


def close_source(source: BlobSource) -> None:
    """Close a registry session; local storage has nothing to close."""
    if isinstance(source, RemoteSource):
        source.close()


def resolve_in(source: BlobSource, ref: Reference) -> Manifest:
    """``source.resolve(ref)`` with kit's message when it does not have it."""
    try:
        return source.resolve(ref)
    except NotFoundError:
        if isinstance(source, LocalStore):
            raise NotFoundError(f"failed to find reference {ref.display()}: not found").with_hint(
                LOCAL_HINT) from None
        raise NotFoundError(
            f"failed to find reference {ref.display()}: reference {ref} is not present in local "
            "storage and could not be found in remote") from None


def read_small(source: BlobSource, descriptor: Descriptor, limit: int = CONFIG_LIMIT) -> bytes:
    """A config blob from any source, read whole and verified (the stream checks at EOF)."""
    if descriptor.size > limit:
        raise KitError(f"blob {descriptor.digest} is too large ({descriptor.size} bytes)")
    with source.open_blob(descriptor) as f:
        chunks = []
        total = 0
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise KitError(f"blob {descriptor.digest} is too large")
            chunks.append(chunk)
    return b"".join(chunks)


def read_config(source: BlobSource, manifest: Manifest) -> bytes | None:
    """The Kitfile JSON of a ModelKit: the config blob (Kit format) or the manifest annotation
    (ModelPack format); ``None`` for a ModelPack without a Kitfile. Raises
    :class:`~kit_jupyter.oci.manifest.NotAModelKitError` for any other manifest."""
    if manifest.model_format() == KIT_FORMAT:
        return read_small(source, manifest.config)
    annotated = manifest.annotations.get(ANNOTATION_KITFILE)
    return annotated.encode("utf-8") if annotated else None


def read_kitfile(source: BlobSource, manifest: Manifest) -> Kitfile | None:
    """The ModelKit's Kitfile, decoded with kit's rules (one-line errors for a config that is
    not JSON or has wrong types); ``None`` for a ModelPack without one."""
    raw = read_config(source, manifest)
    return None if raw is None else Kitfile.from_config_json(raw)


def generated_kitfile(source: BlobSource, manifest: Manifest) -> Kitfile:
    """kit's fallback for a ModelPack without a Kitfile (made by modctl, say): a Kitfile
    generated from the layers' file-path annotations, with the digests of the manifest and
    the diffIds of its model-spec config (read and verified like any config). Errors in
    kit's words, ``could not process manifest: ...``."""
    config = None
    if manifest.config.media_type == MODELPACK_CONFIG:
        config = parse_modelpack_config(read_small(source, manifest.config))
    try:
        return generate_kitfile(manifest, config)
    except KitError as exc:
        raise KitError(f"could not process manifest: {exc}") from None
