"""The web server: an engine rendered at wall-clock pace, streamed to browsers.

One :class:`WebServer` serves one source of sound:

- :class:`LiveSource`: engine events forwarded from a training process (a
  :class:`~auralize.web.bridge.WebSink` in the parent), applied with a fixed
  offset like :class:`~auralize.audio.live.LiveOutput` does;
- :class:`ReplaySource`: a finished run's score (:func:`auralize.sonify.timeline.replay`)
  with play, pause and seek.

Every page gets, over one WebSocket: a ``hello`` (voices, mode, sample rate),
the telemetry history, then ``step`` records as they come, ``stats`` twice a
second, ``mix`` acknowledgements, and binary PCM packets (``PCM_HEADER`` +
int16 samples, frames interleaved: ``hello``'s ``channels`` per frame).  Each
page has its own bounded queue: when it does not read, its oldest audio blocks
are dropped and counted; nothing else waits.

Safety: a bind to anything but 127.0.0.1/localhost/::1 requires a token on every
HTTP request and socket (query ``?token=``, then a same-site cookie); loopback
binds only answer requests naming a loopback Host (no DNS rebinding); sockets
from another Origin are refused; static files are a fixed list read from the
package folder; requests and socket messages have size limits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import json
import logging
import math
import re
import secrets
import socket
import struct
import time
from pathlib import Path

import numpy as np
from aiohttp import WSMsgType, web

from auralize.audio.engine import Engine
from auralize.audio.frame_clock import FrameClock
from auralize.audio.score import Event
from auralize.web.history import ChartHistory

log = logging.getLogger("auralize")

STATIC_DIR = Path(__file__).parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
COOKIE = "auralize_token"

#: binary packet header: magic, sequence number, score time of the first
#: sample (s), frames, sample rate; then ``frames`` int16 samples
PCM_HEADER = struct.Struct("<4sIdII")
PCM_MAGIC = b"AUPC"

MAX_CLIENT_MESSAGE = 4096  # bytes of one message from a page
MAX_REQUEST_BYTES = 16384  # HTTP request bodies (there are none to speak of)
MAX_CLIENTS = 32
SOCKET_SNDBUF = 65536  # bytes the kernel may hold for one page (~0.4 s of audio)
MAX_TEXT_QUEUE = 2000  # JSON messages waiting for one page
HISTORY_CHUNK = 500  # records per history message
MAX_HISTORY = 200_000  # records kept for pages that connect later
MIX_GLIDE_S = 0.02  # mute/solo/gain changes glide (no clicks)
MAX_VOICE_GAIN = 2.0
VOICE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def token_required(host: str) -> bool:
    """Whether a bind address needs a token (everything except 127.0.0.1, localhost, ::1)."""
    return host not in LOOPBACK_HOSTS


def new_token() -> str:
    return secrets.token_urlsafe(18)


def display_url(host: str, port: int, token: str | None) -> str:
    """The URL a person should open for a server bound to ``host:port``."""
    shown = host
    if host in ("0.0.0.0", "::", ""):
        shown = socket.gethostname() or "localhost"
    if ":" in shown:
        shown = f"[{shown}]"
    url = f"http://{shown}:{port}/"
    return url + (f"?token={token}" if token else "")


def _finite(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def compact_record(record, t_s: float) -> dict:
    """What the page needs of a TrainingStep (or its dict): JSON-safe, no NaN."""
    get = record.get if isinstance(record, dict) else (lambda k, d=None: getattr(record, k, d))
    loss_raw = get("loss")
    loss = _finite(loss_raw)
    grads = {}
    for name, v in (get("grad_norms") or {}).items():
        grads[str(name)] = _finite(v)
    metrics = {}
    for name, v in (get("metrics") or {}).items():
        f = _finite(v)
        if f is not None:
            metrics[str(name)] = f
    doc = {"step": int(get("step") or 0), "epoch": int(get("epoch") or 0),
           "t_s": round(float(t_s), 6), "loss": loss, "grad_norms": grads,
           "metrics": metrics, "lr": _finite(get("lr")), "epoch_end": bool(get("epoch_end"))}
    if loss_raw is not None and loss is None:
        doc["nonfinite"] = True
    return doc


def captions(events) -> list[dict]:
    """``{"t_s", "text"}`` of events that speak or sound an announcement (speech, earcons)."""
    return [{"t_s": e.time_s, "text": str(e.value["text"])} for e in events
            if e.param == "play" and isinstance(e.value, dict) and e.value.get("text")]


class Mixer:
    """Per-voice mute / solo / gain, turned into ``gain`` events (gliding: no clicks)."""

    def __init__(self) -> None:
        self.voices: dict[str, dict] = {}

    def add(self, name: str) -> bool:
        if name in self.voices or name == "master":
            return False
        self.voices[name] = {"mute": False, "solo": False, "gain": 1.0}
        return True

    def gain_of(self, name: str) -> float:
        v = self.voices[name]
        soloing = any(x["solo"] for x in self.voices.values())
        if v["mute"] or (soloing and not v["solo"]):
            return 0.0
        return float(v["gain"])

    def events(self, time_s: float | None, names=None, glide_s: float = MIX_GLIDE_S) -> list:
        names = list(self.voices) if names is None else names
        return [Event(time_s, n, "gain", self.gain_of(n), glide_s) for n in names]

    def update(self, msg: dict) -> str | None:
        """Apply a page's ``mix`` message; return an error text or None."""
        name = msg.get("voice")
        if not isinstance(name, str) or name not in self.voices:
            return f"unknown voice {name!r}"
        v = self.voices[name]
        for key in ("mute", "solo"):
            if key in msg:
                if not isinstance(msg[key], bool):
                    return f"{key} must be true or false"
                v[key] = msg[key]
        if "gain" in msg:
            g = _finite(msg["gain"])
            if g is None or not 0.0 <= g <= MAX_VOICE_GAIN:
                return f"gain must be a number in [0, {MAX_VOICE_GAIN}]"
            v["gain"] = g
        return None

    def state(self) -> dict:
        return {n: dict(v, effective_gain=self.gain_of(n)) for n, v in self.voices.items()}


