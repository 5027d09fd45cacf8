"""Shared fixtures. Server fixtures live in tests/plugins/ (one module per real service)."""

from __future__ import annotations

from pathlib import Path

import pytest

# Every module in tests/plugins/ is a plugin (one per real service), so adding a fixture module
# never means editing this file.
pytest_plugins = sorted(
    f"tests.plugins.{p.stem}"
    for p in (Path(__file__).parent / "plugins").glob("*.py")
    if p.stem != "__init__"
)


@pytest.fixture
def kitops_home(tmp_path, monkeypatch):
    """A private KITOPS_HOME so tests never touch the user's storage."""
    home = tmp_path / "kitops-home"
    home.mkdir()
    monkeypatch.setenv("KITOPS_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def _private_home_for_every_test(tmp_path_factory, monkeypatch):
    """No test writes the user's KITOPS_HOME (the remote-dataset cache lives there), and no test
    sees what another one cached."""
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path_factory.mktemp("home")))
