"""``auralize serve --run RUN`` in a child process, and the history a page gets from it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def served_run(run: Path):
    """Serve ``run`` on a free port; yield ``(process, page url)``."""
    proc = subprocess.Popen([sys.executable, "-m", "auralize.cli", "serve", "--run", str(run),
                             "--port", "0"], env={"PYTHONPATH": str(ROOT / "src"),
                                                  "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        while url is None:
            line = proc.stdout.readline()
            assert line, "serve exited"
            if line.startswith("open "):
                url = line.split()[1]
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(10)


def page_history(url: str, timeout_s: float = 60.0) -> list[dict]:
    """The chart records a page gets over the WebSocket (until the run's captions)."""
    import aiohttp

    async def fetch() -> list:
        records = []
        async with aiohttp.ClientSession() as session, session.ws_connect(url + "ws") as ws:
            while True:
                doc = json.loads((await ws.receive(timeout=timeout_s)).data)
                if doc["type"] == "history":
                    records += doc["records"]
                elif doc["type"] == "captions":
                    return records

    return asyncio.run(fetch())
