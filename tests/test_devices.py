"""Device choice (with a stand-in PortAudio) and the `devices` / `check-audio` commands on JACK."""

from __future__ import annotations

import json
import sys
import types
import warnings

import numpy as np
import pytest
import soundfile as sf

from auralize import cli
from auralize.audio.live import devices
from auralize.errors import AuralizeError


def _fake_sd(apis, devs, default=(-1, -1)):
    """A minimal stand-in for the sounddevice module (host APIs, devices, defaults)."""
    sd = types.SimpleNamespace()
    full = []
    for i, d in enumerate(devs):
        full.append({"index": i, "default_samplerate": 44100.0,
                     "default_low_output_latency": 0.01, **d})
    host = []
    for i, (name, dflt_out) in enumerate(apis):
        idx = [d["index"] for d in full if d["hostapi"] == i]
        host.append({"name": name, "devices": idx, "default_input_device": -1,
                     "default_output_device": dflt_out})
    sd.query_hostapis = lambda: tuple(host)
    sd.query_devices = lambda: full
    sd.default = types.SimpleNamespace(device=list(default))
    sd._initialize = sd._terminate = lambda: None
    return sd


@pytest.fixture
def fake_portaudio(monkeypatch):
    def install(apis, devs, default=(-1, -1)):
        monkeypatch.setattr(devices, "_sd", _fake_sd(apis, devs, default))
        monkeypatch.setattr(devices, "_warned", set())

    return install


def dev(name, api, n_in=0, n_out=2):
    return {"name": name, "hostapi": api, "max_input_channels": n_in, "max_output_channels": n_out}


def test_default_output_is_used(fake_portaudio):
    fake_portaudio([("ALSA", 1)], [dev("hdmi", 0), dev("pulse", 0)], default=(-1, 1))
    assert devices.choose_output_device().name == "pulse"


def test_empty_default_host_api_falls_back_to_first_with_output(fake_portaudio):
    # Linux with a JACK server: ALSA (the default host API) lists nothing.
    fake_portaudio([("ALSA", -1), ("OSS", -1), ("JACK Audio Connection Kit", 0)],
                   [dev("system", 2, n_in=2)], default=(-1, -1))
    info = devices.choose_output_device()
    assert info.name == "system" and info.hostapi_name.startswith("JACK")
    assert "first host API" in devices.explain_choice()


def test_input_only_devices_are_not_outputs(fake_portaudio):
    fake_portaudio([("ALSA", -1), ("JACK", -1)],
                   [dev("mic", 0, n_in=2, n_out=0), dev("system", 1)])
    assert devices.choose_output_device().name == "system"


def test_explicit_device_by_index_and_name(fake_portaudio):
    fake_portaudio([("ALSA", 0), ("JACK Audio Connection Kit", 1)],
                   [dev("hw:0", 0), dev("system", 1)], default=(-1, 0))
    assert devices.choose_output_device(1).name == "system"
    assert devices.choose_output_device("1").name == "system"
    assert devices.choose_output_device("SYST").name == "system"
    assert devices.choose_output_device("jack audio").name == "system"  # host API label
    with pytest.raises(AuralizeError, match="no output device matches 'nope'"):
        devices.choose_output_device("nope")
    with pytest.raises(AuralizeError, match="index 7"):
        devices.choose_output_device(7)


