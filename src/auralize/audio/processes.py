"""Starting auralize's worker processes safely from any user program.

auralize's audio runs in spawned child processes (no shared GIL with training).
By default, ``spawn`` re-imports the parent's ``__main__`` in the child, which
re-runs a training script that lacks an ``if __name__ == "__main__":`` guard (and
fails in notebooks).  auralize's workers never need the user's main module, so
they are started with it hidden.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading

_start_lock = threading.Lock()


def start_worker(target, args: tuple, name: str) -> mp.process.BaseProcess:
    """Start ``target(*args)`` in a spawned daemon process without importing ``__main__``.

    ``target`` must be a module-level function of an importable module.
    """
    ctx = mp.get_context("spawn")
    process = ctx.Process(target=target, args=args, name=name, daemon=True)
    main = sys.modules.get("__main__")
    with _start_lock:
        saved_spec = getattr(main, "__spec__", None)
        had_file = hasattr(main, "__file__")
        saved_file = getattr(main, "__file__", None)
        try:
            if main is not None:
                main.__spec__ = None
                if had_file:
                    del main.__file__
            process.start()
        finally:
            if main is not None:
                main.__spec__ = saved_spec
                if had_file:
                    main.__file__ = saved_file
    return process
