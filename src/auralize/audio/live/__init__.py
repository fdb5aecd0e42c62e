"""The live device: an engine played ahead of a sound card in a worker process.

- :mod:`~auralize.audio.live.output`: ``LiveOutput``, the parent's side;
  :mod:`~auralize.audio.live.child`: ``LiveChild``, the worker that renders and
  feeds the device's callback through a :mod:`~auralize.audio.live.ringbuffer`;
- :mod:`~auralize.audio.live.devices`: host APIs, devices, which output to use;
- :mod:`~auralize.audio.live.frame_clock`: which engine frame is heard when;
- :mod:`~auralize.audio.live.stream_stats`: what a live stream reports.
"""
