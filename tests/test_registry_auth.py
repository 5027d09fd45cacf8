"""login / logout and credential lookup against a docker-registry with htpasswd basic auth."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import string
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_jupyter.commands.remote import login, logout, pull, push
from kit_jupyter.errors import AuthError
from kit_jupyter.reporting import NullReporter
from kit_jupyter.transport import credentials
from kit_jupyter.transport.credentials import Credentials, lookup
from kit_jupyter.transport.registry import RegistryClient
from tests.test_registry import make_modelkit
from tests.test_storage import assert_one_line, corrupted, dumps, hostile_values

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_docker_config")]


def test_login_stores_verified_credentials_like_kit(auth_registry, tmp_path):
    home = tmp_path / "home"
    rep = NullReporter()
    res = login(auth_registry.host, auth_registry.username, auth_registry.password, home=home,
                plain_http=True, reporter=rep)
    assert rep.messages == [("info", "Log in successful")]
    path = home / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    expected = base64.b64encode(f"{auth_registry.username}:{auth_registry.password}".encode())
    assert stored == {"auths": {auth_registry.host: {"auth": expected.decode()}}}
    assert auth_registry.password not in repr(res) + res.summary() + res._repr_html_()
    assert auth_registry.password not in json.dumps(res.data)


def test_push_and_pull_with_login_send_credentials_up_front(auth_registry, tmp_path):
    home = tmp_path / "home"
    login(auth_registry.host, auth_registry.username, auth_registry.password, home=home,
          plain_http=True)
    kit = make_modelkit(home, "localhost/private", "v1", seed="q")
    dest = f"{auth_registry.host}/team/private:v1"
    mark = auth_registry.mark()
    res = push("private:v1", dest, home=home, plain_http=True)
    reqs = auth_registry.requests(mark)
    assert res.digest == kit["digest"]
    # Basic auth is sent pre-emptively after the /v2/ challenge: one 401, and no upload body is
    # ever sent into a 401 (oras-py's basic backend answers every request with a 401 first).
    assert [r for r in reqs if r[2] == 401] == [("GET", "/v2/", 401)]
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(home / "credentials.json", other / "credentials.json")
    got = pull(dest, home=other, plain_http=True)
    assert got.digest == kit["digest"] and len(got.downloaded) == 5


def test_wrong_password_fails_fast_one_line_nothing_stored(auth_registry, tmp_path, retry_sleeps):
    home = tmp_path / "home"
    secret = "not-the-Right-pw-93"
    with pytest.raises(AuthError) as info:
        login(auth_registry.host, auth_registry.username, secret, home=home, plain_http=True)
    msg = str(info.value)
    assert msg == f"authentication to {auth_registry.host} failed: wrong username or password"
    assert secret not in msg and secret not in repr(info.value)
    assert retry_sleeps == []
    assert not (home / "credentials.json").exists()


def test_push_without_credentials_says_login(auth_registry, tmp_path, retry_sleeps):
    home = tmp_path / "home"
    make_modelkit(home, "localhost/anon", "v1")
    with pytest.raises(AuthError) as info:
        push("anon:v1", f"{auth_registry.host}/team/anon:v1", home=home, plain_http=True)
    assert str(info.value) == (f"registry {auth_registry.host} requires authentication: "
                               f"run kit login {auth_registry.host}")
    assert retry_sleeps == []


def test_logout_removes_only_kits_entry(auth_registry, tmp_path):
    home = tmp_path / "home"
    login(auth_registry.host, auth_registry.username, auth_registry.password, home=home,
          plain_http=True)
    path = home / "credentials.json"
    data = json.loads(path.read_text())
    data["auths"]["other.example.com"] = {"auth": "eDp5"}
    path.write_text(json.dumps(data))
    rep = NullReporter()
    res = logout(auth_registry.host, home=home, reporter=rep)
    assert res.removed
    assert rep.messages == [("info", f"Successfully logged out from {auth_registry.host}")]
    assert json.loads(path.read_text()) == {"auths": {"other.example.com": {"auth": "eDp5"}}}
    assert lookup(auth_registry.host, home=home) is None
    make_modelkit(home, "localhost/gone", "v1")
    with pytest.raises(AuthError, match="requires authentication"):
        push("gone:v1", f"{auth_registry.host}/team/gone:v1", home=home, plain_http=True)
    assert not logout(auth_registry.host, home=home).removed  # kit: no error either


def test_docker_config_is_the_fallback(auth_registry, tmp_path, isolated_docker_config):
    home = tmp_path / "home"
    auth = base64.b64encode(f"{auth_registry.username}:{auth_registry.password}".encode())
    (isolated_docker_config / "config.json").write_text(
        json.dumps({"auths": {auth_registry.host: {"auth": auth.decode()}}}))
    creds = lookup(auth_registry.host, home=home)
    assert creds is not None and creds.username == auth_registry.username
    assert creds.source.endswith("config.json") and "docker-config" in creds.source
    kit = make_modelkit(home, "localhost/dockercfg", "v1", seed="k")
    assert push("dockercfg:v1", f"{auth_registry.host}/team/dockercfg:v1", home=home,
                plain_http=True).digest == kit["digest"]

    # kit's own file wins over Docker's
    (home / "credentials.json").write_text(json.dumps(
        {"auths": {auth_registry.host: {"auth": base64.b64encode(b"kit:first").decode()}}}))
    assert lookup(auth_registry.host, home=home).username == "kit"


def test_docker_credential_helper(auth_registry, tmp_path, monkeypatch,
                                  isolated_docker_config):
    """``credHelpers`` run ``docker-credential-<name> get`` (Docker's helper protocol)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-kittest"
    helper.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "host = sys.stdin.read().strip()\n"
        f"assert host == {auth_registry.host!r}, host\n"
        f"print(json.dumps({{'Username': {auth_registry.username!r}, "
        f"'Secret': {auth_registry.password!r}}}))\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    (isolated_docker_config / "config.json").write_text(
        json.dumps({"credHelpers": {auth_registry.host: "kittest"}}))
    home = tmp_path / "home"
    creds = lookup(auth_registry.host, home=home)
    assert creds is not None and creds.password == auth_registry.password
    kit = make_modelkit(home, "localhost/helper", "v1", seed="h")
    push("helper:v1", f"{auth_registry.host}/team/helper:v1", home=home, plain_http=True)
    with RegistryClient(auth_registry.host, plain_http=True, home=home) as client:
        assert client.list_tags("team/helper") == ["v1"]
        assert client.get_manifest("team/helper", "v1")[2] == kit["digest"]


