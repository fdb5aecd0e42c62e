"""``auralize sweep``: the gradient seed's grid of runs, heard side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """examples:
  auralize sweep --out sweeps/full                     # 2 x 3 x 4 x 4 = 96 runs
  auralize sweep --out sweeps/small --models dnn --lrs 1.0 0.01 --optimizers sgd adam \\
      --activations relu tanh --jobs 2
then open sweeps/small/index.html to listen, or look at sweeps/small/grid.png
"""


def register(sub) -> None:
    p = sub.add_parser(
        "sweep", help="sweep models x learning rates x optimizers x activations",
        description="Train the gradient-sonification seed's grid on the digits set, one "
                    "process per run; a WAV + spectrogram per run, a grid PNG and an "
                    "index.html gallery.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="folder for the runs and the gallery")
    p.add_argument("--models", nargs="+", default=["cnn", "dnn"], help="cnn, dnn, sonnify_cnn")
    p.add_argument("--lrs", nargs="+", type=float, default=[1.0, 0.1, 0.01])
    p.add_argument("--optimizers", nargs="+", default=["sgd", "adam", "rmsprop", "adadelta"])
    p.add_argument("--activations", nargs="+", default=["relu", "linear", "sigmoid", "tanh"])
    p.add_argument("--epochs", type=int, default=1, help="epochs per run (seed: 1)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (seed: 32)")
    p.add_argument("--jobs", type=int, default=None, help="parallel runs (default: cores)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args) -> int:
    from auralize.errors import AuralizeError
    from auralize.sweep import (
        default_jobs,
        grid,
        run_sweep,
        save_grid,
        summarize,
        write_gallery,
        write_summary,
    )

    if args.epochs < 1 or args.batch_size < 1:
        raise AuralizeError("--epochs and --batch-size must be at least 1")
    specs = grid(args.models, args.lrs, args.optimizers, args.activations)
    out = Path(args.out)
    print(f"sweeping {len(specs)} runs into {out}")
    rows = run_sweep(specs, out, jobs=args.jobs or default_jobs(), epochs=args.epochs,
                     batch_size=args.batch_size, seed=args.seed)
    written = [write_summary(rows, out), save_grid(rows, out, out / "grid.png"),
               write_gallery(rows, out)]
    print(summarize(rows))
    for path in written:
        print(f"wrote {path}")
    return 0 if all("error" not in r for r in rows) else 1
