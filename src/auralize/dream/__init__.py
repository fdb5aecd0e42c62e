"""Deep dreaming sounds: train a sound classifier on waveforms, then DeepDream with it.

Modules: :mod:`~auralize.dream.synth_data` (procedural UrbanSound8K look-alike),
:mod:`~auralize.dream.datasets` (UrbanSound8K and the seed's modified layout),
:mod:`~auralize.dream.frontend` (differentiable log-mel), :mod:`~auralize.dream.models`
(SB-CNN, fat_shallow, loading), :mod:`~auralize.dream.train` (Lightning),
:mod:`~auralize.dream.evaluate`, :mod:`~auralize.dream.export` (TorchScript),
:mod:`~auralize.dream.deepdream` (gradient ascent on the waveform),
:mod:`~auralize.dream.recording` (a whole recording, windowed and cross-faded) and
:mod:`~auralize.dream.modified_copy` (the seed's 8 kHz, 4 s copy of UrbanSound8K).  Importing
this package imports neither torch nor Lightning.
"""
