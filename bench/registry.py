"""Push and pull a 1 GiB ModelKit to a local docker-registry: kit_jupyter vs oras-py.

Run: ``.venv/bin/python bench/registry.py [--size-mib 1024] [--runs 3]``

The reference is oras-py's own ``push`` (default monolithic upload, and ``do_chunked=True``) and
``pull`` of the same layer blob, measured in the same run against the same registry. Each
measured operation runs in its own Python subprocess; its wall time and peak RSS (``wait4``
rusage of that child) are recorded. Every push goes to a fresh repository (so every blob is
uploaded) and every pull into a fresh directory. Targets: kit_jupyter no slower than oras-py,
peak RSS under 150 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAYER_TYPE = "application/vnd.kitops.modelkit.model.v1.tar"
CONFIG_TYPE = "application/vnd.kitops.modelkit.config.v1+json"
ARTIFACT_TYPE = "application/vnd.kitops.modelkit.manifest.v1+json"


def start_registry(base: Path) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("docker-registry")
    if not binary:
        sys.exit("docker-registry is not installed (apt-get install docker-registry)")
    base.mkdir(parents=True, exist_ok=True)
    cfg = base / "config.yml"
    cfg.write_text("version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n"
                   f"storage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n"
                   "http:\n  addr: 127.0.0.1:0\n  secret: bench\n")
    log = base / "log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([binary, "serve", str(cfg)], stdout=f, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        m = re.search(r"listening on (127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
        if m:
            host = m.group(1)
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"http://{host}/v2/", timeout=2).close()
                    return proc, host
                except (urllib.error.URLError, OSError):
                    time.sleep(0.02)
        time.sleep(0.02)
    proc.terminate()
    sys.exit("docker-registry did not start")


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
from kit_jupyter.commands.remote import push
push("bench:v1", {dest!r}, home={home!r}, plain_http=True)
"""
KIT_PULL = """
from kit_jupyter.commands.remote import pull
pull({ref!r}, home={home!r}, plain_http=True)
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


def run(code: str) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of ``code`` in a fresh interpreter."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step failed (exit {proc.returncode}):\n{code}")
    return wall, usage.ru_maxrss / 1024.0  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    size = args.size_mib << 20
    base = Path(tempfile.mkdtemp(prefix="kit-bench-registry-"))
    proc, host = start_registry(base / "registry")
    try:
        home = base / "home"
        work = base / "work"
        work.mkdir(parents=True)
        t0 = time.perf_counter()
        layer, digest = make_modelkit(home, work, size)
        print(f"registry {host}; ModelKit with a {layer.stat().st_size / 2**20:.0f} MiB layer "
              f"({digest[:19]}…) built in {time.perf_counter() - t0:.1f}s; "
              f"{args.runs} runs per operation", flush=True)
        results: dict[str, list[tuple[float, float]]] = {}
        for i in range(args.runs):
            steps = {
                "kit push": KIT_PUSH.format(dest=f"{host}/bench/kit{i}:v1", home=str(home)),
                "oras push": ORAS_PUSH.format(cwd=str(work), dest=f"{host}/bench/oras{i}:v1",
                                              mt=LAYER_TYPE, chunked=False),
                "oras push (chunked)": ORAS_PUSH.format(
                    cwd=str(work), dest=f"{host}/bench/orasc{i}:v1", mt=LAYER_TYPE,
                    chunked=True),
            }
            for name, code in steps.items():
                results.setdefault(name, []).append(run(code))
            pull_home = base / f"pull-home-{i}"
            oras_out = base / f"oras-out-{i}"
            oras_out.mkdir()
            results.setdefault("kit pull", []).append(
                run(KIT_PULL.format(ref=f"{host}/bench/kit{i}:v1", home=str(pull_home))))
            results.setdefault("oras pull", []).append(
                run(ORAS_PULL.format(ref=f"{host}/bench/oras{i}:v1", out=str(oras_out))))
            pulled = pull_home / "storage" / "blobs" / "sha256" / digest.split(":")[1]
            assert pulled.stat().st_size == layer.stat().st_size, "kit pull incomplete"
            assert (oras_out / "model.tar").stat().st_size == layer.stat().st_size
            shutil.rmtree(pull_home)
            shutil.rmtree(oras_out)
            oras_out.mkdir()
            results.setdefault("oras pull + sha256", []).append(run(ORAS_PULL_VERIFY.format(
                ref=f"{host}/bench/oras{i}:v1", out=str(oras_out), digest=digest)))
            shutil.rmtree(oras_out)
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1][0]:.2f}s/{v[-1][1]:.0f}MB"
                                               for k, v in results.items()), flush=True)

        def med(name: str) -> tuple[float, float]:
            rows = results[name]
            return (statistics.median(r[0] for r in rows), max(r[1] for r in rows))

        gib = size / 2**30
        print(f"\n{'operation':22} {'median s':>9} {'GiB/s':>7} {'peak RSS MB':>12}")
        for name in results:
            t, rss = med(name)
            print(f"{name:22} {t:9.2f} {gib / t:7.2f} {rss:12.0f}")
        kp, op, opc = med("kit push")[0], med("oras push")[0], med("oras push (chunked)")[0]
        kl, ol = med("kit pull")[0], med("oras pull")[0]
        olv = med("oras pull + sha256")[0]
        print(f"\nratio kit/oras push (monolithic)  {kp / op:.2f}  (<= 1.00 is the target)")
        print(f"ratio kit/oras push (chunked)     {kp / opc:.2f}")
        print(f"ratio kit/oras pull               {kl / ol:.2f}  (<= 1.00 is the target; kit "
              "also verifies the digest and fsyncs, oras-py does neither)")
        print(f"ratio kit/(oras pull + sha256)    {kl / olv:.2f}  (same verification work)")
        peak = max(med("kit push")[1], med("kit pull")[1])
        print(f"kit_jupyter peak RSS {peak:.0f} MB (target < 150 MB); oras-py monolithic push "
              f"{med('oras push')[1]:.0f} MB")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
