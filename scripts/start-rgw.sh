#!/bin/sh
# Start a one-node Ceph RGW on 127.0.0.1 (the recipe of tests/plugins/rgw.py), print the S3_*
# variables to use with it, and keep it running until Ctrl-C / SIGTERM, then stop every daemon.
#
#   scripts/start-rgw.sh [STATE_DIR]        # default: a fresh temporary directory
#
# Needs the Debian packages ceph-mon ceph-osd radosgw ceph-common.
set -eu
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
exec "$PY" - "${1:-}" <<'PYEOF'
import signal, sys, tempfile, threading
from pathlib import Path
sys.path.insert(0, ".")
from tests.plugins.rgw import RGWCluster

root = Path(sys.argv[1]) if sys.argv[1] else Path(tempfile.mkdtemp(prefix="kit-rgw-"))
cluster = RGWCluster(root).start()
for k, v in cluster.env().items():
    print(f"export {k}={v}")
print(f"# state and logs in {root}; Ctrl-C stops the cluster", flush=True)
done = threading.Event()
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: done.set())
try:
    done.wait()
finally:
    cluster.stop()
PYEOF
