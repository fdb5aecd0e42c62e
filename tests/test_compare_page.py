"""The compare page in a real browser: a stereo A|B file, one cross-fader."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from auralize.cli import main
from test_compare import _run


@pytest.fixture
def served(tmp_path):
    run = tmp_path / "a"
    _run(run, 0.1, 6)
    proc = subprocess.Popen([sys.executable, "-m", "auralize", "serve", "--run", str(run),
                             "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            found = re.search(r"open (http://\S+)", line)
            if found:
                yield found.group(1).rstrip("/"), run
                break
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_fader_moves_from_run_a_to_run_b(browser, served, tmp_path):  # noqa: F811
    url, run_a = served
    run_b = tmp_path / "b"
    _run(run_b, 0.001, 6)
    ab = tmp_path / "ab.wav"
    assert main(["compare", str(run_a), str(run_b), "-o", str(ab)]) == 0
    stereo = sf.read(str(ab), dtype="float32")[0]
    page = browser.new_page()
    page.goto(url + "/static/compare.html")
    page.set_input_files("#ab-file", str(ab))
    page.wait_for_selector("#player:not([hidden])", timeout=10000)
    assert "ab.wav" in page.inner_text("#names")
    n = len(stereo)
    seconds = n / 44100
    for x, want in ((0.0, stereo[:n, 0]), (1.0, stereo[:n, 1])):
        left, right = page.evaluate(
            "([s, x]) => window.auralizeCompare.renderMix(s, x, false)", [seconds, x])
        left = np.array(left)
        assert np.allclose(left, right)  # centred: both ears hear the chosen run
        assert np.abs(left - want / np.sqrt(2)).max() < 1e-3  # StereoPanner centre: -3 dB
    half = np.array(page.evaluate("([s, x]) => window.auralizeCompare.renderMix(s, x, true)",
                                  [seconds, 0.5]))
    assert np.abs(half[0] - stereo[:n, 0] * np.sqrt(0.5)).max() < 1e-3  # A left, B right
    assert np.abs(half[1] - stereo[:n, 1] * np.sqrt(0.5)).max() < 1e-3
    page.close()
