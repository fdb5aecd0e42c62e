"""The training side of the web page: a server in a child process, fed events.

:class:`WebSink` starts :func:`_web_main` with
:func:`~auralize.audio.processes.start_worker` (spawned, no shared GIL, the
user's ``__main__`` not re-run) and forwards what the
:class:`~auralize.sonify.session.Sonifier` makes: engine events and telemetry
records.  ``send_*`` only append to an in-memory queue; a sender thread pipes
batches to the child.  If the child stalls, the queue is bounded and the excess
is dropped and counted: training never waits on the page.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import threading
import warnings

from auralize.audio.devices import AudioUnavailableWarning
from auralize.audio.processes import QueuedSender, start_worker

#: items the parent keeps for a stalled child before dropping (events + records)
MAX_PENDING = 200_000


def _web_main(cfg: dict, inbox, status) -> None:
    """Child process: run the web server on a LiveSource fed from ``inbox``."""
    import asyncio

    warnings.simplefilter("ignore")
    import os

    with contextlib.suppress(OSError, AttributeError):  # a real-time producer: ahead of
        os.nice(-5)  # batch work when the machine is busy (best effort)

    def tell(*msg) -> None:
        try:
            status.send(msg)
        except (OSError, BrokenPipeError):
            pass

    try:
        from auralize.web.server import LiveSource, WebServer
    except ImportError as exc:
        tell("error", f"cannot import the web server ({exc}; pip install aiohttp)")
        return

    async def main() -> None:
        loop = asyncio.get_running_loop()
        source = LiveSource(cfg["sample_rate"], cfg["engine_kwargs"], lead_s=cfg["lead_s"])
        server = WebServer(source, host=cfg["host"], port=cfg["port"], token=cfg["token"],
                           block_frames=cfg["block_frames"],
                           client_queue_s=cfg["client_queue_s"], title=cfg["title"])
        try:
            url = await server.start()
        except OSError as exc:
            tell("error", f"cannot serve the web page on {cfg['host']}:{cfg['port']} ({exc})")
            return
        tell("ready", {"url": url, "port": server.port, "token": server.token})
        stop = asyncio.Event()

        def handle(msg) -> None:
            kind = msg[0]
            if kind == "batch":
                for item in msg[1]:
                    if item[0] == "events":
                        server.add_events(item[1], item[2])
                    elif item[0] == "record":
                        server.add_record(item[1], item[2])
            elif kind == "finish":  # training ended: let listening pages hear the rest
                server.finished = True
                server.broadcast_text({"type": "finished"})
                loop.create_task(drain_then_stop(float(msg[1])))
            elif kind == "close":
                stop.set()

        def reader() -> None:
            while True:
                try:
                    msg = inbox.recv()
                except (EOFError, OSError):
                    loop.call_soon_threadsafe(stop.set)
                    return
                loop.call_soon_threadsafe(handle, msg)
                if msg[0] == "close":
                    return

        async def drain_then_stop(linger_s: float) -> None:
            end = loop.time() + linger_s
            while loop.time() < end and source.backlog_s() > 0.0 and any(
                    c.audio_on for c in server.clients.values()):
                await asyncio.sleep(0.05)
            if linger_s > 0 and any(c.audio_on for c in server.clients.values()):
                await asyncio.sleep(min(0.6, max(0.0, end - loop.time())))  # pages' buffers
            stop.set()

        threading.Thread(target=reader, name="auralize-web-inbox", daemon=True).start()
        await stop.wait()
        state = server.state()
        await server.stop()
        tell("closed", {"clients": len(state["clients"]),
                        "dropped_blocks_total": state["dropped_blocks_total"],
                        "steps": state["steps"], "seq": state["seq"]})

    try:
        asyncio.run(main())
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        tell("error", f"web server stopped: {type(exc).__name__}: {exc}")


class WebSink:
    """Serve the live page from a child process and forward a session to it.

    Parameters
    ----------
    sample_rate : int
        Hz of the engine (same as the Sonifier's).
    engine_kwargs : dict, optional
        Engine options (chunk size, master gain), as for the renderer.
    host : str
        Bind address.  Default 127.0.0.1 (reach it from another machine with
        ``ssh -L 8765:127.0.0.1:8765 host``); any other address needs a token.
    port : int
        TCP port (default 8765; a busy port falls back to a free one; 0: any).
    token : str, optional
        Access token for non-loopback binds (generated when missing).
    lead_s : float
        Score time 0 is placed this long after the first event arrives.
    block_frames : int
        Frames per PCM packet.
    client_queue_s : float
        Audio a page may have queued before its oldest blocks are dropped.
    title : str
        Shown on the page.
    linger_s : float
        At :meth:`close`, while a page is listening, keep serving up to this long
        so that it hears the sound still scheduled (step clock ahead of real time).
    start_timeout_s : float
        How long :meth:`start` waits for the server to listen.
    """

    def __init__(self, sample_rate: int = 44100, *, engine_kwargs: dict | None = None,
                 host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
                 lead_s: float = 0.1, block_frames: int = 1024, client_queue_s: float = 1.0,
                 title: str = "training", linger_s: float = 10.0,
                 start_timeout_s: float = 30.0) -> None:
        from auralize.web.server import new_token, token_required

        if token is None and token_required(host):
            token = new_token()
        self.cfg = {"sample_rate": int(sample_rate), "engine_kwargs": dict(engine_kwargs or {}),
                    "host": host, "port": int(port), "token": token, "lead_s": float(lead_s),
                    "block_frames": int(block_frames), "client_queue_s": float(client_queue_s),
                    "title": str(title)}
        self.start_timeout_s = float(start_timeout_s)
        self.linger_s = max(0.0, float(linger_s))
        self.url: str | None = None
        self.port: int | None = None
        self.token = token
        self.error: str | None = None
        self.final: dict = {}
        self._process = None
        self._inbox = None
        self._status = None
        self._sender: QueuedSender | None = None
        self._closed = False

    def start(self) -> str | None:
        """Start the child; return the page's URL (None, with a warning, if it cannot serve)."""
        inbox_recv, self._inbox = mp.Pipe(duplex=False)
        self._status, status_send = mp.Pipe(duplex=False)
        self._process = start_worker(_web_main, (self.cfg, inbox_recv, status_send),
                                     name="auralize-web")
        inbox_recv.close()
        status_send.close()
        if not self._status.poll(self.start_timeout_s):
            return self._fail("the web server did not start in time")
        try:
            kind, payload = self._status.recv()
        except (EOFError, OSError):
            return self._fail("the web server process exited at start")
        if kind != "ready":
            return self._fail(str(payload))
        self.url, self.port, self.token = payload["url"], payload["port"], payload["token"]
        self._sender = QueuedSender(self._inbox, name="auralize-web-send",
                                    max_pending=MAX_PENDING)
        return self.url

    @property
    def dropped(self) -> int:
        """Items dropped because the web child fell too far behind."""
        return self._sender.dropped if self._sender is not None else 0

    def _fail(self, message: str) -> None:
        self.error = message
        warnings.warn(f"live page disabled: {message}", AudioUnavailableWarning, stacklevel=3)
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
        self._closed = True

    # -- forwarding (never blocks) -------------------------------------------------
    def _put(self, item) -> None:
        if not self._closed and self._sender is not None:
            self._sender.put(item)

    def send_events(self, events: list, score_t_s: float | None = None) -> None:
        """Events whose ``time_s`` is a wall-clock moment (see :mod:`auralize.audio.live_clock`).

        ``score_t_s``: score time of the step they start (the page's clock).
        """
        if events:
            self._put(("events", list(events), score_t_s))

    def send_record(self, record, t_s: float) -> None:
        self._put(("record", record, float(t_s)))

    # -- the end ---------------------------------------------------------------------
    def close(self, timeout_s: float = 10.0, linger_s: float | None = None) -> dict:
        """Stop the server (pages see the connection close); return its last numbers.

        ``linger_s`` overrides the constructor's (how long listening pages may
        still hear what is scheduled).
        """
        if self._process is None or self._closed:
            return self.final
        self._closed = True
        if linger_s is not None:
            self.linger_s = max(0.0, float(linger_s))
        if self._sender is not None:
            self._sender.close(timeout_s)
        try:
            self._inbox.send(("finish", self.linger_s))
        except (BrokenPipeError, OSError):
            pass
        if self._status.poll(timeout_s + self.linger_s):
            try:
                kind, payload = self._status.recv()
                if kind == "closed":
                    self.final = dict(payload)
            except (EOFError, OSError):
                pass
        self._process.join(3)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(3)
        self.final["parent_dropped"] = self.dropped
        self.final["url"] = self.url
        return self.final

    def __del__(self) -> None:
        proc = getattr(self, "_process", None)
        if proc is not None and not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                proc.kill()