class _Source:
    """An engine plus the mixer; subclasses say where events come from."""

    mode = "live"

    def __init__(self, sample_rate: int, engine_kwargs: dict) -> None:
        self.sample_rate = int(sample_rate)
        self.engine_kwargs = dict(engine_kwargs)
        self.engine = Engine(self.sample_rate, **self.engine_kwargs)
        self.mixer = Mixer()
        self.offset_s = 0.0  # engine time = score time + offset
        self.records = ChartHistory()  # decimated: a fixed size for a run of any length

    @property
    def playing(self) -> bool:
        return True

    def schedule(self, events, offset_s: float) -> list[str]:
        """Schedule score events at score time + offset; return voices that appeared."""
        new = []
        for ev in events:
            t = None if ev.time_s is None else ev.time_s + offset_s
            self.engine.schedule(Event(t, ev.voice, ev.param, ev.value, ev.glide_s))
            if ev.param == "add":
                if self.mixer.add(ev.voice):
                    new.append(ev.voice)
                # the voice is (re)created at t: its mix follows it, same frame, after it
                for mix_ev in self.mixer.events(t, [ev.voice], glide_s=0.0):
                    self.engine.schedule(mix_ev)
        return new

    def apply_mix(self) -> None:
        for ev in self.mixer.events(None):
            self.engine.schedule(ev)

    def score_time_s(self) -> float:
        return self.engine.time_s - self.offset_s

    def render(self, frames: int) -> np.ndarray:
        return self.engine.render(frames)


