"""Record what named layers of any ``nn.Module`` output, with forward hooks."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from auralize.errors import AuralizeError


def _layer_listing(names: Sequence[str], wanted: str, limit: int | None = 40) -> str:
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.5)
    limit = len(names) if limit is None else limit
    shown = list(names[:limit])
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    hint = f" did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"{hint} layers of this model: {', '.join(shown)}{more}"


def layer_names(model: nn.Module) -> list[str]:
    """Names of every layer (module) of ``model`` that :func:`capture` accepts, in order."""
    return [n for n, _ in model.named_modules() if n]  # "" is the model itself


def check_layer_names(model: nn.Module, names, limit: int | None = 40) -> None:
    """Raise a one-line :class:`AuralizeError` for the first name that is no layer of ``model``.

    The message lists the model's layer names (the first ``limit``; None: all).
    """
    valid = layer_names(model)
    known = set(valid)
    for name in names:
        if name not in known:
            raise AuralizeError(
                f"no layer named {name!r} in {type(model).__name__};"
                + _layer_listing(valid, name, limit)
            )


class Capture(Mapping):
    """Activations of named layers, recorded during forward passes.

    Use :func:`capture` to make one.  As a context manager it installs forward
    hooks on entry and removes them on exit; inside, each forward pass stores the
    output of every requested layer (detached, on its device) under the name or
    alias it was asked by, replacing the previous pass's tensors.  It behaves as
    a read-only mapping ``{name: tensor}``; :meth:`pop` hands a tensor over and
    forgets it (to free memory bank by bank).

    Calling it (``cap(x)``) runs the model on ``x`` under ``torch.inference_mode``
    with the hooks in place and returns the model's output.
    """

    def __init__(self, model: nn.Module, layers, *, clone: bool = False):
        if not isinstance(model, nn.Module):
            raise AuralizeError(f"capture needs a torch.nn.Module, got {type(model).__name__}")
        if isinstance(layers, str):
            layers = [layers]
        if isinstance(layers, Mapping):
            wanted = {str(alias): str(name) for alias, name in layers.items()}
        else:
            wanted = {str(name): str(name) for name in layers}
        if not wanted:
            raise AuralizeError("capture needs at least one layer name")
        check_layer_names(model, wanted.values())
        modules = dict(model.named_modules())
        self.model = model
        self.layers = wanted
        self.clone = clone
        self._modules = modules
        self._store: dict[str, torch.Tensor] = {}
        self._versions: dict[str, int] = {}
        self._handles: list = []

    # -- hooks ---------------------------------------------------------------
    def _hook(self, alias: str):
        def hook(module, inputs, output):
            if isinstance(output, (tuple, list)):
                output = output[0]
            if not isinstance(output, torch.Tensor):
                raise AuralizeError(
                    f"layer {self.layers[alias]!r} returned {type(output).__name__}, not a tensor"
                )
            t = output.detach()
            if self.clone:
                t = t.clone()
            self._store[alias] = t
            if not t.is_inference():  # inference tensors keep no version counter
                self._versions[alias] = t._version

        return hook

    def __enter__(self) -> Capture:  # noqa: PYI034 - Capture is final in practice
        self.remove()
        for alias, name in self.layers.items():
            self._handles.append(self._modules[name].register_forward_hook(self._hook(alias)))
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove the hooks (tensors already captured stay)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def check_unchanged(self) -> None:
        """Warn when a later in-place op (e.g. ``ReLU(inplace=True)``) altered a capture."""
        changed = [a for a, t in self._store.items()
                   if not t.is_inference() and t._version != self._versions.get(a)]
        if changed:
            warnings.warn(
                f"captured activations of {', '.join(changed)} were modified in place by a later "
                "layer; use capture(..., clone=True) to keep the layer's own output",
                stacklevel=3,
            )

    def __call__(self, *inputs, **kwargs):
        entered = not self._handles
        if entered:
            self.__enter__()
        try:
            with torch.inference_mode():
                out = self.model(*inputs, **kwargs)
        finally:
            if entered:
                self.remove()
        missing = [a for a in self.layers if a not in self._store]
        if missing:
            raise AuralizeError(
                f"layers {', '.join(self.layers[a] for a in missing)} were not run by the "
                "model's forward pass"
            )
        return out

    # -- mapping -------------------------------------------------------------
    def __getitem__(self, key: str) -> torch.Tensor:
        try:
            return self._store[key]
        except KeyError:
            raise KeyError(
                f"{key!r} not captured (have: {', '.join(self._store) or 'nothing yet'})"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter([a for a in self.layers if a in self._store])

    def __len__(self) -> int:
        return len(self._store)

    def pop(self, key: str) -> torch.Tensor:
        """Return a captured tensor and drop the reference held here."""
        t = self[key]
        del self._store[key]
        return t

    def clear(self) -> None:
        self._store.clear()


def capture(model: nn.Module, layers, *, clone: bool = False) -> Capture:
    """Capture the outputs of named layers of any PyTorch model.

    Parameters
    ----------
    model : nn.Module
    layers : str, sequence of str, or mapping alias -> layer name
        Names as in ``model.named_modules()`` (e.g. ``"features.12"``).  An unknown
        name raises :class:`~auralize.errors.AuralizeError` listing the real ones.
    clone : bool
        Copy each output (costs memory) so that later in-place layers cannot alter it.

    Examples
    --------
    >>> with capture(model, {"conv1": "features.1", "fire9": "features.12"}) as acts:
    ...     logits = model(x)
    >>> acts["fire9"].shape
    torch.Size([1, 512, 15, 15])

    or in one call: ``acts = capture(model, names); logits = acts(x)``.
    """
    return Capture(model, layers, clone=clone)
