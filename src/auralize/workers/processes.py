"""Starting auralize's worker processes safely from any user program.

auralize's audio runs in spawned child processes (no shared GIL with the host program).
By default, ``spawn`` re-imports the parent's ``__main__`` in the child, which
re-runs a user's script that lacks an ``if __name__ == "__main__":`` guard (and
fails in notebooks).  auralize's workers never need the user's main module, so
they are started with it hidden.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading

_start_lock = threading.Lock()


def start_worker(target, args: tuple, name: str) -> mp.process.BaseProcess:
    """Start ``target(*args)`` in a spawned daemon process without importing ``__main__``.

    ``target`` must be a module-level function of an importable module.
    """
    ctx = mp.get_context("spawn")
    process = ctx.Process(target=target, args=args, name=name, daemon=True)
    main = sys.modules.get("__main__")
    with _start_lock:
        saved_spec = getattr(main, "__spec__", None)
        had_file = hasattr(main, "__file__")
        saved_file = getattr(main, "__file__", None)
        try:
            if main is not None:
                main.__spec__ = None
                if had_file:
                    del main.__file__
            process.start()
        finally:
            if main is not None:
                main.__spec__ = saved_spec
                if had_file:
                    main.__file__ = saved_file
    return process


class QueuedSender:
    """Send items to a worker's pipe without ever blocking the caller.

    ``put`` appends to an in-memory queue; a daemon thread sends what has queued
    up as one ``("batch", [items])`` message.  A worker that falls behind makes
    the queue grow (or, past ``max_pending``, drops and counts items) instead of
    stalling the host's loop on a full pipe.

    Parameters
    ----------
    conn : multiprocessing.connection.Connection
        The sending end of a pipe to the worker.
    name : str
        Thread name.
    max_pending : int, optional
        Items held at most; beyond it ``put`` drops (counted in ``dropped``).
    """

    _STOP = object()

    def __init__(self, conn, name: str, max_pending: int | None = None) -> None:
        import queue

        self._conn = conn
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._empty = queue.Empty
        self._max_pending = max_pending
        self._pending = 0
        self._lock = threading.Lock()
        self.dropped = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def put(self, item) -> bool:
        """Queue ``item``; False if it was dropped (queue full or sender stopped)."""
        if self.error is not None:
            return False
        with self._lock:
            if self._max_pending is not None and self._pending >= self._max_pending:
                self.dropped += 1
                return False
            self._pending += 1
        self._queue.put(item)
        return True

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._STOP:
                return
            batch, stop = [item], False
            while len(batch) < 1000:
                try:
                    more = self._queue.get_nowait()
                except self._empty:
                    break
                if more is self._STOP:
                    stop = True
                    break
                batch.append(more)
            with self._lock:
                self._pending -= len(batch)
            try:
                self._conn.send(("batch", batch))
            except (BrokenPipeError, OSError):
                self.error = "the worker process has exited"
                return
            if stop:
                return

    def close(self, timeout_s: float = 600.0) -> None:
        """Send everything queued, then stop the thread (the pipe stays open)."""
        self._queue.put(self._STOP)
        self._thread.join(timeout_s)
