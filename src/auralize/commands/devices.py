"""``auralize devices``: list host APIs and audio devices, and say which output auralize uses."""

from __future__ import annotations

import argparse
import json

from auralize.errors import AuralizeError

EXAMPLES = """examples:
  auralize devices
  auralize devices --json
"""


def register(sub) -> None:
    p = sub.add_parser(
        "devices",
        help="list audio host APIs and devices, and the output auralize would use",
        description="List PortAudio host APIs and devices and show which output device "
        "auralize chooses (explicit --device, else the system default, else the first "
        "host API that has an output device).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", help="show what this index or name substring selects")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(run=run)


def run(args) -> int:
    from auralize.audio.live import devices

    sd = devices.load_sounddevice(warn=False)
    if sd is None:
        if args.device is not None:  # asked what a device selects: nothing can
            raise AuralizeError(f"no device {args.device!r}: {devices.portaudio_error()}")
        print(f"no live audio: {devices.portaudio_error()}")
        return 0
    apis = devices.host_apis()
    devs = devices.list_devices()
    # An explicit --device that matches nothing is a one-line error (exit 1).
    chosen = devices.choose_output_device(args.device, warn=False)
    why = devices.explain_choice(args.device)
    if args.json:
        print(json.dumps({
            "host_apis": apis,
            "devices": [d.to_dict() for d in devs],
            "output": chosen.to_dict() if chosen else None,
            "output_reason": why,
        }, indent=2))
        return 0
    print("Host APIs:")
    for api in apis:
        out = api["default_output_device"]
        print(f"  [{api['index']}] {api['name']}: {len(api['devices'])} device(s), "
              f"default output {out if out >= 0 else 'none'}")
    print("Devices:")
    if not devs:
        print("  (none)")
    else:
        print(f"  {'':2}{'idx':>4}  {'in':>3}  {'out':>3}  {'rate':>7}  host API / name")
        for d in devs:
            mark = "*" if chosen is not None and d.index == chosen.index else " "
            print(f"  {mark} {d.index:>4}  {d.max_input_channels:>3}  {d.max_output_channels:>3}"
                  f"  {d.default_samplerate:>7.0f}  {d.label}")
    print(f"Output auralize would use: {why if chosen else 'none (' + why + ')'}")
    return 0
