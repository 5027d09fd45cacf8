"""KitOps ModelKits natively in Jupyter, and from plain Python.

In a notebook: ``%load_ext kit_jupyter``, then ``%%kitfile`` cells and ``%kit <command>`` lines.
From Python, kit's commands are functions returning result objects (they render as tables in a
notebook and carry the data as attributes)::

    import kit_jupyter as kit

    kit.pack(".", tag="churn:v1")                      # kit pack . -t churn:v1
    kit.list_modelkits()                               # kit list
    kit.unpack("churn:v1", dir="restore", include_remote=True)
    kit.push("churn:v1", "registry.example.com/acme/churn:v1")

Every option is a keyword argument with kit's flag name (``--plain-http`` is ``plain_http``); a
misspelt one is a ``TypeError``, and so is an argument of the wrong type (``unpack() argument
'ref' must be str, not int``). Errors you can fix are :class:`KitError` subclasses with one line
of text. Progress is shown only when asked: ``reporter=kit.make_reporter()`` (widgets in a
notebook, text in a terminal). ``help(kit.unpack)`` or ``kit.unpack?`` documents each function.

Importing this package is cheap on purpose: every public name is imported on first use (the
table is :mod:`kit_jupyter.ui.api`), so ``%load_ext kit_jupyter`` does not slow a kernel down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kit_jupyter._version import __version__ as __version__
from kit_jupyter.ui import api as _api

if TYPE_CHECKING:  # what type checkers and IDEs see; tests/test_api.py keeps it equal to the table
    from kit_jupyter.commands.cache import cache_clear as cache_clear
    from kit_jupyter.commands.cache import cache_info as cache_info
    from kit_jupyter.commands.diff import diff as diff
    from kit_jupyter.commands.findings import ValidationReport as ValidationReport
    from kit_jupyter.commands.importer import import_repository as import_repository
    from kit_jupyter.commands.init import init as init
    from kit_jupyter.commands.local import info as info
    from kit_jupyter.commands.local import inspect as inspect
    from kit_jupyter.commands.local import list_modelkits as list_modelkits
    from kit_jupyter.commands.local import remove as remove
    from kit_jupyter.commands.local import tag as tag
    from kit_jupyter.commands.pack import pack as pack
    from kit_jupyter.commands.remote import inspect_remote as inspect_remote
    from kit_jupyter.commands.remote import list_remote as list_remote
    from kit_jupyter.commands.remote import login as login
    from kit_jupyter.commands.remote import logout as logout
    from kit_jupyter.commands.remote import pull as pull
    from kit_jupyter.commands.remote import push as push
    from kit_jupyter.commands.remote import remove_remote as remove_remote
    from kit_jupyter.commands.unpack import unpack as unpack
    from kit_jupyter.commands.validate import validate_path as validate
    from kit_jupyter.commands.validate import validate_text as validate_text
    from kit_jupyter.errors import AuthError as AuthError
    from kit_jupyter.errors import FilterError as FilterError
    from kit_jupyter.errors import KitError as KitError
    from kit_jupyter.errors import KitfileError as KitfileError
    from kit_jupyter.errors import NotFoundError as NotFoundError
    from kit_jupyter.errors import PackError as PackError
    from kit_jupyter.errors import ReferenceError_ as ReferenceError_
    from kit_jupyter.errors import RegistryError as RegistryError
    from kit_jupyter.errors import RemoteDatasetError as RemoteDatasetError
    from kit_jupyter.errors import StorageError as StorageError
    from kit_jupyter.errors import UnpackError as UnpackError
    from kit_jupyter.errors import ValidationError as ValidationError
    from kit_jupyter.kitfile.finding import Finding as Finding
    from kit_jupyter.kitfile.model import Kitfile as Kitfile
    from kit_jupyter.kitfile.model import load_kitfile as load_kitfile
    from kit_jupyter.kitfile.model import load_kitfile_file as load_kitfile_file
    from kit_jupyter.kitfile.reference import Reference as Reference
    from kit_jupyter.kitfile.reference import parse_reference as parse_reference
    from kit_jupyter.reporting import Reporter as Reporter
    from kit_jupyter.ui.progress import make_reporter as make_reporter

# The same names, in the same order, as the table in kit_jupyter/ui/api.py (a test checks it); a
# literal, so that type checkers and `from kit_jupyter import *` see it without running code.
__all__ = [
    # commands
    "pack", "unpack", "push", "pull", "list_modelkits", "list_remote", "inspect",
    "inspect_remote", "info", "tag", "remove", "remove_remote", "login", "logout", "init", "diff",
    "cache_info",
    "cache_clear", "import_repository", "validate", "validate_text",
    # the Kitfile and references
    "Kitfile", "load_kitfile", "load_kitfile_file", "Finding", "ValidationReport", "Reference",
    "parse_reference",
    # progress
    "Reporter", "make_reporter",
    # errors
    "KitError", "KitfileError", "ValidationError", "ReferenceError_", "FilterError",
    "NotFoundError", "StorageError", "PackError", "UnpackError", "RemoteDatasetError",
    "RegistryError", "AuthError",
]


def __getattr__(name: str) -> Any:
    """PEP 562: a public name is imported the first time it is used, then cached here."""
    value = _api.load(name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def load_ipython_extension(ipython: Any) -> None:
    from kit_jupyter.ui.magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from kit_jupyter.ui.magics import unload

    unload(ipython)
