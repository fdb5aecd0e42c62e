"""`auralize dream data|prepare|train`: the data set and the training of a sound classifier.

The parser is :mod:`auralize.commands.dream`; heavy imports are late (inside the actions).
"""

from __future__ import annotations

import json
from pathlib import Path

from auralize.errors import AuralizeError

DEFAULT_DATA = "auralize-out/dream/urbansound-synth"
DEFAULT_RUN = "auralize-out/dream/run"


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


__all__ = ["DEFAULT_DATA", "DEFAULT_RUN", "run_data", "run_prepare", "run_train"]
