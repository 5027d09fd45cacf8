"""Bearer token auth (distribution token protocol) against docker-registry + a token server."""

from __future__ import annotations

import pytest

from kit_jupyter.commands.remote import login, pull, push
from kit_jupyter.errors import AuthError
from tests.test_registry import make_modelkit

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_docker_config")]


def test_push_to_new_repository_rescopes_token(token_registry, tmp_path):
    """oras-py #187: the first token is pull-scoped; the upload needs pull,push. Tokens are
    kept per scope, so a first push to a new repository asks for pull,push before it POSTs."""
    home = tmp_path / "home"
    reg = token_registry
    login(reg.host, reg.username, reg.password, home=home, plain_http=True)
    kit = make_modelkit(home, "localhost/tok", "v1", seed="b")
    before = len(reg.token.scopes)
    res = push("tok:v1", f"{reg.host}/team/brand-new:v1", home=home, plain_http=True)
    assert res.digest == kit["digest"] and len(res.uploaded) == 5
    asked = [scope for user, scope in reg.token.scopes[before:]]
    assert "repository:team/brand-new:pull" in asked
    assert any(s.startswith("repository:team/brand-new:") and "push" in s for s in asked)
    assert all(user == reg.username for user, _ in reg.token.scopes[before:])


def test_pull_with_token_and_stored_login(token_registry, tmp_path):
    import shutil

    reg = token_registry
    home = tmp_path / "home"
    login(reg.host, reg.username, reg.password, home=home, plain_http=True)
    kit = make_modelkit(home, "localhost/tokpull", "v1", seed="n")
    push("tokpull:v1", f"{reg.host}/team/tokpull:v1", home=home, plain_http=True)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(home / "credentials.json", other / "credentials.json")
    got = pull(f"{reg.host}/team/tokpull:v1", home=other, plain_http=True)
    assert got.digest == kit["digest"] and len(got.downloaded) == 5


def test_token_login_wrong_password_is_one_line(token_registry, tmp_path):
    reg = token_registry
    with pytest.raises(AuthError) as info:
        login(reg.host, reg.username, "Wrong-Token-Pw-17", home=tmp_path, plain_http=True)
    assert str(info.value) == f"authentication to {reg.host} failed: wrong username or password"
    assert "Wrong-Token-Pw-17" not in str(info.value)
    assert not (tmp_path / "credentials.json").exists()


def test_anonymous_push_is_refused_clearly(token_registry, tmp_path):
    home = tmp_path / "home"
    make_modelkit(home, "localhost/anon", "v1")
    with pytest.raises(AuthError) as info:
        push("anon:v1", f"{token_registry.host}/team/anon:v1", home=home, plain_http=True)
    assert str(info.value) == ("Failed to push: got response 401 (Unauthorized) from remote. "
                               "Ensure the repository exists and you have push access to it.")


def test_one_token_per_scope_for_a_whole_push_and_pull(token_registry, tmp_path):
    """Parallel transfers share the cached tokens: a push asks the token service once for
    pull and once for pull,push, however many blobs it sends; a pull asks once for pull."""
    reg = token_registry
    home = tmp_path / "home"
    login(reg.host, reg.username, reg.password, home=home, plain_http=True)
    make_modelkit(home, "localhost/cache", "v1", seed="c")
    before = len(reg.token.scopes)
    mark = reg.mark()
    push("cache:v1", f"{reg.host}/team/cache:v1", home=home, plain_http=True, concurrency=5)
    asked = sorted(scope for _, scope in reg.token.scopes[before:])
    assert asked == ["repository:team/cache:pull", "repository:team/cache:pull,push"]
    # every request after the /v2/ challenge carried an accepted token: no 401 replays
    assert [r for r in reg.requests(mark) if r[2] == 401] == [("GET", "/v2/", 401)]

    other = tmp_path / "other"
    other.mkdir()
    (other / "credentials.json").write_bytes((home / "credentials.json").read_bytes())
    before = len(reg.token.scopes)
    got = pull(f"{reg.host}/team/cache:v1", home=other, plain_http=True)
    assert len(got.downloaded) == 5
    assert [scope for _, scope in reg.token.scopes[before:]] == ["repository:team/cache:pull"]
