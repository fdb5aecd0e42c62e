"""Shared fixtures: a real JACK server (dummy driver) and a recorder client.

Tests needing live audio skip with a clear reason when jackd is missing, unless
``AURALIZE_REQUIRE_AUDIO=1`` (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from jackutil import JackRecorder, JackServer, exported_env

REQUIRE_AUDIO = os.environ.get("AURALIZE_REQUIRE_AUDIO", "") not in ("", "0")
# Debian packages to treat as not installed (tests/fresh_machine/sitecustomize.py hides
# their libraries from Python; the helpers below hide their programs).
PRETEND_MISSING = set(os.environ.get("AURALIZE_TEST_PRETEND_MISSING", "").split())


# Real-time tests judge timing: audio played live into JACK (marked `audio`) or into a
# browser's AudioWorklet, and a training loop timed while a page stalls
# (test_web_server.py's overhead test).  They are marked `realtime` and run in
# `make test`'s second stage (`-m "audio or realtime"`), in a fresh process.  No test is
# retried: each judges what a listener hears, with margins taken from the live clock's
# documented bounds (sonify/live_clock.py, audio/live/frame_clock.py); a failure is a defect
# of the product or of the test.  The first stage (`-m "not audio and not realtime"`)
# waits for conditions, never for durations.
REALTIME_FILES = {"test_devices.py", "test_live.py", "test_sonify_live.py", "test_generate_live.py",
                  "test_web_page.py", "test_web_server.py", "test_web_access.py",
                  "test_stereo_live.py", "test_page_equals_file.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in REALTIME_FILES:
            item.add_marker(pytest.mark.realtime)


def audio_unavailable(reason: str) -> None:
    """Skip (or fail under AURALIZE_REQUIRE_AUDIO=1) for a missing audio component."""
    if REQUIRE_AUDIO:
        pytest.fail(f"AURALIZE_REQUIRE_AUDIO=1 but {reason}")
    pytest.skip(reason)


def installed_program(program: str, package: str) -> str:
    """The path of ``program`` from Debian ``package``; skip naming the package without it."""
    path = None if package in PRETEND_MISSING else shutil.which(program)
    if path is None:
        audio_unavailable(f"{program} not installed (Debian: apt-get install {package})")
    return path


def need_portaudio() -> None:
    """Skip (fail in CI) naming libportaudio2 when sounddevice cannot load PortAudio.

    Loaded as auralize loads it (PortAudio is not left initialised in this process).
    """
    from auralize.audio.live import devices

    if devices.load_sounddevice(warn=False) is None:
        audio_unavailable(f"PortAudio unavailable: {devices.portaudio_error()}")


def _need_audio_stack() -> None:
    installed_program("jackd", "jackd2")
    try:
        import jack  # noqa: F401
    except (ImportError, OSError) as exc:
        audio_unavailable(f"JACK-Client / libjack unavailable ({exc}); Debian: apt-get install "
                          "jackd2 (libjack), pip: JACK-Client")
    need_portaudio()


@pytest.fixture(scope="session")
def jack_server():
    """A running JACK server (dummy driver, 44.1 kHz, 512-frame periods).

    Its unique name is exported as JACK_DEFAULT_SERVER (with JACK_NO_START_SERVER=1)
    for this process and every child it spawns; PortAudio in the test process is
    re-initialised so that it sees the JACK host API.
    """
    _need_audio_stack()
    server = JackServer(44100, 512)
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001
        audio_unavailable(f"cannot start jackd: {exc}")
    with exported_env(server.env()):
        # auralize initialises PortAudio only around each device query, so it sees
        # this server.  If something imported sounddevice earlier, PortAudio is still
        # initialised from that import and lists the devices of that moment: refresh.
        sd = sys.modules.get("sounddevice")
        held = getattr(sd, "_initialized", 0) if sd is not None else 0
        if held:
            sd._terminate()
            sd._initialize()
        yield server
        if held:  # drop the JACK client PortAudio holds before its server goes
            sd._terminate()
        server.stop()
        if held:
            sd._initialize()


@pytest.fixture
def jack_recorder(jack_server):
    """Start a recorder that connects to auralize's (PortAudio's) output ports.

    Call ``rec = jack_recorder()``; it is stopped at the end if the test did not.
    """
    started = []

    def make(pattern: str = r"^PortAudio", channels: int = 2, max_s: float = 40.0):
        rec = JackRecorder(jack_server.name, pattern, channels, max_s).start()
        started.append(rec)
        return rec

    yield make
    for rec in started:
        if rec._proc is not None and rec._proc.is_alive():
            try:
                rec.stop()
            except Exception:  # noqa: BLE001
                rec._proc.kill()


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, driven by playwright (skips naming what is missing)."""
    chromium = installed_program("chromium", "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        audio_unavailable(f"playwright not installed ({exc})")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()
