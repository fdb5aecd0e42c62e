"""One page's connection: its bounded queues, and the binary PCM packets it is sent.

Binary packets are ``PCM_HEADER`` + int16 samples, frames interleaved (``hello``'s
``channels`` per frame).  Each page has its own bounded queue: when it does not
read, its oldest audio blocks are dropped and counted; nothing else waits.
"""

from __future__ import annotations

import asyncio
import collections
import struct
import time

import numpy as np

#: binary packet header: magic, sequence number, score time of the first
#: sample (s), frames, sample rate; then ``frames`` int16 samples
PCM_HEADER = struct.Struct("<4sIdII")
PCM_MAGIC = b"AUPC"
MAX_TEXT_QUEUE = 2000  # JSON messages waiting for one page


def pcm_packet(block: np.ndarray, seq: int, t_s: float, sample_rate: int) -> bytes:
    """A PCM packet of ``block`` (frames x channels, or frames; floats in [-1, 1])."""
    pcm = np.clip(np.round(block * 32767.0), -32767, 32767).astype("<i2")
    return PCM_HEADER.pack(PCM_MAGIC, seq & 0xFFFFFFFF, float(t_s), len(block),
                           int(sample_rate)) + pcm.tobytes()


class Client:
    """One page: a bounded audio queue (oldest dropped and counted) and a text queue."""

    _ids = iter(range(1, 1 << 62))

    def __init__(self, ws, max_audio_blocks: int, peer: str, audio: bool) -> None:
        self.id = next(self._ids)
        self.ws = ws
        self.peer = peer
        self.audio_on = audio
        self.max_audio = max(1, int(max_audio_blocks))
        self.audio: collections.deque = collections.deque()
        self.text: collections.deque = collections.deque()
        self.wake = asyncio.Event()
        self.dropped_blocks = 0
        self.dropped_text = 0
        self.sent_blocks = 0
        self.connected_at = time.time()

    def push_audio(self, packet: bytes) -> None:
        if not self.audio_on:
            return
        if len(self.audio) >= self.max_audio:
            self.audio.popleft()
            self.dropped_blocks += 1
        self.audio.append(packet)
        self.wake.set()

    def push_text(self, text: str) -> None:
        if len(self.text) >= MAX_TEXT_QUEUE:
            self.text.popleft()
            self.dropped_text += 1
        self.text.append(text)
        self.wake.set()

    def info(self) -> dict:
        return {"id": self.id, "peer": self.peer, "audio": self.audio_on,
                "queued_blocks": len(self.audio), "dropped_blocks": self.dropped_blocks,
                "dropped_text": self.dropped_text, "sent_blocks": self.sent_blocks}

    async def run_sender(self) -> None:
        ws = self.ws
        try:
            while not ws.closed:
                await self.wake.wait()
                self.wake.clear()
                while (self.text or self.audio) and not ws.closed:
                    if self.text:
                        await ws.send_str(self.text.popleft())
                    else:
                        await ws.send_bytes(self.audio.popleft())
                        self.sent_blocks += 1
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
