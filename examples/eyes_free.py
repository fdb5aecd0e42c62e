"""Eyes-free mode: everything a practitioner who does not see the charts needs, in sound.

    python examples/eyes_free.py [OUT_DIR]

- the loss as a pitch, with a quiet reference tone at the starting loss's pitch and
  a tick each time the loss tone crosses an octave below it;
- spoken announcements (espeak-ng): each epoch's numbers, a new best validation
  loss, a NaN loss, the end of training; without espeak-ng, earcons instead;
- the live page with an ARIA live region and keys (run with --web): 1-9 solo a
  series, Shift+1-9 mute it, V says the current values.
"""

import math
import sys

from auralize import Sonifier, TrainingStep

args = [a for a in sys.argv[1:] if not a.startswith("--")]
out_dir = args[0] if args else "runs/examples/eyes-free"
mappings = [
    {"kind": "loss", "reference_amp": 0.05, "octave_ticks": True},
    "alarm",
    {"kind": "speech", "rate_wpm": 220, "verbosity": "normal",
     "metrics": ["loss", "accuracy", "val_loss"]},
]
with Sonifier(out_dir, mappings=mappings, step_s=0.05, web="--web" in sys.argv,
              web_port=0) as sonifier:
    loss = 2.0
    for step in range(120):
        epoch = step // 40
        loss *= 0.975
        record = TrainingStep(step=step, epoch=epoch, loss=loss, epoch_end=step % 40 == 39)
        if record.epoch_end:
            record.metrics = {"accuracy": 1.0 - loss / 2.0,
                              "val_loss": loss * (1.1 if epoch != 1 else 0.9)}
        sonifier.log(record)
    sonifier.log(TrainingStep(step=120, epoch=3, loss=math.nan))  # "warning: loss is not a number"
result = sonifier.close()
print(f"wrote {result.wav_path} ({result.duration_s:.1f} s)")
