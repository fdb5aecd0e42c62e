"""``auralize compare``: two runs by ear, A left, B right, aligned by step."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  auralize compare sweeps/small/dnn_sgd_lr0.5_tanh sweeps/small/dnn_sgd_lr0.01_tanh -o ab.wav
  auralize compare runs/a runs/b -o ab.flac --step-s 0.1
then listen with headphones, or open http://127.0.0.1:8765/static/compare.html (any
`auralize serve`) and pick ab.wav: a cross-fader moves between A and B
"""


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="two runs side by side: A left, B right, aligned by step",
        description="Re-sonify two run folders (or logs) on one step clock and write them as "
                    "one stereo file: left = A, right = B, each channel exactly what "
                    "`auralize render RUN --clock step --step-s S --channels 1` writes.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_a", help="run folder or log heard on the left")
    p.add_argument("run_b", help="run folder or log heard on the right")
    p.add_argument("-o", "--out", required=True, help="stereo output (.wav/.flac/.ogg)")
    p.add_argument("--step-s", type=float, default=None,
                   help="audio seconds per step for both (default: as recorded; if the runs "
                        "differ, the longer)")
    p.add_argument("--sample-rate", type=int, default=None,
                   help="Hz for both (default: as recorded, which must then agree)")
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from auralize.audio.files import format_for_path
    from auralize.errors import AuralizeError
    from auralize.sonify.log_stream import open_log
    from auralize.sonify.rerender import compare_config, compare_logs

    out = Path(args.out)
    format_for_path(out)
    if args.step_s is not None and not args.step_s > 0:
        raise AuralizeError(f"--step-s must be positive, got {args.step_s}")
    if args.sample_rate is not None and not args.sample_rate > 0:
        raise AuralizeError(f"--sample-rate must be positive, got {args.sample_rate}")
    logs = open_log(args.run_a), open_log(args.run_b)
    sr = int(compare_config(logs[0], sample_rate=args.sample_rate).sample_rate)
    with tqdm(desc="rendering", leave=False,
              bar_format="{desc}: {n:.0f} s of audio [{elapsed}]") as bar:
        duration_s, _sr, step_s = compare_logs(  # streamed: each log read and rendered once
            *logs, out, step_s=args.step_s, sample_rate=args.sample_rate,
            progress=lambda frames: bar.update(frames / sr))
    print(f"A (left) {args.run_a}, B (right) {args.run_b}: {duration_s:.1f} s, "
          f"{step_s:g} s per step")
    print(f"wrote {out}")
    return 0
