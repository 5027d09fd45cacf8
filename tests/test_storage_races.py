"""Local storage shared by several processes (kernels, terminals) at once, and processes
SIGKILLed in the middle of pack, tag and remove: afterwards every index is valid JSON, every
listed manifest has all its blobs, no tag a process reported is lost, nothing is left behind.

The interleavings that once went wrong are made deterministic: the test holds the storage lock
and waits until the other party is blocked on it (a waiter in ``/proc/locks``), then does what
the other party must survive. The free-running tests repeat real processes many times and
check the invariants (``tests/storage_check.py``) after each round; none asserts a timing.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kit_jupyter.commands.local import remove, tag
from kit_jupyter.commands.pack import pack
from kit_jupyter.oci.manifest import Descriptor, Manifest
from kit_jupyter.oci.store import LOCK_NAME, PINS_PREFIX, LocalStore
from tests.storage_check import storage_problems, storage_state
from tests.test_storage_state import make_contexts

ROOT = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("KJ_RACE_SEED", "20240611"))
DEAD_OWNER = "kj-4194311-1"  # above any pid_max: no such process, ever

pytestmark = pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs /proc/locks")


def wait_for_a_waiter(lock: Path) -> None:
    """Return once some process or thread is blocked on the ``flock`` of ``lock`` (Linux
    lists waiters in ``/proc/locks`` with ``->``): a sync point, not a timing."""
    inode = f":{os.stat(lock).st_ino} "
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open("/proc/locks") as f:
            if any("->" in line and inode in line for line in f):
                return
        time.sleep(0.002)
    pytest.fail("nobody waited for the storage lock")


def in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    return t, errors


def test_a_manifest_collected_while_its_add_waits_for_the_lock_is_stored_again(tmp_path):
    """The same manifest added again (the same ModelKit packed twice within a second) while a
    remove collects it: the add found the blob stored before it took the lock and listed the
    manifest without its blob (``storage_problems``: "listed manifest: blob ... missing")."""
    home = tmp_path / "home"
    holder = LocalStore(home)
    config = holder.put_bytes(b'{"manifestVersion":"1.0.0"}', "application/json")
    layer = holder.put_bytes(b"weights", "application/octet-stream")
    kept = Manifest(config, (layer,), {"n": "0"})
    again = Manifest(config, (layer,), {"n": "1"})
    holder.add_manifest("localhost/keep", kept, ["v"])  # keeps config and layer
    holder.add_manifest("localhost/a", again, ["old"])
    with holder.locked():
        t, errors = in_thread(lambda: LocalStore(home).add_manifest("localhost/a", again,
                                                                    ["new"]))
        wait_for_a_waiter(holder.root / LOCK_NAME)
        desc = holder.resolve_descriptor("localhost/a", "old")
        assert desc is not None
        assert holder.remove_manifest("localhost/a", desc) == [again.digest]
    t.join()
    assert errors == []
    assert storage_problems(home) == []
    assert storage_state(home)[1][("localhost/a", "new")] == again.digest


def test_a_pack_whose_stored_layer_a_remove_collects_meanwhile_stores_it_again(tmp_path):
    """A pack reuses a stored layer ("Already saved"), and a remove of the ModelKit that
    referenced it collects it before the pack lists its manifest: the pack failed with
    "Failed to pack model kit: cannot store manifest ...: blob ... is missing from local
    storage". Now the pack pins what it reuses; one that came too late stores it again."""
    ctx = make_contexts(tmp_path / "ctx")   # "one" and "two" share their weights
    home = tmp_path / "home"
    pack(ctx["one"], tag="a:old", home=home)
    holder = LocalStore(home)
    results: list[str] = []
    with holder.locked():
        t, errors = in_thread(lambda: results.append(pack(ctx["two"], tag="a:new",
                                                          home=home).digest))
        wait_for_a_waiter(holder.root / LOCK_NAME)
        desc = holder.resolve_descriptor("localhost/a", "old")
        assert desc is not None
        holder.remove_manifest("localhost/a", desc)
    t.join()
    assert errors == []
    assert storage_problems(home) == []
    assert storage_state(home) == ({"localhost/a": set(results)},
                                   {("localhost/a", "new"): results[0]})


