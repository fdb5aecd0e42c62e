"""``auralize demo``: train a small CNN on the digits set and hear it learn."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  auralize demo                         # 8 epochs, live if a sound device exists, runs/demo
  auralize demo --no-live --out /tmp/d  # only the run folder
  auralize demo --unbalanced            # soNNify's variant: one class almost removed
  auralize demo --clock wall            # sound follows training in real time
  auralize demo --lr 1.0 --optimizer sgd  # make it diverge and hear the alarm
  auralize demo --web --no-live         # listen in a browser: open the printed URL
  auralize demo --framework keras       # the same CNN in Keras 3, model.fit (KERAS_BACKEND=jax: on jax)
  auralize demo --sound eyes-free       # spoken epoch ends, a reference tone, octave ticks
"""


def register(sub) -> None:
    from auralize.sonify.presets import SOUNDS

    p = sub.add_parser(
        "demo", help="train soNNify's demo CNN on the digits set and hear it",
        description="Train a small CNN on scikit-learn's digits and sonify loss, gradients "
                    "and the last layer's weights, live and into a run folder.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--framework", choices=["torch", "keras"], default="torch",
                   help="torch: a PyTorch loop with auralize.torch.watch (default); keras: "
                        "Keras 3 model.fit with soNNify's ListenToLoss and WeightsDense")
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    p.add_argument("--sound", choices=sorted(SOUNDS), default="training",
                   help="what to hear (default training: loss tone, gradient tones, the last "
                        "layer's weight chord, alarm; eyes-free: loss with reference tone and "
                        "octave ticks, alarm, spoken epochs; earcons: the same with earcons)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 0.001)")
    p.add_argument("--optimizer", default="adam", help="sgd, adam, rmsprop or adadelta")
    p.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    p.add_argument("--no-live", action="store_true", help="do not play on a sound device")
    p.add_argument("--max-lag-ms", type=float, default=500.0,
                   help="live sound: the longest a step may wait to be heard; steps that "
                        "would wait longer are merged (default 500; the recording keeps all)")
    p.add_argument("--device", default=None, help="sound output device (index or name part)")
    p.add_argument("--clock", choices=["step", "wall"], default="step",
                   help="step: fixed audio time per step (default); wall: real time")
    p.add_argument("--unbalanced", action="store_true",
                   help="keep only one training sample of class --unbalanced-class")
    p.add_argument("--unbalanced-class", type=int, default=0, help="class for --unbalanced")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard scalars and the recording (OUT/tensorboard)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--web", action="store_true",
                   help="serve a live page (sound, spectrogram, charts, mixer); prints its URL")
    p.add_argument("--web-host", default="127.0.0.1",
                   help="page bind address (default 127.0.0.1; others need the printed token)")
    p.add_argument("--web-port", type=int, default=8765, help="page port (default 8765)")
    p.set_defaults(run=run)


def run(args) -> int:
    from auralize.digits import build_model, build_optimizer, load_digits_data, train
    from auralize.errors import AuralizeError
    from auralize.sonify.presets import sound_mappings
    from auralize.sonify.session import check_max_lag_s

    if args.epochs < 1 or args.batch_size < 1:
        raise AuralizeError("--epochs and --batch-size must be at least 1")
    check_max_lag_s(args.max_lag_ms / 1000.0, "--max-lag-ms", 1000.0)
    import torch

    torch.manual_seed(args.seed)
    data = load_digits_data(unbalanced_class=args.unbalanced_class if args.unbalanced else None,
                            seed=args.seed)
    session = {
        "out_dir": args.out, "clock": args.clock, "device": args.device,
        "live": False if args.no_live else "auto", "max_lag_s": args.max_lag_ms / 1000.0,
        "mappings": sound_mappings(args.sound),
        "tensorboard": args.tensorboard,
        **({"web": True, "web_host": args.web_host, "web_port": args.web_port}
           if args.web else {}),
    }
    how = "PyTorch"
    if args.framework == "keras":
        from auralize.digits import keras_backend

        how = f"Keras 3 ({keras_backend()} backend)"
    print(f"training soNNify's demo CNN in {how} on {len(data.x_train)} digits "
          f"({args.epochs} epochs, batch {args.batch_size}); sound: {args.sound}")
    if args.framework == "keras":
        from auralize.digits import train_keras

        out = train_keras(data, epochs=args.epochs, batch_size=args.batch_size,
                          optimizer=args.optimizer, lr=args.lr, sonifier_kwargs=session,
                          seed=args.seed)
    else:
        model = build_model("sonnify_cnn")
        optimizer = build_optimizer(args.optimizer, model.parameters(), args.lr)
        out = train(model, optimizer, data, epochs=args.epochs, batch_size=args.batch_size,
                    seed=args.seed, watch_kwargs=session)
    result = out["result"]
    print(f"validation accuracy {out['val_accuracy']:.3f} after {out['steps']} steps; "
          f"{result.duration_s:.1f} s of sound")
    live = result.stats.get("live") or {}
    if live:
        print(f"played live on {live.get('device')!r}: {live.get('underruns', 0)} underruns; "
              f"{live.get('steps_heard', 0)} steps heard, {live.get('steps_merged', 0)} merged "
              f"(training ran ahead); sound ended {live.get('sound_after_last_step_s', 0):.2f} s "
              "after the last step")
    alarms = result.stats.get("alarms") or {}
    if any(alarms.values()):
        print(f"alarms: {alarms}")
    for path in result.paths():
        print(f"wrote {path}")
    if result.tensorboard_dir:
        print(f"wrote {result.tensorboard_dir} (tensorboard --logdir {result.tensorboard_dir})")
    if args.web:
        print(f"replay it on the page: auralize serve --run {args.out}")
    return 0
