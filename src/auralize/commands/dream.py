"""`auralize dream data|prepare|train|eval|export|run`: train a sound classifier, then dream
with it.

This module is the command line (actions, options, examples); the actions run in
:mod:`auralize.commands.dream_train` (data, prepare, train) and
:mod:`auralize.commands.dream_model` (eval, export, run: what a trained model does).
"""

from __future__ import annotations

import argparse

from auralize.commands.dream_model import run_dream, run_eval, run_export
from auralize.commands.dream_train import (
    DEFAULT_DATA,
    DEFAULT_RUN,
    run_data,
    run_prepare,
    run_train,
)

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
