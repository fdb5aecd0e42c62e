"""Live generation: mix formula, identity-like models, JACK duplex with MIDI knobs."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from auralize.audio.live.devices import AudioUnavailableWarning
from auralize.cli import main
from auralize.errors import AuralizeError
from auralize.generate.config import GenConfig
from auralize.generate.features import Normalizer
from auralize.generate.live import LiveGenerator
from auralize.generate.live_chain import LiveChain, mix_weights
from auralize.generate.midi import KnobMap
from auralize.generate.model import BlockLSTM
from auralize.generate.train import load_run, save_run

GAINS = (0.2, 0.6, 1.0)  # models A, B, C: identity x gain


def identity_model(cfg: GenConfig, gain: float, eps: float = 1e-3) -> BlockLSTM:
    """A BlockLSTM that returns its input times ``gain`` (LSTM in its linear regime).

    Input and forget... gates: input and output gates open (bias +30), forget gate shut
    (bias -30), cell input tanh(eps * x) ~ eps * x, output layer 1 / eps.
    """
    f = cfg.feature_size
    m = BlockLSTM(f, f, 1)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.inp.weight.copy_(torch.eye(f) * eps)
        w = m.lstm.weight_ih_l0  # gates i, f, g, o
        w[2 * f : 3 * f].copy_(torch.eye(f))
        b = m.lstm.bias_ih_l0
        b[:f] = 30.0
        b[f : 2 * f] = -30.0
        b[3 * f :] = 30.0
        m.out.weight.copy_(torch.eye(f) * gain / eps)
    return m


def make_runs(root, cfg: GenConfig, gains=GAINS) -> list:
    norm = Normalizer(np.zeros(cfg.feature_size, np.float32),
                      np.full(cfg.feature_size, 4.0, np.float32))
    return [save_run(root / f"m{k}", cfg, identity_model(cfg, g), norm)
            for k, g in enumerate(gains)]


def expected_gain(cc1: float, cc2: float, gains=GAINS) -> float:
    return float(np.dot(mix_weights(cc1, cc2, len(gains)), gains))


def test_mix_weights_formula_and_reductions():
    a, b, c = mix_weights(0.3, 0.8, 3)
    assert np.isclose(a, 0.7) and np.isclose(b, 0.3 * 0.2) and np.isclose(c, 0.3 * 0.8)
    np.testing.assert_allclose(mix_weights(0.3, 0.8, 2), [0.7, 0.3])
    np.testing.assert_allclose(mix_weights(0.3, 0.8, 1), [1.0])
    for cc1, cc2 in np.random.default_rng(0).uniform(0, 1, (20, 2)):
        assert np.isclose(mix_weights(cc1, cc2, 3).sum(), 1.0)


def _assert_close(y, want, precision: str) -> None:
    if precision == "fp32":
        np.testing.assert_allclose(y, want, atol=3e-3)
    else:  # int8: a few % here (the identity trick's 1/eps output layer magnifies
        # the quantisation error; trained models show ~0.5 %); the gains compared
        # differ by >= 20 %, so the formula is still what is tested
        err = np.sqrt(np.mean((y - want) ** 2)) / np.sqrt(np.mean(want**2))
        assert err < 0.05, err


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_chain_follows_the_knobs_offline(tmp_path, precision):
    cfg = GenConfig(name="id", sample_rate=8000, block_size=64, hidden=126, depth=1)
    runs = [load_run(d) for d in make_runs(tmp_path, cfg)]
    chain = LiveChain(runs, precision)
    assert chain.precision == precision
    x = (0.4 * np.sin(np.arange(64 * 8) * 0.21)).astype(np.float32).reshape(8, 64)
    chain.process(x, 0.5, 0.5)  # ramps from 0.5/0.5 to itself: steady
    for cc1, cc2 in [(0.5, 0.5), (1.0, 0.0), (1.0, 1.0), (0.0, 0.3), (0.25, 0.75)]:
        chain.process(x, cc1, cc2)  # ramp block
        y = chain.process(x, cc1, cc2)  # steady
        _assert_close(y, x.reshape(-1) * expected_gain(cc1, cc2), precision)
    two = LiveChain(runs[:2], precision)
    y = two.process(x, 0.25, 0.9)
    y = two.process(x, 0.25, 0.9)
    _assert_close(y, x.reshape(-1) * (0.75 * 0.2 + 0.25 * 0.6), precision)


def test_knob_ramp_has_no_click(tmp_path):
    cfg = GenConfig(name="id", sample_rate=8000, block_size=64, hidden=126, depth=1)
    chain = LiveChain([load_run(d) for d in make_runs(tmp_path, cfg)])
    x = np.full((4, 64), 0.5, np.float32)
    chain.process(x, 0.0, 0.0)
    y = chain.process(x, 1.0, 1.0)  # gain 0.2 -> 1.0 within these 256 samples
    assert np.abs(np.diff(y)).max() < 0.01


def test_volume_and_mod_knobs_offline(tmp_path):
    """CC 7 sets the gain (GM curve), CC 1 mixes input and models; both glide, no click."""
    cfg = GenConfig(name="id", sample_rate=8000, block_size=64, hidden=126, depth=1)
    chain = LiveChain([load_run(d) for d in make_runs(tmp_path, cfg)], "fp32")
    x = (0.4 * np.sin(np.arange(64 * 8) * 0.21)).astype(np.float32).reshape(8, 64)
    wet = x.reshape(-1) * expected_gain(0.5, 0.5)
    _assert_close(chain.process(x, 0.5, 0.5), wet, "fp32")  # defaults: full volume, all wet
    for volume, mod in [(0.5, 1.0), (1.0, 0.0), (0.8, 0.25), (0.0, 1.0)]:
        y = [chain.process(x, 0.5, 0.5, volume=volume, mod=mod) for _ in range(4)][-1]
        want = volume**2 * (mod * wet + (1 - mod) * x.reshape(-1))
        _assert_close(y, want, "fp32")
    # A jump from silence to full volume glides in (tau 20 ms): the first samples stay
    # near silence (no click), the block's end (64 ms on) is at full level.
    y = chain.process(x, 0.5, 0.5, volume=1.0)
    gain = y / np.where(np.abs(wet) > 0.05, wet, np.nan)
    assert np.nanmax(gain[:16]) < 0.12 and np.nanmin(gain[-64:]) > 0.9
    assert np.all(np.diff(gain[np.isfinite(gain)]) > -1e-3)  # rising, never back


def test_midi_map_has_boii_volume_and_mod(tmp_path):
    import mido

    m = KnobMap()
    assert (m.volume, m.mod) == (7, 1)
    assert m.knob_of(mido.Message("control_change", control=7, value=5)) == "volume"
    assert m.knob_of(mido.Message("control_change", control=1, value=5)) == "mod"
    p = tmp_path / "map.toml"
    p.write_text("[knobs]\nvolume = 11\nmod = 2\n")
    m = KnobMap.load(p)
    assert m.knob_of(mido.Message("control_change", control=11, value=5)) == "volume"
    assert m.knob_of(mido.Message("control_change", control=7, value=5)) is None
    p.write_text("[knobs]\nvolume = 200\n")
    with pytest.raises(AuralizeError, match="0-127"):
        KnobMap.load(p)


def test_midi_map(tmp_path):
    import mido

    p = tmp_path / "map.toml"
    p.write_text("[knobs]\ncc1 = 1\ncc2 = 7\nchannel = 2\n")
    m = KnobMap.load(p)
    assert m.knob_of(mido.Message("control_change", control=1, value=5, channel=2)) == "cc1"
    assert m.knob_of(mido.Message("control_change", control=1, value=5, channel=0)) is None
    assert KnobMap().knob_of(mido.Message("control_change", control=71, value=5)) == "cc2"
    p.write_text("[knobs]\ncc3 = 1\n")
    with pytest.raises(AuralizeError, match="cc3"):
        KnobMap.load(p)


def test_live_bad_input(tmp_path, capsys):
    cfg = GenConfig(name="id", sample_rate=8000, block_size=64, hidden=126, depth=1)
    dirs = make_runs(tmp_path, cfg)
    with pytest.raises(AuralizeError, match="no MIDI input port matches"):
        LiveGenerator(dirs, midi_port="no-such-port-xyz")
    with pytest.raises(AuralizeError, match="no trained model"):
        LiveGenerator([tmp_path / "nothing"], midi_port=False)
    with pytest.raises(AuralizeError, match="one to three"):
        LiveGenerator(dirs + dirs[:1], midi_port=False)
    with pytest.raises(AuralizeError, match="lead_s must be a positive"):
        LiveGenerator(dirs, midi_port=False, lead_s=-0.01)
    with pytest.raises(AuralizeError, match="unknown precision 'bf16'"):
        LiveGenerator(dirs, midi_port=False, precision="bf16")
    with pytest.raises(AuralizeError, match=r"\.wav, \.flac or \.ogg"):
        LiveGenerator(dirs, midi_port=False, out=tmp_path / "set.mp3")
    assert main(["generate", "live", "--run", str(dirs[0]), "--midi", "no-such-port-xyz"]) == 1
    assert "no MIDI input port matches" in capsys.readouterr().err


def test_no_midi_device_warns_once(tmp_path, monkeypatch):
    from auralize.generate import midi

    cfg = GenConfig(name="id", sample_rate=8000, block_size=64, hidden=126, depth=1)
    dirs = make_runs(tmp_path, cfg)
    monkeypatch.setattr(midi, "input_ports", list)
    with pytest.warns(AudioUnavailableWarning, match="knobs stay at 0.5") as rec:
        gen = LiveGenerator(dirs)
    assert len(rec) == 1 and gen.midi is None


# ---------------------------------------------------------------------------------
# Real JACK: a feeder client plays a known sine into PortAudio's inputs, a recorder
# records its outputs, a virtual JACK MIDI port turns the knobs.
# ---------------------------------------------------------------------------------

FEED_HZ = 44100 / 64  # whole periods per 64-sample block
FEED_AMP = 0.3
# Head room of the soak tests: this shared 2-core VM's vCPUs stall 20-80 ms at
# times (steal time; the whole VM, JACK included, stops).  A lead longer than
# those stalls is what a user on such a machine would set (--lead-ms).
SOAK_LEAD_S = 0.15
PERIOD_S = 512 / 44100


# Run with `python -c` so it starts fast (only jack + numpy), even on a loaded machine.
FEEDER = f"""
import re, sys
import numpy as np
import jack
server = sys.argv[1]
client = jack.Client("feeder", no_start_server=True, servername=server)
port = client.outports.register("out")
st = {{"n": 0}}
sr = client.samplerate

