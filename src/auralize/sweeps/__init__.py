"""Hyper-parameter sweeps heard as one piece of sound.

- :mod:`~auralize.sweeps.grid`: the gradient seed's grid (models x learning
  rates x optimizers x activations) in a process pool, the zero-dependency
  default; run folders, summary, grid picture and gallery;
- :mod:`~auralize.sweeps.trial_voices`: every running trial is a voice with its
  own register, timbre and stereo position, following its loss and gradient norm;
- trial events (start, early stop, error, new best) are earcons from the
  package's one table (:data:`auralize.sonify.earcons.EARCONS`), as in training;
- :mod:`~auralize.sweeps.sound`: :class:`SweepSound`, the driver's stereo
  recording (and live output) that both integrations feed, through the outputs
  a training session has (:class:`~auralize.sonify.outputs.Outputs`);
- :mod:`~auralize.sweeps.ray_tune`: Ray Tune engine, driver callback and
  worker-side reporter (needs the ``ray`` extra);
- :mod:`~auralize.sweeps.optuna_study`: the same for an Optuna study (``sweep`` extra).

Two runs side by side (``auralize compare``) is a re-rendering of logs:
:func:`auralize.sonify.rerender.compare_logs`.

Nothing here imports Ray or Optuna at import time.
"""

from auralize.sweeps.grid import repair_run_folder
from auralize.sweeps.sound import SweepSound

__all__ = ["SweepSound", "repair_run_folder"]
