"""The demo helpers the notebooks stand on: each start undone by its stop, environment included."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from kit_jupyter import demo, services
from tests.plugins.s3_server import multipart_etag

S3_VARS = ("S3_API_ENDPOINT", "S3_REGION", "S3_ACCESS_KEY_ID", "S3_SECRET_KEY")


def test_generated_data_is_deterministic_and_chunked():
    a = list(demo.generated_chunks(demo.MiB + 10, seed=3))
    b = list(demo.generated_chunks(demo.MiB + 10, seed=3))
    assert a == b and [len(c) for c in a] == [demo.MiB, 10]
    assert b"".join(demo.generated_chunks(100, seed=4)) != b"".join(a)[:100]


def test_generate_file(tmp_path):
    target = demo.generate_file(tmp_path / "a" / "b.bin", 3000, seed=2)
    assert target.read_bytes() == b"".join(demo.generated_chunks(3000, seed=2))
    assert [p.name for p in target.parent.iterdir()] == ["b.bin"]  # no temp file left


def test_dataset_size_from_env(monkeypatch):
    monkeypatch.delenv("KIT_DEMO_DATASET_MB", raising=False)
    assert demo.dataset_size_mb(default=200) == 200
    monkeypatch.setenv("KIT_DEMO_DATASET_MB", "12")
    assert demo.dataset_size_mb(default=200) == 12
    monkeypatch.setenv("KIT_DEMO_DATASET_MB", "lots")
    with pytest.raises(demo.DemoError, match="KIT_DEMO_DATASET_MB"):
        demo.dataset_size_mb()


def test_workspace_restores_cwd_and_kitops_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KITOPS_HOME", "/somewhere/else")
    monkeypatch.chdir(tmp_path)
    ws = demo.make_workspace("t", base=tmp_path)
    assert Path.cwd() == ws.path and os.environ["KITOPS_HOME"] == str(ws.home)
    demo.write_sample_project(ws.path)
    assert (ws.path / "model" / "clf.bin").stat().st_size == 256 * 1024
    ws.close()
    ws.close()  # idempotent, as a re-run notebook needs
    assert Path.cwd() == tmp_path and os.environ["KITOPS_HOME"] == "/somewhere/else"
    assert not ws.root.exists()


def test_s3_server_multipart_etag_and_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KIT_DEMO_TMP", str(tmp_path))
    for var in S3_VARS:
        monkeypatch.delenv(var, raising=False)
    s3 = demo.start_s3()
    try:
        assert os.environ["S3_API_ENDPOINT"] == s3.endpoint
        assert s3.endpoint.startswith("http://127.0.0.1:")
        assert services.DEMO_SECRET_KEY not in repr(s3)
        assert s3.root.parent == tmp_path
        etag = demo.upload_generated(s3, "bucket", "k/obj.bin", 6 * demo.MiB, seed=5)
        expected = multipart_etag(demo.generated_chunks(6 * demo.MiB, seed=5), 5 * demo.MiB)
        assert etag == expected and etag.endswith("-2")
        # a re-run meets its own bucket and object and must not fail
        assert demo.upload_generated(s3, "bucket", "k/obj.bin", 6 * demo.MiB, seed=5) == etag
    finally:
        s3.stop()
    assert not any(var in os.environ for var in S3_VARS)
    assert s3.process.poll() is not None
    assert list(tmp_path.iterdir()) == []  # its log directory went with it
    s3.stop()


@pytest.mark.registry
def test_registry_starts_on_loopback_and_stops(monkeypatch, tmp_path):
    monkeypatch.setenv("KIT_DEMO_TMP", str(tmp_path))
    reg = demo.start_registry()
    try:
        assert reg.host.startswith("127.0.0.1:")
        with urllib.request.urlopen(f"{reg.url}/v2/", timeout=5) as r:
            assert r.status == 200
    finally:
        reg.stop()
    assert reg.process.poll() is not None
    assert not reg.root.exists()


def test_reference_page_is_generated_from_the_current_parser():
    import importlib.util

    script = Path(__file__).resolve().parent.parent / "scripts" / "gen_reference.py"
    spec = importlib.util.spec_from_file_location("gen_reference", script)
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    current = gen.TARGET.read_text(encoding="utf-8")
    assert current == gen.render(), "docs/reference.md is stale: run scripts/gen_reference.py"
    for command in ("validate", "pack", "unpack", "push", "pull", "list", "inspect", "info",
                    "tag", "remove", "login", "logout"):
        assert f"### %kit {command}\n" in current
    assert "--include-remote" in current and "S3_API_ENDPOINT" in current
