"""The notebook widget (anywidget): what the browser side gets and shows.

The JavaScript (``static/widget.js``) plays stems it receives as binary comm
messages through the AudioWorklet player the live page uses
(``auralize/web/static/worklet.js``, loaded from a Blob URL: a notebook serves
no files of ours), mixing them with the listener's mute, solo and level.  It
charts the loss and says announcements in an ARIA live region.
"""

from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets

STATIC = Path(__file__).parent / "static"
WORKLET = Path(__file__).parents[1] / "web" / "static" / "worklet.js"


class AuralizeWidget(anywidget.AnyWidget):
    """Live training sound and a loss chart in a notebook output.

    Traits are what the page needs at start (``title``, ``sample_rate``, the
    worklet's source) and the latest state (``steps``, ``finished``); audio and
    steps come as custom messages (see :class:`~auralize.notebook.target.NotebookTarget`).
    """

    _esm = STATIC / "widget.js"
    _css = STATIC / "widget.css"
    title = traitlets.Unicode("training").tag(sync=True)
    sample_rate = traitlets.Int(44100).tag(sync=True)
    worklet_js = traitlets.Unicode("").tag(sync=True)
    steps = traitlets.Int(0).tag(sync=True)
    finished = traitlets.Bool(False).tag(sync=True)

    def __init__(self, **kwargs) -> None:
        super().__init__(worklet_js=WORKLET.read_text(), **kwargs)
