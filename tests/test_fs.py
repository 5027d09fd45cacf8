"""Temporary files carry their owner, so what a killed process leaves is found and removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from kit_jupyter._fs import atomic_write, is_stale, owner_tag, sweep_stale, temp_name

ROOT = Path(__file__).resolve().parent.parent


def _killed_writer(target: Path) -> Path:
    """A child process opens a temporary sibling of ``target`` and is SIGKILLed mid-write."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from kit_jupyter._fs import temp_name
        tmp = temp_name(Path({str(target)!r}))
        with open(tmp, "wb") as f:
            f.write(b"half")
            f.flush()
            print(tmp, flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout is not None
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.exists() and not is_stale(tmp.name)  # its owner is alive: never touched
    assert sweep_stale(target.parent, target.name) == []
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return tmp


def test_temporary_names_carry_the_owner(tmp_path):
    name = temp_name(tmp_path / "model.bin").name
    assert name.startswith(".model.bin." + owner_tag() + "-") and name.endswith(".part")
    assert not is_stale(name)  # ours
    assert not is_stale(".model.bin.0123456789ab.part")  # not ours (no owner): never removed


def test_what_a_killed_writer_leaves_is_swept(tmp_path):
    target = tmp_path / "model.bin"
    tmp = _killed_writer(target)
    assert is_stale(tmp.name)
    (tmp_path / ".other.kj-1-1-00000000.part").write_text("x")  # another target: not swept
    assert sweep_stale(tmp_path, target.name) == [tmp]
    assert not tmp.exists() and (tmp_path / ".other.kj-1-1-00000000.part").exists()


def test_atomic_write_sweeps_before_writing(tmp_path):
    target = tmp_path / "index.json"
    tmp = _killed_writer(target)
    with atomic_write(target) as f:
        f.write(b"{}")
    assert not tmp.exists() and target.read_bytes() == b"{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]
