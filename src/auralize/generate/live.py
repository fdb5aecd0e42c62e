"""Live generation: audio input -> up to three models -> knob mix -> output (boii).

Structure as :mod:`auralize.audio.live.output`: :class:`LiveGenerator` is a
:class:`~auralize.workers.worker.Worker`; everything audio runs in its child
(:mod:`auralize.generate.live_child`).  Inside it:

- the PortAudio duplex callback only copies: input samples into one
  :class:`~auralize.audio.live.ringbuffer.RingBuffer`, output samples out of another;
- the main thread takes every whole block of input, runs it through each model
  (features -> normalise -> LSTM with state kept -> undo -> inverse), mixes and
  writes the result to the output ring, which starts primed with ``lead``
  frames of silence, by default the least that keeps the device fed (see
  :func:`~auralize.generate.live_chain.default_lead_frames`): one block less one device period plus the
  processing time measured at start-up; on JACK the stream runs at JACK's own
  period (PortAudio adds no buffer of its own);
- MIDI control changes (mido + python-rtmidi) move the two knobs.

Mix (boii): with three models ``out = cc1*((1-cc2)*B + cc2*C) + (1-cc1)*A``; with
two ``(1-cc1)*A + cc1*B``; with one, ``A``.  Knob moves are ramped over the block
so they never click.  boii's other two controls (:mod:`auralize.generate.midi`):
``mod`` (CC 1) mixes that with the dry input, ``volume`` (CC 7) sets the output
gain; both glide with a 20 ms time constant (no zipper noise, no click).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Self

from auralize.audio.live.devices import AudioUnavailableWarning
from auralize.errors import AuralizeError
from auralize.generate.live_chain import STATS_FIELDS, GenLiveStats, gen_stats
from auralize.generate.live_child import GenerateChild
from auralize.generate.midi import KNOB_START
from auralize.workers.worker import Worker


class LiveGenerator(Worker):
    """Run live generation in a worker process (:mod:`auralize.generate.live_child`).

    Parameters
    ----------
    run_dirs : list of path
        One to three trained run folders (A, B, C in the mix formula).
    midi_port : str, optional
        MIDI input (substring of its name).  ``None``: the first port there is;
        none at all: knobs stay at 0.5 with one warning.  ``False``: no MIDI.
    midi_map : path, optional
        TOML knob map (:class:`~auralize.generate.midi.KnobMap`).
    device : int or str, optional
        Duplex audio device (index or name substring); default: the system's
        input and output choice.
    lead_s : float, optional
        Silence the output starts with (the processing's head room); default the
        least that keeps the device fed with head room: one block less one
        device period plus 1.5 x the slowest block measured at start-up plus
        6 ms (:func:`default_lead_frames`).  Input-to-output latency = lead + device
        latency.  A host that stalls longer (a loaded VM) needs a longer lead.
    threads : int
        torch threads for the models (default 1).
    precision : {"int8", "fp32"}
        Inference precision; default int8: a fraction of float32's CPU for a small
        error (:func:`~auralize.generate.model.with_precision`; figures in BENCHMARKS.md).
    out : path, optional
        Record the output (what the device plays, at its rate) to this
        WAV/FLAC/OGG file, flushed at least every 0.5 s.
    """

    child = GenerateChild
    process_name = "auralize-generate-live"
    stats_fields = STATS_FIELDS

    def __init__(self, run_dirs, *, midi_port=None, midi_map=None, device=None,
                 gain: float = 1.0, threads: int = 1, lead_s: float | None = None,
                 out=None, precision: str = "int8", start_timeout_s: float = 60.0) -> None:
        from auralize.audio.files import format_for_path
        from auralize.generate.midi import KnobMap, find_port
        from auralize.generate.model import PRECISIONS

        if lead_s is not None and not lead_s > 0:
            raise AuralizeError(f"lead_s must be a positive number of seconds, got {lead_s}")
        self.run_dirs = [str(Path(d)) for d in run_dirs]
        if not 1 <= len(self.run_dirs) <= 3:
            raise AuralizeError(f"live mixes one to three models, got {len(self.run_dirs)}")
        for d in self.run_dirs:
            if not (Path(d) / "checkpoints" / "last.ckpt").is_file():
                raise AuralizeError(f"no trained model in {d!r}; run `auralize generate train`")
        self.knob_map = KnobMap.load(midi_map)
        if precision not in PRECISIONS:
            raise AuralizeError(f"unknown precision {precision!r}: use one of "
                                f"{', '.join(PRECISIONS)}")
        self.precision = precision
        self.out = None if out is None else str(Path(out).expanduser())
        if self.out is not None:
            format_for_path(self.out)  # a bad extension fails here, before any audio starts
        self.midi = None
        if midi_port is not False:
            self.midi = find_port(midi_port)  # raises for a named port that does not exist
            if self.midi is None:
                warnings.warn("no MIDI input port found: the knobs stay at 0.5 "
                              "(connect a controller and pass --midi PORT)",
                              AudioUnavailableWarning, stacklevel=2)
        self.device, self.gain, self.threads = device, float(gain), int(threads)
        self.lead_s = lead_s
        super().__init__({"run_dirs": self.run_dirs, "midi": self.midi,
                          "knob_map": asdict(self.knob_map), "device": self.device,
                          "gain": self.gain, "threads": self.threads, "lead_s": self.lead_s,
                          "out": self.out, "precision": self.precision},
                         start_timeout_s=start_timeout_s, initial_stats=dict(KNOB_START))

    def start(self) -> Self:
        super().start()
        if self.error is not None:
            message = self.error
            self.close()
            raise AuralizeError(message if "did not start" not in message
                                else "live generation: the audio child did not start in time")
        return self

    def set_knobs(self, cc1: float | None = None, cc2: float | None = None) -> None:
        """Move the knobs from code (as MIDI would)."""
        self.put(("knobs", cc1, cc2))

    def stats(self) -> GenLiveStats:
        if self.final is not None:
            return GenLiveStats(**self.final)
        return gen_stats(self.shared, self.info)

    def close(self, timeout_s: float = 10.0) -> GenLiveStats:
        super().close(timeout_s)
        return self.stats()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def play_live(run_dirs, *, midi_port=None, midi_map=None, seconds=None, device=None,
              gain: float = 1.0, out=None, lead_s: float | None = None,
              precision: str = "int8") -> GenLiveStats:
    """Play until ``seconds`` pass or Ctrl-C; return the statistics."""
    gen = LiveGenerator(run_dirs, midi_port=midi_port, midi_map=midi_map, device=device,
                        gain=gain, out=out, lead_s=lead_s, precision=precision).start()
    print(f"live: playing ({gen.info.get('device', '')}); Ctrl-C stops", flush=True)
    try:
        t0 = time.monotonic()
        while seconds is None or time.monotonic() - t0 < seconds:
            time.sleep(0.1)
            if not gen.alive:
                break
    except KeyboardInterrupt:
        pass
    return gen.close()
