"""Run the demo notebooks headless: ``python scripts/demo.py [--out DIR] [NOTEBOOK ...]``.

Each notebook in ``notebooks/`` is executed top to bottom by nbclient in a real kernel (the
notebooks start their own S3 server and registry on 127.0.0.1 and keep ModelKits in a temporary
``KITOPS_HOME``). The executed copy, a plain HTML export (nbconvert's defaults, as a user's
``jupyter nbconvert --to html`` makes it: every output is static HTML/text, nothing needs the
widget manager) and the kernel's log go under one output folder, default ``out/demo/``; a short
summary is printed at the end. Exit status 1 if any notebook failed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


@dataclass
class Outcome:
    name: str
    ok: bool
    seconds: float
    cells: int
    widgets: int
    error: str = ""


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _error_line(exc: BaseException) -> str:
    """nbclient's CellExecutionError carries the whole traceback; keep the last real line."""
    text = _ANSI.sub("", str(exc)).strip().splitlines()
    lines = [line for line in text if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line.strip()[:300]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def run_notebook(path: Path, out_dir: Path, timeout: int, kernel: str) -> Outcome:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    started = time.monotonic()
    error = ""
    with tempfile.TemporaryDirectory(prefix="kit-demo-run-") as tmp:
        env = dict(os.environ)
        env.setdefault("KIT_DEMO_TMP", tmp)
        env["KITOPS_HOME"] = str(Path(tmp) / "kitops-home")  # notebooks use their own, too
        client = NotebookClient(nb, timeout=timeout, kernel_name=kernel,
                                resources={"metadata": {"path": str(path.parent)}})
        out_dir.mkdir(parents=True, exist_ok=True)
        log_path = out_dir / (path.stem + ".kernel.log")
        try:
            # The kernel's own stderr (a TCP-encryption warning on every start, crashes) goes to a
            # log beside the outputs instead of cluttering the summary.
            with open(log_path, "wb") as log:
                client.execute(env=env, stderr=log)
        except CellExecutionError as e:
            error = _error_line(e)
        except Exception as e:  # kernel died, timeout: report it, keep going with the others
            error = f"{type(e).__name__}: {_error_line(e)}"
    seconds = time.monotonic() - started
    executed = out_dir / path.name
    _write_atomic(executed, nbformat.writes(nb).encode())
    html, _ = HTMLExporter().from_notebook_node(nb)
    _write_atomic(out_dir / (path.stem + ".html"), html.encode())
    widgets = nb.metadata.get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})
    cells = sum(1 for c in nb.cells if c.cell_type == "code" and c.get("execution_count"))
    return Outcome(path.stem, not error, seconds, cells, len(widgets), error)


def _write_atomic(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to run (default: notebooks/*.ipynb)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "demo",
                        help="output folder (default out/demo)")
    parser.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds")
    parser.add_argument("--kernel", default="python3", help="kernel name (default python3)")
    args = parser.parse_args(argv)

    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    outcomes = []
    for path in paths:
        print(f"==> {path.name}", flush=True)
        outcome = run_notebook(path.resolve(), args.out, args.timeout, args.kernel)
        outcomes.append(outcome)
        state = "ok" if outcome.ok else f"FAILED: {outcome.error}"
        print(f"    {state} ({outcome.seconds:.1f}s)", flush=True)

    shown = args.out.resolve()
    if shown.is_relative_to(Path.cwd()):
        shown = shown.relative_to(Path.cwd())
    print(f"\nDemo summary (executed notebooks and HTML in {shown}/):")
    width = max(len(o.name) for o in outcomes)
    for o in outcomes:
        status = "ok    " if o.ok else "FAILED"
        print(f"  {status} {o.name:<{width}}  {o.cells:2d} cells  {o.widgets:3d} widget models"
              f"  {o.seconds:6.1f}s  -> {o.name}.ipynb, {o.name}.html")
        if not o.ok:
            print(f"         {o.error}")
    failed = sum(not o.ok for o in outcomes)
    print(f"{len(outcomes) - failed} of {len(outcomes)} notebooks ran top to bottom.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
