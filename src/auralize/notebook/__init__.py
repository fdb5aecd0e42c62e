"""Live training sound in a Jupyter notebook, through the notebook's own connection.

``Sonifier(..., notebook=True)``, ``watch(..., notebook=True)`` or
``son.widget()`` show an anywidget (:mod:`.widget`) that plays the session's
live stream in the browser showing the notebook: JupyterLab, Notebook 7 and
VS Code alike, on a remote kernel too, with no port to forward.  The kernel side
(:mod:`.target`) is a live target like the speaker and the page: the session's
live clock places each step, and a thread renders it (one stem per voice, so
mute and solo act in the browser even while a cell keeps the kernel busy) and
sends the PCM as binary comm messages.
"""

from __future__ import annotations

from auralize.trackers import require_extra


def require_notebook() -> None:
    """A one-line error naming ``pip install auralize[notebook]`` without anywidget."""
    require_extra("anywidget", "notebook")
    require_extra("ipywidgets", "notebook")


__all__ = ["require_notebook"]