@client.set_process_callback
def process(frames):
    n = st["n"]
    t = np.arange(n, n + frames) / sr
    port.get_array()[:] = ({FEED_AMP} * np.sin(2 * np.pi * {FEED_HZ} * t)).astype(np.float32)
    st["n"] = n + frames

client.activate()
print("ready", flush=True)
done = set()
import select
while not select.select([sys.stdin], [], [], 0.05)[0]:
    for p in client.get_ports(is_audio=True, is_input=True):
        if re.search(r"^PortAudio", p.name) and p.name not in done:
            try:
                client.connect(port, p)
                done.add(p.name)
            except jack.JackError:
                pass
client.deactivate()
client.close()
"""


def _live_run(tmp_path, jack_server, jack_recorder, stages, n_models=3, sample_rate=44100,
              out=None, lead_s=None):
    import rtmidi

    cfg = GenConfig(name="id", sample_rate=sample_rate, block_size=64, hidden=126, depth=1)
    tmp_path.mkdir(parents=True, exist_ok=True)
    dirs = make_runs(tmp_path, cfg, GAINS[:n_models])
    midi_out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="auralize-test")
    midi_out.open_virtual_port("knobs-test")
    feeder = subprocess.Popen([sys.executable, "-c", FEEDER, jack_server.name],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert feeder.stdout.readline().strip() == "ready"
    rec = jack_recorder(channels=1)
    gen = LiveGenerator(dirs, midi_port="knobs-test", out=out, lead_s=lead_s).start()
    try:
        rec.wait_connected(1)
        time.sleep(1.0)
        marks = []
        for cc1, cc2, dur, *more in stages:  # more: {controller: value} also sent
            if cc1 is not None:
                midi_out.send_message([0xB0, 74, cc1])
                midi_out.send_message([0xB0, 71, cc2])
            for control, value in (more[0] if more else {}).items():
                midi_out.send_message([0xB0, control, value])
            marks.append((time.perf_counter(), dur, cc1, cc2))
            time.sleep(dur)
    finally:
        stats = gen.close()
        cap = rec.stop()
        feeder.communicate("stop\n", timeout=10)
        midi_out.close_port()
    return stats, cap, marks



@pytest.mark.audio
def test_live_jack_follows_midi_knobs(tmp_path, jack_server, jack_recorder):
    stages = [(None, None, 0.8), (127, 0, 0.8), (127, 127, 0.8), (0, 0, 0.8), (64, 127, 0.8)]
    # The steady lead keeps a host stall from punching a hole into a measured
    # segment; the segments start 0.3 s after each knob move, past lead + device.
    stats, cap, marks = _live_run(tmp_path, jack_server, jack_recorder, stages,
                                  lead_s=SOAK_LEAD_S)
    # Dropouts are asserted over 10 s in the slow test; here the knob formula.
    assert stats.midi_messages >= 8 and stats.midi_port.endswith("knobs-test")
    for (_t0, _dur, cc1, cc2), rms in zip(marks, _stage_rms(cap, marks)):
        c1 = 0.5 if cc1 is None else cc1 / 127
        c2 = 0.5 if cc2 is None else cc2 / 127
        want = FEED_AMP * expected_gain(c1, c2) / np.sqrt(2)
        assert abs(rms - want) < 0.05 * want + 2e-3, (cc1, cc2, rms, want)
    print(stats.summary())


def _stage_rms(cap, marks) -> list[float]:
    """RMS of what played in each stage, from 0.3 s after its knob moves to 0.1 s before
    the next (past lead, device latency and glides)."""
    x = cap.data[:, 0]
    out = []
    for t0, dur, *_ in marks:
        k0 = int(np.searchsorted(cap.block_times, t0 + 0.3))
        k1 = int(np.searchsorted(cap.block_times, t0 + dur - 0.1))
        seg = x[cap.block_frames[k0] : cap.block_frames[min(k1, len(cap.block_frames) - 1)]]
        assert seg.size > 4000
        out.append(float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))))
    return out


@pytest.mark.audio
def test_live_jack_volume_and_mod_follow_midi(tmp_path, jack_server, jack_recorder):
    """boii's CC 7 (volume) changes the live gain; CC 1 (mod) mixes in the dry input."""
    stages = [(None, None, 0.8), (None, None, 0.8, {7: 64}), (None, None, 0.8, {7: 0}),
              (None, None, 0.8, {7: 127, 1: 0}), (None, None, 0.8, {1: 127})]
    stats, cap, marks = _live_run(tmp_path, jack_server, jack_recorder, stages,
                                  lead_s=SOAK_LEAD_S)
    rms = _stage_rms(cap, marks)
    wet = FEED_AMP * expected_gain(0.5, 0.5) / np.sqrt(2)
    dry = FEED_AMP / np.sqrt(2)
    want = [wet, (64 / 127) ** 2 * wet, 0.0, dry, wet]
    for got, w in zip(rms, want):
        assert abs(got - w) < 0.05 * w + 2e-3, (rms, want)
    assert stats.volume == 1.0 and stats.mod == 1.0 and stats.midi_messages >= 5
    print(stats.summary())


