"""Shared fixtures. Server fixtures live in tests/plugins/ (one module per real service)."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.plugins.shell",
]


@pytest.fixture
def kitops_home(tmp_path, monkeypatch):
    """A private KITOPS_HOME so tests never touch the user's storage."""
    home = tmp_path / "kitops-home"
    home.mkdir()
    monkeypatch.setenv("KITOPS_HOME", str(home))
    return home
