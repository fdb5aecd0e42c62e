"""The Sonifier: one session of training sound, live and recorded.

A :class:`Sonifier` takes one :class:`~auralize.sonify.telemetry.TrainingStep`
per step (the adapters send them), turns it into engine events through its
mappings (:mod:`~auralize.sonify.timeline`), and fans them out to its targets
(one :class:`~auralize.sonify.outputs.Outputs`, the sweep's too):

- the recording, on the step clock: a worker process renders
  ``sonification.wav`` up to the timeline's frontier, so the file equals an
  offline re-render (``auralize render``); without a run folder the recording
  is kept in memory;
- the speaker and the live page, on the live clock: a
  :class:`~auralize.sonify.live_clock.LiveClock` decides once when each step is
  heard (slow training: at once and whole; fast training: never later than
  ``max_lag_s``) and both get the same decision;
- the run folder (:mod:`~auralize.sonify.run_folder`): telemetry, metrics,
  ``sonifier.json``, spectrogram, TensorBoard.

``log`` does no synthesis: it costs the mapping arithmetic and queue puts.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from auralize.errors import AuralizeError
from auralize.sonify.digest import DIGEST_AFTER_S, DIGEST_S
from auralize.sonify.live_clock import DEFAULT_MAX_LAG_S
from auralize.sonify.outputs import Outputs, check_max_lag_s
from auralize.sonify.run_folder import RunFolder, RunResult
from auralize.sonify.targets import FileRecording, MemoryRecording, PageTarget
from auralize.sonify.telemetry import TrainingStep
from auralize.sonify.timeline import SonifyConfig, Timeline

__all__ = ["RunResult", "Sonifier", "check_max_lag_s"]


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
    channels : int
        2 (default): the recording, speaker and page in stereo, each voice at its
        place (gradient groups from input, left, to output, right); 1: mono.
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
    max_lag_s : float
        Live sound only: the longest a step may wait before it is heard (s).
        Training faster than the step clock merges the steps that would wait
        longer (the recording keeps them all); training slower plays each step
        whole as soon as it arrives.  See :mod:`auralize.sonify.live_clock`.
    digest_s : float or None
        A recording longer than ``digest_after_s`` also gets ``digest.wav``: the
        whole run in ``digest_s`` seconds, steps merged so that every NaN and
        spike is still heard (:mod:`auralize.sonify.digest`).  ``None``: never.
    digest_after_s : float
        Recording length (s) from which the digest is written (default 10 min).
    web_host, web_port, web_token : str, int, str
        Bind address (default 127.0.0.1; any other requires a token, generated
        when ``web_token`` is None and printed in the URL) and port (a busy one
        falls back to a free port; 0: any).
    log_to : "auto", str, sequence of str, or ()
        Experiment trackers that get the sound (:mod:`auralize.trackers`): each
        epoch's recording and spectrogram at its end, the whole recording,
        spectrogram and ``sonifier.json`` at close.  ``"auto"``: the MLflow run
        (``mlflow.active_run()``) and the W&B run (``wandb.run``) that are
        active; ``("mlflow",)`` or ``"wandb"``: only those; ``()``: none.

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
        channels: int = 2,
        plot: bool = True,
        rank_zero: bool = True,
        tail_s: float = 0.5,
        tensorboard: bool | str | Path = False,
        max_lag_s: float = DEFAULT_MAX_LAG_S,
        web: bool = False,
        web_host: str = "127.0.0.1",
        web_port: int = 8765,
        web_token: str | None = None,
        digest_s: float | None = DIGEST_S,
        digest_after_s: float = DIGEST_AFTER_S,
        log_to="auto",
        notebook: bool = False,
    ) -> None:
        self.rank_zero = bool(rank_zero)
        self.digest_s = None if digest_s is None else float(digest_s)
        self.digest_after_s = float(digest_after_s)
        self.config = SonifyConfig(
            mappings=list(mappings), clock=clock, step_s=step_s, sample_rate=int(sample_rate),
            master_gain=float(master_gain), tail_s=float(tail_s), channels=channels,
        )
        self.timeline = Timeline(self.config)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.plot = plot
        self.device = device
        self.live_requested = live
        self.tensorboard = tensorboard
        self.web_url: str | None = None
        self._t0 = time.monotonic()
        self._result: RunResult | None = None
        self._closed = not self.rank_zero
        self.outputs: Outputs | None = None
        if not self.rank_zero:
            self._result = RunResult(out_dir=None)
            return
        check_max_lag_s(max_lag_s)  # before any child process starts
        self.folder = RunFolder(self.out_dir)
        recording = (FileRecording(self.config, self.folder.wav_path,
                                   spectrogram=self.folder.spectrogram_path if plot else None)
                     if self.out_dir is not None else MemoryRecording(self.config))
        self.outputs = Outputs(self.config, recording, folder=self.folder, max_lag_s=max_lag_s)
        from auralize.trackers import TrackerSet  # above sonify/: found at run time, like the page

        self._trackers = TrackerSet(log_to)
        self._config_doc: dict | None = None
        self._epoch_start_s = 0.0
        if live:
            self._start_speaker(required=live is True)
        if web:
            self._start_page(web_host, web_port, web_token)
        if notebook:
            from IPython.display import display

            display(self.widget())

    # -- live targets ---------------------------------------------------------
    @property
    def recording(self):
        return self.outputs.recording

    @property
    def live_clock(self):
        return self.outputs.live_clock

    @property
    def _live_targets(self) -> list:
        return [] if self.outputs is None else self.outputs.live_targets

    def _start_speaker(self, required: bool) -> None:
        self.outputs.start_speaker(self.device, required)

    def _start_page(self, host: str, port: int, token: str | None) -> None:
        title = self.out_dir.name if self.out_dir is not None else "training"
        self.web_url = self.outputs.start_page(title, host, port, token)
        if self.web_url is not None:
            print(f"auralize: live page at {self.web_url}", flush=True)

    def widget(self):
        """The notebook widget playing this session live (made on the first call).

        Requires ``pip install auralize[notebook]``; see :mod:`auralize.notebook`.
        """
        from auralize.notebook.target import NotebookTarget

        target = next((t for t in self._live_targets if isinstance(t, NotebookTarget)), None)
        if target is None:
            if self._closed:
                raise AuralizeError("the session is closed: make the widget before training ends")
            title = self.out_dir.name if self.out_dir is not None else "training"
            target = NotebookTarget(self.config, title)
            self._live_targets.append(target)
        return target.widget

    @property
    def _web(self):
        """The page's :class:`~auralize.web.bridge.WebSink` (None without ``web=True``)."""
        page = self.outputs.target(PageTarget)
        return None if page is None else page.sink

    # -- the one call per step ---------------------------------------------------
    @property
    def unit_means_requests(self) -> list[int | str]:
        """Layers whose per-unit weight means the mappings need (see TrainingStep.unit_means)."""
        return self.timeline.unit_means_requests()

    def log(self, record: TrainingStep) -> None:
        """Sonify one step.  Cheap and non-blocking; a no-op after close or off rank 0."""
        if self._closed:
            return
        now = time.perf_counter()
        if self.config.clock == "wall" and record.wall_time_s is None:
            record.wall_time_s = time.monotonic() - self._t0
        events, t_s, frontier = self.timeline.advance(record)
        if self.timeline.steps == 1:
            doc = self.config.to_dict(self.timeline.mappings)
            doc["step_s"] = self.timeline.step_s
            self.folder.write_config(doc)
            self._config_doc = doc
        self.outputs.send(events, t_s, frontier, self.timeline.last_step_s, now, record)
        if record.epoch_end and self._trackers.names:
            self._trackers.epoch_end(self._tracker_source(), record.epoch, self._epoch_start_s,
                                     frontier)
            self._epoch_start_s = frontier

    def _tracker_source(self):
        from auralize.trackers.uploader import RecordingSource

        title = self.out_dir.name if self.out_dir is not None else "training"
        return RecordingSource(int(self.config.sample_rate), self.folder.wav_path,
                               lambda: self._config_doc, lambda: self.samples, title=title)

    # -- the end ------------------------------------------------------------------
    def close(self) -> RunResult:
        """Finish the recording and write the run folder; safe to call twice.

        Live sound ends with the last step heard plus ``tail_s``; since no step
        waits more than ``max_lag_s``, closing waits at most that long for it.
        """
        if self._result is not None:
            return self._result
        self._closed = True
        final = self.timeline.finish() if self.timeline.steps else []  # "training finished"
        end_s = self.timeline.end_s() if self.timeline.steps else 0.0
        close_pass = None
        if self.out_dir is not None:  # metrics.csv and the digest while the recording finishes
            from auralize.sonify.close_pass import ClosePass

            self.folder.close_telemetry()
            long_run = self.digest_s is not None and end_s > self.digest_after_s
            close_pass = ClosePass(self.out_dir, self.digest_s if long_run else None).start()
        outlast_s = self.timeline.mappings.sounding_until_s() - self.timeline.next_t_s
        engine_stats, stats = self.outputs.close(end_s, steps=self.timeline.steps, final=final,
                                                 final_t_s=self.timeline.next_t_s,
                                                 outlast_s=outlast_s)
        metrics_path, digest_path = close_pass.result() if close_pass else (None, None)
        spectrogram_path = engine_stats.pop("spectrogram_path", None)  # drawn by the renderer
        live_stats, web_stats = stats.get("live", {}), stats.get("web", {})
        result = RunResult(out_dir=self.out_dir, steps=self.timeline.steps, duration_s=end_s)
        result.stats = {"engine": engine_stats, "live": live_stats,
                        "alarms": self._alarm_counts(), "web": web_stats}
        result.digest_path = digest_path
        if "notebook" in stats:
            result.stats["notebook"] = stats["notebook"]
        self._result = self.folder.finish(result, lambda: self.samples, int(self.config.sample_rate),
                                          plot=self.plot, tensorboard=self.tensorboard,
                                          metrics_path=metrics_path,
                                          spectrogram_path=spectrogram_path)
        if self.recording.error is not None:
            raise AuralizeError(f"audio rendering failed: {self.recording.error}")
        if self._trackers.names:
            source = self._tracker_source()
            source.spectrogram_path = self._result.spectrogram_path
            self._result.stats["trackers"] = self._trackers.close(source,
                                                                  final=bool(self.timeline.steps))
        return self._result

    def _alarm_counts(self) -> dict:
        for mapping in self.timeline.mappings.mappings:
            if mapping.kind == "alarm":
                return dict(mapping.counts)
        return {}

    @property
    def samples(self) -> np.ndarray:
        """The recording as written, float32: ``(frames, channels)``, or ``(frames,)`` when
        ``channels=1`` (complete after :meth:`close`)."""
        if self._result is None and not self._closed:
            return np.zeros(0, np.float32)
        if getattr(self, "_samples", None) is None:
            self._samples = self.recording.samples() if self.rank_zero else np.zeros(0, np.float32)
        return self._samples

    def audio(self):
        """An ``IPython.display.Audio`` player of the recording (closes the session first)."""
        from auralize.audio.sinks import MemorySink

        self.close()
        sink = MemorySink(int(self.config.sample_rate))
        sink.write(self.samples)
        return sink.audio()

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
        if getattr(self, "_closed", True):
            return
        outputs = getattr(self, "outputs", None)
        if outputs is not None:
            outputs.abandon()
