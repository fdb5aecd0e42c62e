"""Worker processes: one model for every process auralize starts.

Used by the live device (``audio.live``), the recording worker (``sonify``), the page
(``web``) and live generation (``generate``), and owned by none of them:
:mod:`~auralize.workers.worker` holds ``Worker`` (the parent's side) and
``WorkerChild``; :mod:`~auralize.workers.processes` starts a child (spawned, with the
user's ``__main__`` hidden) and feeds its inbox without ever blocking the caller.
"""
