"""The default lead of live generation: the least silence that keeps the device fed.

A frame-exact simulation of the device (one period in, one period out per
callback) and the model thread (a block's output written ``process_s`` after
its last input period arrived) checks :func:`default_lead_frames` against what
a listener would hear: no gap with that lead, a gap with one period less.
"""

from __future__ import annotations

import math

import pytest

from auralize.generate.live_chain import default_lead_frames


def starves(lead: int, block: int, period: int, process_frames: float, blocks: int = 40) -> bool:
    """True if some device callback finds the output ring short (an audible gap)."""
    callbacks = blocks * math.ceil(block / period) + 4
    for m in range(1, blocks):
        complete = math.ceil(m * block / period) * period  # callback delivering its last input
        ready = complete + process_frames
        first = lead + (m - 1) * block  # ring position of the block's first output frame
        reader = (first // period + 1) * period  # callback whose period holds that frame
        if reader <= callbacks * period and ready >= reader:
            return True
    return False


@pytest.mark.parametrize("block,period", [(512, 32), (512, 64), (512, 256), (512, 512),
                                          (1103, 256), (300, 128)])
@pytest.mark.parametrize("process_ms", [0.7, 4.6, 17.0, 45.0])
def test_default_lead_is_the_least_that_never_starves(block, period, process_ms):
    rate = 8000
    process_frames = process_ms / 1000 * rate
    lead = default_lead_frames(block, period, process_ms / 1000, rate, factor=1.0, margin_s=0.0)
    assert lead % period == 0
    assert not starves(lead, block, period, process_frames)
    if lead > period:  # one period less is heard as a gap (the lead is not padded)
        assert starves(lead - period, block, period, process_frames)


def test_head_room_grows_the_lead_by_whole_periods():
    tight = default_lead_frames(512, 32, 0.010, 8000, factor=1.0, margin_s=0.0)
    roomy = default_lead_frames(512, 32, 0.010, 8000)  # 1.5 x processing + 6 ms
    assert roomy % 32 == 0
    assert roomy - tight >= (0.5 * 0.010 + 0.006) * 8000 - 32
    # latency over one block stays small for the shipped configs' processing (~5 ms)
    assert default_lead_frames(512, 32, 0.005, 8000) / 8000 - 512 / 8000 < 0.015
