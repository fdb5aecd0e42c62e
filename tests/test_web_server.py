"""The web server without a browser: safety, limits, slow clients, replay fidelity."""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from auralize import Sonifier
from auralize.audio.score import Event
from auralize.sonify.telemetry import TrainingStep
from auralize.web.auth import token_required
from auralize.web.clients import PCM_HEADER
from auralize.web.server import WebServer
from auralize.web.sources import LiveSource, ReplaySource

LAYERS = ["conv1", "conv2", "fc1", "fc2"]


def make_step(step: int) -> TrainingStep:
    return TrainingStep(step=step, epoch=step // 40, loss=2.0 * math.exp(-step / 50) + 0.3,
                        grad_norms={n: (i + 1) * 0.4 * math.exp(-step / 80) + 0.05
                                    for i, n in enumerate(LAYERS)})


def http_status(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def raw_request(port: int, target: str, host: str = "127.0.0.1", extra: str = "") -> bytes:
    """Send a request line exactly as given (no client-side path normalisation)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        host = host if ":" in host else f"{host}:{port}"
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}"
                  "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def ws_handshake(port: int, target: str, rcvbuf: int | None = None,
                 host: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect((host if host[0].isdigit() else "127.0.0.1", port))
    s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    return s, head


def load_replay(path: str):
    """``(score, duration_s, records, config)`` of a run folder or log, the whole score in
    memory (records carry ``t_s``): the :class:`ReplaySource` the streamed replay of
    ``auralize serve`` is held to, under the settings ``serve`` and ``render`` use."""
    from auralize.sonify.log_stream import open_log
    from auralize.sonify.rerender import render_config
    from auralize.sonify.timeline import Timeline, replay
    from auralize.web.records import compact_record

    log = open_log(path)
    config = render_config(log)
    records = list(log.records())
    score, duration_s = replay(records, config)
    timeline = Timeline(config)  # the same times replay() used, for the charts' playhead
    docs = [compact_record(r, timeline.advance(r)[1]) for r in records]
    return score, duration_s, docs, config


class InProcess:
    """A WebServer on a LiveSource in a thread of this process (no child to spawn: fast)."""

    def __init__(self, source=None, **kw) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.source = source or LiveSource(44100, {"master_gain": 0.5, "chunk_size": 512})
        self.server = WebServer(self.source, port=0, **kw)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        self.port, self.token, self.url = self.server.port, self.server.token, self.server.url

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def sink():
    made = []

    def make(**kw):
        w = InProcess(**kw)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


def test_token_rule():
    assert not token_required("127.0.0.1") and not token_required("localhost")
    assert token_required("0.0.0.0") and token_required("127.0.0.2")


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.2"])
def test_non_loopback_bind_needs_the_token(sink, host):
    if host == "127.0.0.2":
        try:
            socket.create_server(("127.0.0.2", 0)).close()
        except OSError:
            pytest.skip("cannot bind 127.0.0.2 here")
    w = sink(host=host)
    assert w.token and f"token={w.token}" in w.url
    addr = "127.0.0.1" if host == "0.0.0.0" else host
    base = f"http://{addr}:{w.port}"
    for path in ("/", "/static/app.js", "/static/worklet.js", "/api/state", "/ws"):
        assert http_status(base + path) == 403, path
        assert http_status(base + path + "?token=wrong") == 403, path
    assert http_status(f"{base}/?token={w.token}") == 200
    assert http_status(f"{base}/static/app.js", {"Authorization": f"Bearer {w.token}"}) == 200
    # the cookie set by the token URL lets the page load its scripts
    with urllib.request.urlopen(f"{base}/?token={w.token}", timeout=5) as r:
        cookie = r.headers["Set-Cookie"].split(";")[0]
        assert "HttpOnly" in r.headers["Set-Cookie"] and r.headers["Referrer-Policy"]
    assert http_status(f"{base}/static/style.css", {"Cookie": cookie}) == 200
    # the socket too
    s, head = ws_handshake(w.port, "/ws", host=addr)
    s.close()
    assert head.startswith(b"HTTP/1.1 403"), head
    s, head = ws_handshake(w.port, f"/ws?token={w.token}", host=addr)
    s.close()
    assert head.startswith(b"HTTP/1.1 101"), head


def test_loopback_guards_and_paths(sink):
    w = sink()
    assert w.token is None and w.url == f"http://127.0.0.1:{w.port}/"
    ok = raw_request(w.port, "/")
    assert ok.startswith(b"HTTP/1.1 200") and b"Content-Security-Policy" in ok
    # DNS rebinding: a foreign Host name is refused on a loopback bind
    assert raw_request(w.port, "/", host="evil.example").startswith(b"HTTP/1.1 403")
    assert raw_request(w.port, "/", host="evil.example:80").startswith(b"HTTP/1.1 403")
    # an SSH tunnel's other local port is fine (ssh -L 9000:127.0.0.1:PORT)
    for host in ("localhost:9000", "127.0.0.1:9000", "[::1]:9000"):
        assert raw_request(w.port, "/", host=host).startswith(b"HTTP/1.1 200"), host
    # a socket from another origin is refused
    assert raw_request(w.port, "/ws", extra="Origin: http://evil.example\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n").startswith(b"HTTP/1.1 403")
    for target in ("/static/../bridge.py", "/static/%2e%2e/server.py", "/../pyproject.toml",
                   "/static/..%2fserver.py", "/static/%2e%2e%2f%2e%2e%2fcli.py",
                   "/static/../../../../etc/passwd", "/static/", "/static/.hidden",
                   "/static/nothing.js", "/%2e%2e/%2e%2e/etc/passwd", "/server.py"):
        reply = raw_request(w.port, target)
        assert reply.startswith(b"HTTP/1.1 404"), (target, reply[:80])
        assert b"import" not in reply and b"root:" not in reply


def test_message_limits_and_validation(sink):
    w = sink()

    async def go():
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"http://127.0.0.1:{w.port}/ws") as ws:
                hello = json.loads((await ws.receive()).data)
                assert hello["type"] == "hello" and hello["sample_rate"] == 44100
                for bad, error in (({"type": "mix", "voice": "nope", "mute": True}, "unknown"),
                                   ({"type": "mix", "voice": 3}, "unknown"),
                                   ({"type": "transport", "action": "play"}, "replay"),
                                   ({"type": "zap"}, "unknown message")):
                    bad["id"] = 7
                    await ws.send_str(json.dumps(bad))
                    while True:
                        msg = json.loads((await ws.receive(timeout=5)).data)
                        if msg["type"] == "ack":
                            break
                    assert msg["ok"] is False and error in msg["error"] and msg["id"] == 7
                await ws.send_str("x" * 10000)  # over the 4 KiB limit: the socket is closed
                while True:
                    msg = await ws.receive(timeout=5)
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                    aiohttp.WSMsgType.CLOSING):
                        break
                assert ws.close_code == 1009

    asyncio.run(go())


def _cpu_seconds(pid: int):
    """A function giving process ``pid``'s CPU seconds so far (user + system, Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")

    def seconds() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime

    return seconds


def _step_times(son: Sonifier, n0: int, seconds: float, work: np.ndarray):
    """Run fake training steps; return (step times, times spent inside son.log)."""
    steps, logs = [], []
    end = time.perf_counter() + seconds
    step = n0
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(3):
            work = np.tanh(work @ work.T * 1e-3)  # a little "training"
        t1 = time.perf_counter()
        son.log(make_step(step))
        t2 = time.perf_counter()
        steps.append(t2 - t0)
        logs.append(t2 - t1)
        step += 1
        time.sleep(0.004)
    return np.array(steps), np.array(logs)


def test_stalled_client_loses_audio_but_never_slows_training(tmp_path):
    """Step times with and without a page that stops reading for 10 s.

    Training could be slowed two ways: ``log`` blocking on the page's pipe (judged
    on the ``log`` call itself), or the page's process working harder while a page
    stalls and taking CPU from training (judged on that process's CPU time per
    second).  The whole step's time is printed, not judged: on this shared 2-core
    machine the other sessions' load moves it by 20x (0.98 -> 18.9 ms measured in
    one run while ``log`` kept its median), whatever auralize does.
    """
    son = Sonifier(None, mappings=["loss", "gradients"], live=False, plot=False, web=True,
                   web_port=0, step_s=0.03)
    try:
        port = son._web.port
        page_cpu = _cpu_seconds(son._web._process.pid)
        work = np.random.default_rng(0).standard_normal((160, 160))
        _step_times(son, 0, 0.5, work)  # warm up
        cpu0, t0 = page_cpu(), time.perf_counter()
        before, log_before = _step_times(son, 1000, 2.5, work)
        cpu1, t1 = page_cpu(), time.perf_counter()
        # a page that subscribes to audio, then never reads again (tiny receive buffer)
        s, head = ws_handshake(port, "/ws?audio=1", rcvbuf=4096)
        assert head.startswith(b"HTTP/1.1 101")
        during, log_during = _step_times(son, 5000, 10.0, work)
        cpu2, t2 = page_cpu(), time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=5) as r:
            state = json.load(r)
        s.close()
        after, log_after = _step_times(son, 9000, 2.5, work)  # the machine's load drifts
    finally:
        son.close()
    stalled = [c for c in state["clients"] if c["audio"]]
    assert stalled and stalled[0]["dropped_blocks"] > 100, state["clients"]
    assert stalled[0]["queued_blocks"] <= 50  # bounded: about 1 s of audio
    med0 = max(np.median(before), np.median(after))
    med1 = np.median(during)
    log0 = max(np.median(log_before), np.median(log_after))
    log1 = np.median(log_during)
    share0, share1 = (cpu1 - cpu0) / (t1 - t0), (cpu2 - cpu1) / (t2 - t1)
    print(f"page process CPU {share0:.3f} -> {share1:.3f} of a core; "
          f"step time median {med0 * 1e3:.2f} -> {med1 * 1e3:.2f} ms, "
          f"max {max(before.max(), after.max()) * 1e3:.1f} -> {during.max() * 1e3:.1f} ms; "
          f"log() median {log0 * 1e6:.0f} -> {log1 * 1e6:.0f} us, "
          f"max {log_during.max() * 1e3:.1f} ms; "
          f"stalled client dropped {stalled[0]['dropped_blocks']} blocks")
    # A blocked send costs tens of ms or more; scheduler noise on a shared 2-core
    # VM moves the median of the log call by a few ms at most.
    assert log1 < log0 * 3 + 3e-3
    assert log_during.max() < 0.25
    # The stalled page makes its process no busier (it drops that page's blocks): within
    # 1.5x and 5 % of a core (its rendering's share drifts with the machine's load too).
    assert share1 < 1.5 * share0 + 0.05, (share0, share1)


