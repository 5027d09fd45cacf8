"""KitOps ModelKits natively in Jupyter.

Importing this package is cheap on purpose: boto3, oras and ipywidgets are imported only by the
commands that need them, so ``%load_ext kit_jupyter`` does not slow a kernel down.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    from kit_jupyter.ui.magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from kit_jupyter.ui.magics import unload

    unload(ipython)
