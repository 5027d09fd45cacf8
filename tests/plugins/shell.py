"""A real in-process IPython shell with the extension loaded."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def _shell():
    from IPython.testing import globalipapp

    globalipapp.start_ipython()
    return globalipapp.get_ipython()


@pytest.fixture
def ip(_shell):
    _shell.run_line_magic("load_ext", "kit_jupyter")
    yield _shell
    _shell.run_line_magic("unload_ext", "kit_jupyter")
