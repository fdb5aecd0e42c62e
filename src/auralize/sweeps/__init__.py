"""Hyper-parameter sweeps heard as one piece of sound.

- :mod:`~auralize.sweeps.trial_voices`: every running trial is a voice with its
  own register, timbre and stereo position, following its loss and gradient norm;
- :mod:`~auralize.sweeps.earcons`: short, distinct sounds for trial events
  (start, early stop, error, new best);
- :mod:`~auralize.sweeps.sound`: :class:`SweepSound`, the driver's stereo
  recording (and live output) that both integrations feed;
- :mod:`~auralize.sweeps.ray_tune`: Ray Tune engine, driver callback and
  worker-side reporter (needs the ``ray`` extra);
- :mod:`~auralize.sweeps.optuna_study`: the same for an Optuna study (``sweep`` extra);
- :mod:`~auralize.sweeps.compare`: two runs side by side, A left, B right.

Nothing here imports Ray or Optuna at import time.
"""

from auralize.sweeps.sound import SweepSound

__all__ = ["SweepSound"]
