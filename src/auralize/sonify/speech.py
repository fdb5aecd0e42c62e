"""Speech prepared before it is heard: espeak-ng runs off the training loop.

An announcement's event carries only its text; the sampler voice
(:mod:`auralize.audio.voices.sampler`) makes the audio where the event is rendered,
from a disk cache.  :func:`prepare_speech` fills that cache on one background
thread of the training process as soon as a mapping decides what to say, so
neither the training loop nor a renderer's audio callback waits for espeak-ng.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from auralize.audio.voices.sampler import speech_duration_s

_tts_pool: ThreadPoolExecutor | None = None


def prepare_speech(text: str, rate_wpm: int = 175, voice: str = "en", pitch: int = 50) -> Future:
    """Synthesise ``text`` in a background thread (filling the caches); a Future of its
    duration in seconds.  The caller (a training loop) does not wait for espeak-ng."""
    global _tts_pool
    if _tts_pool is None:
        _tts_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="auralize-tts")
    return _tts_pool.submit(speech_duration_s, text, rate_wpm, voice, pitch)


__all__ = ["prepare_speech"]
