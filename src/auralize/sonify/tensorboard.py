"""TensorBoard output: the recording as an audio summary, and the steps as scalars.

Written with tensorboard's own event writer and protocol buffers, so neither
TensorFlow nor torch is needed.  ``auralize render`` reads such a folder back.
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def _audio_value(tag: str, samples: np.ndarray, sample_rate: int):
    from tensorboard.compat.proto import summary_pb2

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(np.nan_to_num(samples), -1, 1), sample_rate, format="WAV",
             subtype="PCM_16")
    audio = summary_pb2.Summary.Audio(
        sample_rate=float(sample_rate), num_channels=1 if np.ndim(samples) == 1 else samples.shape[1],
        length_frames=len(samples),
        encoded_audio_string=buffer.getvalue(), content_type="audio/wav",
    )
    return summary_pb2.Summary.Value(tag=tag, audio=audio)


def write_tensorboard(logdir: str | Path, rows: list[dict], samples: np.ndarray,
                      sample_rate: int, *, tag: str = "auralize/sonification") -> Path:
    """Write per-step scalars (``loss``, ``grad_norm/<layer>``...) and the recording.

    Parameters
    ----------
    logdir : str or Path
        Folder for the event file (created).
    rows : list of dict
        One dict per step with ``step`` and numeric values (the metrics rows).
    samples : ndarray
        The recording (float, ``(frames,)`` or ``(frames, channels)``), attached at the last step.
    sample_rate : int
        Hz.
    """
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(logdir))
    now = time.time()
    last_step = 0
    for row in rows:
        step = int(row["step"])
        last_step = max(last_step, step)
        values = [summary_pb2.Summary.Value(tag=key, simple_value=float(value))
                  for key, value in row.items()
                  if key not in ("step", "epoch", "wall_time_s") and isinstance(value, float)
                  and math.isfinite(value)]
        if values:
            writer.add_event(event_pb2.Event(wall_time=now, step=step,
                                             summary=summary_pb2.Summary(value=values)))
    if len(samples):
        writer.add_event(event_pb2.Event(
            wall_time=now, step=last_step,
            summary=summary_pb2.Summary(value=[_audio_value(tag, samples, sample_rate)])))
    writer.flush()
    writer.close()
    return logdir
