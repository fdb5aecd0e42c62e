"""The live page for people who do not see it: axe-core audit, keyboard only, live region.

axe-core (the npm package) is looked for in ``.node/node_modules/axe-core``
(``npm install --prefix .node axe-core``; ``make test`` does it) or at
``$AURALIZE_AXE``; missing, the audit skips, or fails under AURALIZE_REQUIRE_AUDIO=1.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

import pytest

from auralize import Sonifier
from auralize.sonify.telemetry import TrainingStep
from conftest import audio_unavailable
from test_web_page import wait_for

ROOT = Path(__file__).resolve().parents[1]
AXE = Path(os.environ.get("AURALIZE_AXE", ROOT / ".node/node_modules/axe-core/axe.min.js"))

# Two series far apart in pitch, so the page's own spectrum tells them apart:
# the loss tone at 1500..2000 Hz, gradient tones at 200..350 Hz.
MAPPINGS = [{"kind": "loss", "min_freq": 1500.0, "max_freq": 2000.0},
            {"kind": "gradients", "freq": 200.0, "scale": 50.0, "gap_tones": 0,
             "duration": 0.02}, "earcons"]
LOSS_BAND, GRAD_BAND = (1450.0, 2050.0), (180.0, 380.0)


class Trainer(threading.Thread):
    """A fake run: ~20 steps/s, a falling loss, two layers' gradient norms, epochs of 40."""

    def __init__(self, son: Sonifier) -> None:
        super().__init__(daemon=True)
        self.son, self.stop = son, threading.Event()

    def run(self) -> None:
        step = 0
        while not self.stop.is_set():
            end = step % 40 == 39
            self.son.log(TrainingStep(
                step=step, epoch=step // 40, loss=1.0 / (1 + step / 200), epoch_end=end,
                metrics={"accuracy": 0.5 + step / 1000} if end else {},
                grad_norms={"conv": 1.0 + 0.5 * math.sin(step), "fc": 2.0}))
            step += 1
            time.sleep(0.05)


@pytest.fixture
def live_page(browser):  # noqa: F811
    son = Sonifier(None, mappings=MAPPINGS, live=False, plot=False, web=True, web_port=0)
    trainer = Trainer(son)
    context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    trainer.start()
    try:
        page.goto(son.web_url)
        wait_for(page, "auralize.connected && 'gradients' in auralize.mix")
        yield page
        assert errors == []
    finally:
        trainer.stop.set()
        trainer.join(5)
        context.close()
        son.close()


def test_page_has_no_serious_accessibility_violations(live_page):
    if not AXE.exists():
        audio_unavailable(f"axe-core not found at {AXE} (npm install --prefix .node axe-core)")
    page = live_page
    wait_for(page, "auralize.steps > 5 && document.querySelectorAll('.voice').length >= 2")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    serious = [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
               for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], serious
    assert len(result["passes"]) > 20  # the audit ran: contrast, names, labels, ARIA...
    # and it would catch a control a screen reader cannot name
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<button id=bad></button>')")
    again = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    assert any(v["id"] == "button-name" and v["impact"] == "critical"
               for v in again["violations"])


def test_keyboard_alone_plays_solos_and_hears_the_change(live_page):
    page = live_page
    # Tab to the start button and press Enter, as a keyboard user does
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "start":
            break
    assert page.evaluate("document.activeElement.id") == "start"
    page.keyboard.press("Enter")
    wait_for(page, "auralize.started && auralize.worklet.framesPlayed > 0.5 * 44100")
    wait_for(page, f"auralize.bandDb({LOSS_BAND[0]}, {LOSS_BAND[1]}) > -50")

    def band_levels():
        out = []
        for _ in range(8):
            out.append(page.evaluate(f"[auralize.bandDb({LOSS_BAND[0]}, {LOSS_BAND[1]}), "
                                     f"auralize.bandDb({GRAD_BAND[0]}, {GRAD_BAND[1]})]"))
            time.sleep(0.1)
        return [max(x[0] for x in out), max(x[1] for x in out)]

    both = band_levels()
    assert both[0] > -50 and both[1] > -50, both
    # series 2 is "gradients": its key solos it, and the loss tone leaves the page's audio
    assert page.evaluate("Object.keys(auralize.mix)")[:2] == ["loss", "gradients"]
    page.keyboard.press("2")
    wait_for(page, "auralize.mix.gradients.solo && auralize.mix.loss.effective_gain === 0")
    time.sleep(0.8)  # the page's jitter buffer still holds the mix from before
    soloed = band_levels()
    assert soloed[0] < both[0] - 30 and soloed[1] > -50, (both, soloed)
    assert page.get_attribute("[data-voice='gradients'] .solo", "aria-pressed") == "true"
    # 0 restores everything; Shift+1 mutes series 1
    page.keyboard.press("0")
    wait_for(page, "!auralize.mix.gradients.solo")
    page.keyboard.press("Shift+Digit1")
    wait_for(page, "auralize.mix.loss.mute")
    # V says the current values in the live region, and the earcons' captions arrive there
    page.keyboard.press("v")
    wait_for(page, "auralize.announcements.some(t => t.startsWith('step '))")
    wait_for(page, "auralize.announcements.some(t => t.startsWith('epoch 1, loss'))",
             timeout_s=20)
    region = page.locator("#announce")
    assert region.get_attribute("aria-live") == "polite"
    assert "epoch 1, loss" in region.inner_text()


def test_a_replay_says_its_announcements_when_they_are_heard(browser, tmp_path):  # noqa: F811
    from auralize.web.sources import ReplaySource
    from test_web_server import InProcess, load_replay

    run = tmp_path / "run"
    with Sonifier(run, mappings=["loss", "earcons"], live=False, plot=False,
                  step_s=0.05) as son:
        for step in range(60):  # epochs of 20 steps: 1 s each
            son.log(TrainingStep(step=step, epoch=step // 20, loss=1.0 / (1 + step),
                                 epoch_end=step % 20 == 19))
    score, duration_s, docs, config = load_replay(str(run))
    server = InProcess(ReplaySource(score, duration_s, config.engine_kwargs(), docs))
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(server.url)
        wait_for(page, "auralize.mode === 'replay' && auralize.captions.length === 4")
        page.keyboard.press("a")  # audio on: the replay starts
        wait_for(page, "auralize.announcements.some(t => t.startsWith('epoch 1'))")
        first = page.evaluate("auralize.announcements.find(t => t.startsWith('epoch 1'))")
        assert first.startswith("epoch 1, loss") and page.evaluate("auralize.worklet.framesPlayed") \
            > 0.9 * 44100  # said when its moment (0.95 s) was heard, not before
        wait_for(page, "auralize.announcements.some(t => t.startsWith('training finished'))")
        assert "training finished, 3 epochs" in page.locator("#announce").inner_text()
    finally:
        context.close()
        server.close()
