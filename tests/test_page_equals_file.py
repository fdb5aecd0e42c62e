"""The live page's stream, heard in a real browser, is stereo and equals the file step by step.

A short training-like session (Sonifier, stereo, four gradient groups panned from
left to right by depth and the loss tone in the centre, steps of 0.25 s) serves its
live page to Debian's chromium.  What the page's socket worker hands its
AudioWorklet (decoded PCM with the score time of each packet) is captured by
patching one line into ``net.js`` on its way to the browser.  Each heard step is
found in that stream by score time and compared with the same step in
``sonification.wav``, per channel:

- while steps follow each other without a wait (training as fast as the step
  clock), the page plays the file's samples, delayed by whole frames: equal to
  16-bit rounding;
- after a wait (training slower than the step clock: the step is moved, the
  sustained sound holds meanwhile), the step has the file's events at the file's
  offsets, but every oscillator ran on through the wait, so its phases are not
  the file's and the samples cannot be: there the step's magnitude spectrum must
  correlate with the file's (>= 0.99) and its level match (0.5 dB) per channel.

And in every step heard the tones sit where their pans put them (equal power).
"""

from __future__ import annotations

import base64
import json
import math
import time

import numpy as np

from auralize import Sonifier
from auralize.audio.files import read_audio
from auralize.sonify.telemetry import TrainingStep
from test_web_page import wait_for

SR = 44100
STEP_S = 0.25
STEP_FRAMES = round(STEP_S * SR)
LAYERS = ["embed", "block0", "block1", "head"]  # pans -1, -1/3, +1/3, +1 (input left)
PANS = [-1.0, -1.0 / 3.0, 1.0 / 3.0, 1.0]
# tones of 41.7 ms: 4 slots + 2 of silence fill the 0.25 s step (GradientTones.events)
GRADIENTS = {"kind": "gradients", "duration": 0.05}
SLOT_S = STEP_S * 0.05 / (4 * 0.05 + 2 * 0.05)
LOSS = {"kind": "loss", "min_freq": 65.0, "max_freq": 90.0}  # far below the gradient tones
# The file is 16-bit by libsndfile's rule (top 16 bits of round(x * 2^31)), the page's
# packets round(x * 32767): two roundings and two scales, at most 2 LSB apart at full scale.
EXACT_TOL = 2.5 / 32767

# net.js hands each decoded packet to the worklet here; the patch posts a copy (as int16)
# to the page first.  The same bytes the worklet plays: nothing else is changed.
HOOK = 'audioPort.postMessage({ type: "pcm", samples: out }'
CAPTURE = ('self.postMessage({ type: "capture", seq, t, samples: out.map('
           '(f) => Int16Array.from(f, (x) => Math.round(x * 32767))) });\n  ')
# The page's socket worker, made from net.js patched as above (a blob of the page's own
# origin: the server refuses sockets from any other), reports to window.auralizeCapture.
INIT = """
window.auralizeCapture = [];
const PageWorker = window.Worker;
window.Worker = class extends PageWorker {
  constructor(url, options) {
    if (String(url).endsWith("static/net.js")) {
      const req = new XMLHttpRequest();
      req.open("GET", url, false);
      req.send();
      window.auralizeHooked = req.responseText.includes(HOOK);
      const text = req.responseText.replace(HOOK, CAPTURE + HOOK);
      url = URL.createObjectURL(new Blob([text], { type: "text/javascript" }));
    }
    super(url, options);
    this.addEventListener("message", (e) => {
      if (e.data && e.data.type === "capture") window.auralizeCapture.push(e.data);
    });
  }
};
""".replace("HOOK", json.dumps(HOOK)).replace("CAPTURE", json.dumps(CAPTURE))
DUMP = """() => {
  const caps = window.auralizeCapture;
  const meta = caps.map((c) => [c.seq, c.t, c.samples[0].length, c.samples.length]);
  let total = 0;
  for (const c of caps) total += c.samples[0].length * c.samples.length;
  const all = new Int16Array(total);
  let k = 0;
  for (const c of caps) {
    const n = c.samples[0].length, ch = c.samples.length;
    for (let i = 0; i < n; i++) for (let j = 0; j < ch; j++) all[k++] = c.samples[j][i];
  }
  const bytes = new Uint8Array(all.buffer);
  let s = "";
  for (let i = 0; i < bytes.length; i += 32768) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 32768));
  }
  return { meta, pcm: btoa(s) };
}"""


def grad_step(step: int) -> TrainingStep:
    return TrainingStep(step=step, loss=2.0 * math.exp(-step / 8) + 0.5,
                        grad_norms={n: (i + 1) * (1.0 + 0.3 * math.sin(step + i))
                                    for i, n in enumerate(LAYERS)})


def capture_of(page) -> tuple[np.ndarray, np.ndarray]:
    """(stereo samples, per packet [seq, score time, frames, channels]) the worklet got."""
    dump = page.evaluate(DUMP)
    meta = np.array(dump["meta"], dtype=np.float64).reshape(-1, 4)
    pcm = np.frombuffer(base64.b64decode(dump["pcm"]), "<i2")
    assert len(meta) and np.all(meta[:, 3] == 2), "the page's stream is stereo"
    return pcm.reshape(-1, 2).astype(np.float64) / 32767, meta