def test_a_remove_keeps_what_a_running_pack_pinned_and_ignores_a_dead_ones_pins(tmp_path):
    ctx = make_contexts(tmp_path / "ctx")
    home = tmp_path / "home"
    old = pack(ctx["one"], tag="a:old", home=home)
    layer = old.layers[0]["digest"]
    store = LocalStore(home)
    dead_pins = store.ingest_dir / f"{PINS_PREFIX}{DEAD_OWNER}-0123456789ab"
    dead_pins.write_text(f"{old.digest}\n{old.layers[0]['digest']}\n")
    with store.pinning():
        assert store.hold([layer]) == {layer}
        remove("a:old", home=home)  # another store object: another open file, as a process
        assert store.has_blob(layer)            # pinned by a live pack (this one)
        assert not store.has_blob(old.digest)   # the dead pack's pins count no more
        assert not dead_pins.exists()           # and are swept
        manifest = Manifest(store.put_bytes(b"{}", "application/json"),
                            (Descriptor(old.layers[0]["mediaType"], layer,
                                        old.layers[0]["size"]),))
        store.add_manifest("localhost/b", manifest, ["new"])
    assert storage_problems(home) == []
    assert [p.name for p in store.ingest_dir.iterdir()] == []


def test_what_killed_writers_left_in_storage_is_swept_by_the_next_command(tmp_path):
    """A SIGKILLed tag or remove leaves the temporary sibling of the index or tags file it was
    writing; it was swept only when that same file was written again -- never, once its
    repository was gone -- and a killed pack's pins only when a blob was next stored."""
    ctx = make_contexts(tmp_path / "ctx")
    home = tmp_path / "home"
    pack(ctx["one"], tag="a:v1", home=home)
    root = home / "storage"
    litter = [root / f".bG9jYWxob3N0L2dvbmU=-tags.json.{DEAD_OWNER}-0123456789ab.part",
              root / f".index.json.{DEAD_OWNER}-0123456789ab.part",
              root / "ingest" / f"{PINS_PREFIX}{DEAD_OWNER}-0123456789ab"]
    # a repository's file whose base64 name happens to hold an owner token is kit's, not ours
    lookalike = root / f"bXk{DEAD_OWNER}-0123456789ab-index.json"
    for p in [*litter, lookalike]:
        p.write_bytes(b"half")
    tag("a:v1", "a:v2", home=home)  # writes only a's tags file
    assert [p for p in litter if p.exists()] == []
    assert lookalike.exists()
    lookalike.unlink()
    assert storage_problems(home) == []


# --------------------------------------------------------------------------------------------
# real processes

_WORKER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from kit_jupyter.commands.local import remove, tag
    from kit_jupyter.commands.pack import pack
    from kit_jupyter.errors import KitError
    from kit_jupyter.oci.store import LocalStore
    home, who, mode, n, contexts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), \\
        Path(sys.argv[5])
    done = []
    for i in range(n):
        if mode == "pack":        # a ModelKit of its own under the shared repository
            done.append(["created", f"{who}{i}",
                         pack(contexts / who, tag=f"shared:{who}{i}", home=home).digest])
        elif mode == "tag":       # new tags of the base ModelKit
            done.append(["created", f"{who}{i}",
                         tag("shared:base", f"shared:{who}{i}", home=home).digest])
        elif mode == "remove":    # every tag but base and the packers', untagging or removing
            for t in sorted(LocalStore(home).tags("localhost/shared")):
                if t.startswith("t"):
                    try:
                        remove(f"shared:{t}", home=home)
                        done.append(["removed", t, ""])
                    except KitError:
                        pass      # the other remover was first
    print(json.dumps(done))
