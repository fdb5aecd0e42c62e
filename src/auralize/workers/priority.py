"""How a worker process asks for the scheduling and memory a real-time producer needs."""

from __future__ import annotations

import os


def raise_priority(level: str) -> str:
    """Best effort: raise this process's scheduling priority; say what worked.

    ``"realtime"``: ``nice -10``, real-time FIFO priority 1 (below JACK's own
    threads, above every normal process) and memory locked (:func:`_lock_memory`)
    where permitted; ``"high"``: ``nice -5``
    (a real-time producer that is not itself in the audio callback's path);
    ``"normal"``: nothing.  Threads created later (PortAudio's) inherit the nice
    value.
    """
    done = []
    nice = {"realtime": -10, "high": -5}.get(level)
    if nice is not None:
        try:
            os.nice(nice)
            done.append(f"nice {nice}")
        except (OSError, AttributeError):
            pass
    if level == "realtime":
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            done.append("SCHED_FIFO 1")
        except (OSError, AttributeError, PermissionError):
            pass
        if _lock_memory():
            done.append("memory locked")
    return ", ".join(done) or "normal"


def _lock_memory() -> bool:
    """Keep this process's memory resident and its heap from shrinking (Linux, glibc).

    Why: while another process writes a lot to disk, a page this process touches
    for the first time (a heap that malloc trimmed, then grew again) can wait
    for reclaim, and so for the disk, in uninterruptible sleep: the synthesis
    thread of a live stream stalled 18-34 ms mid-render, and its ring ran dry
    (underruns in 5 of 7 runs; with the memory locked and the heap never trimmed,
    in 0 of 7: BENCHMARKS.md, "Live audio under disk load").  Keeping big blocks
    on the heap too (``M_MMAP_THRESHOLD``) did worse (1 of 4).
    Only where the lock limit is unlimited (root, or the ``memlock unlimited``
    that audio set-ups give their users): under a finite limit every later
    allocation past it would fail.
    """
    import ctypes
    import resource

    try:
        if (resource.getrlimit(resource.RLIMIT_MEMLOCK)[0] != resource.RLIM_INFINITY
                and os.geteuid() != 0):
            return False
        libc = ctypes.CDLL(None, use_errno=True)
        m_trim_threshold = -1
        libc.mallopt(m_trim_threshold, 1 << 30)  # freed heap stays mapped (and locked)
        return libc.mlockall(1 | 2) == 0  # MCL_CURRENT | MCL_FUTURE
    except (OSError, AttributeError, ValueError):
        return False
