"""Ceph RGW as a one-node cluster on loopback: a production S3 implementation for the `rgw` tests.

Recipe from research/s3.md: one mon, one memstore OSD, one radosgw, no cephx, everything under a
temporary directory, bound to 127.0.0.1 only. Started once per session and only when a test marked
``rgw`` asks for it (about 15 s); stopped by PID in teardown. Missing ceph binaries are a failure,
not a skip: CI installs them, and a silent skip would hide that the real-server checks never ran.

Also importable from ``bench/remote_download.py`` (``RGWCluster(root).start()``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from kit_jupyter.services import s3_client

ACCESS_KEY = "rgwtestkey"
SECRET_KEY = "rgwtestsecret-do-not-print"
BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "ceph-authtool",
            "monmaptool")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RGWError(RuntimeError):
    pass


class RGWCluster:
    def __init__(self, root: Path, memstore_bytes: int = 4 << 30):
        self.root = Path(root)
        self.memstore_bytes = memstore_bytes
        self.mon_port = _free_port()
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.conf = self.root / "ceph.conf"
        self._procs: list[subprocess.Popen] = []

    @staticmethod
    def missing_binaries() -> list[str]:
        return [b for b in BINARIES if shutil.which(b) is None]

    def _run(self, *args: str, timeout: float = 60) -> str:
        r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RGWError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
        return r.stdout

    def _spawn(self, *args: str) -> None:
        log = open(self.root / "log" / f"{Path(args[0]).name}.stdout", "ab")  # noqa: SIM115
        p = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        log.close()
        self._procs.append(p)

    def start(self, timeout: float = 90) -> RGWCluster:
        missing = self.missing_binaries()
        if missing:
            raise RGWError(
                "Ceph RGW binaries not found: " + ", ".join(missing)
                + " (apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw "
                  "ceph-common)")
        r = self.root
        for d in ("run", "log", "mon.a", "osd.0", "rgw"):
            (r / d).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        self.conf.write_text(f"""[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{self.mon_port}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
run dir = {r}/run
admin socket = {r}/run/$name.asok
log file = {r}/log/$name.log
pid file = {r}/run/$name.pid
keyring = {r}/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon pg warn min per osd = 0
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = memstore
memstore device bytes = {self.memstore_bytes}
ms bind ipv6 = false
[mon.a]
mon data = {r}/mon.a
[osd.0]
osd data = {r}/osd.0
osd max object size = 134217728
osd class update on start = false
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{self.port}
rgw data = {r}/rgw
rgw dns name = 127.0.0.1
""")
        c = ["-c", str(self.conf)]
        try:
            self._run("ceph-authtool", "--create-keyring", f"{r}/keyring", "--gen-key", "-n",
                      "mon.", "--cap", "mon", "allow *")
            self._run("monmaptool", "--create", "--addv", "a", f"[v1:127.0.0.1:{self.mon_port}]",
                      "--fsid", fsid, f"{r}/monmap")
            self._run("ceph-mon", *c, "--mkfs", "-i", "a", "--monmap", f"{r}/monmap",
                      "--keyring", f"{r}/keyring")
            self._spawn("ceph-mon", *c, "-f", "-i", "a")
            osd_uuid = str(uuid.uuid4())
            self._run("ceph", *c, "--connect-timeout", "30", "osd", "create", osd_uuid)
            self._run("ceph-osd", *c, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid,
                      "--osd-objectstore", "memstore")
            self._spawn_osd(c)
            self._spawn("radosgw", *c, "-f", "-n", "client.rgw.a")
            self._wait_http(timeout)
            self._run("radosgw-admin", *c, "user", "create", "--uid=test",
                      "--display-name=test", f"--access-key={self.access_key}",
                      f"--secret={self.secret_key}")
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn_osd(self, c: list[str]) -> None:
        # An OSD started right after the mon sometimes sends its first mon command before it has
        # the monmap ("handle_command on fsid 0000...") and exits; starting it again works.
        for attempt in range(5):
            self._spawn("ceph-osd", *c, "-f", "-i", "0")
            p = self._procs[-1]
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                return
            self._procs.remove(p)
            time.sleep(0.5 * (attempt + 1))
        raise RGWError(f"ceph-osd keeps exiting; logs in {self.root / 'log'}")

    def _wait_http(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self._procs:
                if p.poll() is not None:
                    raise RGWError(f"{p.args[0]} exited with {p.returncode}; logs in "
                                   f"{self.root / 'log'}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1).close()
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.3)
        raise RGWError(f"radosgw did not answer on {self.endpoint} within {timeout:.0f} s; "
                       f"logs in {self.root / 'log'}")

    def stop(self) -> None:
        for p in reversed(self._procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        for p in reversed(self._procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        self._procs.clear()

    def client(self, **kw):
        return s3_client(self.endpoint, kw.get("access_key", self.access_key),
                         kw.get("secret_key", self.secret_key), "us-east-1")

    def env(self) -> dict[str, str]:
        return {"S3_API_ENDPOINT": self.endpoint, "S3_REGION": "us-east-1",
                "S3_ACCESS_KEY_ID": self.access_key, "S3_SECRET_KEY": self.secret_key}


@pytest.fixture(scope="session")
def rgw(tmp_path_factory):
    """A running RGW (session-scoped, only started when an `rgw` test asks for it)."""
    if RGWCluster.missing_binaries():
        pytest.fail("Ceph RGW binaries missing: " + ", ".join(RGWCluster.missing_binaries())
                    + " -- install ceph-mon ceph-osd radosgw ceph-common (CI does)",
                    pytrace=False)
    # A one-node Ceph occasionally fails to come up on a busy machine (a port picked early and
    # taken meanwhile, an OSD racing the mon); a fresh cluster on fresh ports is the cure, and
    # every attempt's reason is kept for the failure message.
    reasons = []
    for _ in range(3):
        cluster = RGWCluster(tmp_path_factory.mktemp("ceph"), memstore_bytes=1 << 30)
        try:
            cluster.start()
            break
        except RGWError as e:
            reasons.append(str(e))
    else:
        pytest.fail("could not start Ceph RGW: " + " | ".join(reasons), pytrace=False)
    yield cluster
    cluster.stop()