""")


def _run_workers(home: Path, contexts: Path, jobs: list[tuple[str, str, int]]) -> list[list]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(home), who, mode, str(n),
                               str(contexts)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for who, mode, n in jobs]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        done += json.loads(out)
    return done


def test_processes_packing_tagging_and_removing_in_one_repository_lose_nothing(tmp_path):
    """Two packers (their own ModelKits, sharing nothing but the repository and a config), a
    tagger and two removers of its tags, five processes at once, five rounds: every tag
    reported created and not reported removed is there and names what was reported."""
    contexts = tmp_path / "ctx"
    ctx = make_contexts(contexts)
    for who in ("p", "q"):
        (contexts / who).mkdir()
        (contexts / who / "Kitfile").write_text(ctx["one"].joinpath("Kitfile").read_text())
        (contexts / who / "model.bin").write_text(f"weights of {who}\n")
    for round_ in range(5):
        home = tmp_path / f"home{round_}"
        base = pack(ctx["two"], tag="shared:base", home=home).digest
        done = _run_workers(home, contexts, [("p", "pack", 8), ("q", "pack", 8),
                                             ("t", "tag", 12), ("r", "remove", 6),
                                             ("s", "remove", 6)])
        assert storage_problems(home) == []
        removed = {t for what, t, _ in done if what == "removed"}
        _, tags = storage_state(home)
        want = {("localhost/shared", t): d for what, t, d in done
                if what == "created" and t not in removed}
        want[("localhost/shared", "base")] = base
        assert tags == want
        assert json.loads((home / "storage" / "index.json").read_bytes())["manifests"]


_KILLED = textwrap.dedent("""
    import random, sys
    from pathlib import Path
    from kit_jupyter.commands.local import remove, tag
    from kit_jupyter.commands.pack import pack
    from kit_jupyter.errors import KitError
    home, seed, contexts = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    rnd = random.Random(seed)
    def ref():
        return f"{rnd.choice('ab')}:{rnd.choice(['v1', 'v2', 'v3'])}"
    print("ready", flush=True)
    while True:
        op = rnd.choice(["pack", "pack", "untagged", "tag", "remove", "force", "all"])
        try:
            if op == "pack":
                pack(contexts / rnd.choice(["one", "two", "three"]), tag=ref(), home=home)
            elif op == "untagged":
                pack(contexts / rnd.choice(["one", "two", "three"]), home=home)
            elif op == "tag":
                tag(ref(), ref(), home=home)
            elif op in ("remove", "force"):
                remove(ref(), force=op == "force", home=home)
            else:
                remove(all=True, home=home)
        except KitError:
            pass  # a tag or ModelKit that is not there
""")


def test_processes_killed_at_random_moments_leave_storage_consistent(tmp_path):
    """A process looping over pack, tag and remove is SIGKILLed at seeded random moments, 30
    times over one storage: after each kill every index parses, every listed manifest and
    every blob it references is stored and verifies, every tag names a listed manifest; the
    next command sweeps what the killed one left, and removing everything empties storage.
    (A kill between the writes of one command may leave a manifest listed in index.json
    only, or blobs nothing references: what a killed command may leave, never a dangling
    reference.)"""
    rnd = random.Random(f"{SEED}-storage-kill")
    contexts = tmp_path / "ctx"
    make_contexts(contexts)
    home = tmp_path / "home"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for i in range(30):
        proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(home), str(i),
                                 str(contexts)], stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(rnd.uniform(0, 0.25))  # where the kill lands; nothing asserted about it
        proc.kill()
        proc.wait()
        proc.stdout.close()
        assert storage_problems(home, strict=False, litter_ok=True) == [], f"kill {i}"
    remove(all=True, force=True, home=home)
    assert storage_problems(home, strict=False) == []
    assert storage_state(home) == ({}, {})
