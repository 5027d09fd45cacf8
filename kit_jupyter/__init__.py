"""KitOps ModelKits natively in Jupyter.

Importing this package is cheap on purpose: boto3, oras and ipywidgets are imported only by the
commands that need them, so ``%load_ext kit_jupyter`` does not slow a kernel down.
"""

from __future__ import annotations

from typing import Any

from kit_jupyter._version import __version__ as __version__


def load_ipython_extension(ipython: Any) -> None:
    from kit_jupyter.ui.magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from kit_jupyter.ui.magics import unload

    unload(ipython)