def test_credentials_repr_hides_password():
    c = Credentials("bob", "hunter2-secret")
    assert "hunter2" not in repr(c) and "hunter2" not in str(c)
    client = RegistryClient("r.example.com", credentials=c)
    assert "hunter2" not in repr(client)


def _helper(bindir, name: str, body: str) -> None:
    bindir.mkdir(exist_ok=True)
    path = bindir / f"docker-credential-{name}"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_credential_helper_failures(tmp_path, monkeypatch, isolated_docker_config):
    """A helper that is missing or has nothing stored means no credentials; one that hangs or
    answers garbage is one line that never shows what it printed (it may be the secret)."""
    import kit_jupyter.transport.credentials as credentials

    bindir = tmp_path / "bin"
    _helper(bindir, "empty", "echo 'credentials not found in native keychain'; exit 1")
    _helper(bindir, "garbage", "echo 'Secret: hunter2-leaked'")
    _helper(bindir, "slow", "exec sleep 30")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(credentials, "HELPER_TIMEOUT", 2)
    config = isolated_docker_config / "config.json"
    home = tmp_path / "home"
    for store in ("not-installed", "empty"):
        config.write_text(json.dumps({"credsStore": store}))
        assert lookup("r.example.com", home=home) is None
    config.write_text(json.dumps({"credHelpers": {"r.example.com": "garbage"}}))
    with pytest.raises(AuthError) as info:
        lookup("r.example.com", home=home)
    assert str(info.value) == ("credential helper docker-credential-garbage returned an "
                               "unreadable answer for r.example.com")
    config.write_text(json.dumps({"credsStore": "slow"}))
    with pytest.raises(AuthError) as info:
        lookup("r.example.com", home=home)
    assert str(info.value) == "credential helper docker-credential-slow did not answer within 2s"


