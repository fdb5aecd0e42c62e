"""``auralize generate convert|train|sample|live``: networks that make sound (boii/GRUV)."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """\
examples (a fresh machine, no downloads; DEMO trains in about half a minute):
  auralize generate convert --config DEMO       # procedural piano set (DEMO's data) -> features
  auralize generate train --config DEMO
  auralize generate sample --config DEMO --seconds 10 -o piano.wav
  auralize generate live --config DEMO -o live.wav
  auralize generate live --config A --config B --config C --midi "A49" -o set.wav   # boii's three

your own recordings (any WAV/FLAC/OGG, any rate/channels/bit depth):
  auralize generate convert recordings/chopin --config B
  auralize generate convert --config 1 --dataset chopin   # boii's layout: ROOT/datasets/chopin/wave/
  auralize generate train --config B --dataset chopin --keep-checkpoints 3
  auralize generate config B > my_config.toml             # a shipped config to copy and edit
  auralize generate sample --config my_config.toml --dataset chopin --seconds 30 -o out.wav

Shipped configs: A (13 x 250), B (7 x 511), C (9 x 511) boii networks at 8 kHz
(hours of training; boii's numbers 0, 1, 2 name them too), GRUV (1 x 1024) at
44.1 kHz, DEMO (2 x 256, the quick start); or the path of a TOML file in the same
layout (`auralize generate config NAME` prints one to start from).
Run folders: ROOT/runs/<hidden>_<depth>_<dataset>; data: ROOT/datasets/<dataset>/.
"""

DEFAULT_ROOT = Path("auralize-out/generate")


def register(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="train LSTMs on audio blocks, generate, and play live through them (boii/GRUV)",
        description="Convert recordings to block features, train stacked-LSTM generators, "
        "sample audio offline, or play live input through up to three models mixed by MIDI.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gsub = p.add_subparsers(dest="generate_command", metavar="STEP")

    def common(q, dataset: bool = True) -> None:
        q.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                       help=f"folder for datasets/ and runs/ (default {DEFAULT_ROOT})")
        if dataset:
            q.add_argument("--dataset", default=None,
                           help="dataset name (default: piano, the procedural set)")

    c = gsub.add_parser("convert", help="recordings -> normalised block features",
                        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("dir", nargs="?", type=Path, default=None,
                   help="folder of WAV/FLAC/OGG files (default: ROOT/datasets/<--dataset>/wave/, "
                        "boii's layout)")
    c.add_argument("--config", required=True, help=CONFIG_HELP)
    common(c)
    c.add_argument("--demo-data", action="store_true",
                   help="convert the procedural piano set instead of recordings (implied by "
                        "--config DEMO with no folder and no --dataset)")
    c.add_argument("--piano-files", type=int, default=30, help="procedural set: files (30)")
    c.add_argument("--piano-seconds", type=float, default=10.0,
                   help="procedural set: seconds per file (10)")
    c.add_argument("--seed", type=int, default=0, help="procedural set: random seed (0)")
    c.set_defaults(run=run_convert)

    t = gsub.add_parser("train", help="train (or resume) a config on a converted dataset",
                        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--config", required=True, help=CONFIG_HELP)
    common(t)
    t.add_argument("--keep-checkpoints", type=int, default=5, metavar="N",
                   help="epoch checkpoints kept: the newest N (default 5; 0 keeps all), "
                        "besides best.ckpt (lowest validation loss) and last.ckpt")
    t.add_argument("--epochs", type=int, default=None,
                   help="epochs to run now (default: the config's max_epochs)")
    t.add_argument("--fresh", action="store_true",
                   help="start over instead of resuming from the last checkpoint")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(run=run_train)

    s = gsub.add_parser("sample", help="generate audio offline from a trained run",
                        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--config", default=None, help="config name or TOML path (finds the run)")
    common(s)
    s.add_argument("--run", dest="run_dirs", type=Path, action="append", default=[],
                   help="run folder (instead of --config)")
    s.add_argument("--seconds", type=float, default=10.0, help="seconds to generate (10)")
    s.add_argument("-o", "--out", type=Path, required=True, help="output .wav/.flac/.ogg")
    s.add_argument("--seed-file", type=Path, default=None,
                   help="seed from this audio file (default: a dataset example)")
    s.add_argument("--example", type=int, default=None, help="dataset example index")
    s.add_argument("--seed", type=int, default=0, help="picks the example when none given")
    s.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="inference precision (default fp32; int8 is several times faster)")
    s.set_defaults(run=run_sample)

    v = gsub.add_parser("live", help="live input through up to three models, mixed by MIDI",
                        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("--config", action="append", default=[],
                   help="config name or TOML path; repeat up to three times (A, B, C)")
    v.add_argument("--run", dest="run_dirs", action="append", type=Path, default=[],
                   help="run folder(s) instead of --config")
    common(v)
    v.add_argument("--midi", default=None,
                   help="MIDI input port (name substring); default: the first one, else none")
    v.add_argument("--midi-map", type=Path, default=None,
                   help="TOML mapping knobs to CCs (default cc1 = 74, cc2 = 71)")
    v.add_argument("--seconds", type=float, default=None, help="stop after S seconds "
                   "(default: until Ctrl-C)")
    v.add_argument("--device", default=None, help="audio device (index or name substring)")
    v.add_argument("--gain", type=float, default=1.0, help="output gain (1.0)")
    v.add_argument("-o", "--out", type=Path, default=None,
                   help="also record the output to this .wav/.flac/.ogg file")
    v.add_argument("--precision", choices=("int8", "fp32"), default="int8",
                   help="inference precision (default int8: boii's three models live on a "
                        "quarter of float32's CPU, small error; fp32: exactly the "
                        "trained model)")
    v.add_argument("--lead-ms", type=float, default=None,
                   help="silence the output starts ahead by, ms: the head room against "
                        "dropouts (default two device periods + one block; raise it on a "
                        "busy or virtual machine)")
    v.set_defaults(run=run_live)

    g = gsub.add_parser("config", help="print a shipped config (TOML) to copy and edit",
                        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("name", nargs="?", default=None,
                   help="A, B, C, GRUV or DEMO (boii's 0, 1, 2 for A, B, C); none: list them")
    g.set_defaults(run=run_config)

    p.set_defaults(run=lambda args: (p.print_help(), 2)[1])


CONFIG_HELP = "config name (DEMO, A, B, C, GRUV; boii's 0, 1, 2 for A, B, C) or TOML path"


def _config(name):
    from auralize.generate.config import load_config

    return load_config(name)


def run_convert(args) -> int:
    from auralize.generate.data import convert

    cfg = _config(args.config)
    # The quick start: DEMO's own data is the piano set.  Any other config converts
    # recordings unless --demo-data asks for the generated set.
    demo = args.demo_data or (args.dir is None and args.dataset is None
                              and cfg.name.upper() == "DEMO")
    ds = convert(cfg, args.dir, root=args.root, dataset=args.dataset, demo_data=demo,
                 seed=args.seed, piano_files=args.piano_files, piano_seconds=args.piano_seconds,
                 progress=True)
    m = ds.meta
    print(f"dataset {m['dataset']!r}: {m['files_used']} files ({m['seconds']:.1f} s) -> "
          f"{m['sequences']} sequences of {cfg.seq_len + 1} blocks x {cfg.feature_size} "
          f"{cfg.features} features; {m['files_skipped']} files skipped")
    for s in m["skipped"][:5]:
        print(f"  skipped: {s['reason']}")
    print(f"wrote {ds.folder}")
    return 0


def run_config(args) -> int:
    from auralize.generate.config import shipped_config_path, shipped_configs

    if args.name is None:
        for name, path in sorted(shipped_configs().items()):
            print(f"{name:5} {_config(path).description}")
        return 0
    print(shipped_config_path(args.name).read_text(), end="")
    return 0


def _dataset_name(args) -> str:
    return args.dataset or "piano"


def run_train(args) -> int:
    from auralize.generate.data import Dataset, dataset_folder
    from auralize.generate.train import train

    cfg = _config(args.config)
    ds = Dataset.load(dataset_folder(args.root, _dataset_name(args), cfg))
    res = train(cfg, ds, runs_root=args.root / "runs", epochs=args.epochs,
                resume=not args.fresh, progress=not args.no_progress, seed=args.seed,
                keep_last=args.keep_checkpoints)
    h = res.history
    print(f"val_loss {h[0]['val_loss']:.4f} (epoch {h[0]['epoch']}) -> {h[-1]['val_loss']:.4f} "
          f"(epoch {h[-1]['epoch']}, step {res.global_step})")
    print(f"wrote {res.run_dir} (checkpoints/, tb/, model_graph.png, loss.png, history.json)")
    return 0


def _run_dirs(args) -> list[Path]:
    from auralize.errors import AuralizeError

    configs = args.config if isinstance(args.config, list) else (
        [args.config] if args.config else [])
    dirs = list(args.run_dirs)
    for name in configs:
        dirs.append(args.root / "runs" / _config(name).run_name(_dataset_name(args)))
    if not dirs:
        raise AuralizeError("give --config NAME (or --run DIR)")
    return dirs


def run_sample(args) -> int:
    from auralize.audio.files import write_audio
    from auralize.generate.sample import sample_audio, seed_features
    from auralize.generate.train import load_run

    run = load_run(_run_dirs(args)[0])
    seed = seed_features(run, args.seed_file, example=args.example, seed=args.seed)
    audio = sample_audio(run, args.seconds, seed, precision=args.precision, progress=True)
    path = write_audio(args.out, audio, run.cfg.sample_rate)
    print(f"wrote {path} ({len(audio) / run.cfg.sample_rate:.2f} s at {run.cfg.sample_rate} Hz, "
          f"peak {float(abs(audio).max(initial=0)):.3f})")
    return 0


def run_live(args) -> int:
    from auralize.errors import AuralizeError
    from auralize.generate.live import play_live

    if args.lead_ms is not None and not args.lead_ms > 0:
        raise AuralizeError(f"--lead-ms must be positive, got {args.lead_ms}")
    dirs = _run_dirs(args)
    if len(dirs) > 3:
        raise AuralizeError(f"live mixes at most three models, got {len(dirs)}")
    stats = play_live(dirs, midi_port=args.midi, midi_map=args.midi_map, seconds=args.seconds,
                      device=args.device, gain=args.gain, out=args.out,
                      lead_s=None if args.lead_ms is None else args.lead_ms / 1000.0,
                      precision=args.precision)
    print(stats.summary())
    return 0
