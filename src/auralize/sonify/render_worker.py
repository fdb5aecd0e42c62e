"""The recording's worker process: renders a session's events into its WAV.

It only ever renders up to the timeline's frontier (on the engine's chunk
grid), so an event at the frontier always arrives before its frame is
synthesised: the file equals an offline render of the same events
(``auralize render`` of the run folder), bit for bit.
"""

from __future__ import annotations

import collections
from pathlib import Path

from auralize.audio.worker import Worker, WorkerChild
from auralize.sonify.timeline import SonifyConfig


class RenderWorker(Worker):
    """Parent side: ``send_step`` never blocks; a renderer that falls behind makes a queue grow."""

    child = "auralize.sonify.render_worker:RenderChild"
    process_name = "auralize-renderer"

    def __init__(self, config: SonifyConfig, path: Path) -> None:
        super().__init__({"config": config.to_dict(), "path": str(path)})

    def send_step(self, events: list, frontier_s: float, final: bool = False) -> None:
        self.put((events, frontier_s, final))

    def finish(self, end_s: float, timeout_s: float = 600.0) -> dict:
        """Render up to ``end_s`` (score seconds), close the file; return the engine's statistics."""
        self.send_step([], end_s, final=True)
        return self.close(timeout_s)


class RenderChild(WorkerChild):
    def setup(self) -> dict:
        from auralize.audio.engine import Engine
        from auralize.audio.sinks import FileSink

        cfg = SonifyConfig.from_dict(self.cfg["config"])
        self.engine = Engine(int(cfg.sample_rate), **cfg.engine_kwargs())
        self.sink = FileSink(self.cfg["path"], int(cfg.sample_rate))
        self.items: collections.deque = collections.deque()
        return {}

    def receive(self, items: list) -> None:
        self.items.extend(items)

    def _render_to(self, frame: int) -> None:
        while self.engine.frames_rendered < frame:
            self.sink.write(self.engine.render(min(frame - self.engine.frames_rendered, 16384)))

    def loop(self) -> None:
        engine, sr, chunk = self.engine, self.engine.sample_rate, self.engine.chunk_size
        while not self.stop.is_set() or self.items:
            self.wake.wait(0.5)
            self.wake.clear()
            frontier_s, final = None, False
            while self.items:
                events, frontier_s, final = self.items.popleft()
                for event in events:
                    engine.schedule(event)
                if final:
                    break
            if final:
                self._render_to(int(round(frontier_s * sr)))
                return
            if frontier_s is not None:  # the newest frontier holds for everything received
                self._render_to(int(frontier_s * sr) // chunk * chunk)

    def on_loop_error(self, exc: BaseException) -> None:
        self.tell("error", f"{type(exc).__name__}: {exc}")

    def finish(self) -> dict:
        self.sink.close()
        return self.engine.stats.as_dict()