def _make_run(folder: Path, steps: int = 60) -> None:
    with Sonifier(folder, mappings=["loss", "gradients", "alarm"], live=False, plot=False) as son:
        for i in range(steps):
            son.log(make_step(i))


@pytest.mark.parametrize("streamed", [False, True], ids=["score", "streamed"])
def test_serve_replays_exactly_the_engine_output(tmp_path, streamed):
    """Play, pause and seek give the offline render's samples (``streamed``: what
    ``auralize serve`` uses, events made from the log as it plays)."""
    from auralize.audio.score import iter_blocks
    from auralize.cli import main

    run = tmp_path / "run"
    _make_run(run)
    score, duration_s, docs, config = load_replay(str(run))
    offline = np.concatenate(list(iter_blocks(score.events, duration_s,
                                              sample_rate=score.sample_rate, block_size=4096,
                                              **config.engine_kwargs())))
    assert main(["serve", "--run", str(tmp_path / "missing")]) == 1
    if streamed:
        from auralize.web.replay_stream import load_streamed_replay

        source = load_streamed_replay(str(run))[0]
        assert source.duration_s == duration_s
    else:
        source = ReplaySource(score, duration_s, config.engine_kwargs(), docs)
    w = InProcess(source)
    try:
        url = w.url

        async def go():
            async with aiohttp.ClientSession() as session, \
                    session.ws_connect(url + "ws") as ws:
                    msgs = {"history": []}
                    packets = []

                    async def pump(seconds: float, want=None):
                        end = time.monotonic() + seconds
                        while time.monotonic() < end:
                            try:
                                msg = await ws.receive(timeout=end - time.monotonic())
                            except TimeoutError:
                                return
                            if msg.type == aiohttp.WSMsgType.BINARY:
                                _, seq, t, frames, _ = PCM_HEADER.unpack_from(msg.data)
                                channels = config.channels  # frames interleaved
                                pcm = np.frombuffer(msg.data, "<i2", frames * channels,
                                                    PCM_HEADER.size).reshape(frames, channels)
                                packets.append((seq, t, pcm.astype(np.float32) / 32767))
                            else:
                                doc = json.loads(msg.data)
                                if doc["type"] == "history":
                                    msgs["history"] += doc["records"]
                                else:
                                    msgs[doc["type"]] = doc
                                if want and doc["type"] == want:
                                    return

                    await pump(2.0, "hello")
                    assert msgs["hello"]["mode"] == "replay"
                    assert msgs["hello"]["channels"] == config.channels == 2  # stereo: the default
                    assert abs(msgs["hello"]["duration_s"] - duration_s) < 1e-9
                    await ws.send_str(json.dumps({"type": "audio", "on": True}))  # autoplays
                    await pump(1.2)
                    assert len(msgs["history"]) == 60 and msgs["history"][1]["t_s"] > 0
                    assert len(packets) >= 30
                    seqs = [p[0] for p in packets]
                    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
                    assert packets[0][1] == 0.0
                    got = np.concatenate([p[2] for p in packets])
                    assert np.max(np.abs(got - offline[:len(got)])) <= 1.01 / 32767
                    assert np.sqrt(np.mean(got ** 2)) > 1e-3
                    # pause: the stream stops
                    await ws.send_str(json.dumps({"type": "transport", "action": "pause"}))
                    n = -1
                    for _ in range(10):  # what was already on its way arrives...
                        if n == len(packets):
                            break
                        n = len(packets)
                        await pump(0.3)
                    await pump(0.5)  # ...then nothing more
                    assert len(packets) == n
                    # seek to 1.5 s and play: exact samples from there
                    packets.clear()
                    await ws.send_str(json.dumps({"type": "transport", "action": "seek",
                                                  "t_s": 1.5, "play": True}))
                    await pump(0.8)
                    assert msgs["transport"]["playing"] is True
                    t0 = packets[0][1]
                    assert abs(t0 - 1.5) < 1e-6, t0
                    got = np.concatenate([p[2] for p in packets])
                    start = round(t0 * score.sample_rate)
                    assert np.max(np.abs(got - offline[start:start + len(got)])) <= 1.01 / 32767

        asyncio.run(go())
    finally:
        w.close()


def test_live_source_places_wall_clock_events_at_the_frame_sent_then():
    """The page's engine puts an event at the frame its pacing sends at that moment."""
    src = LiveSource(44100, {"master_gain": 0.5, "chunk_size": 512}, lead_s=0.05)
    src.pace(100.0, 0)  # frame 0 is sent at wall time 100.0
    src.feed_at_wall([Event(100.0, "t", "add", {"kind": "sines", "freq_hz": [440.0], "amp": [0.0]}),
                      Event(100.5, "t", "amp", [0.3], 0.0)], score_t_s=7.0)
    audio = src.render(44100)
    onset = int(np.flatnonzero(np.abs(audio) > 0.01)[0])
    assert abs(onset - 22050) <= 2, onset
    assert src.score_time_s() == pytest.approx(7.0 + 1.0 - 0.0, abs=1e-6)
