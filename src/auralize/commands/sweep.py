"""``auralize sweep``: the gradient seed's grid of runs, heard side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """examples:
  auralize sweep --out sweeps/full                     # 2 x 3 x 4 x 4 = 96 runs
  auralize sweep --out sweeps/small --models dnn --lrs 1.0 0.01 --optimizers sgd adam \\
      --activations relu tanh --jobs 2
then open sweeps/small/index.html to listen, or look at sweeps/small/grid.png

  auralize sweep --engine ray --out sweeps/ray --models dnn --lrs 1.0 0.1 0.01 0.001 \
      --optimizers sgd --activations tanh --jobs 2    # local Ray, ASHA; hear it live
  auralize sweep --engine ray --address 10.0.0.5:6379 --out /shared/sweep ...
then play sweeps/ray/sweep.wav: every trial a voice, earcons for start/stop/error/best

engines: "pool" (default) needs nothing beyond auralize: one process per run on this
machine.  "ray" (pip install 'auralize[ray]') adds a scheduler (ASHA stops weak runs
early), clusters (--address), and the sweep as one piece of sound on this machine.
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
    ray = p.add_argument_group("ray engine")
    p.add_argument("--engine", choices=["pool", "ray"], default="pool",
                   help="pool: processes on this machine (default, no extra dependency); "
                        "ray: Ray Tune (the 'ray' extra)")
    ray.add_argument("--address", default=None,
                     help="Ray cluster to join (host:port, ray://host:port or auto); default: "
                          "start a local one with --jobs CPUs")
    ray.add_argument("--scheduler", choices=["asha", "fifo"], default="asha",
                     help="asha: stop weak trials early (default); fifo: run all to the end")
    ray.add_argument("--report-every", type=int, default=5,
                     help="training steps per Tune report (default 5)")
    ray.add_argument("--sound", default=None,
                     help="the driver's recording of the sweep (default OUT/sweep.wav)")
    ray.add_argument("--no-live", action="store_true", help="do not play the sweep live")
    ray.add_argument("--web", action="store_true",
                     help="also serve the sweep on the live page (mute/solo per trial)")
    p.set_defaults(run=run)


def run(args) -> int:
    from auralize.errors import AuralizeError
    from auralize.sweeps.grid import (
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
    jobs = args.jobs or default_jobs()
    written = []
    if args.engine == "ray":
        rows, sound = _run_ray(args, specs, out, jobs)
        written += [p for p in (sound.get("wav"), sound.get("json")) if p]
    else:
        rows = run_sweep(specs, out, jobs=jobs, epochs=args.epochs, batch_size=args.batch_size,
                         seed=args.seed)
    written += [write_summary(rows, out), save_grid(rows, out, out / "grid.png"),
               write_gallery(rows, out)]
    print(summarize(rows))
    for path in written:
        print(f"wrote {path}")
    return 0 if all("error" not in r for r in rows) else 1


def _run_ray(args, specs, out, jobs):
    from auralize.errors import AuralizeError

    if args.report_every < 1:
        raise AuralizeError("--report-every must be at least 1")
    from auralize.sweeps.ray_tune import run_ray_sweep  # one-line error without Ray

    sound = Path(args.sound) if args.sound else out / "sweep.wav"
    return run_ray_sweep(specs, out, jobs=jobs, epochs=args.epochs, batch_size=args.batch_size,
                         seed=args.seed, address=args.address, scheduler=args.scheduler,
                         report_every=args.report_every, sound_out=sound,
                         live=False if args.no_live else "auto", web=args.web)
