"""Pretend Debian packages are missing, for the "fresh machine" test run.

Put this folder first on ``PYTHONPATH`` and set ``AURALIZE_TEST_PRETEND_MISSING``
to a space-separated list of Debian package names (``libportaudio2 jackd2
chromium``).  Python then imports this module at start-up, in the test process
and in every child it spawns, and the Python packages that load those libraries
fail to import with the ``OSError`` they raise on a machine without them.
Programs (``jackd``, ``chromium``) are hidden by ``tests/conftest.py``, which
reads the same variable.
"""

from __future__ import annotations

import os
import sys

# Python module -> (Debian package whose library it loads, the error it raises without it)
_LIBRARIES = {
    "sounddevice": ("libportaudio2", "PortAudio library not found"),
    "_sounddevice": ("libportaudio2", "PortAudio library not found"),
    "jack": ("jackd2", "JACK library not found"),
}


class _PretendMissing:
    """A meta path finder that fails the imports of the hidden libraries' modules."""

    def __init__(self, missing: set[str]) -> None:
        self.missing = missing

    def find_spec(self, name, path=None, target=None):
        package, message = _LIBRARIES.get(name, (None, None))
        if package in self.missing:
            raise OSError(message)
        return None


_missing = set(os.environ.get("AURALIZE_TEST_PRETEND_MISSING", "").split())
if _missing:
    sys.meta_path.insert(0, _PretendMissing(_missing))