# --------------------------------------------------------------------------------------------
# hostile credentials files, property-based

_REGISTRY = "r.example.com"
# long enough that it cannot be part of a temporary path by chance
_secrets = st.text(string.ascii_letters + string.digits, min_size=16, max_size=24)
_users = st.text(max_size=8).filter(lambda u: ":" not in u)


@st.composite
def _config_files(draw: st.DrawFn) -> tuple[str, str, bytes, bool]:
    """(secret, base64 auth, file bytes, whether the entry for the registry is intact): a
    config.json whose fields may have the wrong JSON types, then maybe broken as bytes."""
    user, secret = draw(_users), draw(_secrets)
    auth = base64.b64encode(f"{user}:{secret}".encode()).decode()
    entry = {"auth": auth, "username": user, "password": secret, "identitytoken": secret}
    entry = {k: draw(st.just(v) | hostile_values) for k, v in entry.items() if draw(st.booleans())}
    key = draw(st.sampled_from([_REGISTRY, f"https://{_REGISTRY}", "other.example"]))
    config = {"auths": draw(st.just({key: entry}) | hostile_values),
              "credHelpers": draw(st.just({_REGISTRY: "none"}) | hostile_values),
              "credsStore": draw(st.just("none") | hostile_values)}
    config = {k: v for k, v in config.items() if draw(st.booleans())}
    raw = draw(corrupted(dumps(config)))
    intact = (raw == json.dumps(config).encode() and config.get("auths") == {key: entry}
              and key != "other.example" and entry.get("auth") == auth)
    return secret, auth, raw, intact


@settings(max_examples=200, deadline=None)
@given(_config_files(), st.sampled_from(["credentials.json", "config.json"]))
def test_any_credentials_file_gives_credentials_nothing_or_one_line(config, name):
    """kit's credentials.json or Docker's config.json, whatever they hold: credentials of
    strings, none, or one line that shows neither the password nor the ``auth`` value."""
    secret, auth, raw, intact = config
    with tempfile.TemporaryDirectory() as tmp, \
            mock.patch.dict(os.environ, {"DOCKER_CONFIG": tmp}), \
            mock.patch.object(credentials, "run_helper", return_value=None) as helper:
        (Path(tmp) / name).write_bytes(raw)
        try:
            creds = lookup(_REGISTRY, home=tmp)
        except AuthError as err:
            assert_one_line(err)
            assert secret not in str(err) and auth not in str(err)
            assert str(err).startswith("cannot read credentials file ")
        else:
            if creds is not None:
                assert isinstance(creds.username, str) and isinstance(creds.password, str)
                assert creds.source == str(Path(tmp) / name)
            if intact:
                assert creds is not None and creds.password == secret
        assert all(isinstance(c.args[0], str) and c.args[0] for c in helper.call_args_list)


@settings(max_examples=150, deadline=None)
@given(_users, st.text(), st.sampled_from([_REGISTRY, "localhost:5000", "docker.io"]),
       _config_files())
def test_stored_credentials_read_back_equal_or_the_file_is_kept(user, password, registry,
                                                                 existing):
    """``store`` over any existing credentials file: what it writes reads back equal (and
    ``remove`` forgets it), or it refuses in one line and leaves the file as it was."""
    path_bytes = existing[2]
    with tempfile.TemporaryDirectory() as tmp, \
            mock.patch.dict(os.environ, {"DOCKER_CONFIG": tmp}), \
            mock.patch.object(credentials, "run_helper", return_value=None):
        path = credentials.credentials_path(tmp)
        path.write_bytes(path_bytes)
        try:
            credentials.store(registry, Credentials(user, password), home=tmp)
        except AuthError as err:
            assert_one_line(err)
            assert path.read_bytes() == path_bytes
            return
        got = lookup(registry, home=tmp)
        assert got is not None and (got.username, got.password) == (user, password)
        assert credentials.remove(registry, home=tmp)
        assert credentials._store_key(registry) not in json.loads(path.read_text())["auths"]
