"""``auralize check-audio``: play a test tone through the live engine (or loop input to output)."""

from __future__ import annotations

import argparse
import time

import numpy as np

from auralize.errors import AuralizeError

EXAMPLES = """examples:
  auralize check-audio                       2 s test tone on the chosen output
  auralize check-audio --seconds 5 --out tone.wav
  auralize check-audio --device jack         pick a device by name substring
  auralize check-audio --loopback            pass the input to the output (duplex)
"""


def register(sub) -> None:
    p = sub.add_parser(
        "check-audio",
        help="play a test tone (or loop input to output) and report underruns",
        description="Play a test tone through auralize's live engine (a child process "
        "feeding the device from a ring buffer) and report the device, underruns and "
        "latency.  With --loopback, pass the input device's signal to the output instead.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=2.0, help="duration (default 2)")
    p.add_argument("--loopback", action="store_true",
                   help="duplex stream: input passed to output (audio self-check)")
    p.add_argument("--device", help="device index or name substring (see `auralize devices`)")
    p.add_argument("--out", help="also record to this .wav/.flac/.ogg file")
    p.add_argument("--sample-rate", type=int, default=44100, help="Hz (default 44100)")
    p.add_argument("--block-size", type=int, default=512, help="frames per callback (512)")
    p.add_argument("--lead-ms", type=float, default=None,
                   help="audio kept ready ahead of the device, ms (default 100, as for "
                        "training sound; 20 is what playing live uses)")
    p.set_defaults(run=run)


def tone_score(seconds: float, sample_rate: int):
    """A 440 Hz tone with a fifth above, gliding up an octave and back, faded in and out."""
    from auralize.audio.score import Score

    sc = Score(sample_rate)
    sc.add_voice("tone", {"kind": "sines", "freq_hz": [440.0, 660.0], "amp": [0.0, 0.0],
                          "glide_s": 0.05})
    sc.set(0.0, "tone", "amp", [0.6, 0.2], glide_s=0.05)
    sc.set(seconds * 0.3, "tone", "freq_hz", [880.0, 1320.0], glide_s=seconds * 0.2)
    sc.set(seconds * 0.6, "tone", "freq_hz", [440.0, 660.0], glide_s=seconds * 0.2)
    sc.set(max(0.0, seconds - 0.1), "tone", "amp", [0.0, 0.0], glide_s=0.08)
    return sc


def run(args) -> int:
    if args.seconds <= 0:
        raise AuralizeError("--seconds must be positive")
    if args.loopback:
        return _loopback(args)
    from auralize.audio.live.output import STEADY_LEAD_S, LiveOutput

    if args.out:
        from auralize.audio.files import format_for_path

        format_for_path(args.out)  # bad extension -> one-line error before playing
    lead_s = STEADY_LEAD_S if args.lead_ms is None else args.lead_ms / 1000.0
    if not lead_s > 0:
        raise AuralizeError(f"--lead-ms must be positive, got {args.lead_ms}")
    device = args.device
    require_output_device(device)  # a self-check that cannot play fails before playing
    score = tone_score(args.seconds, args.sample_rate)
    live = LiveOutput(args.sample_rate, block_size=args.block_size, device=device, out=args.out,
                      lead_s=lead_s)
    live.start(score)
    dev = live.device_info.get("label") or "none (no live output)"
    print(f"playing {args.seconds:g} s test tone on: {dev}")
    # Wait for the audio, not the clock: the device may start a little after
    # start() returns, and the whole tone must be played and recorded.
    wanted = int(args.seconds * args.sample_rate)
    deadline = time.monotonic() + args.seconds + 10.0
    while live.stats().frames_rendered < wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    st = live.close()
    if args.out:
        print(f"wrote {args.out}")
    if not st.frames_played or st.device_lost:
        raise AuralizeError(f"the test tone did not play on {st.device or 'any device'} "
                            f"({st.frames_played} frames reached it); check `auralize devices`")
    print(f"device: {st.device or 'none'}")
    print(f"underruns: {st.underruns} (ring {st.ring_underruns}, device {st.device_underflows})")
    print(f"frames played: {st.frames_played}, rendered: {st.frames_rendered}")
    if st.frames_played:
        print(f"latency estimate: {st.latency_s * 1000:.1f} ms; "
              f"audio process CPU: {st.cpu_share * 100:.1f}% of one core")
    return 0


def require_output_device(device):
    """The output device a self-check will play to; a one-line error when there is none.

    Raises
    ------
    AuralizeError
        PortAudio cannot be loaded (names the Debian package), ``device`` matches no
        output, or no output device exists at all.
    """
    from auralize.audio.live import devices

    if devices.load_sounddevice(warn=False) is None:
        raise AuralizeError(f"nothing can play: {devices.portaudio_error()}")
    info = devices.choose_output_device(device, warn=False)  # unknown device -> error
    if info is None:
        raise AuralizeError("nothing can play: no audio output device found (is a sound "
                            "server such as JACK running?); run `auralize devices`")
    return info


def _loopback(args) -> int:
    from auralize.audio.live import devices

    out_dev = require_output_device(args.device)
    in_dev = devices.choose_input_device(args.device)
    if in_dev is None:
        raise AuralizeError("loopback needs an input device; none found (run `auralize "
                            "devices`)")
    ch = max(1, min(2, in_dev.max_input_channels, out_dev.max_output_channels))
    sr = args.sample_rate
    total = int(args.seconds * sr)
    rec = np.zeros((total, ch), dtype=np.float32)
    st = {"pos": 0, "under": 0, "over": 0, "peak": 0.0}

    def callback(indata, outdata, frames, time_info, status):
        if status.output_underflow:
            st["under"] += 1
        if status.input_overflow:
            st["over"] += 1
        outdata[:] = indata
        pos = st["pos"]
        n = min(frames, total - pos)
        if n > 0:
            rec[pos : pos + n] = indata[:n]
            st["pos"] = pos + n

    print(f"loopback: {in_dev.label} -> {out_dev.label}, {ch} channel(s), {args.seconds:g} s")
    with devices.portaudio() as pa:
        stream = pa.Stream(samplerate=sr, blocksize=args.block_size,
                           device=(in_dev.index, out_dev.index), channels=ch, dtype="float32",
                           callback=callback)
        with stream:
            time.sleep(args.seconds)
    got = rec[: st["pos"]]
    peak = float(np.abs(got).max()) if got.size else 0.0
    print(f"device: {out_dev.label} (input {in_dev.label})")
    print(f"underruns: {st['under']} (input overflows {st['over']})")
    print(f"frames passed: {st['pos']}, input peak {peak:.3f}")
    if args.out:
        from auralize.audio.files import write_audio

        print(f"wrote {write_audio(args.out, got, sr)}")
    if not st["pos"]:
        raise AuralizeError(f"nothing passed from {in_dev.label} to {out_dev.label}")
    return 0