def step_starts(meta: np.ndarray, n_steps: int) -> list[int]:
    """Index in the capture of each step's first frame, from the packets' score times.

    A packet's score time is that of its first frame; inside a step it runs on with the
    frames, while a step is awaited it holds at the previous slot's end (the next step's
    score time).  So the first packet later than a step's score time, inside its slot,
    says exactly where the step began.
    """
    first = np.concatenate([[0], np.cumsum(meta[:, 2])[:-1]]).astype(int)
    starts = []
    for k in range(n_steps):
        t_k = k * STEP_S
        inside = np.flatnonzero((meta[:, 1] > t_k + 0.5 / SR) & (meta[:, 1] < t_k + STEP_S))
        assert len(inside), f"step {k} was not heard on the page"
        p = inside[0]
        start = first[p] - round((meta[p, 1] - t_k) * SR)
        assert p == 0 or start >= first[p - 1], f"step {k}: score times inconsistent"
        starts.append(int(start))
    return starts


def spectrum(x: np.ndarray) -> np.ndarray:
    return np.abs(np.fft.rfft(x * np.hanning(len(x))))


def db(a: float, b: float) -> float:
    return 20 * math.log10(max(a, 1e-12) / max(b, 1e-12))


def tone_band_rms(x: np.ndarray) -> float:
    """RMS of the gradient tones' band: above 170 Hz (their lowest pitch here is ~200 Hz,
    the loss tone's highest 90 Hz, over three bins of a 30 ms window away)."""
    spec = np.fft.rfft(x * np.hanning(len(x)))
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    return float(np.sqrt(np.sum(np.abs(spec[freqs > 170.0]) ** 2)))


def test_the_live_page_plays_each_step_as_the_file_has_it_in_stereo(browser, tmp_path):
    son = Sonifier(tmp_path / "run", mappings=[LOSS, GRADIENTS], step_s=STEP_S, live=False,
                   plot=False, web=True, web_port=0, max_lag_s=3.0)
    context = browser.new_context(bypass_csp=True)
    context.add_init_script(INIT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    step = 0
    try:
        page.goto(son.web_url)
        wait_for(page, "window.auralize.sampleRate === 44100 && auralize.connected")
        page.click("#start")
        wait_for(page, "window.auralizeCapture.length > 4")  # listening: packets flow
        # Steps that follow each other: the first two at once, then one every 0.2 s, so each
        # arrives 0.25 s or more before its slot (lag grows 0.05 s a step, max_lag_s 3).
        son.log(grad_step(0))
        for step in range(1, 10):
            son.log(grad_step(step))
            time.sleep(0.2 if step > 1 else 0.0)
        time.sleep(1.5)  # the backlog (under 1 s) plays out: the next steps wait, then move
        for pause in (0.45, 0.6, 0.5, 0.4):
            step += 1
            son.log(grad_step(step))
            time.sleep(pause)
        n_steps = step + 1
        result = son.close()
        wait_for(page, f"window.auralizeCapture.length && "
                       f"window.auralizeCapture.at(-1).t >= {n_steps * STEP_S}")  # the last slot heard
        hooked = page.evaluate("window.auralizeHooked")
        heard, meta = capture_of(page)
    finally:
        context.close()
    assert hooked, "net.js changed: the capture hook no longer applies"
    assert errors == []
    web = result.stats["web"]
    assert web["dropped_blocks_total"] == 0
    assert np.all(np.diff(meta[:, 0]) == 1), "packets were lost on the way to the worklet"
    recording, sr = read_audio(tmp_path / "run" / "sonification.wav")
    assert sr == SR and recording.shape[1] == 2

    starts = step_starts(meta, n_steps)
    # a step follows the previous one without a wait when it starts one slot later
    follows = [k > 0 and starts[k] - starts[k - 1] == STEP_FRAMES for k in range(n_steps)]
    first_wait = next((k for k in range(1, n_steps) if not follows[k]), n_steps)
    print(f"page: {web}; steps 0..{first_wait - 1} without a wait, then "
          f"{[k for k in range(first_wait, n_steps) if not follows[k]]} after one")
    assert first_wait >= 6, "the first steps should have followed each other"
    assert sum(not f for f in follows[first_wait:]) >= 3, "the last steps should have waited"

    worst = {"exact_lsb": 0.0, "corr": 1.0, "level_db": 0.0}
    for k in range(n_steps):
        ours = heard[starts[k]:starts[k] + STEP_FRAMES]
        file = recording[k * STEP_FRAMES:(k + 1) * STEP_FRAMES]
        assert len(ours) == len(file) == STEP_FRAMES, k
        if k < first_wait:  # the file's samples, delayed by whole frames
            err = np.max(np.abs(ours - file), axis=0)
            worst["exact_lsb"] = max(worst["exact_lsb"], float(np.max(err)) * 32767)
            assert np.all(err <= EXACT_TOL), (k, err * 32767)
        else:  # the file's events at the file's offsets; phases ran on through the wait
            for c in range(2):
                corr = np.corrcoef(spectrum(ours[:, c]), spectrum(file[:, c]))[0, 1]
                level = db(np.sqrt(np.mean(ours[:, c] ** 2)), np.sqrt(np.mean(file[:, c] ** 2)))
                worst["corr"] = min(worst["corr"], float(corr))
                worst["level_db"] = max(worst["level_db"], abs(level))
                assert corr >= 0.99 and abs(level) <= 0.5, (k, c, corr, level)
        # each tone at its place: right over left as the equal-power law says (1 dB)
        for i, pan in enumerate(PANS):
            a, b = (round((i * SLOT_S + 0.005) * SR), round(((i + 1) * SLOT_S - 0.005) * SR))
            left, right = tone_band_rms(ours[a:b, 0]), tone_band_rms(ours[a:b, 1])
            angle = (pan + 1) * math.pi / 4
            if abs(pan) == 1.0:  # hard left or right: the other side only hears leakage
                assert db(*((right, left) if pan < 0 else (left, right))) < -30, (k, i)
            else:
                assert abs(db(right, left) - db(math.sin(angle), math.cos(angle))) < 1.0, (k, i)
    print(f"worst per step: {worst}")
