"""The single-producer single-consumer ring buffer between synthesis and the device callback."""

from __future__ import annotations

import threading
import time

import numpy as np

from auralize.audio.live.ringbuffer import RingBuffer


def test_fifo_order_across_wraparound():
    ring = RingBuffer(100)  # rounded up to 128
    assert ring.capacity == 128
    src = np.arange(1000, dtype=np.float32)
    out = []
    pos = 0
    buf = np.empty(48, dtype=np.float32)
    while sum(len(o) for o in out) < len(src):
        pos += ring.write(src[pos : pos + 37])
        n = min(ring.fill, len(buf))
        ring.read_into(buf[:n])
        out.append(buf[:n].copy())
    np.testing.assert_array_equal(np.concatenate(out), src)
    assert ring.underruns == 0


def test_full_ring_refuses_and_underrun_is_counted_and_faded():
    ring = RingBuffer(64)
    assert ring.write(np.ones(100, np.float32)) == 64 and ring.space == 0
    out = np.empty(80, np.float32)
    assert ring.read_into(out) == 64
    assert ring.underruns == 1 and ring.frames_missing == 16
    assert np.all(out[64:] == 0) and out[0] == 1.0 and out[63] == 0.0  # faded, no click
    assert np.all(np.abs(np.diff(out[:64])) <= 1.0 / 31 + 1e-6)


def test_one_producer_one_consumer_thread():
    ring = RingBuffer(1024)
    total = 50_000
    src = np.arange(total, dtype=np.float32) % 4096
    got = []

    def produce():
        pos = 0
        while pos < total:
            pos += ring.write(src[pos : pos + 300])

    th = threading.Thread(target=produce)
    th.start()
    buf = np.empty(256, np.float32)
    received = 0
    while received < total:
        n = min(256, ring.fill)
        if n == 0:
            time.sleep(0)  # let the producer run
            continue
        ring.read_into(buf[:n])
        got.append(buf[:n].copy())
        received += n
    th.join()
    np.testing.assert_array_equal(np.concatenate(got), src)
    assert ring.underruns == 0
