"""Network flags and failure policy: --tls-verify, --plain-http, timeouts, bounded retries."""

from __future__ import annotations

import pytest

from kit_jupyter.commands.remote import pull, push
from kit_jupyter.errors import RegistryError
from kit_jupyter.transport.deadline import Timeouts
from kit_jupyter.transport.registry import RegistryClient, RegistryOptions
from tests.test_registry import make_modelkit

pytestmark = pytest.mark.registry


def test_tls_verification_is_on_by_default(tls_registry, tmp_path, retry_sleeps):
    home = tmp_path / "h"
    make_modelkit(home, "localhost/tls", "v1")
    with pytest.raises(RegistryError) as info:
        push("tls:v1", f"{tls_registry.host}/acme/tls:v1", home=home)
    assert str(info.value) == (
        f"TLS error talking to {tls_registry.host}: CERTIFICATE_VERIFY_FAILED (use "
        "--plain-http for an HTTP registry, or --tls-verify=false)")
    assert retry_sleeps == []  # certificate problems are not retried


@pytest.mark.parametrize("verify", ["off", "ca-bundle"])
def test_tls_verify_false_or_ca_bundle(tls_registry, tmp_path, verify, recwarn):
    home = tmp_path / "h"
    kit = make_modelkit(home, "localhost/tls", "v1", seed=verify[0])
    tls_verify = False if verify == "off" else str(tls_registry.ca_path)
    dest = f"{tls_registry.host}/acme/tls-{verify}:v1"
    assert push("tls:v1", dest, home=home, tls_verify=tls_verify).digest == kit["digest"]
    got = pull(dest, home=tmp_path / "p", tls_verify=tls_verify)
    assert got.digest == kit["digest"] and len(got.downloaded) == 5
    assert not [w for w in recwarn if "InsecureRequestWarning" in str(w.category)]


def test_https_to_a_plain_http_registry_suggests_plain_http(registry, tmp_path, retry_sleeps):
    with pytest.raises(RegistryError, match=r"^TLS error talking to .*use --plain-http"):
        pull(f"{registry.host}/acme/x:v1", home=tmp_path)


def test_stalled_registry_times_out_with_bounded_retries(silent_server, retry_sleeps):
    """A server that accepts and never answers: oras-py alone would wait forever."""
    port = silent_server.port
    client = RegistryClient(silent_server.host, plain_http=True, timeouts=Timeouts(1.5),
                            lookup_credentials=False)
    with client, pytest.raises(RegistryError) as info:
        client.ping()
    assert str(info.value) == (
        f"registry 127.0.0.1:{port} did not respond within 0.5s; set KIT_JUPYTER_TIMEOUT to "
        "wait longer (now 1.5s)")
    # 0.5 s per attempt: a second one fits in the 1.5 s limit, a third would not
    assert len(silent_server.accepted) == 2 and retry_sleeps == [0.25]


def test_options_coerce():
    assert RegistryOptions.coerce(None) == RegistryOptions()
    o = RegistryOptions.coerce({"plain_http": True, "concurrency": 2}, home="/x")
    assert (o.plain_http, o.concurrency, o.home) == (True, 2, "/x")
    assert RegistryOptions.coerce(o) is o
    with pytest.raises(TypeError, match="plain_htp"):
        RegistryOptions.coerce({"plain_htp": True})
    with pytest.raises(TypeError, match="plain_htp"):
        RegistryOptions.coerce(o, plain_htp=True)
