"""Tiny worker children for tests/test_worker.py (importable by the spawned processes)."""

from __future__ import annotations

import os
import time

from auralize.errors import AuralizeError
from auralize.workers.worker import WorkerChild


class SummingChild(WorkerChild):
    """Adds up the numbers it receives; says how many it got."""

    def setup(self) -> dict:
        if self.cfg.get("refuse"):
            raise AuralizeError("no device here (install one)")
        self.total = 0
        self.count = 0
        return {"pid": os.getpid()}

    def receive(self, items: list) -> None:
        for item in items:
            self.total += item
            self.count += 1
            self.shared["count"] = self.count

    def finish(self) -> dict:
        return {"total": self.total, "count": self.count, "close_args": list(self.close_args)}


class StubbornChild(WorkerChild):
    """Never leaves its loop (a hung device driver)."""

    def receive(self, items: list) -> None:
        pass

    def loop(self) -> None:
        while True:
            time.sleep(0.1)


class CrashingChild(WorkerChild):
    """Dies without a word after its first item."""

    def receive(self, items: list) -> None:
        os._exit(3)
