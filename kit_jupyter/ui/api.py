"""The public Python API: one table from each public name to the module that implements it.

``from kit_jupyter import unpack`` and ``%kit unpack`` (through :mod:`kit_jupyter.ui.cli`) both
find the function here, so "which function implements which command" has one home. Nothing is
imported until a name is first used (PEP 562): ``import kit_jupyter`` and ``%load_ext kit_jupyter``
must not pay for PyYAML, boto3, oras or ipywidgets.

It lives with the adapters (rank 6 in docs/ARCHITECTURE.md) because the CLI and the magics use
it and the package root re-exports it; it only points down or sideways: commands, the Kitfile
model, references, errors, the reporters. Adding a public name is a line in :data:`EXPORTS`, in
``__all__`` and in the ``TYPE_CHECKING`` block of ``kit_jupyter/__init__.py`` (tests/test_api.py
keeps the three equal).
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> ``"module:attribute"``; the order is the order of ``kit_jupyter.__all__``.
EXPORTS: dict[str, str] = {
    # kit's commands, as functions returning result objects
    "pack": "kit_jupyter.commands.pack:pack",
    "unpack": "kit_jupyter.commands.unpack:unpack",
    "push": "kit_jupyter.commands.remote:push",
    "pull": "kit_jupyter.commands.remote:pull",
    "list_modelkits": "kit_jupyter.commands.local:list_modelkits",
    "list_remote": "kit_jupyter.commands.remote:list_remote",
    "inspect": "kit_jupyter.commands.local:inspect",
    "inspect_remote": "kit_jupyter.commands.remote:inspect_remote",
    "info": "kit_jupyter.commands.local:info",
    "tag": "kit_jupyter.commands.local:tag",
    "remove": "kit_jupyter.commands.local:remove",
    "remove_remote": "kit_jupyter.commands.remote:remove_remote",
    "login": "kit_jupyter.commands.remote:login",
    "logout": "kit_jupyter.commands.remote:logout",
    "init": "kit_jupyter.commands.init:init",
    "diff": "kit_jupyter.commands.diff:diff",
    "cache_info": "kit_jupyter.commands.cache:cache_info",
    "cache_clear": "kit_jupyter.commands.cache:cache_clear",
    "import_repository": "kit_jupyter.commands.importer:import_repository",
    "validate": "kit_jupyter.commands.validate:validate_path",
    "validate_text": "kit_jupyter.commands.validate:validate_text",
    # the Kitfile and references
    "Kitfile": "kit_jupyter.kitfile.model:Kitfile",
    "load_kitfile": "kit_jupyter.kitfile.model:load_kitfile",
    "load_kitfile_file": "kit_jupyter.kitfile.model:load_kitfile_file",
    "Finding": "kit_jupyter.kitfile.finding:Finding",
    "ValidationReport": "kit_jupyter.commands.findings:ValidationReport",
    "Reference": "kit_jupyter.kitfile.reference:Reference",
    "parse_reference": "kit_jupyter.kitfile.reference:parse_reference",
    # progress
    "Reporter": "kit_jupyter.reporting:Reporter",
    "make_reporter": "kit_jupyter.ui.progress:make_reporter",
    # errors a user can fix
    "KitError": "kit_jupyter.errors:KitError",
    "KitfileError": "kit_jupyter.errors:KitfileError",
    "ValidationError": "kit_jupyter.errors:ValidationError",
    "ReferenceError_": "kit_jupyter.errors:ReferenceError_",
    "FilterError": "kit_jupyter.errors:FilterError",
    "NotFoundError": "kit_jupyter.errors:NotFoundError",
    "StorageError": "kit_jupyter.errors:StorageError",
    "PackError": "kit_jupyter.errors:PackError",
    "UnpackError": "kit_jupyter.errors:UnpackError",
    "RemoteDatasetError": "kit_jupyter.errors:RemoteDatasetError",
    "RegistryError": "kit_jupyter.errors:RegistryError",
    "AuthError": "kit_jupyter.errors:AuthError",
}


def load(name: str) -> Any:
    """The object behind public ``name``, importing its module on first use.

    Raises ``AttributeError`` for a name that is not public, so that a module ``__getattr__``
    built on it behaves like a normal attribute lookup (``hasattr``, ``getattr(m, n, default)``).
    """
    try:
        target = EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'kit_jupyter' has no attribute {name!r}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