class LiveSource(_Source):
    """Events forwarded from training, already placed in wall-clock time.

    The session's :class:`~auralize.sonify.live_clock.LiveClock` decides when
    each step plays (the same decision the speaker gets); this source puts an
    event at the frame it sends at that moment (``time.perf_counter()``
    seconds), through a :class:`~auralize.audio.frame_clock.FrameClock` that
    the server's pacing keeps current.
    """

    mode = "live"

    def __init__(self, sample_rate: int, engine_kwargs: dict, lead_s: float = 0.1) -> None:
        super().__init__(sample_rate, engine_kwargs)
        self.lead_s = float(lead_s)
        self.frame_clock = FrameClock(self.sample_rate)
        self.started = False
        self.last_event_s = 0.0  # engine time of the latest event placed
        self._steps: collections.deque = collections.deque(maxlen=MAX_HISTORY)  # (engine s, score s)

    def pace(self, wall_s: float, frame: int) -> None:
        """The server sends frame ``frame`` at ``wall_s`` (its pacing restarted)."""
        self.frame_clock = FrameClock(self.sample_rate)
        self.frame_clock.observe(wall_s, frame)

    def feed_at_wall(self, events, score_t_s: float | None = None) -> list[str]:
        """Schedule events whose ``time_s`` is a wall-clock moment; return new voices.

        ``score_t_s``: the score time of the step these events start (for the
        page's clock display).
        """
        placed = []
        for ev in events:
            t = None if ev.time_s is None else self.frame_clock.engine_time_s(ev.time_s)
            placed.append(Event(t, ev.voice, ev.param, ev.value, ev.glide_s))
        times = [ev.time_s for ev in placed if ev.time_s is not None]
        if times:
            self.last_event_s = max(self.last_event_s, max(times))
            if score_t_s is not None:
                self._steps.append((min(times), float(score_t_s)))
        self.started = True
        return self.schedule(placed, 0.0)

    def score_time_s(self) -> float:
        """Score time now playing: the latest step started, plus the time since it started."""
        now = self.engine.time_s
        while len(self._steps) > 1 and self._steps[1][0] <= now:
            self._steps.popleft()
        return self.score_time_at(now)

    def score_time_at(self, engine_s: float) -> float:
        """Score time of engine time ``engine_s``: its step's score time plus the time since."""
        for step_engine_s, step_score_s in reversed(self._steps):
            if step_engine_s <= engine_s:
                return step_score_s + (engine_s - step_engine_s)
        if not self._steps:
            return 0.0
        step_engine_s, step_score_s = self._steps[0]
        return max(0.0, step_score_s - (step_engine_s - engine_s))

    def wall_to_score_s(self, wall_s: float) -> float | None:
        """Score time heard at wall-clock moment ``wall_s`` (None before the pacing started)."""
        engine_s = self.frame_clock.engine_time_s(wall_s)
        return None if engine_s is None else self.score_time_at(engine_s)

    def backlog_s(self) -> float:
        """Seconds of sound already scheduled but not yet played (at most the clock's lag)."""
        return max(0.0, self.last_event_s - self.engine.time_s) if self.started else 0.0


class ReplaySource(_Source):
    """A finished run's score with play / pause / seek.

    A seek builds a fresh engine with every event, skips synthesis up to a
    pre-roll and renders that: the samples match a render from the start to
    float rounding (the replay-seek figures are in BENCHMARKS.md).
    """

    mode = "replay"

    def __init__(self, score, duration_s: float, engine_kwargs: dict, records: list) -> None:
        super().__init__(int(score.sample_rate), engine_kwargs)
        self.events = list(score.events)
        self.duration_s = float(duration_s)
        self._playing = False
        self.ever_played = False
        self.records.extend(records)
        self.schedule(self.events, 0.0)

    @property
    def playing(self) -> bool:
        return self._playing and self.engine.time_s < self.duration_s

    def set_playing(self, playing: bool) -> None:
        self._playing = bool(playing) and self.engine.time_s < self.duration_s
        self.ever_played = self.ever_played or self._playing

    def seek_engine(self, t_s: float) -> Engine:
        """A new engine holding every event, rendered (and discarded) up to ``t_s``."""
        t_s = min(max(0.0, float(t_s)), self.duration_s)
        engine = Engine(self.sample_rate, **self.engine_kwargs)
        old, self.engine = self.engine, engine
        try:
            self.schedule(self.events, 0.0)
        finally:
            self.engine = old
        target = round(t_s * self.sample_rate)
        # Skip synthesis up to a pre-roll, then render it: the limiter (the only
        # state that depends on the samples) settles within its release time.
        preroll_s = max(1.0, 4.0 * engine.limiter_release_s)
        engine.skip(max(0, target - round(preroll_s * self.sample_rate)))
        while engine.frames_rendered < target:
            engine.render(min(65536, target - engine.frames_rendered))
        for ev in self.mixer.events(None, glide_s=0.0):
            engine.schedule(ev)
        return engine


