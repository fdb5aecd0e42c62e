"""`auralize dream data|train|eval|export|run`: train a sound classifier, then dream with it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from auralize.errors import AuralizeError

DEFAULT_DATA = "auralize-out/dream/urbansound-synth"
DEFAULT_RUN = "auralize-out/dream/run"

EXAMPLES = """\
examples:
  auralize dream data --out data/us8k-synth            # generated UrbanSound8K look-alike
  auralize dream data --inspect ~/UrbanSound8K         # count usable / skipped files
  auralize dream prepare ~/UrbanSound8K --out data/us8k-modified  # the seed's 8 kHz, 4 s copy
  auralize dream train 600 32 data/us8k-synth --out runs/sb  # the seed's 3 arguments
  auralize dream train --epochs 30 --arch fat_shallow --data ~/UrbanSound8K --out runs/fs
  auralize dream train --resume --out runs/sb --steps 1200   # continue from the newest checkpoint
  auralize dream train --cv --data ~/UrbanSound8K --steps 3000 --out runs/cv  # 10-fold protocol
  auralize dream eval runs/sb --data data/us8k-synth --folds 10
  auralize dream export runs/sb -o sb_cnn.pt
  auralize dream run recording.wav --model sb_cnn.pt --objective class --class siren -o dream.wav
  auralize dream run --model sb_cnn.pt --objective layer --layer conv3 --octaves 3 -o d.wav
