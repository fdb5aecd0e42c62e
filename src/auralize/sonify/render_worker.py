"""The recording's worker process: renders a session's events into its WAV.

It only ever renders up to the timeline's frontier (on the engine's chunk
grid), so an event at the frontier always arrives before its frame is
synthesised: the file equals an offline render of the same events
(``auralize render`` of the run folder), bit for bit.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from auralize.audio.engine import Engine
from auralize.audio.processes import QueuedSender, start_worker
from auralize.audio.sinks import FileSink
from auralize.sonify.timeline import SonifyConfig


def _render_main(config: dict, path: str, inbox, outbox) -> None:
    """Child process: render queued events up to each frontier into ``path``."""
    cfg = SonifyConfig.from_dict(config)
    engine = Engine(int(cfg.sample_rate), **cfg.engine_kwargs())
    sink = FileSink(path, int(cfg.sample_rate))
    chunk, sr = engine.chunk_size, engine.sample_rate

    def render_to(frame: int) -> None:
        while engine.frames_rendered < frame:
            sink.write(engine.render(min(frame - engine.frames_rendered, 16384)))

    try:
        final = False
        while not final:
            _, items = inbox.recv()  # ("batch", [(events, frontier_s, final), ...])
            for events, _, _ in items:
                for event in events:
                    engine.schedule(event)
            _, frontier_s, final = items[-1]  # the newest frontier holds for all of them
            if final:
                render_to(int(round(frontier_s * sr)))
            else:
                render_to(int(frontier_s * sr) // chunk * chunk)
        sink.close()
        outbox.send(("done", engine.stats.as_dict()))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        sink.close()
        outbox.send(("error", f"{type(exc).__name__}: {exc}"))


class RenderWorker:
    """Parent side of the renderer (spawned: no shared GIL with training).

    Messages go through a :class:`~auralize.audio.processes.QueuedSender`, so a
    renderer that falls behind makes a queue grow instead of blocking the
    training loop on a full pipe.
    """

    def __init__(self, config: SonifyConfig, path: Path) -> None:
        self.config = config
        self.path = Path(path)
        self.error: str | None = None
        self.stats: dict = {}
        self._finished = False

    def start(self) -> RenderWorker:
        inbox_recv, inbox = mp.Pipe(duplex=False)
        self._outbox, outbox_send = mp.Pipe(duplex=False)
        self.process = start_worker(
            _render_main, (self.config.to_dict(), str(self.path), inbox_recv, outbox_send),
            name="auralize-renderer",
        )
        inbox_recv.close()
        outbox_send.close()
        self._sender = QueuedSender(inbox, name="auralize-render-send")
        return self

    def send_step(self, events: list, frontier_s: float, final: bool = False) -> None:
        self._sender.put((events, frontier_s, final))

    def _receive(self) -> None:
        try:
            kind, payload = self._outbox.recv()
        except (EOFError, OSError):
            self.error = self.error or "the renderer process has exited"
            return
        if kind == "error":
            self.error = payload
        else:
            self.stats = payload

    def poll_error(self) -> str | None:
        if self.error is None and not self._finished and self._outbox.poll():
            self._receive()
        return self.error

    def finish(self, end_s: float, timeout_s: float = 600.0) -> dict:
        self.send_step([], end_s, final=True)
        self._sender.close(timeout_s)
        self.error = self.error or self._sender.error
        if self.error is None:
            if self._outbox.poll(timeout_s):
                self._receive()
            else:
                self.error = f"the renderer did not finish in {timeout_s:.0f} s"
        if self.error is not None:
            self.process.kill()
        self.process.join(10)
        self._finished = True
        return self.stats
