"""Reading the small files auralize keeps beside audio: JSON, TOML, NumPy archives, checkpoints.

A file that is missing, empty, cut short, of another format, or whose header
claims something absurd (100 000 nested brackets, a zip entry of 2**62 bytes)
becomes one :class:`~auralize.errors.AuralizeError` naming the file and what it
should have been, never a traceback.  Audio files are read by
:func:`auralize.audio.files.read_audio`, images by
:func:`auralize.activations.images.read_image`.
"""

from __future__ import annotations

import json
import tomllib
import zipfile
from pathlib import Path

from auralize.errors import AuralizeError

# What a damaged file can raise in the standard parsers and in numpy / torch:
# bad syntax (ValueError and its JSON/TOML/Unicode subclasses), nesting deeper than
# the parser's stack (RecursionError), a cut or foreign container (EOFError,
# BadZipFile, RuntimeError from torch's zip reader, UnpicklingError), a missing
# member (KeyError), huge claimed sizes (MemoryError, OverflowError).
PARSE_ERRORS = (ValueError, RecursionError, EOFError, OSError, zipfile.BadZipFile,
                RuntimeError, KeyError, IndexError, TypeError, MemoryError, OverflowError,
                AttributeError, ImportError)


def _fail(path: Path, what: str, exc: BaseException) -> AuralizeError:
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return AuralizeError(f"cannot read {str(path)!r} as {what} ({type(exc).__name__}"
                         + (f": {detail}" if detail else "") + ")")


def read_json(path: str | Path, what: str = "JSON"):
    """Parse a JSON file; a one-line :class:`AuralizeError` if it is missing or damaged."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except PARSE_ERRORS as exc:
        raise _fail(path, what, exc) from None


def parse_json_line(line: str):
    """Parse one JSON text; ``ValueError`` for anything damaged (also too deep nesting)."""
    try:
        return json.loads(line)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_toml(path: str | Path, what: str = "TOML") -> dict:
    """Parse a TOML file into a dict; a one-line :class:`AuralizeError` if unusable.

    An empty file is an error too: a config made empty by a failed
    ``auralize ... > file.toml`` must not silently mean "all defaults".
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except PARSE_ERRORS as exc:
        raise _fail(path, what, exc) from None
    if not raw:
        raise AuralizeError(f"{what} {str(path)!r} is empty")
    return raw


def load_npz(path: str | Path, keys: tuple[str, ...], what: str = "a NumPy archive") -> dict:
    """The arrays ``keys`` of an ``.npz`` file (no pickles), read into memory."""
    import numpy as np

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in keys}
    except PARSE_ERRORS as exc:
        raise _fail(path, what, exc) from None


def torch_load(path: str | Path, what: str = "a checkpoint", **kwargs):
    """``torch.load(path, map_location="cpu", **kwargs)``; a one-line error if damaged."""
    import pickle

    import torch

    path = Path(path)
    try:
        return torch.load(str(path), map_location="cpu", **kwargs)
    except (*PARSE_ERRORS, pickle.UnpicklingError) as exc:
        raise _fail(path, what, exc) from None
