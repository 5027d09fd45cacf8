"""The local services behind the demo notebooks and the test fixtures: how they fail to start.

Their working paths (S3 with and without credential checks, registries plain, TLS, basic and
token auth) are exercised by every S3 and registry test through ``tests/plugins/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from kit_jupyter import services


def test_missing_registry_binary_is_one_line_and_leaves_nothing(monkeypatch, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("KIT_DEMO_TMP", str(tmp_path))
    with pytest.raises(services.ServiceError) as info:
        services.start_registry()
    assert str(info.value) == ("docker-registry is not installed (Debian/Ubuntu: apt-get "
                               "install docker-registry)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]


@dataclass
class _NoSuchTokenServer:
    realm: str = "http://127.0.0.1:9/token"
    service: str = "nowhere"
    issuer: str = "nobody"
    cert_path: Path = Path("/nonexistent/token.crt")
    credentials: tuple[str, str] = ("u", "p")


@pytest.mark.registry
def test_registry_that_exits_at_start_says_why(monkeypatch, tmp_path):
    """A registry whose auth configuration it refuses panics; the error quotes the panic, not
    the goroutine dump after it, and the temporary root is removed."""
    monkeypatch.setenv("KIT_DEMO_TMP", str(tmp_path))
    with pytest.raises(services.ServiceError) as info:
        services.start_registry(token=_NoSuchTokenServer())
    message = str(info.value)
    assert message.startswith("docker-registry exited at start: ")
    assert "panic: unable to configure authorization (token)" in message
    assert "goroutine" not in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.registry
def test_given_root_is_kept_and_kill_ends_the_process(tmp_path):
    reg = services.start_registry(tmp_path / "reg")
    try:
        assert reg.host.startswith("127.0.0.1:") and reg.url == f"http://{reg.host}"
        reg.kill()
        assert reg.process.poll() is not None
    finally:
        reg.stop()
    reg.stop()
    assert (tmp_path / "reg" / "config.yml").exists()
    assert "listening on 127.0.0.1:" in reg.log()


def test_env_patch_restores_set_and_unset(monkeypatch):
    monkeypatch.setenv("KIT_T_SET", "before")
    monkeypatch.delenv("KIT_T_UNSET", raising=False)
    patch = services.EnvPatch()
    patch.set({"KIT_T_SET": "a", "KIT_T_UNSET": "b"})
    patch.set({"KIT_T_SET": "c"})  # a second set must not forget the first saved value
    assert (os.environ["KIT_T_SET"], os.environ["KIT_T_UNSET"]) == ("c", "b")
    patch.restore()
    assert os.environ["KIT_T_SET"] == "before" and "KIT_T_UNSET" not in os.environ


def test_a_root_given_again_starts_on_the_new_port(tmp_path):
    """The log is appended to; the second start must read its own "Running on" line, not the
    first run's, whose port nobody listens on any more (the start then failed after 60 s)."""
    first = services.start_s3(tmp_path / "s3")
    first.stop()
    second = services.start_s3(tmp_path / "s3", timeout=20)
    try:
        second.client().create_bucket(Bucket="again")  # it answers on the port it reported
        assert second.log().count("Running on") == 2
    finally:
        second.stop()
