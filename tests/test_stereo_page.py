"""The page's stream in stereo: interleaved frames, equal to the offline stereo render."""

from __future__ import annotations

import asyncio
import json
import math
import time

import numpy as np
import pytest

from auralize.audio.score import Score, render_score
from auralize.web.clients import PCM_HEADER
from auralize.web.sources import ReplaySource
from test_web_server import InProcess

SR = 44100
ENGINE = {"master_gain": 0.5, "chunk_size": 512, "channels": 2}


def test_the_page_stream_is_stereo_and_equals_the_render():
    import aiohttp

    score = Score(SR)
    score.add_voice("low", {"kind": "sines", "freq_hz": [330.0], "amp": [0.3], "pan": -0.6})
    score.add_voice("high", {"kind": "sines", "freq_hz": [990.0], "amp": [0.3], "pan": 0.8})
    score.set(0.8, "low", "pan", 0.6, glide_s=0.3)  # a glide, streamed as rendered
    offline = render_score(score, 2.0, **ENGINE)
    server = InProcess(ReplaySource(score, 2.0, ENGINE, []))
    try:
        async def stream() -> tuple[dict, np.ndarray]:
            hello, blocks, frames = None, [], 0
            async with aiohttp.ClientSession() as session, \
                    session.ws_connect(server.url + "ws") as ws:
                deadline = time.monotonic() + 60  # a condition (1.5 s of audio), not a pace
                while frames < 1.5 * SR and time.monotonic() < deadline:
                    msg = await ws.receive(timeout=deadline - time.monotonic())
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        _, _, _, n, _ = PCM_HEADER.unpack_from(msg.data)
                        pcm = np.frombuffer(msg.data, "<i2", n * 2, PCM_HEADER.size)
                        blocks.append(pcm.reshape(n, 2).astype(np.float32) / 32767)
                        frames += n
                    elif json.loads(msg.data)["type"] == "hello":
                        hello = json.loads(msg.data)
                        await ws.send_str(json.dumps({"type": "audio", "on": True}))
            return hello, np.concatenate(blocks)

        hello, got = asyncio.run(stream())
    finally:
        server.close()
    assert hello["channels"] == 2
    assert got.shape[1] == 2 and len(got) >= 1.5 * SR
    assert np.max(np.abs(got - offline[:len(got)])) <= 1.01 / 32767  # int16 rounding only
    # and the low voice is on the left before its glide, as the equal-power law says
    seg = got[:int(0.7 * SR)].astype(np.float64)
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))[:, None], axis=0))
    k = round(330.0 * len(seg) / SR)
    angle = (-0.6 + 1) * math.pi / 4
    assert abs(20 * math.log10(spec[k, 1] / spec[k, 0]) - 20 * math.log10(math.tan(angle))) < 1.0


def test_a_live_step_is_placed_as_the_file_has_it_and_late_steps_play_whole():
    """LiveSource.feed_step: steps that follow each other are the offline render's samples,
    delayed by whole frames (events at half-frame offsets round as in the file); a step that
    comes after its first frame was rendered is delayed whole; while a step is awaited the
    score time shown holds at the previous slot's end."""
    from auralize.audio.score import Event
    from auralize.web.sources import LiveSource

    step_s, slot = 0.25, 1 / 24  # 1837.5 frames: the file's rounding must be kept
    steps = []
    for k in range(6):
        t = k * step_s
        events = [Event(t, "tone", "freq_hz", 300.0 + 40 * k, 0.0),
                  Event(t, "tone", "amp", 0.3, 0.002), Event(t + slot, "tone", "amp", 0.0, 0.002),
                  Event(t + 2 * slot, "tone", "pan", -0.5 if k % 2 else 0.5, 0.01)]
        if k == 0:
            events.insert(0, Event(0.0, "tone", "add", {"kind": "sines", "freq_hz": [300.0],
                                                         "amp": [0.0]}))
        steps.append((t, events))
    score = Score(SR)
    for _, events in steps:
        score.events.extend(events)
    offline = render_score(score, len(steps) * step_s, **ENGINE)

    source = LiveSource(SR, ENGINE)
    source.pace(1000.0, 0)  # frame 0 is heard at wall-clock 1000 s
    start = 1000.0 + 0.1234567  # not on a frame
    for k, (t, events) in enumerate(steps[:4]):  # each step where the previous one ends
        source.feed_step(events, t, start + k * step_s, step_s)
    got = source.render(round((0.2 + 4 * step_s) * SR))
    shift = round(0.1234567 * SR)
    n = round(4 * step_s * SR)
    # the same samples: only the last ~1e-14 of a decayed tone differ (the recurrence's rounding
    # at another absolute frame), far below a 16-bit step
    assert np.max(np.abs(got[shift:shift + n] - offline[:n])) < 1e-9
    assert source.late_steps == 0
    # the next step is late: its start (a wait of 0.1 s) was rendered already
    t, events = steps[4]
    before = source.engine.frames_rendered
    assert source.score_time_s() == 4 * step_s  # held at the slot's end while it is awaited
    source.feed_step(events, t, start + 4 * step_s + 0.1 - 0.5, step_s)  # planned 0.4 s ago
    assert source.late_steps == 1
    late = source.render(round(step_s * SR))
    first = np.flatnonzero(np.abs(late[:, 0]) > 1e-4)[0]
    # at once: from the first frame not yet synthesised (the engine works up to a chunk ahead
    # of what it handed out), plus its 2 ms ramp
    assert first <= ENGINE["chunk_size"] + 0.002 * SR
    # and whole: its tone ends one slot after it began, as in the file
    end = np.flatnonzero(np.abs(late[:, 0]) > 1e-4)[-1]
    assert abs((end - first) - slot * SR) < 0.004 * SR
    begin = source._steps[-1][0]  # engine seconds at which the late step starts
    assert before / SR <= begin and source.score_time_at(begin - 0.01) == 4 * step_s
    assert source.score_time_at(begin + 0.1) == pytest.approx(t + 0.1)
