"""A real JupyterLab on 127.0.0.1 and Debian's Chromium driven by Playwright.

All server state (config, data, runtime, settings, workspaces) lives under the test's temp dir,
the notebooks are copies (Lab autosaves, and the committed notebooks must keep cleared outputs),
and the browser is ``/usr/bin/chromium`` -- never ``playwright install``. A missing Chromium is a
failure, not a skip: CI installs it, and a silently skipped browser test proves nothing.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("KIT_TEST_CHROMIUM", "/usr/bin/chromium")
# No first-run UI, no background requests to Google (no network here), no GPU.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"]
TEST_OUTPUT = REPO / "test-output" / "browser"


@dataclass
class Lab:
    base_url: str
    token: str
    root: Path
    log: Path

    def url(self, notebook: str) -> str:
        # ?reset: no restored workspace (a restored second tab left hidden duplicate widgets)
        return f"{self.base_url}/lab/tree/{notebook}?reset&token={self.token}"

    def api(self, path: str, method: str = "GET") -> Any:
        req = urllib.request.Request(f"{self.base_url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lab_env(state: Path, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_DATA_DIR": str(state / "data"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "IPYTHONDIR": str(state / "ipython"),
    })
    env.update(extra)
    # The news toast covers the page; --LabApp.news_url=None alone does not stop it.
    settings = state / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Save widget state with the notebook (off by default), so a test can count what a user who
    # turned it on would carry in the file.
    widgets = state / "settings" / "@jupyter-widgets" / "jupyterlab-manager"
    widgets.mkdir(parents=True, exist_ok=True)
    (widgets / "plugin.jupyterlab-settings").write_text(json.dumps({"saveState": True}))
    # Every task live from its start, so the live widget shows however fast the machine is.
    profile = Path(env["IPYTHONDIR"]) / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "ipython_kernel_config.py").write_text("c.KitMagics.progress_delay = 0.0\n")
    return env


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory) -> Iterator[Lab]:
    """JupyterLab serving copies of notebooks/ from a temp dir; kernels get a small demo dataset
    and a temp dir for the notebooks' workspaces."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "root"
    shutil.copytree(REPO / "notebooks", root)
    work = base / "work"
    work.mkdir()
    env = _lab_env(base / "state", {
        "KIT_DEMO_DATASET_MB": os.environ.get("KIT_BROWSER_DATASET_MB", "48"),
        "KIT_DEMO_TMP": str(work),
        "KITOPS_HOME": str(base / "outer-home"),
    })
    port, token = _free_port(), secrets.token_hex(16)
    log = base / "lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
           "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, cwd=root)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited ({proc.returncode}): {log.read_text()[-2000:]}")
            try:
                lab.api("/api/status")
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield lab
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # shuts the kernels down too (a few seconds)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        TEST_OUTPUT.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, TEST_OUTPUT / "jupyterlab.log")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory) -> Iterator[Any]:
    """A headless Chromium browser context with a fresh profile."""
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} not found: the browser test needs Debian's chromium "
        "(apt-get install chromium); it does not download a browser")
    from playwright.sync_api import sync_playwright  # the browser extra; missing = failure

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900})
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def screenshot_dir() -> Path:
    TEST_OUTPUT.mkdir(parents=True, exist_ok=True)
    return TEST_OUTPUT
