"""``auralize activations``: hear what SqueezeNet sees in images (netsounds)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

EXAMPLES = """\
examples:
  auralize activations                                  # procedural images, no downloads
  auralize activations --dpath photos --image-name bowl --image-size 1024
  auralize activations --dpath photos --scheme concat --method ola --out sounds
  auralize activations --dpath photos --weights squeezenet1_0-b66bff10.pth --device cuda

  auralize activations --layers features.3,features.7   # any layers instead of the 4 banks

Each image gets a folder under --out with, per filter bank i (1-4, or per --layers):
  activations-{i}_{label}.pt          the feature maps (torch.load)
  activations-{i}_{label}_{sr}Hz.wav  the maps read as spectrograms, as sound
  activations-{i}_{label}_{sr}Hz.png  its spectrogram
  activations-{i}_{label}_maps.png    every filter's map side by side
and activations-mix_{label}_{sr}Hz.wav/.png, the banks stretched and mixed, and
model-input.png, the image as the model received it (resized, oriented).
Weights: --weights PATH, else squeezenet1_x-*.pth in the torch hub cache
(~/.cache/torch/hub/checkpoints), else random (labels then mean nothing).
"""


def register(sub) -> None:
    p = sub.add_parser(
        "activations",
        help="sonify a CNN's feature maps for images (netsounds)",
        description="Run images through SqueezeNet, read each filter bank's feature maps "
        "as spectrograms and write them as sound, with top-5 predictions.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dpath", type=Path, default=None,
                   help="folder of images (or one image); default: make procedural images in --out")
    p.add_argument("--image-name", "--image_name", dest="image_name", default=None,
                   help="only images whose file name contains this fragment (default: all)")
    p.add_argument("--image-size", "--image_size", dest="image_size", type=int, default=256,
                   help="short edge in pixels after resizing (default 256)")
    p.add_argument("--scheme", choices=["sum", "concat", "none"], default="sum",
                   help="combine a bank's filters by summing, concatenating, or not at all "
                   "(one channel per filter) (default sum)")
    p.add_argument("--method", choices=["ifft", "ola"], default="ifft",
                   help="ifft: netsounds' per-row inverse FFT; ola: click-free overlap-add")
    p.add_argument("--normalize", choices=["minmax", "peak"], default="minmax",
                   help="per-filter scaling to [-1, 1]: minmax maps [min, max] onto it "
                        "(netsounds; shifts silence off 0), peak divides by the largest "
                        "magnitude (keeps 0 at 0: no DC offset) (default minmax)")
    p.add_argument("--sample-rate", "--sample_rate", dest="sample_rate", type=int, default=11025,
                   help="sample rate of the WAV files in Hz (default 11025)")
    p.add_argument("--model", choices=["squeezenet1_0", "squeezenet1_1"], default="squeezenet1_0")
    p.add_argument("--weights", type=Path, default=None,
                   help="state dict with torchvision's key names (default: torch hub cache)")
    p.add_argument("--mix", choices=["sum", "multiply", "none"], default="sum",
                   help="mix the banks, stretched to the longest (default sum)")
    p.add_argument("--subtype", choices=["PCM_16", "PCM_24", "FLOAT"], default="PCM_16",
                   help="WAV sample format (default PCM_16)")
    p.add_argument("--layers", action="append", default=None, metavar="NAMES",
                   help="layers to hear instead of the model's 4 banks: module names, "
                        "comma-separated or repeated (e.g. features.3,features.7,classifier.1)")
    p.add_argument("--no-plots", action="store_true", help="skip the spectrogram PNGs")
    p.add_argument("--no-pictures", action="store_true",
                   help="skip model-input.png and the feature-map grids")
    p.add_argument("--out", type=Path, default=Path("auralize-out/activations"),
                   help="output folder (default auralize-out/activations)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto",
                   help="where the model and the FFTs run (default auto: GPU when present)")
    p.set_defaults(run=run)


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from auralize.activations.images import find_images, make_procedural_images
    from auralize.activations.pipeline import resolve_device, sonify_image
    from auralize.errors import AuralizeError
    from auralize.models.squeezenet import BANKS, imagenet_classes, load_squeezenet

    if args.image_size < 32:
        raise AuralizeError(f"--image-size must be at least 32 px, got {args.image_size}")
    if args.sample_rate < 1:
        raise AuralizeError(f"--sample-rate must be positive, got {args.sample_rate}")
    device = resolve_device(args.device)
    out = Path(args.out)
    if args.dpath is None:
        made = make_procedural_images(out / "images")
        print(f"no --dpath: made {len(made)} procedural images in {out / 'images'}")
        dpath = out / "images"
    else:
        dpath = args.dpath
    images = find_images(dpath, args.image_name)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, source = load_squeezenet(args.model, args.weights, device)
    for w in caught:
        print(f"auralize: warning: {w.message}", file=sys.stderr)
    print(f"model {args.model} on {device}, weights: {source or 'random'}")
    if args.layers:
        from auralize.activations.capture import check_layer_names

        names = [n.strip() for item in args.layers for n in item.split(",") if n.strip()]
        if not names:
            raise AuralizeError("--layers names no layer: give module names such as features.3")
        check_layer_names(model, names, limit=None)
        banks = {n: n for n in dict.fromkeys(names)}
    else:
        banks = BANKS[args.model]

    labels = imagenet_classes()
    results, failures = [], []
    bar = tqdm(images, desc="images", unit="img", file=sys.stderr,
               disable=len(images) < 2 and not sys.stderr.isatty())
    for path in bar:
        bar.set_postfix_str(path.name)
        try:
            res = sonify_image(
                model, path, banks, out / path.stem,
                image_size=args.image_size, scheme=args.scheme, method=args.method,
                normalize=args.normalize,
                sample_rate=args.sample_rate, mix=None if args.mix == "none" else args.mix,
                labels=labels, save_plots=not args.no_plots, subtype=args.subtype,
                model_name=args.model, save_pictures=not args.no_pictures,
                clone=bool(args.layers),
            )
        except AuralizeError as exc:
            if len(images) == 1:
                raise
            failures.append(f"{path.name}: {exc}")
            continue
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        results.append(res)
        top = ", ".join(f"{name} {p:.1%}" for name, p in res.top5)
        tqdm.write(f"{path.name}: {top}", file=sys.stdout)
    bar.close()

    for res in results:
        print(f"wrote for {res.image.name} (top-1: {res.top5[0][0]}):")
        for p in res.paths:
            print(f"  {p}")
    if failures:
        raise AuralizeError(
            f"{len(failures)} of {len(images)} images failed: " + "; ".join(failures)
        )
    return 0
