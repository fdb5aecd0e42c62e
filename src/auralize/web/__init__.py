"""Listen in the browser: a live page that plays and shows training sound.

- :mod:`auralize.web.server`: the asyncio HTTP + WebSocket server.  It renders
  its source's :class:`~auralize.audio.engine.Engine` at wall-clock pace and
  streams PCM blocks (int16, numbered) and telemetry records to every page; the
  page's mute/solo/gain controls (:mod:`~auralize.web.mixer`) become engine events.
  :mod:`~auralize.web.sources`: where the sound comes from (live session, replay);
  :mod:`~auralize.web.clients`: one page's queues and the PCM packets;
  :mod:`~auralize.web.auth`: tokens, Host and Origin checks;
  :mod:`~auralize.web.records`: what the page is told of each step.
- :mod:`auralize.web.bridge`: :class:`WebSink`, the training side.  It runs the
  server in a child process so that training never waits on a browser.
- ``static/``: the page (plain HTML, CSS, JavaScript and an AudioWorklet; no
  build step, nothing fetched from the internet).

``Sonifier(..., web=True)``, ``auralize demo --web`` and ``auralize serve --run DIR``
print the page's URL.
"""

from auralize.web.bridge import WebSink

__all__ = ["WebSink"]
