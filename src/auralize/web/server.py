"""The web server: an engine rendered at wall-clock pace, streamed to browsers.

One :class:`WebServer` serves one source of sound (:mod:`auralize.web.sources`:
a live session or a finished run).  Every page gets, over one WebSocket: a
``hello`` (voices, mode, sample rate, channels), the telemetry history, then
``step`` records as they come, ``stats`` twice a second, ``mix``
acknowledgements, and binary PCM packets (:mod:`auralize.web.clients`).  Who
may connect is :mod:`auralize.web.auth`; static files are a fixed list read
from the package folder; requests and socket messages have size limits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import socket
import time
from pathlib import Path

import numpy as np
from aiohttp import WSMsgType, web

from auralize.web.auth import display_url, guard, new_token, token_required
from auralize.web.clients import Client, pcm_packet
from auralize.web.records import captions, compact_record, finite_or_none
from auralize.web.sources import LiveSource, ReplaySource, _Source

STATIC_DIR = Path(__file__).parent / "static"

MAX_CLIENT_MESSAGE = 4096  # bytes of one message from a page
MAX_REQUEST_BYTES = 16384  # HTTP request bodies (there are none to speak of)
MAX_CLIENTS = 32
SOCKET_SNDBUF = 65536  # bytes the kernel may hold for one page (~0.4 s of audio)
HISTORY_CHUNK = 500  # records per history message
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
                 ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon"}


class WebServer:
    """HTTP + WebSocket server around one sound source.

    Parameters
    ----------
    source : LiveSource or ReplaySource
        What to play.
    host : str
        Bind address (default loopback).  Any other requires ``token``.
    port : int
        TCP port; 0 picks a free one.
    token : str, optional
        Required when ``host`` is not loopback; generated when missing.
    block_frames : int
        Frames per PCM packet (1024 = 23 ms at 44.1 kHz).
    client_queue_s : float
        Audio one page may have waiting; beyond it its oldest blocks are dropped.
    lead_s : float
        How far ahead of the wall clock packets are sent.
    prefill_s : float
        Recent audio a page gets at once when it starts listening, so that its
        jitter buffer starts full instead of filling at real-time pace.
    title : str
        Shown on the page.
    """

    def __init__(self, source: _Source, *, host: str = "127.0.0.1", port: int = 8765,
                 token: str | None = None, block_frames: int = 1024,
                 client_queue_s: float = 1.0, lead_s: float = 0.05, prefill_s: float = 0.5,
                 title: str = "") -> None:
        self.source = source
        self.host = host
        self.port = int(port)
        self.token = token or (new_token() if token_required(host) else None)
        self.block_frames = int(block_frames)
        self.client_queue_blocks = max(2, int(client_queue_s * source.sample_rate / block_frames))
        self.lead_s = float(lead_s)
        self.title = title
        self.clients: dict[int, Client] = {}
        self.seq = 0
        self.recent: collections.deque = collections.deque(
            maxlen=max(1, math.ceil(prefill_s * source.sample_rate / block_frames)))
        self.dropped_total = 0
        self.steps = 0
        self.finished = False
        self.level_rms = 0.0
        self._runner = None
        self._pump_task = None
        self._stats_task = None
        self._stop = None
        self._busy = False  # a seek is catching up
        self._pace_t0 = 0.0
        self._pace_frames = 0
        self.static_files = {p.name: p for p in STATIC_DIR.iterdir()
                             if p.is_file() and not p.name.startswith(".")}

    # -- lifecycle --------------------------------------------------------------
    @property
    def url(self) -> str:
        return display_url(self.host, self.port, self.token)

    async def start(self) -> str:
        app = web.Application(middlewares=[guard(self.token)], client_max_size=MAX_REQUEST_BYTES)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/ws", self._socket)
        app.router.add_get("/api/state", self._state)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            if self.port == 0:
                raise
            site = web.TCPSite(self._runner, self.host, 0, reuse_address=True)
            await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._stop = asyncio.Event()
        self._pace_reset()
        self._pump_task = asyncio.create_task(self._pump())
        self._stats_task = asyncio.create_task(self._stats_loop())
        return self.url

    async def stop(self) -> None:
        for task in (self._pump_task, self._stats_task):
            if task is not None:
                task.cancel()
        for client in list(self.clients.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.ws.close(), 1.0)
        if self._runner is not None:
            await self._runner.cleanup()

    # -- HTTP ------------------------------------------------------------------------
    async def _index(self, request):
        return self._file("index.html")

    async def _static(self, request):
        return self._file(request.match_info.get("name", ""))

    def _file(self, name: str):
        path = self.static_files.get(name)
        if path is None:
            raise web.HTTPNotFound(text="not found\n")
        return web.Response(body=path.read_bytes(),
                            content_type=CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
                            charset="utf-8" if path.suffix in (".html", ".js", ".css") else None)

    async def _state(self, request):
        return web.json_response(self.state())

    def state(self) -> dict:
        src = self.source
        doc = {"mode": src.mode, "sample_rate": src.sample_rate,
               "channels": src.engine.channels, "steps": self.steps,
               "seq": self.seq, "engine_time_s": src.engine.time_s,
               "score_time_s": src.score_time_s(), "playing": src.playing,
               "finished": self.finished, "mix": src.mixer.state(),
               "clients": [c.info() for c in self.clients.values()],
               "dropped_blocks_total": self.dropped_total + sum(
                   c.dropped_blocks for c in self.clients.values()),
               "level_rms": self.level_rms, "engine_stats": src.engine.stats.as_dict()}
        if isinstance(src, ReplaySource):
            doc["duration_s"] = src.duration_s
        if isinstance(src, LiveSource):
            doc["backlog_s"] = src.backlog_s()
        return doc

    # -- WebSocket -------------------------------------------------------------------
    async def _socket(self, request):
        if len(self.clients) >= MAX_CLIENTS:
            raise web.HTTPServiceUnavailable(text="auralize: too many pages are open\n")
        ws = web.WebSocketResponse(max_msg_size=MAX_CLIENT_MESSAGE, compress=False,
                                   heartbeat=30.0)
        await ws.prepare(request)
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:  # little kernel buffering: the bounded queue decides what is lost
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SNDBUF)
        client = Client(ws, self.client_queue_blocks, request.remote or "",
                        audio=request.query.get("audio") == "1")
        self.clients[client.id] = client
        sender = asyncio.create_task(client.run_sender())
        try:
            client.push_text(json.dumps(self._hello(client)))
            self._send_history(client)
            for packet in self.recent:  # the page's jitter buffer starts full
                client.push_audio(packet)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_message(client, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
                # binary messages from pages are ignored
        finally:
            self.dropped_total += client.dropped_blocks
            self.clients.pop(client.id, None)
            sender.cancel()
        return ws

    def _hello(self, client: Client) -> dict:
        src = self.source
        doc = {"type": "hello", "client": client.id, "mode": src.mode, "title": self.title,
               "sample_rate": src.sample_rate, "channels": src.engine.channels,
               "block_frames": self.block_frames, "mix": src.mixer.state(), "playing": src.playing,
               "score_time_s": src.score_time_s(), "finished": self.finished,
               "queue_blocks": self.client_queue_blocks}
        if isinstance(src, ReplaySource):
            doc["duration_s"] = src.duration_s
        return doc

    def _send_history(self, client: Client) -> None:
        records = list(self.source.records)
        for i in range(0, len(records), HISTORY_CHUNK):
            client.push_text(json.dumps({"type": "history",
                                         "records": records[i:i + HISTORY_CHUNK]}))
        if isinstance(self.source, ReplaySource):  # a replay's announcements, by time
            client.push_text(json.dumps({"type": "captions",
                                         "captions": captions(self.source.events)}))

    def _on_message(self, client: Client, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            client.push_text(json.dumps({"type": "error", "error": "not JSON"}))
            return
        if not isinstance(msg, dict):
            return
        kind = msg.get("type")
        reply = {"type": "ack", "id": msg.get("id") if isinstance(msg.get("id"), int) else None,
                 "of": kind if isinstance(kind, str) else None}
        if kind == "mix":
            error = self.source.mixer.update(msg)
            if error is None:
                self.source.apply_mix()
                self.broadcast_text({"type": "mix", "mix": self.source.mixer.state()})
        elif kind == "audio":
            client.audio_on = bool(msg.get("on", True))
            client.audio.clear()
            for packet in self.recent:  # the page's jitter buffer starts full
                client.push_audio(packet)
            error = None
            src = self.source
            if client.audio_on and isinstance(src, ReplaySource) and not src.ever_played:
                src.set_playing(True)  # the first listener starts the replay
                self._pace_reset()
                self._broadcast_transport()
        elif kind == "transport":
            error = self._transport(msg)
        elif kind == "ping":
            error = None
            reply["t"] = msg.get("t") if isinstance(msg.get("t"), (int, float)) else None
        else:
            error = f"unknown message type {kind!r}"
        reply["ok"] = error is None
        if error is not None:
            reply["error"] = error
        client.push_text(json.dumps(reply))

    def _transport(self, msg: dict) -> str | None:
        src = self.source
        if not isinstance(src, ReplaySource):
            return "play/pause/seek only in replay mode"
        action = msg.get("action")
        if action in ("play", "pause"):
            if action == "play" and src.engine.time_s >= src.duration_s:
                self._start_seek(0.0, play=True)
                return None
            src.set_playing(action == "play")
            self._pace_reset()
            self._broadcast_transport()
            return None
        if action == "seek":
            t = finite_or_none(msg.get("t_s"))
            if t is None:
                return "seek needs t_s"
            self._start_seek(t, play=msg.get("play", src.playing) is True)
            return None
        return f"unknown transport action {action!r}"

    def _start_seek(self, t_s: float, play: bool) -> None:
        src = self.source
        self._busy = True

        async def seek() -> None:
            try:
                engine = await asyncio.get_running_loop().run_in_executor(
                    None, src.seek_engine, t_s)
                src.engine = engine
                src.set_playing(play)
                self._pace_reset()
                self.recent.clear()
                self.broadcast_text({"type": "flush"})
                self._broadcast_transport()
            finally:
                self._busy = False

        asyncio.get_running_loop().create_task(seek())

    def _broadcast_transport(self) -> None:
        src = self.source
        self.broadcast_text({"type": "transport", "playing": src.playing,
                             "score_time_s": src.score_time_s(),
                             "duration_s": getattr(src, "duration_s", None)})

    # -- streaming ---------------------------------------------------------------------
    def broadcast_text(self, doc: dict) -> None:
        text = json.dumps(doc)
        for client in list(self.clients.values()):
            client.push_text(text)

    def add_record(self, record, t_s: float) -> None:
        doc = compact_record(record, t_s)
        self.source.records.append(doc)
        self.steps += 1
        self.broadcast_text({"type": "step", "record": doc})

    def add_events(self, events, score_t_s: float | None = None) -> None:
        """Events placed in wall-clock time by the session's live clock."""
        self._fed(events, self.source.feed_at_wall(events, score_t_s), self.source.wall_to_score_s)

    def add_step(self, events, t_s: float, start_wall_s: float, step_s: float) -> None:
        """A step heard live, in score time, starting at wall-clock ``start_wall_s``."""
        self._fed(events, self.source.feed_step(events, t_s, start_wall_s, step_s),
                  lambda caption_t_s: t_s if caption_t_s is None else caption_t_s)

    def _fed(self, events, new_voices: list, score_s) -> None:
        if new_voices:
            self.broadcast_text({"type": "mix", "mix": self.source.mixer.state()})
        for caption in captions(events):  # the page's live region says them too, when heard
            caption["t_s"] = score_s(caption["t_s"])
            self.broadcast_text({"type": "announce", **caption})

    def _pace_reset(self) -> None:
        self._pace_t0 = time.perf_counter()
        self._pace_frames = 0
        if isinstance(self.source, LiveSource):  # frame f is sent at t0 + (f - f0)/sr - lead
            self.source.pace(self._pace_t0 - self.lead_s, self.source.engine.frames_rendered)

    async def _pump(self) -> None:
        """Render and send blocks as the wall clock (plus ``lead_s``) asks for them."""
        sr = self.source.sample_rate
        n = self.block_frames
        while True:
            src = self.source
            # a replay has no "now" to keep up with: run ahead, so pages start with a
            # full jitter buffer (live sound stays close to training)
            lead = int((max(self.lead_s, 0.5) if isinstance(src, ReplaySource)
                        else self.lead_s) * sr)
            if src.playing and not self._busy:
                due = int((time.perf_counter() - self._pace_t0) * sr) + lead
                if due - self._pace_frames > 3 * sr:  # stalled for long: skip, do not burst
                    self._pace_reset()
                    due = lead
                while self._pace_frames + n <= due and src.playing and not self._busy:
                    t_s = src.score_time_s()
                    block = src.render(n)
                    self._pace_frames += n
                    self._send_block(block, t_s)
                if isinstance(src, ReplaySource) and not src.playing:
                    self._broadcast_transport()  # reached the end
            else:
                self._pace_reset()
            await asyncio.sleep(0.01)

    def _send_block(self, block: np.ndarray, t_s: float) -> None:
        self.level_rms = float(np.sqrt(np.mean(np.square(block, dtype=np.float64))))
        packet = pcm_packet(block, self.seq, t_s, self.source.sample_rate)
        self.seq += 1
        self.recent.append(packet)
        for client in self.clients.values():
            client.push_audio(packet)

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            src = self.source
            base = {"type": "stats", "steps": self.steps, "seq": self.seq,
                    "score_time_s": src.score_time_s(), "playing": src.playing,
                    "clients": len(self.clients), "level_rms": self.level_rms,
                    "finished": self.finished}
            if isinstance(src, LiveSource):
                base["backlog_s"] = src.backlog_s()
            for client in list(self.clients.values()):
                doc = dict(base, dropped_blocks=client.dropped_blocks,
                           queued_blocks=len(client.audio), dropped_text=client.dropped_text)
                client.push_text(json.dumps(doc))


async def serve_forever(server: WebServer, stop: asyncio.Event | None = None) -> None:
    """Start ``server`` and run until ``stop`` is set (or forever)."""
    await server.start()
    try:
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await server.stop()
