"""Where a ModelKit is read from: local storage if it is there, else its registry.

kit's rule (spec §11.1), shared by unpack, inspect and info: a reference that resolves in local
storage is read locally; otherwise a ``localhost`` reference is simply not found, and any other
is read straight from its registry (streamed, nothing saved locally).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, BinaryIO, Protocol

from kit_jupyter.errors import KitError, NotFoundError
from kit_jupyter.kitfile.reference import display_repository
from kit_jupyter.oci.store import LocalStore
from kit_jupyter.transport import registry


class BlobSource(Protocol):
    def resolve(self, ref: Any) -> tuple[bytes, str]: ...

    def open_blob(self, descriptor: dict[str, Any]) -> BinaryIO: ...


def repo_key(ref: Any) -> str:
    return f"{ref.registry}/{ref.repository}"


def display(ref: Any) -> str:
    """kit's FormatRepositoryForDisplay of the full reference string."""
    return display_repository(str(ref))


def remote_source(ref: Any, *, home: str | os.PathLike[str] | None = None,
                  registry_options: registry.RegistryOptions | None = None) -> BlobSource:
    """The registry as a BlobSource (``registry.RemoteSource``)."""
    options = registry_options or registry.RegistryOptions()
    if home is not None and options.home is None:
        options = dataclasses.replace(options, home=home)
    return registry.RemoteSource(ref, options)


def open_source(ref: Any, *, home: str | os.PathLike[str] | None = None,
                registry_options: registry.RegistryOptions | None = None,
                store: LocalStore | None = None) -> BlobSource:
    """Local storage if ``ref`` resolves there, else the registry (never for ``localhost``).
    Raises kit's ``failed to find reference <ref>: not found`` for a missing local ref."""
    store = store or LocalStore(home)
    if store.resolve_descriptor(repo_key(ref), ref.reference) is not None:
        return store
    if ref.registry == "localhost":
        raise NotFoundError(f"failed to find reference {display(ref)}: not found")
    return remote_source(ref, home=home, registry_options=registry_options)


def resolve_in(source: BlobSource, ref: Any) -> tuple[bytes, str]:
    """``source.resolve(ref)`` with kit's message when a registry does not have it."""
    try:
        return source.resolve(ref)
    except NotFoundError:
        if isinstance(source, LocalStore):
            raise NotFoundError(f"failed to find reference {display(ref)}: not found") from None
        raise NotFoundError(
            f"failed to find reference {display(ref)}: reference {ref} is not present in local "
            "storage and could not be found in remote") from None


def read_small(source: BlobSource, descriptor: dict[str, Any], limit: int = 16 << 20) -> bytes:
    """A config blob from any source, read whole and verified (the stream checks at EOF)."""
    size = descriptor.get("size")
    if isinstance(size, int) and size > limit:
        raise KitError(f"blob {descriptor.get('digest')} is too large ({size} bytes)")
    with source.open_blob(descriptor) as f:
        chunks = []
        total = 0
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise KitError(f"blob {descriptor.get('digest')} is too large")
            chunks.append(chunk)
    return b"".join(chunks)
