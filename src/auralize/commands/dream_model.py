"""`auralize dream eval|export|run`: what a trained sound classifier does (evaluate, export,
dream).

The parser is :mod:`auralize.commands.dream`; heavy imports are late (inside the actions).
"""

from __future__ import annotations

from pathlib import Path

from auralize.commands.dream_train import DEFAULT_DATA
from auralize.errors import AuralizeError


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


__all__ = ["run_dream", "run_eval", "run_export"]
