"""Push and pull a 1 GiB ModelKit to a local docker-registry: kit_jupyter vs skopeo and oras-py.

Run: ``.venv/bin/python bench/registry.py [--size-mib 1024] [--runs 3] [--baseline DIR]``

Needs Debian's ``docker-registry`` and ``skopeo`` (``apt-get install docker-registry skopeo``;
without skopeo its rows are skipped) and oras-py (a test dependency).

The references, measured in the same run against the same registry, interleaved (the order
rotates every run):

* ``skopeo copy oci:<layout>:v1 docker://<registry>/<repo>:v1`` -- the same ModelKit as an OCI
  layout (kit's own blobs, hard-linked) -- and ``skopeo copy docker://… oci:<dir>:v1`` for the
  pull (skopeo verifies every blob's digest, as kit_jupyter does);
* oras-py's ``push`` (monolithic) and ``pull``, and ``pull`` + ``sha256`` of the layer (oras-py
  verifies nothing: that row does the same verification work as kit_jupyter).

Every first push goes to a fresh repository with the blob-info caches emptied (kit_jupyter's
``$KITOPS_HOME/cache/blobinfo``; skopeo's ``/var/lib/containers/cache``, bind-mounted per run in
a private mount namespace when run as root, else ``$XDG_DATA_HOME``), so every blob is uploaded.
Then the same ModelKit is pushed to a second repository of the same registry: both kit_jupyter
and skopeo mount the blobs from the first one (``POST …/blobs/uploads/?mount=…&from=…``)
instead of uploading them again.

Each operation runs in its own process (``_machine.run_measured``: wall time, CPU seconds,
peak RSS). kit_jupyter's rows also give ``op``, the time inside the process around the call
(interpreter start and imports excluded, as in a kernel that has run a command before; skopeo
is a Go binary that starts in milliseconds). kit pull's phases (wall seconds inside the
process: manifest, blobs -- the ranged download with its in-order SHA-256 --, fsync+rename,
bookkeeping) show where its time goes; skopeo also fsyncs each blob (``strace -f -c``).
Targets (issue 13): push <= 1.1x skopeo, second-repository push <= 0.5 s, pull <= 0.6x skopeo,
no slower than oras-py, peak RSS < 150 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _machine import (  # bench/ is the script's directory, so it is on sys.path
    Measured,
    durable_write_rate,
    med,
    per_run_ratio,
    print_facts,
    print_load,
    run_measured,
    settle,
    spread,
    verdict,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kit_jupyter.services import start_registry  # noqa: E402 - after the path is set

LAYER_TYPE = "application/vnd.kitops.modelkit.model.v1.tar"
CONFIG_TYPE = "application/vnd.kitops.modelkit.config.v1+json"
ARTIFACT_TYPE = "application/vnd.kitops.modelkit.manifest.v1+json"


def make_modelkit(home: Path, work: Path, size: int) -> tuple[Path, str]:
    """A ModelKit with one ``size``-byte model layer (a real tar of incompressible data)."""
    from kit_jupyter.oci.manifest import Descriptor, Manifest
    from kit_jupyter.oci.store import LocalStore

    store = LocalStore(home)
    payload = work / "model.bin"
    with open(payload, "wb") as f:
        left = size
        chunk = os.urandom(1 << 20)
        while left > 0:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            chunk = chunk[1:] + chunk[:1]  # cheap variation; not a repeated block
            left -= n
    layer = work / "model.tar"
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tf:
        tf.add(payload, arcname="model.bin")
    payload.unlink()
    import hashlib

    h = hashlib.sha256()
    with open(layer, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    digest = "sha256:" + h.hexdigest()
    lsize = layer.stat().st_size
    with store.ingest() as w, open(layer, "rb") as src:
        w.copy_from(src)
        ldesc = w.commit(digest, media_type=LAYER_TYPE, expected_size=lsize)
    ldesc = Descriptor(ldesc.media_type, ldesc.digest, ldesc.size,
                       annotations={"org.cncf.model.filepath": "model.bin"})
    config = json.dumps({"manifestVersion": "1.0.0", "package": {"name": "bench"},
                         "model": {"path": "model.bin", "digest": digest, "diffId": digest}},
                        separators=(",", ":")).encode()
    cdesc = store.put_bytes(config, CONFIG_TYPE)
    store.add_manifest("localhost/bench", Manifest(cdesc, (ldesc,), artifact_type=ARTIFACT_TYPE),
                       ["v1"])
    return layer, digest


KIT_PUSH = """
import json, time
import requests  # noqa: F401 - imported before the clock starts, as in a warm kernel
from kit_jupyter.commands.remote import push
t = time.perf_counter()
r = push("bench:v1", {dest!r}, home={home!r}, plain_http=True)
print(json.dumps({{"op": time.perf_counter() - t, "mounted": len(r.mounted),
                   "uploaded": len(r.uploaded)}}))