class Client:
    """One page: a bounded audio queue (oldest dropped and counted) and a text queue."""

    _ids = iter(range(1, 1 << 62))

    def __init__(self, ws, max_audio_blocks: int, peer: str, audio: bool) -> None:
        self.id = next(self._ids)
        self.ws = ws
        self.peer = peer
        self.audio_on = audio
        self.max_audio = max(1, int(max_audio_blocks))
        self.audio: collections.deque = collections.deque()
        self.text: collections.deque = collections.deque()
        self.wake = asyncio.Event()
        self.dropped_blocks = 0
        self.dropped_text = 0
        self.sent_blocks = 0
        self.connected_at = time.time()

    def push_audio(self, packet: bytes) -> None:
        if not self.audio_on:
            return
        if len(self.audio) >= self.max_audio:
            self.audio.popleft()
            self.dropped_blocks += 1
        self.audio.append(packet)
        self.wake.set()

    def push_text(self, text: str) -> None:
        if len(self.text) >= MAX_TEXT_QUEUE:
            self.text.popleft()
            self.dropped_text += 1
        self.text.append(text)
        self.wake.set()

    def info(self) -> dict:
        return {"id": self.id, "peer": self.peer, "audio": self.audio_on,
                "queued_blocks": len(self.audio), "dropped_blocks": self.dropped_blocks,
                "dropped_text": self.dropped_text, "sent_blocks": self.sent_blocks}

    async def run_sender(self) -> None:
        ws = self.ws
        try:
            while not ws.closed:
                await self.wake.wait()
                self.wake.clear()
                while (self.text or self.audio) and not ws.closed:
                    if self.text:
                        await ws.send_str(self.text.popleft())
                    else:
                        await ws.send_bytes(self.audio.popleft())
                        self.sent_blocks += 1
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass


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
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_REQUEST_BYTES)
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

    # -- security ------------------------------------------------------------------
    @staticmethod
    def _loopback_host(host: str) -> bool:
        """Whether a Host header names this machine's loopback (any port: SSH tunnels)."""
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if host.startswith("["):
            name = host[1:host.index("]")] if "]" in host else host
        return name in ("127.0.0.1", "localhost", "::1")

    def _token_ok(self, request) -> tuple[bool, bool]:
        """(authorised, came in the query)."""
        if self.token is None:
            return True, False
        given = request.query.get("token")
        if given is not None:
            return hmac.compare_digest(given.encode(), self.token.encode()), True
        cookie = request.cookies.get(COOKIE)
        if cookie is not None:
            return hmac.compare_digest(cookie.encode(), self.token.encode()), False
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return hmac.compare_digest(auth[7:].encode(), self.token.encode()), False
        return False, False

    @web.middleware
    async def _guard(self, request, handler):
        ok, in_query = self._token_ok(request)
        if not ok:
            raise web.HTTPForbidden(text="auralize: a valid token is required\n")
        if self.token is None and not self._loopback_host(request.host or ""):
            raise web.HTTPForbidden(text="auralize: unexpected Host header\n")
        origin = request.headers.get("Origin")
        if (origin is not None and request.path == "/ws"
                and origin.split("://", 1)[-1] != request.host):
            raise web.HTTPForbidden(text="auralize: cross-origin socket refused\n")
        response = await handler(request)
        if not response.prepared:
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            response.headers.setdefault("Cache-Control", "no-store")
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
                "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
            )
            if in_query and self.token is not None:
                response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict",
                                    path="/")
        return response

    # -- HTTP ------------------------------------------------------------------------
    async def _index(self, request):
        return self._file("index.html")

    async def _static(self, request):
        return self._file(request.match_info.get("name", ""))

    def _file(self, name: str):
        path = self.static_files.get(name)
        if path is None:
            raise web.HTTPNotFound(text="not found\n")
        types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
                 ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon"}
        return web.Response(body=path.read_bytes(),
                            content_type=types.get(path.suffix, "application/octet-stream"),
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
            self._prefill(client)
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

    def _prefill(self, client: Client) -> None:
        for packet in self.recent:
            client.push_audio(packet)

    def _hello(self, client: Client) -> dict:
        src = self.source
        doc = {"type": "hello", "client": client.id, "mode": src.mode, "title": self.title,
               "sample_rate": src.sample_rate, "channels": src.engine.channels,
               "block_frames": self.block_frames,
               "mix": src.mixer.state(), "playing": src.playing,
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
            self._prefill(client)
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
            t = _finite(msg.get("t_s"))
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
        new = self.source.feed_at_wall(events, score_t_s)
        if new:
            self.broadcast_text({"type": "mix", "mix": self.source.mixer.state()})
        for caption in captions(events):  # the page's live region says them too, when heard
            caption["t_s"] = self.source.wall_to_score_s(caption["t_s"])
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
        pcm = np.clip(np.round(block * 32767.0), -32767, 32767).astype("<i2")
        packet = PCM_HEADER.pack(PCM_MAGIC, self.seq & 0xFFFFFFFF, float(t_s), len(block),
                                 self.source.sample_rate) + pcm.tobytes()
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
