"""``auralize render``: re-sonify a finished run, a metrics CSV or a TensorBoard log."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """examples:
  auralize render runs/demo -o again.wav            # same settings: bit-identical audio
  auralize render metrics.csv -o loss.wav --mapping loss
  auralize render lightning_logs/version_0 -o run.flac --mapping all --step-s 0.05
  auralize render runs/long --digest 3min -o digest.wav   # a long run in 3 minutes
  auralize render mlflow:RUN_ID -o run.wav --tracking-uri http://mlflow:5000
"""

MAPPING_CHOICES = {
    "loss": ["loss", "alarm"],
    "gradients": ["gradients", "alarm"],
    "weights": ["weights"],
    "all": ["loss", "gradients", "weights", "alarm"],
    # the eyes-free sounds of `demo --sound` / `follow --sound` (they follow the loss)
    "eyes-free": "eyes-free",
    "earcons": "earcons",
}


def register(sub) -> None:
    p = sub.add_parser(
        "render", help="re-sonify a run folder, metrics CSV or TensorBoard log",
        description="Turn a training log into sound again, offline and deterministically.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("log", help="run folder, metrics .csv, telemetry .jsonl, TensorBoard dir, or "
                               "mlflow:RUN_ID")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking server for mlflow:RUN_ID (default $MLFLOW_TRACKING_URI)")
    p.add_argument("-o", "--out", required=True, help="output audio file (.wav/.flac/.ogg)")
    p.add_argument("--mapping", choices=sorted(MAPPING_CHOICES), default=None,
                   help="what to hear (default: as recorded, or all)")
    p.add_argument("--clock", choices=["step", "wall"], default=None,
                   help="step: fixed time per step; wall: real time (default: as recorded)")
    p.add_argument("--step-s", type=float, default=None, help="audio seconds per step")
    p.add_argument("--sample-rate", type=int, default=None, help="Hz (default 44100)")
    p.add_argument("--channels", type=int, choices=[1, 2], default=None,
                   help="2: stereo, 1: mono (default: as recorded; stereo for logs without settings)")
    p.add_argument("--no-plot", action="store_true", help="skip the spectrogram PNG")
    p.add_argument("--digest", metavar="LENGTH", default=None,
                   help="the whole run in about LENGTH (e.g. 3min, 90s): steps merged into "
                        "equal spans, each playing its most alarming step (NaN, spike) or "
                        "else its last")
    p.set_defaults(run=run)


def run(args) -> int:
    from tqdm import tqdm

    from auralize.audio.file_spectrogram import save_file_spectrogram
    from auralize.audio.files import format_for_path
    from auralize.sonify.digest import parse_duration_s
    from auralize.sonify.log_stream import open_log
    from auralize.sonify.rerender import render_config, render_log, render_log_digest

    out = Path(args.out)
    format_for_path(out)  # a bad extension fails before any work
    digest_s = parse_duration_s(args.digest) if args.digest is not None else None
    if str(args.log).startswith("mlflow:"):
        from auralize.sonify.log_stream import LogStream
        from auralize.trackers.mlflow_tail import read_mlflow

        records, recorded = read_mlflow(args.log, args.tracking_uri)
        log = LogStream(Path(args.log), lambda: iter(records), recorded, "mlflow")
    else:
        log = open_log(args.log)
    if args.mapping:
        # silence is not a rendering (the eyes-free sounds follow the loss)
        log.require_mapping_data("loss" if isinstance(MAPPING_CHOICES[args.mapping], str)
                                 else args.mapping)
    config = render_config(log, MAPPING_CHOICES[args.mapping] if args.mapping else None,
                           args.clock, args.step_s, args.sample_rate, args.channels)
    if digest_s is not None:
        steps, duration_s, per_slot = render_log_digest(log, config, out, digest_s)
        print(f"digest of {steps} steps ({per_slot} per slot), {duration_s:.1f} s of audio")
    else:
        sr = int(config.sample_rate)
        with tqdm(desc="rendering", leave=False,
                  bar_format="{desc}: {n:.0f} s of audio [{elapsed}]") as bar:
            steps, duration_s = render_log(log, config, out,
                                           progress=lambda frames: bar.update(frames / sr))
        print(f"rendered {steps} steps, {duration_s:.1f} s of audio")
    written = [out]
    if not args.no_plot:
        title = f"{'digest of' if digest_s is not None else 're-sonified'} {args.log}"
        written.append(save_file_spectrogram(out, out.with_name(out.stem + "_spectrogram.png"),
                                             title=title))
    for path in written:
        print(f"wrote {path}")
    return 0
