"""The voices the engine plays: sine banks, filtered noise, the sampler.

- :mod:`~auralize.audio.voices.base`: the ``Voice`` base and shared parts;
  :mod:`~auralize.audio.voices.kinds` names the kinds and builds one from its spec;
- :mod:`~auralize.audio.voices.sine_bank` (with its numba kernels in
  :mod:`~auralize.audio.voices.bank_kernels`), :mod:`~auralize.audio.voices.noise`,
  :mod:`~auralize.audio.voices.sampler` (motifs and speech into buffers);
- :mod:`~auralize.audio.voices.params`: parameters that glide, and the check every
  incoming value passes; :mod:`~auralize.audio.voices.lfo`: the oscillators.
"""