"""


def _sub(ss, name: str, help_text: str):
    """A `dream` action whose --help shows the examples of that action only."""
    lines = [ln for ln in EXAMPLES.splitlines() if f"auralize dream {name} " in ln]
    return ss.add_parser(name, help=help_text, epilog="examples:\n" + "\n".join(lines),
                         formatter_class=argparse.RawDescriptionHelpFormatter)


def register(sub) -> None:
    p = sub.add_parser(
        "dream",
        help="train a sound classifier (UrbanSound8K or generated) and DeepDream with it",
        description="Deep dreaming sounds: data (generated, inspected or prepared), training, "
                    "evaluation, export, dreaming.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(run=lambda args: (p.print_help(), 2)[1])
    ss = p.add_subparsers(dest="dream_command", metavar="ACTION")

    d = _sub(ss, "data", "generate the embedded data set, or inspect one")
    d.add_argument("--out", default=DEFAULT_DATA, help=f"where to write (default {DEFAULT_DATA})")
    d.add_argument("--per-class", type=int, default=8, help="clips per class per fold (8)")
    d.add_argument("--folds", type=int, default=10, help="number of folds (10)")
    d.add_argument("--classes", default=None, help="comma-separated subset of the 10 classes")
    d.add_argument("--max-rate", type=int, default=None, help="cap the files' sample rates (Hz)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--inspect", metavar="PATH", default=None,
                   help="load an existing data set and report usable and skipped files")
    d.add_argument("--sample-rate", type=int, default=22050, help="rate for --inspect (22050)")
    d.set_defaults(run=run_data)

    pr = _sub(ss, "prepare", "copy UrbanSound8K as the seed's modified set "
                             "(8 kHz mono 16-bit, 4 s clips only, gun_shot dropped)")
    pr.add_argument("source", help="UrbanSound8K folder (metadata/UrbanSound8K.csv, audio/foldN)")
    pr.add_argument("--out", required=True, help="new folder: audio/CLASS/TRAIN-|VALIDATE-|TEST-*.wav")
    pr.add_argument("--sample-rate", type=int, default=8000, help="rate of the copy in Hz (8000)")
    pr.add_argument("--clip-s", type=float, default=4.0,
                    help="keep only clips of this length in seconds (4)")
    pr.add_argument("--drop", default="gun_shot", help="comma list of classes left out (gun_shot)")
    pr.add_argument("--train-folds", default="1-8", help="folds named TRAIN- (1-8)")
    pr.add_argument("--val-folds", default="9", help="folds named VALIDATE- (9)")
    pr.add_argument("--test-folds", default="10", help="folds named TEST- (10)")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")
    pr.set_defaults(run=run_prepare)

    t = _sub(ss, "train", "train a classifier with Lightning (checkpoints, TensorBoard); "
                          "--cv: the 10-fold protocol")
    t.add_argument("n_steps", nargs="?", type=int, default=None,
                   help="number of optimiser steps (seed's n_iterations; default 600)")
    t.add_argument("batch_pos", nargs="?", type=int, default=None, metavar="batch_size",
                   help="batch size (seed's second argument; also --batch-size; default 32)")
    t.add_argument("path", nargs="?", default=None, help="data folder (also --data)")
    _data_options(t, out_help=f"run folder (default {DEFAULT_RUN})")
    _train_options(t)
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    t.add_argument("--cv", action="store_true",
                   help="the official protocol: train one model per held-out test fold")
    t.add_argument("--cv-folds", default="1-10", help="test folds for --cv (1-10)")
    t.set_defaults(run=run_train)

    e = _sub(ss, "eval", "accuracy, per-class table, confusion matrix, per-clip predictions")
    e.add_argument("model", nargs="?", default=None,
                   help="checkpoint, run folder or exported .pt")
    e.add_argument("--folds", default=None,
                   help="folds (or split names) to evaluate on (10; the seed's modified copy: test)")
    _data_options(e, out_help="folder for eval_* files (default: the model's folder)")
    e.set_defaults(run=run_eval)

    x = _sub(ss, "export", "one TorchScript file with front end + weights")
    x.add_argument("checkpoint", help="checkpoint or run folder (newest checkpoint)")
    x.add_argument("-o", "--output", default=None, help="output .pt (default: RUN/model.pt)")
    x.set_defaults(run=run_export)

    r = _sub(ss, "run", "DeepDream on the waveform of a whole recording (any length and rate)")
    r.add_argument("input", nargs="?", default=None,
                   help="WAV/FLAC/OGG to dream on, any length and rate (default: --start)")
    r.add_argument("--model", "-m", required=True,
                   help="model file: exported .pt, checkpoint, or a run folder holding one")
    r.add_argument("-o", "--output", default="auralize-out/dream/dream.wav", help="dreamed WAV")
    r.add_argument("--objective", choices=["layer", "channel", "class", "logit"], default="layer",
                   help="layer energy, one channel's mean, a class's log-probability, or its logit")
    r.add_argument("--layer", default=None, help="layer name (default: last convolution)")
    r.add_argument("--channel", type=int, default=0, help="channel for --objective channel")
    r.add_argument("--class", dest="target_class", default=None, help="class name or index")
    r.add_argument("--steps", type=int, default=100,
                   help="gradient steps per model-length window (100)")
    r.add_argument("--step-size", type=float, default=None,
                   help="change per sample per step, full scale 1 (0.01 class/logit, else 0.002)")
    r.add_argument("--octaves", type=int, default=1, help="multi-scale octaves (1)")
    r.add_argument("--octave-scale", type=float, default=2.0, help="band ratio between octaves (2)")
    r.add_argument("--jitter-ms", type=float, default=10.0, help="random time shift per step (10 ms)")
    r.add_argument("--normalize", choices=["adam", "l1"], default="adam",
                   help="gradient normalization: adam (default) or l1 (classic DeepDream)")
    r.add_argument("--adaptive", action="store_true",
                   help="grow the step while the objective rises, halve it when it falls")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--start", default="noise",
                   help="without INPUT: 'noise' or a generated class such as siren")
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads (min(2, cores))")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(run=run_dream)


def _data_options(p, out_help: str) -> None:
    """Options that training and evaluation share: where the data and the results are."""
    p.add_argument("--data", default=None,
                   help=f"data folder: UrbanSound8K, the seed's modified copy, or generated "
                        f"(default {DEFAULT_DATA}, generated when missing)")
    p.add_argument("--out", default=None, help=out_help)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (min(2, cores))")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _train_options(t) -> None:
    """Training settings, in their own --help group."""
    g = t.add_argument_group("training")
    add = g.add_argument

    add("--arch", default="sb_cnn", help="architecture: sb_cnn or fat_shallow (sb_cnn)")
    add("--steps", type=int, default=None, help="optimiser steps")
    add("--epochs", type=int, default=None, help="epochs (instead of steps)")
    add("--batch-size", type=int, default=None)
    add("--lr", type=float, default=1e-3)
    add("--sample-rate", type=int, default=22050, help="model rate in Hz (22050)")
    add("--clip-s", type=float, default=4.0, help="clip length in seconds (4)")
    add("--train-folds", default="1-8")
    add("--val-folds", default="9")
    add("--test-folds", default="10")
    add("--val-every", type=int, default=50, help="validate every N steps (50)")
    add("--ckpt-every", type=int, default=100, help="checkpoint every N steps (100)")
    add("--keep", type=int, default=5, help="checkpoints kept (5)")
    add("--augment", default="shift,gain,noise,stretch",
        help="comma list of shift,gain,noise,stretch, or 'none'")
    add("--target-acc", type=float, default=None,
        help="stop once validation accuracy reaches this (e.g. 0.95)")
    add("--seed", type=int, default=0)


# ----------------------------------------------------------------------------- helpers


def _resolve_model_path(path: str) -> Path:
    """A model file, or in a run folder its ``model.pt`` or else its newest checkpoint."""
    p = Path(path)
    if not p.is_dir() or (p / "model.pt").is_file():
        return p / "model.pt" if p.is_dir() else p
    from auralize.dream.checkpoints import latest_checkpoint

    ck = latest_checkpoint(p)
    if ck is None:
        raise AuralizeError(f"no model.pt or checkpoints in {str(p)!r}")
    return ck


def _ensure_default_data(path: str) -> None:
    if Path(path).exists() or path != DEFAULT_DATA:
        return
    from auralize.dream.synth_data import generate_dataset

    print(f"no data given: generating the embedded data set in {path}")
    generate_dataset(path, progress=True)


def _train_config(args, steps=None, batch=None, data=None):
    from auralize.dream.datasets import parse_folds
    from auralize.dream.train import TrainConfig

    aug = [] if args.augment.strip().lower() in ("none", "") else [
        a.strip() for a in args.augment.split(",") if a.strip()
    ]
    same = ("arch", "sample_rate", "clip_s", "epochs", "lr", "val_every", "ckpt_every", "keep",
            "seed", "target_acc", "threads")  # options named as the TrainConfig fields
    return TrainConfig(
        data=data or args.data or DEFAULT_DATA,
        out=args.out or DEFAULT_RUN,
        steps=steps if steps is not None else args.steps,
        batch_size=batch or args.batch_size or 32,
        train_folds=parse_folds(args.train_folds),
        val_folds=parse_folds(args.val_folds),
        test_folds=parse_folds(args.test_folds),
        augment=aug,
        progress=not args.no_progress,
        **{name: getattr(args, name) for name in same},
    )


# ----------------------------------------------------------------------------- actions


def run_data(args) -> int:
    if args.inspect:
        from auralize.dream.datasets import detect_layout, load_dataset

        layout = detect_layout(args.inspect)
        clips = load_dataset(args.inspect, args.sample_rate, 4.0, progress=True)
        print(f"layout: {layout}")
        print(clips.summary())
        for path, why in clips.skipped:
            print(f"  skipped {path}: {why}")
        return 0
    from auralize.dream.synth_data import CLASSES, generate_dataset

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if classes:
        bad = [c for c in classes if c not in CLASSES]
        if bad:
            raise AuralizeError(f"unknown class(es) {', '.join(bad)}; classes: {', '.join(CLASSES)}")
    s = generate_dataset(args.out, per_class_per_fold=args.per_class, folds=args.folds,
                         classes=classes, seed=args.seed, max_rate=args.max_rate, progress=True)
    print(f"wrote {s.n_files} clips ({len(s.classes)} classes, {len(s.folds)} folds)")
    print(f"  {Path(s.root) / 'metadata' / 'UrbanSound8K.csv'}")
    print(f"  {Path(s.root) / 'audio'}/fold1..fold{len(s.folds)}")
    return 0


def run_prepare(args) -> int:
    from auralize.dream.datasets import parse_folds
    from auralize.dream.modified_copy import make_modified_copy

    drop = [c.strip() for c in args.drop.split(",") if c.strip()]
    rep = make_modified_copy(
        args.source, args.out, sample_rate=args.sample_rate, clip_s=args.clip_s, drop=drop,
        splits={"TRAIN": parse_folds(args.train_folds), "VALIDATE": parse_folds(args.val_folds),
                "TEST": parse_folds(args.test_folds)},
        progress=not args.no_progress,
    )
    print(rep.summary())
    print(f"wrote {Path(args.out) / 'audio'}/CLASS/{{TRAIN,VALIDATE,TEST}}-*.wav and "
          f"{Path(args.out) / 'README.txt'}")
    print(f"train on it: auralize dream train --data {args.out} --sample-rate {args.sample_rate}")
    return 0


def run_train(args) -> int:
    if args.cv:
        return _cross_validate(args)
    from auralize.dream.train import train

    data = args.path or args.data or DEFAULT_DATA
    steps = args.n_steps if args.n_steps is not None else args.steps
    if steps is None and args.epochs is None and not args.resume:
        steps = 600
    _ensure_default_data(data)
    cfg = _train_config(args, steps=steps, batch=args.batch_pos or args.batch_size, data=data)
    if args.resume and steps is None and args.epochs is None:
        saved = Path(cfg.out) / "config.json"
        if saved.exists():
            old = json.loads(saved.read_text())
            cfg.steps, cfg.epochs = old.get("steps"), old.get("epochs")
    rep = train(cfg, resume=args.resume)
    print(json.dumps(rep, indent=2))
    run = Path(rep["run"])
    print("wrote:")
    print(f"  {rep['checkpoint']}")
    for name in ("report.json", "test_confusion.png", "test_predictions.csv", "steps.csv", "tb"):
        if (run / name).exists():
            print(f"  {run / name}")
    print(f"TensorBoard: tensorboard --logdir {run / 'tb'}")
    return 0


def _cross_validate(args) -> int:
    from auralize.dream.datasets import parse_folds
    from auralize.dream.train import cross_validate

    data = args.path or args.data or DEFAULT_DATA
    _ensure_default_data(data)
    steps = args.n_steps or args.steps
    cfg = _train_config(args, steps=steps if steps or args.epochs else 600,
                        batch=args.batch_pos or args.batch_size, data=data)
    cfg.out = args.out or "auralize-out/dream/cv"
    res = cross_validate(cfg, parse_folds(args.cv_folds))
    for k, acc in res["folds"].items():
        print(f"fold {k:>2}: test accuracy {acc:.4f}")
    print(f"mean {res['mean_acc']:.4f} +- {res['std_acc']:.4f} over {len(res['folds'])} folds")
    print(f"wrote {Path(cfg.out) / 'cv.json'}")
    return 0


def run_eval(args) -> int:
    from auralize.dream.datasets import parse_folds

    if not args.model:
        raise AuralizeError("give a MODEL (checkpoint, run folder or exported .pt)")
    from auralize.dream.datasets import detect_layout, load_dataset
    from auralize.dream.evaluate import evaluate, format_table, save_confusion_png
    from auralize.dream.models import load_model
    from auralize.dream.train import set_threads

    set_threads(args.threads)
    path = _resolve_model_path(args.model)
    model = load_model(path)
    data = args.data or DEFAULT_DATA
    if args.folds is None:
        args.folds = "test" if detect_layout(data) == "modified" else "10"
    folds = parse_folds(args.folds)
    clips = load_dataset(data, model.sample_rate, model.clip_samples / model.sample_rate,
                         splits=folds, progress=not args.no_progress)
    if len(clips) == 0:
        raise AuralizeError(f"no usable clips in fold(s)/split(s) {args.folds} of {data!r}")
    if list(clips.class_names) != list(model.class_names):
        raise AuralizeError(
            f"the data's classes ({', '.join(clips.class_names)}) differ from the model's "
            f"({', '.join(model.class_names)})"
        )
    out = Path(args.out or (args.model if Path(args.model).is_dir() else path.parent))
    csv_path = out / "eval_predictions.csv"
    res = evaluate(model, clips, predictions_csv=csv_path)
    print(f"model: {path}")
    print(clips.summary())
    print(format_table(res))
    png = save_confusion_png(res.confusion, res.class_names, out / "eval_confusion.png",
                             f"{Path(path).name} on {args.folds}: acc {res.accuracy:.3f}")
    js = res.to_json(out / "eval.json")
    print(f"wrote:\n  {png}\n  {js}\n  {csv_path}")
    return 0


def run_export(args) -> int:
    from auralize.dream.export import export_torchscript

    path = _resolve_model_path(args.checkpoint)
    out = Path(args.output) if args.output else (
        Path(args.checkpoint) / "model.pt" if Path(args.checkpoint).is_dir() else path.with_suffix(".pt")
    )
    info = export_torchscript(path, out)
    print(f"exported {path} -> {info['path']}")
    print(f"  classes: {', '.join(info['class_names'])}")
    print(f"  layers: {', '.join(info['layer_names'])}")
    print(f"  max |logit difference| vs checkpoint: {info['max_abs_logit_diff']:.3g}")
    return 0


def run_dream(args) -> int:
    import numpy as np

    from auralize.dream.deepdream import DreamConfig, dream, save_outputs, starting_clip
    from auralize.dream.models import load_model
    from auralize.dream.train import set_threads

    set_threads(args.threads)
    model = load_model(_resolve_model_path(args.model))
    cfg = DreamConfig(
        objective=args.objective, layer=args.layer, channel=args.channel,
        target_class=args.target_class, steps=args.steps, step_size=args.step_size,
        octaves=args.octaves, octave_scale=args.octave_scale, jitter_ms=args.jitter_ms,
        seed=args.seed, normalize=args.normalize, adaptive=args.adaptive,
    )
    if args.input:
        from auralize.audio.files import read_audio
        from auralize.dream.recording import dream_recording

        samples, rate = read_audio(args.input, mono=True)
        if not np.all(np.isfinite(samples)):
            raise AuralizeError(f"{args.input!r} holds NaN or infinite samples")
        print(f"input {args.input}: {len(samples) / rate:.2f} s at {rate} Hz; the model hears "
              f"{model.clip_samples / model.sample_rate:.2f} s windows at {model.sample_rate} Hz")
        res = dream_recording(model, samples, rate, cfg, progress=not args.no_progress)
    else:
        print(f"no input: dreaming from {args.start}")
        res = dream(model, starting_clip(model, args.start, args.seed), cfg,
                    progress=not args.no_progress)
    paths = save_outputs(res, args.output)
    ratio = f" ({res.end / res.start:.2f}x)" if res.start > 0 else ""
    print(f"{res.target}: {res.start:.4g} -> {res.end:.4g}{ratio} in {len(res.curve)} steps")
    i = int(np.argmax(res.probs_after))
    print(f"top class after: {res.class_names[i]} ({res.probs_after[i]:.3f}); "
          f"before: {res.class_names[int(np.argmax(res.probs_before))]} "
          f"({float(np.max(res.probs_before)):.3f})")
    print(f"wrote ({len(res.wave) / res.sample_rate:.2f} s at {res.sample_rate} Hz):")
    for p in paths.values():
        print(f"  {p}")
    return 0