@pytest.mark.audio
@pytest.mark.slow
def test_live_jack_three_models_no_underruns(tmp_path, jack_server, jack_recorder):
    """10 s, three models, knobs moving: auralize never lets the output run dry.

    Ring underruns (the models' output not ready in time) must be 0 whatever the
    host does, as long as its stalls stay shorter than the lead.  JACK's own xruns
    (PortAudio's underflow / overflow flags) come from the server and the host: they
    must be 0 when the JACK graph kept time, and are reported otherwise.
    """
    stages = [(None, None, 4.0), (127, 0, 3.0), (30, 100, 3.0)]
    for attempt in (1, 2):
        log_at = len(jack_server.read_log())
        stats, cap, marks = _live_run(tmp_path / f"a{attempt}", jack_server, jack_recorder,
                                      stages, lead_s=SOAK_LEAD_S)
        stall_ms = cap.longest_gap_ms(marks[0][0], marks[-1][0] + marks[-1][1])
        blame = jack_server.xrun_blame(log_at)
        print(f"{stats.summary()}; longest JACK cycle gap {stall_ms:.0f} ms; jackd: {blame[:4]}")
        if stall_ms < 0.7 * SOAK_LEAD_S * 1000:
            break
    else:  # stalls as long as the lead itself: no lead would do; as in test_live.py
        from conftest import audio_unavailable

        audio_unavailable(f"host too loaded for real-time audio: the JACK graph stalled for "
                          f"{stall_ms:.0f} ms (twice); {stats.summary()}")
    assert stats.wall_s >= 10.0 and stats.blocks * 64 >= 0.95 * 44100 * stats.wall_s
    assert stats.ring_underruns == 0, stats.summary()
    if stall_ms < 1.5 * PERIOD_S * 1000:  # the graph kept time: no xrun either
        assert stats.underruns == 0, stats.summary()
    # Latency as configured: the lead plus the device's own (two periods here).
    assert SOAK_LEAD_S <= stats.latency_s <= SOAK_LEAD_S + 3 * PERIOD_S
    x = cap.data[:, 0]
    assert np.isfinite(x).all() and np.abs(x).max() > 0.05


