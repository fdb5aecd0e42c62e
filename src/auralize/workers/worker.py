"""One model for auralize's worker processes: the speaker, live generation, the page, the recording.

Audio work runs in spawned child processes: a host loop holding the GIL
cannot starve a process it does not share a GIL with.  Every worker has the same
life cycle, written once here:

- the parent (:class:`Worker`) spawns the child without re-running the user's
  ``__main__`` (:func:`~auralize.workers.processes.start_worker`), feeds its inbox
  through a :class:`~auralize.workers.processes.QueuedSender` (the caller never
  blocks on a full pipe), reads its status on a thread, and reads its running
  statistics from shared memory (:class:`SharedStats`);
- the child (:class:`WorkerChild`) sets up, says ``ready`` (or ``error``),
  receives inbox items on a reader thread, runs its loop until asked to close,
  finishes (files closed) and says ``closed`` with its final statistics;
- one status vocabulary: ``("ready", info)``, ``("warning", key, text)``,
  ``("error", text)``, ``("closed", stats)``;
- one priority policy (:func:`raise_priority`), and one way to close:
  ask, wait, then join -> terminate -> kill.

A worker is a short pair of subclasses: the parent's configuration and
statistics type, the child's ``setup`` / ``receive`` / ``loop`` / ``finish``.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import sys
import threading
import warnings
from typing import Self

from auralize.audio.live.devices import AudioUnavailableWarning
from auralize.errors import AuralizeError
from auralize.workers.priority import raise_priority
from auralize.workers.processes import QueuedSender, start_worker


class SharedStats:
    """Named float64 counters in memory shared by parent and child (no lock: one writer).

    Parameters
    ----------
    fields : sequence of str
        Counter names.
    initial : dict, optional
        Starting values (default 0.0).
    """

    def __init__(self, fields, initial: dict | None = None) -> None:
        self.fields = tuple(fields)
        self._index = {name: i for i, name in enumerate(self.fields)}
        self._array = mp.get_context("spawn").Array("d", max(1, len(self.fields)), lock=False)
        for name, value in (initial or {}).items():
            self[name] = value

    def __getitem__(self, name: str) -> float:
        return self._array[self._index[name]]

    def __setitem__(self, name: str, value: float) -> None:
        self._array[self._index[name]] = value

    def add(self, name: str, value: float = 1.0) -> None:
        self._array[self._index[name]] += value

    def as_dict(self) -> dict:
        return {name: self._array[i] for name, i in self._index.items()}


class Worker:
    """Parent side of a worker process.

    Subclasses set :attr:`child` (their :class:`WorkerChild` subclass, defined at
    module level: the spawned process imports it by its module path),
    :attr:`process_name` and :attr:`stats_fields`, and pass their configuration
    (plain picklable values) to ``__init__``.

    Parameters
    ----------
    cfg : dict
        Configuration the child gets.
    start_timeout_s : float
        How long :meth:`start` waits for ``ready``.
    max_pending : int, optional
        Inbox items held for a child that falls behind; beyond it they are dropped
        and counted (``dropped``).
    """

    child: type[WorkerChild] | None = None
    process_name = "auralize-worker"
    stats_fields: tuple = ()

    def __init__(self, cfg: dict, *, start_timeout_s: float = 30.0,
                 max_pending: int | None = None, initial_stats: dict | None = None) -> None:
        self.cfg = cfg
        self.start_timeout_s = float(start_timeout_s)
        self.max_pending = max_pending
        self.initial_stats = initial_stats
        self.info: dict = {}
        self.error: str | None = None
        self.final: dict | None = None
        self.shared: SharedStats | None = None
        self._process = None
        self._inbox = None
        self._status = None
        self._sender: QueuedSender | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._warned: set[str] = set()
        self._closing = False

    # -- life cycle -------------------------------------------------------------------
    def start(self, wait: bool = True) -> Self:
        """Spawn the child; return when it is ready (``error`` is set if it could not start).

        ``wait=False`` returns at once: items queue up until the child reads them.
        """
        if self._process is not None:
            raise RuntimeError(f"{type(self).__name__}.start() was already called")
        child = _child_path(self.child)
        self.shared = SharedStats(self.stats_fields, self.initial_stats)
        ctx = mp.get_context("spawn")
        inbox_recv, self._inbox = ctx.Pipe(duplex=False)
        self._status, status_send = ctx.Pipe(duplex=False)
        self._process = start_worker(_child_entry, (child, self.cfg, inbox_recv, status_send,
                                                    self.shared), name=self.process_name)
        inbox_recv.close()
        status_send.close()
        self._sender = QueuedSender(self._inbox, name=f"{self.process_name}-send",
                                    max_pending=self.max_pending)
        threading.Thread(target=self._read_status, name=f"{self.process_name}-status",
                         daemon=True).start()
        if wait and not self._ready.wait(self.start_timeout_s) and self.error is None:
            self.error = f"the {self.process_name} process did not start in {self.start_timeout_s:.0f} s"
        return self

    def put(self, item) -> bool:
        """Queue one inbox item for the child (never blocks); False if it was dropped."""
        if self._sender is None or self._closing or self._done.is_set():
            return False
        if not self._sender.put(item):
            if self._sender.error is not None:
                self.warn("child-gone", f"{self.process_name}: the worker process has exited")
            return False
        return True

    @property
    def dropped(self) -> int:
        """Inbox items dropped because the child fell too far behind."""
        return self._sender.dropped if self._sender is not None else 0

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive() and not self._done.is_set()

    def close(self, timeout_s: float = 10.0, *args) -> dict:
        """Send what is queued, ask the child to close (``args`` go with it), wait; return its stats.

        Waits up to ``timeout_s`` for ``closed``, then joins, terminates and kills.
        """
        if self._process is None:
            return self.final or {}
        if not self._closing:
            self._closing = True
            if self._sender is not None:
                self._sender.close(timeout_s)
            try:
                self._inbox.send(("close", *args))
            except (OSError, EOFError, BrokenPipeError):
                pass
            self._done.wait(timeout_s)
            self._process.join(timeout=2.0)
            if self._process.is_alive():
                if not self._done.is_set():
                    self.warn("hang", f"{self.process_name}: the worker did not exit; terminating it")
                self._process.terminate()
                self._process.join(2.0)
                if self._process.is_alive():
                    self._process.kill()
                    self._process.join(2.0)
            for conn in (self._inbox, self._status):
                try:
                    conn.close()
                except OSError:
                    pass
        return self.final if self.final is not None else {}

    def kill(self) -> None:
        """Stop the child at once (a forgotten session, interpreter exit)."""
        self._closing = True
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(2.0)

    # -- status ---------------------------------------------------------------------------
    def warn(self, key: str, text: str) -> None:
        """One warning per ``key`` (the child's and the parent's)."""
        if key in self._warned:
            return
        self._warned.add(key)
        warnings.warn(text, AudioUnavailableWarning, stacklevel=3)

    def _read_status(self) -> None:
        while True:
            try:
                msg = self._status.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "ready":
                self.info = msg[1]
                self._ready.set()
            elif kind == "warning":
                self.warn(msg[1], msg[2])
            elif kind == "error":
                self.error = msg[1]
                self._ready.set()
            elif kind == "closed":
                self.final = msg[1]
                break
        if self.final is None and self.error is None and not self._closing:
            self.warn("child-gone", f"{self.process_name}: the worker process exited unexpectedly")
        self._ready.set()
        self._done.set()


class WorkerChild:
    """Child side of a worker process.

    Subclasses implement :meth:`setup` (returns the ``ready`` info; raise
    :class:`~auralize.errors.AuralizeError` to refuse with a message),
    :meth:`receive` (inbox items, on the reader thread), :meth:`loop` (until
    :attr:`stop` is set) and :meth:`finish` (the final statistics).
    """

    #: scheduling priority (see :func:`raise_priority`)
    priority = "normal"
    #: end with ``os._exit``: PortAudio's teardown can block forever once JACK is gone
    hard_exit = False

    def __init__(self, cfg: dict, status, shared: SharedStats) -> None:
        self.cfg = cfg
        self.shared = shared
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.close_args: tuple = ()
        self._status = status
        self.priority_obtained = "normal"

    def tell(self, *msg) -> None:
        try:
            self._status.send(msg)
        except (OSError, BrokenPipeError):
            pass

    def warn(self, key: str, text: str) -> None:
        self.tell("warning", key, text)

    # -- to implement ------------------------------------------------------------------------
    def setup(self) -> dict:
        return {}

    def receive(self, items: list) -> None:
        raise NotImplementedError

    def loop(self) -> None:
        self.stop.wait()

    def finish(self) -> dict:
        return self.shared.as_dict()

    def on_loop_error(self, exc: BaseException) -> None:
        """The loop raised: by default a warning (sound stops, files are still finished)."""
        self.warn("stopped", f"{self.name} stopped: {type(exc).__name__}: {exc}")

    #: how the parent's warnings name this worker
    name = "auralize worker"

    def request_close(self, *args) -> None:
        """The parent asked to close (reader thread)."""
        self.close_args = args
        self.stop.set()
        self.wake.set()

    # -- the life cycle -----------------------------------------------------------------------
    def run(self, inbox) -> None:
        warnings.simplefilter("ignore")
        self.priority_obtained = raise_priority(self.priority)
        if self.priority == "realtime":
            sys.setswitchinterval(0.0005)  # a device callback needs this process's GIL: hand it over
        try:
            info = self.setup()
        except AuralizeError as exc:
            self.tell("error", str(exc))
            self._exit()
            return
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            self.tell("error", f"{type(exc).__name__}: {exc}")
            self._exit()
            return
        self.tell("ready", info)
        threading.Thread(target=self._read_inbox, args=(inbox,), name="auralize-inbox",
                         daemon=True).start()
        try:
            self.loop()
        except Exception as exc:  # noqa: BLE001 - report, then finish cleanly
            self.on_loop_error(exc)
        try:
            final = self.finish()
        except Exception as exc:  # noqa: BLE001
            self.tell("error", f"{type(exc).__name__}: {exc}")
            final = None
        if final is not None:
            self.tell("closed", final)
        self._exit()

    def _read_inbox(self, inbox) -> None:
        while True:
            try:
                msg = inbox.recv()
            except (EOFError, OSError):
                self.request_close()
                return
            if msg[0] == "batch":
                self.receive(msg[1])
                self.wake.set()
            elif msg[0] == "close":
                self.request_close(*msg[1:])
                return

    def _exit(self) -> None:
        try:
            self._status.close()
        except OSError:
            pass
        if self.hard_exit:
            os._exit(0)


def _child_path(child) -> str:
    """``"module:Class"`` of a :class:`WorkerChild` subclass, by which the spawned process imports it."""
    if not (isinstance(child, type) and issubclass(child, WorkerChild)):
        raise TypeError(f"Worker.child must be a WorkerChild subclass, not {child!r}")
    if "<locals>" in child.__qualname__ or child.__module__ == "__main__":
        raise TypeError(f"{child.__qualname__} must be defined at module level of an importable "
                        "module (the worker process imports it by name)")
    return f"{child.__module__}:{child.__qualname__}"


def _child_entry(child: str, cfg: dict, inbox, status, shared) -> None:
    """Entry point of every worker process: import the child class ``"module:Class"`` and run it."""
    module, _, qualname = child.partition(":")
    cls = importlib.import_module(module)
    for name in qualname.split("."):
        cls = getattr(cls, name)
    cls(cfg, status, shared).run(inbox)