def test_no_output_device_warns_once(fake_portaudio):
    fake_portaudio([("ALSA", -1), ("OSS", -1)], [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert devices.choose_output_device() is None
        assert devices.choose_output_device() is None
    assert len(caught) == 1 and "no audio output device" in str(caught[0].message)


def test_portaudio_missing_warns_once_and_never_raises(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails like a missing lib
    monkeypatch.setattr(devices, "_sd", None)
    monkeypatch.setattr(devices, "_sd_error", None)
    monkeypatch.setattr(devices, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert devices.load_sounddevice() is None
        assert devices.list_devices() == [] and devices.host_apis() == []
        assert devices.choose_output_device() is None
    assert len(caught) == 1 and "PortAudio" in str(caught[0].message)
    assert cli.main(["devices"]) == 0
    assert "no live audio" in capsys.readouterr().out


@pytest.fixture
def no_portaudio(monkeypatch):
    """sounddevice cannot be imported, as on a machine without libportaudio2."""
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    monkeypatch.setattr(devices, "_sd", None)
    monkeypatch.setattr(devices, "_sd_error", None)
    monkeypatch.setattr(devices, "_warned", set())


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("auralize: error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("argv", [["check-audio", "--seconds", "0.2"],
                                  ["check-audio", "--loopback", "--seconds", "0.2"],
                                  ["check-audio", "--device", "bogus", "--seconds", "0.2"],
                                  ["devices", "--device", "bogus"]])
def test_self_checks_fail_without_portaudio(no_portaudio, capsys, tmp_path, argv):
    """A self-check that plays nothing exits 1 and names the package to install."""
    out = tmp_path / "tone.wav"
    extra = ["--out", str(out)] if argv[0] == "check-audio" else []
    assert cli.main(argv + extra) == 1
    assert "libportaudio2" in _one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("argv", [["check-audio", "--seconds", "0.2"],
                                  ["check-audio", "--loopback", "--seconds", "0.2"],
                                  ["check-audio", "--device", "bogus", "--seconds", "0.2"],
                                  ["devices", "--device", "bogus"]])
def test_self_checks_fail_without_an_output_device(fake_portaudio, capsys, argv):
    fake_portaudio([("ALSA", -1), ("OSS", -1)], [dev("mic", 0, n_in=2, n_out=0)])
    assert cli.main(argv) == 1
    err = _one_line_error(capsys)
    assert "bogus" in err if "bogus" in argv else "no audio output device" in err


def test_devices_without_device_option_still_lists(fake_portaudio, capsys):
    fake_portaudio([("ALSA", -1)], [])
    assert cli.main(["devices"]) == 0
    assert "Output auralize would use: none" in capsys.readouterr().out


def test_live_output_without_device_writes_file_at_real_time(tmp_path):
    from auralize.audio.live.output import LiveOutput

    out = tmp_path / "t.wav"
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        live = LiveOutput(live=False, out=out).start(
            voices={"t": {"kind": "sines", "freq_hz": [300.0], "amp": [0.4]}})
        live.send(__import__("auralize.audio.score", fromlist=["Event"]).Event(
            None, "t", "freq_hz", [600.0]))
        import time

        time.sleep(0.5)
        st = live.close()
    assert not st.live and st.frames_played == 0 and st.events_applied == 1
    data, sr = sf.read(out)
    assert 0.35 * sr <= len(data) <= 1.0 * sr and np.abs(data).max() > 0.1


def test_lead_must_be_positive(capsys, tmp_path):
    assert cli.main(["check-audio", "--lead-ms", "0", "--seconds", "0.1"]) == 1
    assert "--lead-ms must be positive" in capsys.readouterr().err
    assert cli.main(["generate", "live", "--run", str(tmp_path), "--lead-ms", "-5"]) == 1
    assert "--lead-ms must be positive" in capsys.readouterr().err
    from auralize.audio.live.output import LiveOutput

    with pytest.raises(AuralizeError, match="lead_s must be a positive"):
        LiveOutput(lead_s=0.0)


# -- against the real JACK server ------------------------------------------------------

pytest_audio = pytest.mark.audio


@pytest_audio
def test_devices_command_lists_jack(jack_server, capsys):
    assert cli.main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "JACK Audio Connection Kit" in out
    assert "Output auralize would use: [" in out and "JACK" in out.splitlines()[-1]
    assert cli.main(["devices", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["output"]["hostapi_name"].startswith("JACK")


@pytest_audio
def test_check_audio_plays_on_jack(jack_server, capsys, tmp_path):
    out = tmp_path / "tone.wav"
    assert cli.main(["check-audio", "--seconds", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "device: JACK Audio Connection Kit: system" in text
    assert "underruns: " in text and "(ring 0," in text  # JACK xruns of a busy host aside
    data, sr = sf.read(out)
    assert sr == 44100 and len(data) >= 0.95 * sr
    seg = data[: sr // 4]
    peak_hz = np.argmax(np.abs(np.fft.rfft(seg))) * sr / len(seg)
    assert abs(peak_hz - 440.0) < 10  # the test tone


@pytest_audio
def test_check_audio_loopback_on_jack(jack_server, capsys, tmp_path):
    out = tmp_path / "loop.wav"
    assert cli.main(["check-audio", "--loopback", "--seconds", "0.5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "loopback: JACK Audio Connection Kit: system" in text
    assert "underruns: " in text and "frames passed: " in text
    assert sf.info(out).frames >= 0.45 * 44100


@pytest_audio
def test_check_audio_unknown_device_is_a_one_line_error(jack_server, capsys):
    assert cli.main(["check-audio", "--device", "no-such-card", "--seconds", "0.2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("auralize: error: no output device matches 'no-such-card'")