@pytest.mark.audio
def test_live_jack_resamples_for_an_8khz_model(tmp_path, jack_server, jack_recorder):
    """boii's models run at 8 kHz; JACK here at 44.1 kHz: streamed resampling both ways."""
    rec_path = tmp_path / "rec" / "live.wav"
    stats, cap, marks = _live_run(tmp_path, jack_server, jack_recorder, [(None, None, 2.0)],
                                  n_models=1, sample_rate=8000, out=rec_path,
                                  lead_s=SOAK_LEAD_S)
    assert "resampled 44100 <-> 8000 Hz" in stats.device
    assert stats.ring_underruns == 0, stats.summary()
    k0 = int(np.searchsorted(cap.block_times, marks[0][0] + 0.5))
    seg = cap.data[cap.block_frames[k0] : cap.block_frames[k0] + 44100, 0].astype(np.float64)
    assert seg.size > 20000
    want = FEED_AMP * GAINS[0] / np.sqrt(2)
    assert abs(np.sqrt(np.mean(seg**2)) - want) < 0.05 * want
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
    assert abs(np.argmax(spec) * 44100 / seg.size - FEED_HZ) < 3
    # --out recorded what played: at the device's rate, as long as the run, same level.
    import soundfile as sf

    rec, rate = sf.read(rec_path, dtype="float32")
    assert rate == 44100 and stats.recorded_to == str(rec_path)
    assert abs(rec.shape[0] / rate - stats.recorded_s) < 0.01
    assert abs(rec.shape[0] / rate - stats.wall_s) < 0.5
    tail = rec[-44100:].astype(np.float64)
    assert abs(np.sqrt(np.mean(tail**2)) - want) < 0.05 * want
    assert f"recorded {stats.recorded_s:.1f} s to {rec_path}" in stats.summary()
