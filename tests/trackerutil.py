"""Real experiment-tracker services for the tests: a local MLflow tracking server.

``MlflowServer`` runs ``mlflow server`` with a SQLite store and served artifacts
(``--artifacts-destination``), so artifact uploads travel over HTTP as they do to
a remote server, and killing the server makes them fail as a lost server does.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """``mlflow server`` on a free loopback port; :meth:`kill` ends it (and its workers) at once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 120.0) -> MlflowServer:
        program = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
        if program is None:
            pytest.skip("mlflow not installed (pip install auralize[mlflow])")
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = open(self.root / "server.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [program, "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            # no background job runner (its worker processes): the tests need the tracking API only
            env=dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.kill()
        raise RuntimeError("mlflow server did not start in time")

    def kill(self) -> None:
        """Kill the server's whole process group (uvicorn workers too), as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if getattr(self, "log", None):
            self.log.close()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A running MLflow tracking server for the module; MLFLOW_TRACKING_URI points at it."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = server.uri
    try:
        yield server
    finally:
        server.kill()
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old


# A training process that knows nothing of auralize: it logs a loss to an MLflow run,
# one step every INTERVAL seconds.  It prints the run's ID, waits for a line on stdin
# (the follower is ready), then prints when each step was logged (perf_counter: the
# JACK recorder's clock on Linux) and the loss.  The loss changes every BLOCK steps,
# cycling through four values, so the listener can tell blocks apart by pitch.
LOGGER = """
import sys, time
import mlflow
steps, interval, block = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
LOSSES = (1.0, 0.5, 0.25, 0.75)
with mlflow.start_run() as run:
    print(run.info.run_id, flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    for step in range(steps):
        loss = LOSSES[(step // block) % 4]
        mlflow.log_metric("loss", loss, step=step)
        print(step, time.perf_counter(), loss, flush=True)
        time.sleep(max(0.0, t0 + (step + 1) * interval - time.perf_counter()))
"""


class MlflowLogger:
    """The LOGGER script as a separate process: ``run_id``, then ``go()``, then ``lines()``."""

    def __init__(self, uri: str, steps: int, interval_s: float, block: int) -> None:
        env = dict(os.environ, MLFLOW_TRACKING_URI=uri)
        self.proc = subprocess.Popen([sys.executable, "-c", LOGGER, str(steps), str(interval_s),
                                      str(block)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.run_id = self.proc.stdout.readline().strip()
        if not self.run_id:
            raise RuntimeError(self.proc.stderr.read())

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout_s: float = 120.0) -> list[tuple[int, float, float]]:
        """``(step, logged_at_perf_s, loss)`` per step, once the process ended."""
        out, err = self.proc.communicate(timeout=timeout_s)
        assert self.proc.returncode == 0, err
        rows = []
        for line in out.splitlines():  # MLflow itself prints a "View run" line at the end
            parts = line.split()
            if len(parts) == 3 and parts[0].isdigit():
                rows.append((int(parts[0]), float(parts[1]), float(parts[2])))
        return rows
