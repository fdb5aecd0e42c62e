"""``auralize follow``: hear any run while it trains, from its logs."""

from __future__ import annotations

import argparse
import signal
import threading
from contextlib import contextmanager

EPILOG = """examples:
  auralize follow lightning_logs/version_0           # TensorBoard events, new steps as they come
  auralize follow runs/tb --sound eyes-free          # spoken epochs, reference tone, octave ticks
  auralize follow metrics.csv --sound earcons --web  # earcons; the accessible page too
  auralize follow /mnt/synced/run --from-start       # a run on another machine, from its start
  auralize follow mlflow:RUN_ID --tracking-uri http://mlflow:5000   # an MLflow run's metrics
  Ctrl-C ends it; the recording in --out is complete.
"""


def register(sub) -> None:
    from auralize.sonify.presets import SOUNDS

    p = sub.add_parser(
        "follow", help="hear a run while it trains, from its TensorBoard/CSV/run-folder logs",
        description="Watch a run folder, a metrics CSV or a TensorBoard event folder while it "
                    "grows and sonify each new step as it appears: on the speaker when one "
                    "exists, into a run folder, and on the live page with --web.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("log", help="run folder, metrics .csv, .jsonl, TensorBoard event folder, or "
                               "mlflow:RUN_ID")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking server for mlflow:RUN_ID (default $MLFLOW_TRACKING_URI)")
    p.add_argument("-o", "--out", default="runs/follow",
                   help="run folder for the recording (default runs/follow)")
    p.add_argument("--sound", choices=sorted(SOUNDS), default="eyes-free",
                   help="what to hear (default eyes-free: loss tone with reference and "
                        "octave ticks, alarm, spoken announcements)")
    p.add_argument("--rate-wpm", type=int, default=None,
                   help="speaking rate in words per minute (80..500, default 175)")
    p.add_argument("--verbosity", choices=["brief", "normal", "full"], default=None,
                   help="what an epoch end says (default normal)")
    p.add_argument("--from-start", action="store_true",
                   help="also hear the steps already in the log (default: new steps only)")
    p.add_argument("--poll-s", type=float, default=0.2, help="seconds between looks (0.2)")
    p.add_argument("--idle-exit-s", type=float, default=None,
                   help="once steps came, stop after this many seconds without a new one "
                        "(default: never)")
    p.add_argument("--live", choices=["auto", "on", "off"], default="auto",
                   help="play on a sound device (auto: when one exists)")
    p.add_argument("--device", default=None, help="output device (index or name part)")
    p.add_argument("--max-lag-ms", type=float, default=500.0,
                   help="the longest a step may wait to be heard live (default 500)")
    p.add_argument("--web", action="store_true", help="serve the live page too")
    p.add_argument("--port", type=int, default=8765, help="page port (default 8765)")
    p.set_defaults(run=run)


def run(args) -> int:
    from auralize.errors import AuralizeError
    from auralize.sonify.follow import follow
    from auralize.sonify.logs import LogTail
    from auralize.sonify.presets import sound_mappings
    from auralize.sonify.session import Sonifier, check_max_lag_s

    if not args.poll_s > 0:
        raise AuralizeError(f"--poll-s must be positive, got {args.poll_s}")
    if str(args.log).startswith("mlflow:"):
        from auralize.trackers.mlflow_tail import MlflowTail

        log = MlflowTail(args.log, args.tracking_uri)  # a wrong ID fails before anything starts
    else:
        log = args.log
        LogTail(args.log)  # a missing or unknown log fails before anything starts
    live = {"auto": "auto", "on": True, "off": False}[args.live]
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    check_max_lag_s(args.max_lag_ms / 1000.0, "--max-lag-ms", 1000.0)
    sonifier = Sonifier(args.out, mappings=sound_mappings(args.sound, args.rate_wpm,
                                                          args.verbosity),
                        clock="wall", live=live, device=device, web=args.web,
                        max_lag_s=args.max_lag_ms / 1000.0,
                        web_port=args.port)
    result, stop = None, threading.Event()
    try:
        with _first_interrupt_sets(stop):
            # "following" once the history is read: a line appended after it is a new step
            result = follow(log, sonifier, poll_s=args.poll_s, from_start=args.from_start,
                            idle_exit_s=args.idle_exit_s, stop=stop,
                            on_started=lambda: print(f"following {args.log} (Ctrl-C to stop)",
                                                     flush=True))
        if stop.is_set():
            print("stopped", flush=True)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        done = sonifier.close()
    steps = result.steps if result is not None else done.steps
    print(f"heard {steps} steps; wrote {done.wav_path}", flush=True)
    return 0


@contextmanager
def _first_interrupt_sets(stop: threading.Event):
    """Ctrl-C sets ``stop`` (following ends between two looks at the log) instead of
    raising wherever the main thread is: a KeyboardInterrupt inside a send to the
    recording worker or a half-read log could leave the close waiting.  A second
    Ctrl-C raises as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def first(signum, frame):
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
