"""The recording's worker process: renders a session's sound into its WAV.

A training run: the child reads the steps from the run folder's ``telemetry.jsonl`` as it grows
(the parent writes each step there anyway) and makes their events with its own
:class:`~auralize.sonify.stream.ScoreStream`, the code ``auralize render`` runs.
So nothing per step crosses between the processes and a renderer that falls
behind (training faster than synthesis) leaves its backlog on disk, not in
memory: the training process stays the same size for a run of any length.

It only ever renders up to the timeline's frontier (on the engine's chunk
grid), so an event at the frontier always arrives before its frame is
synthesised: the file equals an offline render of the same records
(``auralize render`` of the run folder), bit for bit.  It also sums the
samples' spectrogram as it writes them (:mod:`auralize.audio.stream_spectrogram`)
and draws ``spectrogram.png`` when it finishes, so closing a long run does not
read its hours of audio back.

A sweep (no telemetry file): the parent sends each batch of events with its
frontier, ``("events", events, frontier_s)``, and the child renders up to the
frontier in the same way: the file equals an offline render of those events.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

from auralize.sonify.timeline import SonifyConfig
from auralize.workers.worker import Worker, WorkerChild

#: seconds between looks at the telemetry file
POLL_S = 0.05
#: ``finish`` gives up on a renderer that made no progress for this long (s)
STALL_S = 60.0


class RenderChild(WorkerChild):
    def setup(self) -> dict:
        from auralize.audio.engine import Engine
        from auralize.audio.sinks import FileSink
        from auralize.sonify.logs import TelemetryTail
        from auralize.sonify.stream import ScoreStream

        cfg = SonifyConfig.from_dict(self.cfg["config"])
        self.engine = Engine(int(cfg.sample_rate), **cfg.engine_kwargs())
        limit = self.cfg.get("riff_limit_bytes")
        extra = {} if limit is None else {"riff_limit_bytes": limit}
        self.sink = FileSink(self.cfg["path"], int(cfg.sample_rate), channels=cfg.channels, **extra)
        telemetry = self.cfg.get("telemetry")
        self.tail = TelemetryTail(Path(telemetry)) if telemetry else None
        self.stream = ScoreStream((), cfg)
        self.inbox: collections.deque = collections.deque()  # events mode: (events, frontier_s)
        self.final: tuple | None = None
        self.spectrogram = None
        if self.cfg.get("spectrogram"):
            from auralize.audio.stream_spectrogram import StreamSpectrogram

            self.spectrogram = StreamSpectrogram(int(cfg.sample_rate))
        return {}

    def receive(self, items: list) -> None:
        for item in items:  # in order: a batch's events are queued before a later "final"
            if item[0] == "events":
                self.inbox.append(item[1:])
            elif item[0] == "final":
                self.final = item[1:]

    def _render_to(self, frame: int) -> None:
        while self.engine.frames_rendered < frame:
            samples = self.engine.render(min(frame - self.engine.frames_rendered, 16384))
            self.sink.write(samples)
            if self.spectrogram is not None:
                self.spectrogram.write(samples)
            self.shared["frames"] = self.engine.frames_rendered

    def _advance(self) -> bool:
        """Render what the new telemetry lines (or event batches) allow; False when there were none."""
        stream = self.stream
        if self.tail is None:
            progressed = bool(self.inbox)
            while self.inbox:
                events, frontier_s = self.inbox.popleft()
                for event in events:
                    self.engine.schedule(event)
                stream.frontier_s = max(stream.frontier_s, frontier_s)
            if progressed:
                self._render_to(stream.frontier_frame())
            return progressed
        records = self.tail.poll()
        for record in records:
            events, _t_s, stream.frontier_s = stream.timeline.advance(record)
            for event in events:
                self.engine.schedule(event)
            if self.engine.frames_rendered + 16384 <= stream.frontier_frame():
                self._render_to(stream.frontier_frame())
        if records:
            self._render_to(stream.frontier_frame())
        return bool(records)

    def _all_in(self, steps: int, progressed: bool, waited_s: float) -> bool:
        """Whether everything before the final events has been rendered."""
        if self.tail is None:
            return not self.inbox
        return self.stream.steps >= steps or (not progressed and waited_s > 5.0)

    def loop(self) -> None:
        waited_s = 0.0
        while True:
            progressed = self._advance()
            if self.final is not None:
                steps, final_events, end_s = self.final
                if self._all_in(steps, progressed, waited_s):
                    for event in final_events:
                        self.engine.schedule(event)
                    self._render_to(int(round(end_s * self.engine.sample_rate)))
                    return
                waited_s = 0.0 if progressed else waited_s + POLL_S
            elif self.stop.is_set():
                return
            if not progressed:
                # Idle: put what is rendered on disk with its length in the header now, not
                # at the next write (a paused or waiting run's file would lag; readers such
                # as the tracker uploads wait for it).
                if self.sink.frames_flushed < self.sink.frames_written:
                    self.sink.flush()
                self.wake.wait(POLL_S)
                self.wake.clear()

    def on_loop_error(self, exc: BaseException) -> None:
        self.tell("error", f"{type(exc).__name__}: {exc}")

    def finish(self) -> dict:
        self.sink.close()
        stats = self.engine.stats.as_dict()
        if self.spectrogram is not None and self.spectrogram.samples:
            try:
                from auralize.audio.plots import save_spectrogram_db

                freqs, times, db = self.spectrogram.result()
                stats["spectrogram_path"] = str(save_spectrogram_db(
                    freqs, times, db, self.cfg["spectrogram"], title="training sonification"))
            except Exception:  # noqa: BLE001 - the session draws it from the file instead
                pass
        return stats


class RenderWorker(Worker):
    """Parent side: costs the training loop nothing per step; ``finish`` waits for the backlog."""

    child = RenderChild
    process_name = "auralize-renderer"
    stats_fields = ("frames",)

    def __init__(self, config: SonifyConfig, path: Path, telemetry: Path | None,
                 riff_limit_bytes: int | None = None, spectrogram: Path | None = None) -> None:
        super().__init__({"config": config.to_dict(), "path": str(path),
                          "telemetry": None if telemetry is None else str(telemetry),
                          "riff_limit_bytes": riff_limit_bytes,
                          "spectrogram": None if spectrogram is None else str(spectrogram)})

    def finish(self, steps: int, final_events: list, end_s: float, timeout_s: float = 10.0) -> dict:
        """Render the ``steps`` records and the final events up to ``end_s``; close the file.

        Waits as long as the renderer makes progress (a fast synthetic run leaves
        all its audio to render here), and gives up after :data:`STALL_S` without.
        """
        self.put(("final", int(steps), list(final_events), float(end_s)))
        last, last_change = -1.0, time.monotonic()
        while not self._done.wait(1.0) and self.alive:
            frames = self.shared["frames"] if self.shared is not None else 0.0
            if frames != last:
                last, last_change = frames, time.monotonic()
            elif time.monotonic() - last_change > STALL_S:
                break
        return self.close(timeout_s)
