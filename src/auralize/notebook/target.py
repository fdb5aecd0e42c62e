"""The kernel side of the notebook widget: a live target rendering stems on a thread.

:class:`NotebookTarget` has the live targets' interface (``send``, ``close``,
``abandon``, ``stats_key``; see :mod:`auralize.sonify.targets`).  It gets the
events the session's live clock placed in wall-clock time, like the speaker and
the page, and a daemon thread renders them at wall-clock pace, ``lead_s``
ahead, one :class:`~auralize.web.sources.LiveSource` per voice (a stem), and
sends each block as one comm message: JSON (score time, voice names) plus one
int16 buffer per stem.  Stems let the browser mute, solo and level voices by
itself: a kernel busy in a training cell handles no messages from the page, so
nothing the listener does may need the kernel.

Sending comm messages from a thread is what ipykernel's IOPub thread is for;
training pays for the synthesis (numba releases the GIL) and the sends.
"""

from __future__ import annotations

import collections
import threading
import time

import numpy as np

from auralize.audio.score import Event

#: frames per block (23 ms at 44.1 kHz)
BLOCK_FRAMES = 1024
#: records per step message batch
MAX_BATCH = 200


class NotebookTarget:
    """Play a session in a notebook widget.

    Parameters
    ----------
    config : SonifyConfig
        The session's settings (sample rate, engine options).
    title : str
        Shown in the widget.
    lead_s : float
        How far ahead of the wall clock blocks are rendered and sent.
    """

    stats_key = "notebook"

    def __init__(self, config, title: str = "training", lead_s: float = 0.1) -> None:
        from auralize.notebook import require_notebook

        require_notebook()
        from auralize.notebook.widget import AuralizeWidget

        self.sample_rate = int(config.sample_rate)
        # mono stems: the widget mixes them in the browser into one channel
        self.engine_kwargs = {**config.engine_kwargs(), "channels": 1}
        self.lead_s = float(lead_s)
        self.widget = AuralizeWidget(title=title, sample_rate=self.sample_rate)
        from auralize.audio.warm_up import warm_up_kernels

        # every kernel compiled or loaded now, before training, not in the first blocks
        warm_up_kernels(self.sample_rate, self.engine_kwargs)
        self.stems: dict = {}
        self._inbox: collections.deque = collections.deque()
        self._stop = threading.Event()
        self._end_wall_s: float | None = None
        self.blocks_sent = 0
        self.steps = 0
        self.error: str | None = None
        self._pace_t0 = time.perf_counter()
        self._pace_frames = 0
        self._step_starts: collections.deque = collections.deque()  # (wall s, score s)
        self._thread = threading.Thread(target=self._run, name="auralize-notebook", daemon=True)
        self._thread.start()

    # -- the live target interface ------------------------------------------------------
    def send(self, events: list[Event], frontier_s: float, record=None,
             step_t_s: float | None = None, placed: tuple | None = None) -> None:
        self._inbox.append((list(events), record, step_t_s))

    def close(self, end_s: float) -> dict:
        """Keep playing until ``end_s`` (wall clock, the sound's end), then stop the thread."""
        self._end_wall_s = end_s
        self._thread.join(max(0.0, end_s - time.perf_counter()) + 5.0)
        self._stop.set()
        self._thread.join(2.0)
        self.widget.finished = True
        return {"blocks_sent": self.blocks_sent, "steps": self.steps, "voices": list(self.stems),
                "error": self.error}

    def abandon(self) -> None:
        self._stop.set()

    # -- the thread ---------------------------------------------------------------------
    def _stem(self, voice: str):
        from auralize.web.sources import LiveSource

        source = self.stems.get(voice)
        if source is None:
            source = LiveSource(self.sample_rate, self.engine_kwargs, lead_s=self.lead_s)
            # its frame 0 is the next block the others render
            source.pace(self._pace_t0 - self.lead_s + self._pace_frames / self.sample_rate, 0)
            self.stems[voice] = source
        return source

    def _feed(self) -> None:
        records, captions = [], []
        while self._inbox:
            events, record, step_t_s = self._inbox.popleft()
            by_voice: dict[str, list] = {}
            for event in events:
                if event.voice != "master":
                    self._stem(event.voice)
                by_voice.setdefault(event.voice, []).append(event)
            times = [e.time_s for e in events if e.time_s is not None]
            if times and step_t_s is not None:
                self._step_starts.append((min(times), float(step_t_s)))
            master = by_voice.pop("master", [])
            for voice, source in self.stems.items():
                mine = by_voice.get(voice, []) + master
                if mine:
                    source.feed_at_wall(mine, step_t_s)
            for event in events:
                if event.param == "play" and isinstance(event.value, dict) and event.value.get("text"):
                    captions.append({"wall_s": event.time_s, "text": str(event.value["text"])})
            if record is not None:
                from auralize.web.records import compact_record

                records.append(compact_record(record, step_t_s or 0.0))
                self.steps += 1
        for start in range(0, len(records), MAX_BATCH):
            self.widget.send({"type": "steps", "steps": records[start:start + MAX_BATCH]})
        if records:
            self.widget.steps = self.steps
        for caption in captions:  # said when heard: the page delays it by what is buffered
            delay = max(0.0, caption.pop("wall_s") - time.perf_counter()) if caption["wall_s"] else 0
            self.widget.send({"type": "announce", "text": caption["text"], "delay_s": delay})

    def _render_due(self) -> None:
        sr, n = self.sample_rate, BLOCK_FRAMES
        due = int((time.perf_counter() - self._pace_t0) * sr) + int(self.lead_s * sr)
        if due - self._pace_frames > 3 * sr:  # stalled for long: skip ahead, do not burst
            self._pace_t0, self._pace_frames = time.perf_counter(), 0
            for source in self.stems.values():
                source.pace(self._pace_t0 - self.lead_s, source.engine.frames_rendered)
            due = int(self.lead_s * sr)
        while self._pace_frames + n <= due:
            if not self.stems:
                self._pace_frames += n
                continue
            names = list(self.stems)
            t_s, step_t_s = self._score_time_at(self._pace_t0 - self.lead_s + self._pace_frames / sr)
            buffers = []
            for name in names:
                block = self.stems[name].render(n)
                buffers.append(np.clip(np.round(block * 32767.0), -32767, 32767)
                               .astype("<i2").tobytes())
            self._pace_frames += n
            self.widget.send({"type": "pcm", "t_s": t_s, "step_t_s": step_t_s, "voices": names,
                              "frames": n}, buffers=buffers)
            self.blocks_sent += 1

    def _score_time_at(self, wall_s: float) -> tuple[float, float]:
        """Score time heard at wall-clock ``wall_s`` (its step's score time plus the time
        since: past the step's slot while the live clock sustains it) and that step's."""
        starts = self._step_starts
        while len(starts) > 1 and starts[1][0] <= wall_s:
            starts.popleft()
        if not starts:
            return 0.0, 0.0
        step_wall_s, step_score_s = starts[0]
        return max(0.0, step_score_s + (wall_s - step_wall_s)), step_score_s

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._feed()
                self._render_due()
                if self._end_wall_s is not None and time.perf_counter() > self._end_wall_s:
                    break
                self._stop.wait(0.01)
        except Exception as exc:  # noqa: BLE001 - the widget never breaks training
            self.error = " ".join(str(exc).split())[:300] or type(exc).__name__
