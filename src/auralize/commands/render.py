"""``auralize render``: re-sonify a finished run, a metrics CSV or a TensorBoard log."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """examples:
  auralize render runs/demo -o again.wav            # same settings: bit-identical audio
  auralize render metrics.csv -o loss.wav --mapping loss
  auralize render lightning_logs/version_0 -o run.flac --mapping all --step-s 0.05
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
    p.add_argument("--no-plot", action="store_true", help="skip the spectrogram PNG")
    p.set_defaults(run=run)


def run(args) -> int:
    from tqdm import tqdm

    from auralize.audio.files import format_for_path
    from auralize.audio.plots import save_spectrogram
    from auralize.audio.score import iter_blocks
    from auralize.audio.sinks import FileSink, MemorySink, write_blocks
    from auralize.sonify.logs import load_log, require_mapping_data
    from auralize.sonify.presets import sound_mappings
    from auralize.sonify.timeline import SonifyConfig, replay

    out = Path(args.out)
    format_for_path(out)  # a bad extension fails before any work
    if str(args.log).startswith("mlflow:"):
        from auralize.trackers.mlflow_tail import read_mlflow

        records, recorded = read_mlflow(args.log, args.tracking_uri)
    else:
        records, recorded = load_log(args.log)
    if args.mapping:
        # silence is not a rendering (the eyes-free sounds follow the loss)
        require_mapping_data(records, "loss" if isinstance(MAPPING_CHOICES[args.mapping], str)
                             else args.mapping, args.log)
    config = recorded or SonifyConfig()
    doc = config.to_dict()
    if args.mapping:
        choice = MAPPING_CHOICES[args.mapping]
        doc["mappings"] = sound_mappings(choice) if isinstance(choice, str) else choice
    if recorded is None or args.mapping:
        doc["step_s"] = None  # let the chosen mappings pick
    for key, value in (("clock", args.clock), ("step_s", args.step_s),
                       ("sample_rate", args.sample_rate)):
        if value is not None:
            doc[key] = value
    if doc["clock"] == "wall" and not any(r.wall_time_s for r in records):
        doc["clock"] = "step"  # no wall times in this log
    config = SonifyConfig.from_dict(doc)
    score, duration_s = replay(records, config)
    sr = int(config.sample_rate)
    blocks = iter_blocks(score.events, duration_s, sample_rate=sr, block_size=sr // 2,
                         **config.engine_kwargs())
    memory = MemorySink(sr)
    total = -(-int(round(duration_s * sr)) // (sr // 2))
    write_blocks(tqdm(blocks, total=total, unit="block", desc="rendering", leave=False),
                 [FileSink(out, sr), memory])
    written = [out]
    if not args.no_plot:
        written.append(save_spectrogram(memory.samples, sr, out.with_name(out.stem +
                                        "_spectrogram.png"), title=f"re-sonified {args.log}"))
    print(f"rendered {len(records)} steps, {duration_s:.1f} s of audio")
    for path in written:
        print(f"wrote {path}")
    return 0
