"""The Sonifier: one session of training sound, live and recorded.

A :class:`Sonifier` takes one :class:`~auralize.sonify.telemetry.TrainingStep`
per step (the adapters send them), turns it into engine events through its
mappings (:mod:`~auralize.sonify.timeline`), and sends those events to

- a renderer thread that writes ``sonification.wav`` deterministically: it only
  ever renders up to the timeline's frontier, so late records cannot change
  audio already written, and the file equals an offline re-render;
- a :class:`~auralize.audio.live.LiveOutput` child process when a device exists
  (live sound never waits on training and training never waits on audio);
- the run folder: ``telemetry.jsonl`` (a line per step, flushed), ``metrics.csv``,
  ``sonifier.json`` (how to re-render), ``spectrogram.png`` at the end.

``log`` does no synthesis: it costs the mapping arithmetic and a queue put.
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing as mp
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from auralize.audio.engine import Engine
from auralize.audio.processes import QueuedSender, start_worker
from auralize.audio.score import Event
from auralize.audio.sinks import FileSink, MemorySink
from auralize.errors import AuralizeError
from auralize.sonify.telemetry import TrainingStep
from auralize.sonify.timeline import SonifyConfig, Timeline

log = logging.getLogger("auralize")

WAV_NAME = "sonification.wav"
SPECTROGRAM_NAME = "spectrogram.png"
TELEMETRY_NAME = "telemetry.jsonl"
METRICS_NAME = "metrics.csv"
CONFIG_NAME = "sonifier.json"


@dataclass
class RunResult:
    """What a session wrote and how it went."""

    out_dir: Path | None
    wav_path: Path | None = None
    spectrogram_path: Path | None = None
    telemetry_path: Path | None = None
    metrics_path: Path | None = None
    tensorboard_dir: Path | None = None
    steps: int = 0
    duration_s: float = 0.0
    stats: dict = field(default_factory=dict)

    def paths(self) -> list[Path]:
        return [p for p in (self.wav_path, self.spectrogram_path, self.telemetry_path,
                            self.metrics_path) if p is not None]


def _render_main(config: dict, path: str, inbox, outbox) -> None:
    """Child process: render queued events up to each frontier into ``path``.

    Rendering stops on a multiple of the engine's chunk size, never beyond the
    frontier, so an event at the frontier always arrives before its frame is
    synthesised: the file equals an offline render of the same events.
    """
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


class _Renderer:
    """Parent side of the renderer child process (spawned: no shared GIL with training).

    Messages go through a :class:`~auralize.audio.processes.QueuedSender`, so a
    renderer that falls behind makes a queue grow instead of blocking the
    training loop on a full pipe.
    """

    def __init__(self, config: SonifyConfig, path: Path) -> None:
        inbox_recv, inbox = mp.Pipe(duplex=False)
        self._outbox, outbox_send = mp.Pipe(duplex=False)
        self.process = start_worker(
            _render_main, (config.to_dict(), str(path), inbox_recv, outbox_send),
            name="auralize-renderer",
        )
        inbox_recv.close()
        outbox_send.close()
        self.error: str | None = None
        self.stats: dict = {}
        self._sender = QueuedSender(inbox, name="auralize-render-send")

    def put(self, events: list, frontier_s: float, final: bool = False) -> None:
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
        if self.error is None and self._outbox.poll():
            self._receive()
        return self.error

    def finish(self, end_s: float, timeout_s: float = 600.0) -> None:
        self.put([], end_s, final=True)
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


class Sonifier:
    """Hear a training run: mappings + sinks + clock.

    Parameters
    ----------
    out_dir : str or Path, optional
        Run folder to write (created).  ``None`` keeps the audio in memory.
    mappings : sequence
        Names (``"loss"``, ``"gradients"``, ``"weights"``, ``"alarm"``), config
        dicts, or mapping objects (:mod:`auralize.sonify.mappings`).
    clock : {"step", "wall"}
        ``"step"``: every step lasts ``step_s`` seconds of audio, so runs on
        different machines compare; ``"wall"``: sound follows training in real time.
    step_s : float, optional
        Audio seconds per step (step clock).  Default: what the mappings need
        (gradient tones: one ``duration`` per layer plus two of silence).
    sample_rate : int
        Hz (soNNify's 44100 by default).
    live : bool or "auto"
        Play on a sound device; ``"auto"`` plays when one exists.
    device : int or str, optional
        Output device (index or name part); default: automatic choice.
    master_gain : float
        Output gain before the limiter.
    plot : bool
        Write ``spectrogram.png`` at the end.
    rank_zero : bool
        ``False`` on the other ranks of a distributed run: the session then does
        nothing at all.
    tensorboard : bool or path
        At the end, write the recording as a TensorBoard audio summary and the
        steps as scalars: into ``out_dir/tensorboard`` (``True``) or a given folder.
    web : bool
        Serve a live page (:mod:`auralize.web`) from a child process and print
        its URL (``web_url``): it plays the same events and charts the steps.
    web_host, web_port, web_token : str, int, str
        Bind address (default 127.0.0.1; any other requires a token, generated
        when ``web_token`` is None and printed in the URL) and port (a busy one
        falls back to a free port; 0: any).

    Examples
    --------
    >>> with Sonifier("runs/x", mappings=["loss"]) as son:    # doctest: +SKIP
    ...     for step, loss in enumerate(losses):
    ...         son.log(TrainingStep(step=step, loss=loss))
    """

    def __init__(
        self,
        out_dir: str | Path | None = None,
        *,
        mappings=("loss", "gradients", "weights", "alarm"),
        clock: str = "step",
        step_s: float | None = None,
        sample_rate: int = 44100,
        live: bool | str = "auto",
        device: int | str | None = None,
        master_gain: float = 0.5,
        plot: bool = True,
        rank_zero: bool = True,
        tail_s: float = 0.5,
        tensorboard: bool | str | Path = False,
        web: bool = False,
        web_host: str = "127.0.0.1",
        web_port: int = 8765,
        web_token: str | None = None,
    ) -> None:
        self.rank_zero = bool(rank_zero)
        self.config = SonifyConfig(
            mappings=list(mappings), clock=clock, step_s=step_s, sample_rate=int(sample_rate),
            master_gain=float(master_gain), tail_s=float(tail_s),
        )
        self.timeline = Timeline(self.config)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.plot = plot
        self.device = device
        self.live_requested = live
        self._closed = False
        self._result: RunResult | None = None
        self._records: list[dict] = []
        self._t0 = time.monotonic()
        self._live = None
        self._live_offset_s: float | None = None
        self._web = None
        self.web_url: str | None = None
        self.tensorboard = tensorboard
        self._telemetry = None
        self._memory: MemorySink | None = None
        self._wav: Path | None = None
        if not self.rank_zero:
            self._closed = True
            self._result = RunResult(out_dir=None)
            return
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            wav = self.out_dir / WAV_NAME
            # Open for the whole session, line-buffered: a killed run keeps its steps.
            self._telemetry = open(self.out_dir / TELEMETRY_NAME, "w", buffering=1)  # noqa: SIM115
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="auralize-")
            wav = Path(self._tmp.name) / WAV_NAME
        self._wav = wav
        self._renderer = _Renderer(self.config, wav)
        if live:
            self._start_live(required=live is True)
        if web:
            self._start_web(web_host, web_port, web_token)

    # -- live ---------------------------------------------------------------
    def _start_live(self, required: bool) -> None:
        from auralize.audio import devices

        if devices.load_sounddevice(warn=required) is None:
            return
        if devices.choose_output_device(self.device, warn=required) is None:
            return
        from auralize.audio.live import STEADY_LEAD_S, LiveOutput

        # Training sound is not an instrument: latency nobody needs is traded for
        # headroom against dropouts (LiveOutput's own default is for playing live).
        self._live = LiveOutput(
            int(self.config.sample_rate), device=self.device, lead_s=STEADY_LEAD_S,
            engine_kwargs=self.config.engine_kwargs(),
        ).start()

    def _send_live(self, events: list[Event]) -> None:
        if self._live is None:
            return
        if self._live_offset_s is None:
            played = self._live.stats().frames_played / self.config.sample_rate
            self._live_offset_s = played + 0.05
        for event in events:
            t = None if event.time_s is None else event.time_s + self._live_offset_s
            self._live.send(Event(t, event.voice, event.param, event.value, event.glide_s))

    def _start_web(self, host: str, port: int, token: str | None) -> None:
        from auralize.web.bridge import WebSink

        title = self.out_dir.name if self.out_dir is not None else "training"
        self._web = WebSink(int(self.config.sample_rate), host=host, port=port, token=token,
                            engine_kwargs=self.config.engine_kwargs(), title=title)
        self.web_url = self._web.start()
        if self.web_url is None:
            self._web = None
        else:
            print(f"auralize: live page at {self.web_url}", flush=True)

    def _send_web(self, events: list[Event], record: TrainingStep, t_s: float) -> None:
        if self._web is not None:
            self._web.send_events(events)
            self._web.send_record(record, t_s)

    # -- the one call per step ---------------------------------------------------
    @property
    def unit_means_requests(self) -> list[int | str]:
        """Layers whose per-unit weight means the mappings need (see TrainingStep.unit_means)."""
        return self.timeline.unit_means_requests()

    def log(self, record: TrainingStep) -> None:
        """Sonify one step.  Cheap and non-blocking; a no-op after close or off rank 0."""
        if self._closed:
            return
        if self.config.clock == "wall" and not record.wall_time_s:
            record.wall_time_s = time.monotonic() - self._t0
        events, t_s, frontier = self.timeline.advance(record)
        if self.timeline.steps == 1:
            self._write_config()
        self._renderer.put(events, frontier)
        if self._renderer.poll_error() is not None:
            raise AuralizeError(f"audio rendering failed: {self._renderer.error}")
        self._send_live(events)
        self._send_web(events, record, t_s)
        if self._telemetry is not None:
            self._telemetry.write(record.to_json() + "\n")
        self._records.append(_metrics_row(record))

    def _write_config(self) -> None:
        if self.out_dir is None:
            return
        doc = self.config.to_dict(self.timeline.mappings)
        doc["step_s"] = self.timeline.step_s
        (self.out_dir / CONFIG_NAME).write_text(json.dumps(doc, indent=1, default=_jsonable))

    # -- the end ------------------------------------------------------------------
    def close(self) -> RunResult:
        """Finish the recording and write the run folder; safe to call twice."""
        if self._result is not None:
            return self._result
        self._closed = True
        if self.timeline.steps:  # end-of-training events ("training finished")
            final = self.timeline.finish()
            self._renderer.put(final, self.timeline.next_t_s)
            self._send_live(final)
            if self._web is not None:
                self._web.send_events(final)
        end_s = self.timeline.end_s() if self.timeline.steps else 0.0
        self._renderer.finish(end_s)
        live_stats = self._live.close().to_dict() if self._live is not None else {}
        web_stats = self._web.close() if self._web is not None else {}
        if self._telemetry is not None:
            self._telemetry.close()
        result = RunResult(out_dir=self.out_dir, steps=self.timeline.steps, duration_s=end_s)
        result.stats = {"engine": self._renderer.stats, "live": live_stats,
                        "alarms": self._alarm_counts(), "web": web_stats}
        if self.out_dir is not None:
            result.wav_path = self.out_dir / WAV_NAME
            result.telemetry_path = self.out_dir / TELEMETRY_NAME
            result.metrics_path = write_metrics_csv(self.out_dir / METRICS_NAME, self._records)
            if self.plot and self.timeline.steps:
                from auralize.audio.files import read_audio
                from auralize.audio.plots import save_spectrogram

                samples, rate = read_audio(result.wav_path, mono=True)
                result.spectrogram_path = save_spectrogram(
                    samples, rate, self.out_dir / SPECTROGRAM_NAME, title="training sonification"
                )
        if self.tensorboard and self.timeline.steps:
            from auralize.sonify.tensorboard import write_tensorboard

            logdir = (Path(self.tensorboard) if not isinstance(self.tensorboard, bool)
                      else (self.out_dir or Path(".")) / "tensorboard")
            result.tensorboard_dir = write_tensorboard(logdir, self._records, self.samples,
                                                       int(self.config.sample_rate))
        self._result = result
        if self._renderer.error is not None:
            raise AuralizeError(f"audio rendering failed: {self._renderer.error}")
        return result

    def _alarm_counts(self) -> dict:
        for mapping in self.timeline.mappings.mappings:
            if mapping.kind == "alarm":
                return dict(mapping.counts)
        return {}

    @property
    def samples(self) -> np.ndarray:
        """The rendered audio, mono float32 (complete after :meth:`close`)."""
        if self._memory is None and self._wav is not None and self._wav.exists():
            from auralize.audio.files import read_audio

            self._memory = MemorySink(int(self.config.sample_rate))
            self._memory.write(read_audio(self._wav, mono=True)[0])
        return self._memory.samples if self._memory is not None else np.zeros(0, np.float32)

    def audio(self):
        """An ``IPython.display.Audio`` player of the recording (closes the session first)."""
        self.close()
        self.samples  # noqa: B018 - loads the recording
        return self._memory.audio()

    def __enter__(self) -> Sonifier:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.close()
        except AuralizeError as error:
            if exc[0] is None:
                raise
            warnings.warn(str(error), stacklevel=2)

    def __del__(self) -> None:  # a forgotten close() must not leave a child process
        web = getattr(self, "_web", None)
        if web is not None and not getattr(self, "_closed", True):
            web.close(timeout_s=2.0)
        live = getattr(self, "_live", None)
        if live is not None and not getattr(self, "_closed", True):
            try:
                live.close()
            except Exception:  # noqa: BLE001
                pass


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _metrics_row(record: TrainingStep) -> dict:
    row = {"step": record.step, "epoch": record.epoch, "wall_time_s": record.wall_time_s,
           "loss": record.loss, "lr": record.lr}
    row.update({k: v for k, v in record.metrics.items() if isinstance(v, (int, float))})
    row.update({f"grad_norm/{k}": v for k, v in record.grad_norms.items()})
    return row


def write_metrics_csv(path: Path, rows: list[dict]) -> Path:
    """Write rows (dicts) as CSV with the union of their keys as columns."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns) or ["step"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path