"""
KIT_PULL = """
import json, sys, time
if {root!r}:  # another checkout's kit_jupyter (--baseline): before this checkout's, which
    sys.path.insert(0, {root!r})  # "-c" run in it would find first
import requests  # noqa: F401 - imported before the clock starts, as in a warm kernel
import kit_jupyter
from kit_jupyter.commands import remote
from kit_jupyter.oci.store import LocalStore
phases = {{}}
def timed(owner, name, phase):  # wall seconds per phase of the pull, summed over calls
    fn = getattr(owner, name)
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - t0
    setattr(owner, name, wrapper)
timed(remote, "_fetch_modelkit", "manifest")
timed(remote, "_run_tasks", "blobs")
timed(LocalStore, "adopt_file", "fsync+rename")
timed(remote.BlobLocations, "record", "bookkeeping")
timed(LocalStore, "add_manifest", "bookkeeping")
t = time.perf_counter()
r = remote.pull({ref!r}, home={home!r}, plain_http=True)
print(json.dumps({{"op": time.perf_counter() - t, "downloaded": len(r.downloaded),
                   "phases": phases, "module": kit_jupyter.__file__}}))
"""
ORAS_PUSH = """
import os, oras.provider
os.chdir({cwd!r})
reg = oras.provider.Registry(insecure=True)
reg.push(target={dest!r}, files=["model.tar:{mt}"], disable_path_validation=True,
         do_chunked={chunked!r})
"""
ORAS_PULL = """
import oras.provider
oras.provider.Registry(insecure=True).pull(target={ref!r}, outdir={out!r})
"""
ORAS_PULL_VERIFY = ORAS_PULL + """
import hashlib, os
with open(os.path.join({out!r}, "model.tar"), "rb") as f:
    assert "sha256:" + hashlib.file_digest(f, "sha256").hexdigest() == {digest!r}
