"""``cache info`` / ``cache clear`` over a real KITOPS_HOME, through the CLI and the magics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kit_jupyter._fs import temp_path
from kit_jupyter.commands.cache import cache_clear, cache_info

ROOT = Path(__file__).resolve().parent.parent


def kit(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), KITOPS_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "kit_jupyter", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def fill(home: Path) -> None:
    (home / "cache" / "pack").mkdir(parents=True)
    (home / "cache" / "pack" / "kitops_layer_123").write_bytes(b"x" * 3000)
    (home / "cache" / "import" / "kitops_import_1").mkdir(parents=True)
    (home / "cache" / "import" / "kitops_import_1" / "w.bin").write_bytes(b"y" * 2048)


def test_empty_cache_says_so_like_kit(tmp_path):
    proc = kit("cache", "info", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Cache is currently empty"


def test_info_lists_entries_with_kit_sizes(tmp_path):
    fill(tmp_path)
    info = cache_info(home=tmp_path)
    assert set(info.entries) == {"pack", "import"}
    assert info.total == sum(info.entries.values()) and info.entries["pack"] >= 3000
    proc = kit("cache", "info", home=tmp_path)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Total size of cache directory: ") and lines[1] == "Cache contents:"
    assert lines[2].startswith("  ./import    ") and lines[3].startswith("  ./pack      ")
    assert lines[3].endswith("KiB")
    data = json.loads(kit("cache", "info", "--format", "json", home=tmp_path).stdout)
    assert data["entries"]["pack"] == info.entries["pack"]


def test_clear_removes_everything_but_what_a_live_process_writes(tmp_path):
    fill(tmp_path)
    live = temp_path(tmp_path / "cache" / "pack", "kitops_layer_")  # this process: alive
    live.write_bytes(b"in use")
    res = cache_clear(home=tmp_path)
    assert sorted(res.removed) == ["import"] and res.kept == ["pack"]
    assert live.exists() and not (tmp_path / "cache" / "import").exists()
    live.unlink()
    (tmp_path / "cache" / "pack" / "kitops_layer_123").unlink()
    proc = kit("cache", "clear", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(tmp_path / "cache") == []
    assert kit("cache", "info", home=tmp_path).stdout.strip() == "Cache is currently empty"


def test_clear_removes_storage_leftovers_of_killed_processes(tmp_path):
    ingest = tmp_path / "storage" / "ingest"
    ingest.mkdir(parents=True)
    dead = ingest / "kitjupyter-kj-999999999-1-0123456789ab"  # no such process
    dead.write_bytes(b"half a blob")
    index_part = tmp_path / "storage" / ".index.json.kj-999999999-1-0123456789ab.part"
    index_part.write_text("{")
    # a repository's index file whose base64 name happens to hold an owner token is kit's
    lookalike = tmp_path / "storage" / "bXkkj-999999999-1-0123456789ab-index.json"
    lookalike.write_text("{}")
    res = cache_clear(home=tmp_path)
    assert not dead.exists() and not index_part.exists()
    assert lookalike.exists()
    assert "storage/ingest/" + dead.name in res.removed


def test_magic(ip, tmp_path, monkeypatch):
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path))
    fill(tmp_path)
    info = ip.run_line_magic("kit", "cache info")
    assert info.data["entries"]["pack"] >= 3000 and "<table" in info._repr_html_()
    cleared = ip.run_line_magic("kit", "cache clear")
    assert sorted(cleared.data["removed"]) == ["import", "pack"]
