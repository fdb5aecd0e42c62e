"""The page's stream in stereo: interleaved frames, equal to the offline stereo render."""

from __future__ import annotations

import asyncio
import json
import math
import time

import numpy as np

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
