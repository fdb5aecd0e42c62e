"""The training side of the web page: a server in a worker process, fed events.

:class:`WebSink` is a :class:`~auralize.workers.worker.Worker`: the server runs in
a spawned child (no shared GIL with training, the user's ``__main__`` not
re-run) and gets what the :class:`~auralize.sonify.session.Sonifier` makes:
engine events placed by the session's live clock, and telemetry records.
``send_*`` only append to an in-memory queue; if the child stalls, the queue is
bounded and the excess is dropped and counted: training never waits on the page.
"""

from __future__ import annotations

import asyncio
import warnings

from auralize.audio.live.devices import AudioUnavailableWarning
from auralize.errors import AuralizeError
from auralize.workers.worker import Worker, WorkerChild

#: items the parent keeps for a stalled child before dropping (events + records)
MAX_PENDING = 200_000


class WebChild(WorkerChild):
    """The server on a :class:`~auralize.web.sources.LiveSource`, on its own event loop."""

    priority = "high"  # a real-time producer: ahead of batch work when the machine is busy
    name = "live page"

    def setup(self) -> dict:
        from auralize.audio.warm_up import warm_up_kernels
        from auralize.web.server import WebServer
        from auralize.web.sources import LiveSource

        cfg = self.cfg
        # every kernel compiled or loaded before the page's stream paces: one met first
        # mid-stream stalls it (longer than a page's jitter buffer on a fresh install)
        warm_up_kernels(cfg["sample_rate"], cfg["engine_kwargs"])
        self.aloop = asyncio.new_event_loop()
        self.source = LiveSource(cfg["sample_rate"], cfg["engine_kwargs"], lead_s=cfg["lead_s"])
        self.server = WebServer(self.source, host=cfg["host"], port=cfg["port"], token=cfg["token"],
                                block_frames=cfg["block_frames"],
                                client_queue_s=cfg["client_queue_s"], title=cfg["title"])
        try:
            url = self.aloop.run_until_complete(self.server.start())
        except OSError as exc:
            raise AuralizeError(f"cannot serve the web page on {cfg['host']}:{cfg['port']} ({exc})") from exc
        self.stopped = asyncio.Event()
        return {"url": url, "port": self.server.port, "token": self.server.token}

    def receive(self, items: list) -> None:
        self.aloop.call_soon_threadsafe(self._handle, items)

    def _handle(self, items: list) -> None:
        for item in items:
            if item[0] == "events":
                self.server.add_events(item[1], item[2])
            elif item[0] == "step":
                self.server.add_step(*item[1:])
            elif item[0] == "record":
                self.server.add_record(item[1], item[2])

    def request_close(self, linger_s: float = 0.0) -> None:
        self.aloop.call_soon_threadsafe(lambda: self.aloop.create_task(self._drain_then_stop(linger_s)))

    async def _drain_then_stop(self, linger_s: float) -> None:
        """Training ended: let listening pages hear what is scheduled (up to ``linger_s``)."""
        server, source, loop = self.server, self.source, self.aloop
        server.finished = True
        server.broadcast_text({"type": "finished"})
        end = loop.time() + linger_s

        def listening() -> bool:
            return any(c.audio_on for c in server.clients.values())

        while loop.time() < end and source.backlog_s() > 0.0 and listening():
            await asyncio.sleep(0.05)
        if linger_s > 0 and listening():
            await asyncio.sleep(min(0.6, max(0.0, end - loop.time())))  # pages' buffers
        self.stopped.set()

    def loop(self) -> None:
        self.aloop.run_until_complete(self.stopped.wait())

    def finish(self) -> dict:
        state = self.server.state()
        self.aloop.run_until_complete(self.server.stop())
        self.aloop.close()
        return {"clients": len(state["clients"]), "dropped_blocks_total": state["dropped_blocks_total"],
                "steps": state["steps"], "seq": state["seq"]}


class WebSink(Worker):
    """Serve the live page from a worker process and forward a session to it.

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
        How far ahead of the wall clock the server renders and sends.
    block_frames : int
        Frames per PCM packet.
    client_queue_s : float
        Audio a page may have queued before its oldest blocks are dropped.
    title : str
        Shown on the page.
    linger_s : float
        At :meth:`close`, while a page is listening, keep serving up to this long
        so that it hears the sound still scheduled.
    start_timeout_s : float
        How long :meth:`start` waits for the server to listen (the first start on a
        machine compiles the engine's kernels first: 33 s measured on 2 loaded cores,
        see :mod:`auralize.audio.warm_up`).
    """

    child = WebChild
    process_name = "auralize-web"

    def __init__(self, sample_rate: int = 44100, *, engine_kwargs: dict | None = None,
                 host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
                 lead_s: float = 0.1, block_frames: int = 1024, client_queue_s: float = 1.0,
                 title: str = "training", linger_s: float = 10.0,
                 start_timeout_s: float = 90.0) -> None:
        from auralize.web.auth import new_token, token_required

        if token is None and token_required(host):
            token = new_token()
        super().__init__({"sample_rate": int(sample_rate), "engine_kwargs": dict(engine_kwargs or {}),
                          "host": host, "port": int(port), "token": token, "lead_s": float(lead_s),
                          "block_frames": int(block_frames), "client_queue_s": float(client_queue_s),
                          "title": str(title)},
                         start_timeout_s=start_timeout_s, max_pending=MAX_PENDING)
        self.linger_s = max(0.0, float(linger_s))
        self.url: str | None = None
        self.port: int | None = None
        self.token = token

    def start(self) -> str | None:
        """Start the child; return the page's URL (None, with a warning, if it cannot serve)."""
        super().start()
        if self.error is not None:
            warnings.warn(f"live page disabled: {self.error}", AudioUnavailableWarning, stacklevel=2)
            self.kill()
            return None
        self.url, self.port, self.token = self.info["url"], self.info["port"], self.info["token"]
        return self.url

    # -- forwarding (never blocks) -------------------------------------------------
    def send_events(self, events: list, score_t_s: float | None = None) -> None:
        """Events whose ``time_s`` is a wall-clock moment (see :mod:`auralize.sonify.live_clock`).

        ``score_t_s``: score time of the step they start (the page's clock).
        """
        if events:
            self.put(("events", list(events), score_t_s))

    def send_step(self, events: list, t_s: float, start_wall_s: float, step_s: float) -> None:
        """A step heard live: its events in score time (the step starts at ``t_s``, its slot
        is ``step_s`` score seconds) and the wall-clock moment its sound starts (see
        :meth:`~auralize.web.sources.LiveSource.feed_step`)."""
        self.put(("step", list(events), float(t_s), float(start_wall_s), float(step_s)))

    def send_record(self, record, t_s: float) -> None:
        self.put(("record", record, float(t_s)))

    # -- the end ---------------------------------------------------------------------
    def close(self, timeout_s: float = 10.0, linger_s: float | None = None) -> dict:
        """Stop the server (pages see the connection close); return its last numbers.

        ``linger_s`` overrides the constructor's (how long listening pages may
        still hear what is scheduled).
        """
        if self.url is None:
            return {}
        linger = self.linger_s if linger_s is None else max(0.0, float(linger_s))
        final = dict(super().close(timeout_s + linger, linger))
        final["parent_dropped"] = self.dropped
        final["url"] = self.url
        return final

    def __del__(self) -> None:
        if not self._closing:
            self.kill()
