"""The live page in a real browser: Debian's chromium, headless, driven by playwright.

Skipped with a reason when chromium or playwright is missing, unless
``AURALIZE_REQUIRE_AUDIO=1`` (CI), which makes that a failure.  The screenshot of
the dashboard during a run is kept under ``$AURALIZE_ARTIFACTS`` (default
``<tmp>/auralize-artifacts``).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from auralize import Sonifier
from auralize.sonify.telemetry import TrainingStep

LAYERS = ["conv1", "conv2", "fc1", "fc2"]
ARTIFACTS = Path(os.environ.get("AURALIZE_ARTIFACTS",
                                Path(tempfile.gettempdir()) / "auralize-artifacts"))


class Trainer:
    """A fake training loop in a thread: ~18 steps/s with falling loss and grad norms."""

    def __init__(self, son: Sonifier, period_s: float = 0.055) -> None:
        self.son, self.period_s = son, period_s
        self.steps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            s = self.steps
            self.son.log(TrainingStep(
                step=s, epoch=s // 60, loss=2.2 * math.exp(-s / 70) + 0.25 + 0.03 * math.sin(s),
                grad_norms={n: (i + 1) * 0.6 * math.exp(-s / 90) + 0.04 * (1 + math.cos(s / 3))
                            for i, n in enumerate(LAYERS)}))
            self.steps += 1
            time.sleep(self.period_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def state(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=5) as r:
        return json.load(r)


def wait_for(page, expression: str, timeout_s: float = 15.0):
    page.wait_for_function(expression, timeout=timeout_s * 1000)
    return page.evaluate(expression)


def levels(port: int, n: int = 6, every_s: float = 0.08) -> list[float]:
    out = []
    for _ in range(n):
        out.append(state(port)["level_rms"])
        time.sleep(every_s)
    return out


def wait_levels(port: int, ok, timeout_s: float = 15.0) -> list[float]:
    """Levels once ``ok(levels)`` holds: a mixer change reaches the server's output
    after the blocks already rendered (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    got = levels(port)
    while not ok(got) and time.monotonic() < deadline:
        got = levels(port)
    return got


def test_page_plays_charts_mixes_and_looks_like_a_dashboard(browser):
    son = Sonifier(None, mappings=["loss", "gradients", "alarm"], live=False, plot=False,
                   web=True, web_port=0)
    port = son._web.port
    context = browser.new_context(bypass_csp=True,  # lets playwright evaluate expressions
                                  viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        with Trainer(son) as trainer:
            page.goto(son.web_url)
            wait_for(page, "window.auralize.sampleRate === 44100 && auralize.connected")
            assert page.inner_text("#conn-text") == "live"
            page.click("#start")  # the user gesture that lets audio start
            wait_for(page, "auralize.worklet.framesPlayed > 0")
            time.sleep(1.0)
            w1 = page.evaluate("auralize.worklet")
            wait_for(page, f"auralize.worklet.framesPlayed >= {w1['framesPlayed'] + 2 * 44100}")
            w2 = page.evaluate("auralize.worklet")
            assert w2["underruns"] == w1["underruns"], (w1, w2)  # none after the first second
            assert w2["state"] == "playing"
            seen = page.evaluate("auralize.steps")
            assert seen >= 20 and seen <= trainer.steps
            wait_for(page, f"auralize.charts.lossPoints >= {seen}")
            charts = page.evaluate("auralize.charts")
            assert charts["gradSeries"] == 4 and charts["gradPoints"] >= 4 * seen
            assert page.evaluate("auralize.gaps") == 0
            wait_for(page, f"+document.getElementById('s-step').textContent"
                           f".replace(/,/g, '') >= {seen}")  # the panel updates at 4 Hz

            # mixer: solo the loss tone, then mute it: the server's engine output goes silent
            wait_for(page, "'loss' in auralize.mix && 'gradients' in auralize.mix")
            page.click("[data-voice='loss'] .solo")
            wait_for(page, "auralize.mix.loss.solo && auralize.mix.gradients.effective_gain === 0")
            soloed = wait_levels(port, lambda x: min(x) > 1e-3)
            assert min(soloed) > 1e-3, soloed
            page.click("[data-voice='loss'] .mute")
            wait_for(page, "auralize.mix.loss.mute === true")
            acks = page.evaluate("auralize.acks.filter(a => a.of === 'mix')")
            assert acks and all(a["ok"] for a in acks)
            muted = wait_levels(port, lambda x: max(x) == 0.0)
            assert max(muted) == 0.0, muted
            assert state(port)["mix"]["loss"]["effective_gain"] == 0.0
            page.click("[data-voice='loss'] .mute")
            page.click("[data-voice='loss'] .solo")
            wait_for(page, "!auralize.mix.loss.mute && !auralize.mix.loss.solo")
            assert max(wait_levels(port, lambda x: max(x) > 1e-3)) > 1e-3

            # the artefact: the dashboard during a run
            time.sleep(1.5)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "web-dashboard.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 20_000
            print(f"screenshot: {shot}")
            assert page.evaluate("auralize.errors") == []
    finally:
        context.close()
        son.close()
    assert errors == []


def test_replay_page_with_a_token_plays_pauses_and_seeks(browser, tmp_path):
    """`auralize serve` mode bound off loopback: the token URL, then the transport."""
    from auralize.web.sources import ReplaySource
    from test_web_server import InProcess, load_replay, make_step

    run = tmp_path / "run"
    with Sonifier(run, mappings=["loss", "gradients", "alarm"], live=False, plot=False) as son:
        for i in range(150):
            son.log(make_step(i))
    score, duration_s, docs, config = load_replay(str(run))
    server = InProcess(ReplaySource(score, duration_s, config.engine_kwargs(), docs),
                       host="0.0.0.0", title="run")
    context = browser.new_context(bypass_csp=True, viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        assert server.token
        page.goto(f"http://127.0.0.1:{server.port}/?token={server.token}")
        wait_for(page, "auralize.connected && auralize.mode === 'replay' && auralize.steps === 150")
        assert page.is_visible("#transport")
        page.click("#start")  # the first listener starts the replay
        wait_for(page, "auralize.worklet.framesPlayed > 0.8 * 44100")
        page.click("#play")  # pause
        wait_for(page, "auralize.playing === false")
        time.sleep(0.3)
        seq = server.server.seq
        time.sleep(0.5)
        assert server.server.seq == seq  # paused: nothing rendered or sent
        page.evaluate("""(() => { const s = document.getElementById('seek');
            s.value = 500; s.dispatchEvent(new Event('change')); })()""")
        wait_for(page, f"Math.abs(auralize.scoreTimeS - {duration_s / 2}) < 0.05")
        page.click("#play")
        wait_for(page, "auralize.playing === true")
        played = page.evaluate("auralize.worklet.framesPlayed")
        wait_for(page, f"auralize.worklet.framesPlayed > {played + 0.8 * 44100}")
        assert server.server.source.score_time_s() > duration_s / 2
        time.sleep(0.8)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-replay.png"))
        assert page.evaluate("auralize.errors") == []
    finally:
        context.close()
        server.close()
    assert errors == []


def test_page_charts_a_thousand_layers_as_labelled_groups(browser, tmp_path):
    """A log of 1000 per-layer norms: the page draws at most 24 lines, each legend entry names
    its layers' span and count, and a note says the lines are group norms."""
    from auralize.web.replay_stream import load_streamed_replay
    from test_web_grad_groups import LAYERS, STEPS, _write_run
    from test_web_server import InProcess

    _write_run(tmp_path / "run")
    source, _config = load_streamed_replay(str(tmp_path / "run"))
    server = InProcess(source, title="run")
    context = browser.new_context(bypass_csp=True, viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(server.url)
        wait_for(page, f"auralize.connected && auralize.steps === {STEPS}")
        wait_for(page, "auralize.charts.gradPoints > 0")
        series = page.evaluate("auralize.charts.gradSeries")
        legend = page.eval_on_selector_all("#grad-legend span", "es => es.map(e => e.textContent)")
        assert 2 <= series <= 24 and len(legend) == series
        assert legend[0] == "h.0-41 (42 layers)", legend
        assert page.is_visible("#grad-note")
        assert page.inner_text("#grad-note").startswith(f"{LAYERS} layers, charted as groups")
        assert "group of layers" in page.get_attribute("#grad-chart", "aria-label")
    finally:
        context.close()
        server.close()
    assert errors == []