"""


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def oci_layout(home: Path, out: Path) -> None:
    """kit's stored ModelKit as a plain OCI layout for skopeo: the blobs hard-linked, one
    index entry named ``v1``."""
    storage = home / "storage"
    (out / "blobs" / "sha256").mkdir(parents=True)
    for blob in (storage / "blobs" / "sha256").iterdir():
        os.link(blob, out / "blobs" / "sha256" / blob.name)
    shutil.copy(storage / "oci-layout", out / "oci-layout")
    entry = json.loads((storage / "index.json").read_text())["manifests"][0]
    entry["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
    (out / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry]}))


def skopeo(cache: Path, *args: str) -> list[str]:
    """``skopeo`` with its blob-info cache in ``cache`` (see the module docstring)."""
    cache.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        return ["unshare", "-m", "sh", "-c",
                'mkdir -p /var/lib/containers/cache && '
                'mount --bind "$0" /var/lib/containers/cache && exec skopeo "$@"',
                str(cache), *args]
    return ["env", f"XDG_DATA_HOME={cache}", "skopeo", *args]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", metavar="DIR",
                    help="also pull with the kit_jupyter of another checkout (e.g. a git worktree "
                         "of main) as 'base pull', interleaved: before/after on the same registry "
                         "and load")
    args = ap.parse_args()
    size = args.size_mib << 20
    print_facts()
    has_skopeo = shutil.which("skopeo") is not None
    if not has_skopeo:
        print("skopeo is not installed (apt-get install skopeo): its rows are skipped")
    base = Path(tempfile.mkdtemp(prefix="kit-bench-registry-"))
    registry = start_registry(base / "registry")
    host = registry.host
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        home = base / "home"
        work = base / "work"
        work.mkdir(parents=True)
        t0 = time.perf_counter()
        layer, digest = make_modelkit(home, work, size)
        layout = base / "layout"
        oci_layout(home, layout)
        print(f"  durable writes into {base}: {durable_write_rate(base):.0f} MiB/s (write + fsync "
              f"of 256 MiB): the floor of a pull, which fsyncs each blob before its rename, "
              f"as skopeo does", flush=True)
        print(f"registry {host}; ModelKit with a {layer.stat().st_size / 2**20:.0f} MiB layer "
              f"({digest[:19]}…) built in {time.perf_counter() - t0:.1f}s; "
              f"{args.runs} runs per operation", flush=True)
        rows: dict[str, list[Measured]] = {}
        ops: dict[str, list[float]] = {}
        phases: dict[str, list[float]] = {}  # kit pull's, wall seconds inside the process

        def measure(name: str, cmd: list[str]) -> Measured:
            settle()  # the memory the last operation freed handed back to the host
            m = run_measured(cmd, env=env, cwd=ROOT)
            rows.setdefault(name, []).append(m)
            if m.stdout.strip().startswith("{"):
                info = json.loads(m.stdout.strip().splitlines()[-1])
                ops.setdefault(name, []).append(info["op"])
                for phase, seconds in info.get("phases", {}).items() if name == "kit pull" else ():
                    phases.setdefault(phase, []).append(seconds)
                if "module" in info:  # the checkout measured is the one asked for
                    root = Path(args.baseline if name == "base pull" else ROOT).resolve()
                    assert Path(info["module"]).resolve().is_relative_to(root), (name, info)
                if name == "kit push (2nd repository)":
                    assert info["uploaded"] == 0 and info["mounted"] == 2, info
                if name == "kit push":
                    assert info["uploaded"] == 2 and info["mounted"] == 0, info
            return m

        for i in range(args.runs):
            shutil.rmtree(home / "cache" / "blobinfo", ignore_errors=True)
            sk_cache = base / f"skopeo-cache-{i}"
            pushes = {
                "kit push": python(KIT_PUSH.format(dest=f"{host}/bench/kit{i}:v1",
                                                   home=str(home))),
                "oras push": python(ORAS_PUSH.format(cwd=str(work), dest=f"{host}/bench/oras{i}:v1",
                                                     mt=LAYER_TYPE, chunked=False)),
            }
            if has_skopeo:
                pushes["skopeo push"] = skopeo(sk_cache, "copy", "-q", "--dest-tls-verify=false",
                                               f"oci:{layout}:v1",
                                               f"docker://{host}/bench/sk{i}:v1")
            names = list(pushes)
            for name in names[i % len(names):] + names[:i % len(names)]:
                measure(name, pushes[name])
            measure("kit push (2nd repository)", python(KIT_PUSH.format(
                dest=f"{host}/bench/kit{i}-second:v1", home=str(home))))
            if has_skopeo:
                measure("skopeo push (2nd repository)", skopeo(
                    sk_cache, "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1",
                    f"docker://{host}/bench/sk{i}-second:v1"))

            pull_home = base / f"pull-home-{i}"
            oras_out = base / f"oras-out-{i}"
            sk_out = base / f"skopeo-out-{i}"
            oras_out.mkdir()
            pulls = {
                "kit pull": python(KIT_PULL.format(ref=f"{host}/bench/kit{i}:v1",
                                                   home=str(pull_home), root="")),
                "oras pull": python(ORAS_PULL.format(ref=f"{host}/bench/oras{i}:v1",
                                                     out=str(oras_out))),
            }
            base_home = base / f"base-pull-home-{i}"
            if args.baseline:
                pulls["base pull"] = python(KIT_PULL.format(ref=f"{host}/bench/kit{i}:v1",
                                                            home=str(base_home),
                                                            root=args.baseline))
            if has_skopeo:
                pulls["skopeo pull"] = skopeo(sk_cache, "copy", "-q", "--src-tls-verify=false",
                                              f"docker://{host}/bench/sk{i}:v1",
                                              f"oci:{sk_out}:v1")
            names = list(pulls)
            for name in names[i % len(names):] + names[:i % len(names)]:
                measure(name, pulls[name])
            pulled = pull_home / "storage" / "blobs" / "sha256" / digest.split(":")[1]
            assert pulled.stat().st_size == layer.stat().st_size, "kit pull incomplete"
            assert (oras_out / "model.tar").stat().st_size == layer.stat().st_size
            shutil.rmtree(pull_home)
            shutil.rmtree(base_home, ignore_errors=True)
            shutil.rmtree(oras_out)
            shutil.rmtree(sk_out, ignore_errors=True)
            oras_out.mkdir()
            measure("oras pull + sha256", python(ORAS_PULL_VERIFY.format(
                ref=f"{host}/bench/oras{i}:v1", out=str(oras_out), digest=digest)))
            shutil.rmtree(oras_out)
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1].wall:.2f}s" for k, v in rows.items()),
                  flush=True)

        def wall(name: str) -> list[float]:
            return [m.wall for m in rows[name]]

        gib = size / 2**30
        print(f"\n{'operation':30} {'wall s, median (min-max)':>26} {'op s':>6} {'CPU s':>6} "
              f"{'GiB/s':>6} {'peak RSS MB':>12}")
        for name, ms in rows.items():
            op = f"{med(ops[name]):6.2f}" if name in ops else "     -"
            print(f"{name:30} {spread(wall(name)):>26} {op} {med([m.cpu for m in ms]):6.2f} "
                  f"{gib / med(wall(name)):6.2f} {max(m.rss for m in ms) / 1e6:12.0f}")

        print("\nkit pull phases, wall s, median (min-max): " + "; ".join(
            f"{k} {spread(v)}" for k, v in phases.items())
              + "  (blobs = the parallel download and verification of every blob, "
                "fsync+rename inside it)")
        print("\nratios (median of per-run ratios; each pair measured seconds apart)")

        def ratio(a: str, b: str, target: float | None, note: str = "") -> None:
            if a in rows and b in rows:
                r = per_run_ratio(wall(a), wall(b))
                tgt = f"  ({verdict(r, target)})" if target else ""
                print(f"  {a + ' / ' + b:52} {r:6.2f}{tgt}{note}")

        ratio("kit push", "skopeo push", 1.1)
        ratio("kit push", "oras push", 1.0)
        ratio("kit pull", "skopeo pull", 0.6, "  (both verify every digest)")
        ratio("kit pull", "oras pull", 1.0, "  (oras-py verifies nothing)")
        ratio("kit pull", "oras pull + sha256", None, "  (same verification work)")
        ratio("kit pull", "base pull", None, "  (this checkout / --baseline)")
        second = ops["kit push (2nd repository)"]
        print(f"  kit push to a 2nd repository: op {med(second):.2f} s, wall "
              f"{med(wall('kit push (2nd repository)')):.2f} s ({verdict(med(second), 0.5)}, op)")
        if has_skopeo:
            print(f"  skopeo push to a 2nd repository: wall "
                  f"{med(wall('skopeo push (2nd repository)')):.2f} s")
            ratio("kit push (2nd repository)", "skopeo push (2nd repository)", None,
                  "  (kit's wall includes Python start-up and imports)")
        peak = max(m.rss for n in ("kit push", "kit pull") for m in rows[n]) / 1e6
        print(f"  kit_jupyter peak RSS {peak:.0f} MB ({verdict(peak, 150)})")
        print_load()
    finally:
        registry.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
