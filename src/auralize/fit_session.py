"""One Sonifier for all the callbacks of one training run.

A Keras ``fit`` or a Lightning ``Trainer`` can be given several auralize
callbacks (``ListenToLoss``, ``WeightsDense``, ``GradientSonification``...).
Unless one is given ``sonifier=``, they join one :class:`FitSession` per run,
keyed by what the run is (the History object Keras makes for each ``fit``, the
Lightning trainer), and share
one :class:`~auralize.sonify.session.Sonifier`: one recording, one run folder,
one live stream, one record per step.

Life cycle: every callback joins in its train-begin hook, which the frameworks
call for all callbacks before the first batch.  The Sonifier is made on first
use (:meth:`FitSession.start`, at the first epoch or train start) from what all
members asked for; the member that leaves last closes it and every member gets
the :class:`~auralize.sonify.session.RunResult`.  A session that has started
takes no new members: the next ``fit`` of the same model makes a new session.

How the members' wishes combine:

- Mappings: the union, one mapping per (kind, voice).  A mapping asked for by
  name only (``"alarm"``) takes whatever settings another member configured for
  that kind; two different configurations of one mapping (``ListenToLoss(max_freq=500)``
  and ``ListenToLoss(max_freq=800)``) are an :class:`~auralize.AuralizeError`.
- Sonifier keyword arguments given by the user (``out_dir``, ``live``,
  ``clock``...) hold for the whole session; the same one given twice with
  different values is an :class:`~auralize.AuralizeError` naming both: the run
  has one folder, one clock and one stream, so there is no right value to pick
  silently.  A callback's own defaults (``GradientSonification``'s
  ``live=False``, as the seed wrote files only) hold only when every member has
  the same default; otherwise the Sonifier's default applies.
"""

from __future__ import annotations

import weakref
from os import PathLike
from pathlib import Path
from typing import ClassVar

from auralize.errors import AuralizeError
from auralize.sonify.mappings import make_mapping
from auralize.sonify.session import RunResult, Sonifier

__all__ = ["DEFAULT_MAPPINGS", "FitSession"]

DEFAULT_MAPPINGS = ("loss", "gradients", "weights", "alarm")


class FitSession:
    """The callbacks of one training run and the Sonifier they share.

    Members are callbacks with a ``_session_closed(result)`` method, called on
    each of them when the session closes.

    Attributes
    ----------
    members : list
        Callbacks that joined and have not left yet.
    sonifier : Sonifier or None
        Made by :meth:`start`.
    result : RunResult or None
        What closing the Sonifier returned.
    """

    _by_run: ClassVar[weakref.WeakKeyDictionary] = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.members: list = []
        self._everyone: list = []
        self._mappings: dict[tuple, tuple[dict, bool, str]] = {}  # (kind, voice) -> cfg, by name, who
        self._explicit: dict[str, tuple[object, str]] = {}         # argument -> value, who
        self._defaults: list[dict] = []                             # one dict per member
        self._keep_open = False
        self.sonifier: Sonifier | None = None
        self.result: RunResult | None = None
        self.closed = False

    # -- joining ------------------------------------------------------------------------
    @classmethod
    def join(cls, run, member, *, mappings=DEFAULT_MAPPINGS, kwargs: dict | None = None,
             defaults: dict | None = None, keep_open: bool = False) -> FitSession:
        """Add ``member`` to the open session of ``run`` (made if none is open).

        Parameters
        ----------
        run : object
            What identifies the training run (the History object of a Keras ``fit``,
            the Lightning trainer);
            held weakly.
        member : callback
        mappings : sequence
            Mapping names, config dicts or mapping objects this member wants heard.
        kwargs : dict
            Sonifier keyword arguments the user gave this member.
        defaults : dict
            Sonifier keyword arguments this member's class would choose.
        keep_open : bool
            Do not close the Sonifier at the end (the user closes ``member.sonifier``).

        Raises
        ------
        AuralizeError
            A mapping or keyword argument that contradicts another member's.
        """
        session = cls._by_run.get(run)
        if session is None or session.sonifier is not None or session.closed:
            session = cls()
            cls._by_run[run] = session
        session._add(member, list(mappings), dict(kwargs or {}), dict(defaults or {}), keep_open)
        return session

    def _add(self, member, mappings: list, kwargs: dict, defaults: dict, keep_open: bool) -> None:
        who = _name(member, self._everyone)
        for key, value in kwargs.items():
            if key in self._explicit and not _same(self._explicit[key][0], value):
                other_value, other = self._explicit[key]
                raise AuralizeError(
                    f"callbacks of one fit share one Sonifier, but {other} has {key}={other_value!r} "
                    f"and {who} has {key}={value!r}: give {key} to one of them, or pass each "
                    f"its own sonifier=")
        merged = dict(self._mappings)
        for spec in mappings:
            cfg = make_mapping(spec).config()
            by_name = isinstance(spec, str)
            slot = (cfg["kind"], cfg.get("voice"))
            have = merged.get(slot)
            if have is None or (have[1] and not by_name):
                merged[slot] = (cfg, by_name, who)
            elif not by_name and not have[1] and have[0] != cfg:
                diff = ", ".join(f"{k}={have[0].get(k)!r} vs {cfg.get(k)!r}"
                                 for k in sorted(set(cfg) | set(have[0])) if have[0].get(k) != cfg.get(k))
                raise AuralizeError(
                    f"callbacks of one fit share one Sonifier, but {have[2]} and {who} set up the "
                    f"{cfg['kind']!r} sound differently ({diff}): keep one of them, or pass each "
                    f"its own sonifier=")
        self._mappings = merged
        for key, value in kwargs.items():
            self._explicit[key] = (value, who)
        self._defaults.append(defaults)
        self._keep_open = self._keep_open or keep_open
        self.members.append(member)
        self._everyone.append(member)

    # -- the shared Sonifier ---------------------------------------------------------------
    @property
    def mappings(self) -> list[dict]:
        """The session's mappings (config dicts), in the order members asked for them."""
        return [cfg for cfg, _, _ in self._mappings.values()]

    def sonifier_kwargs(self) -> dict:
        """Keyword arguments for the shared Sonifier (see the module docstring)."""
        out = {key: value for key, (value, _) in self._explicit.items()}
        for key in {k for d in self._defaults for k in d} - set(out):
            values = [d.get(key, _UNSET) for d in self._defaults]
            if all(v is not _UNSET and _same(v, values[0]) for v in values):
                out[key] = values[0]
        return out

    def start(self) -> Sonifier:
        """The shared Sonifier, made on the first call; the session then takes no new members."""
        if self.sonifier is None:
            if self.closed:
                raise AuralizeError("this training run's sonification has already ended")
            self.sonifier = Sonifier(mappings=self.mappings, **self.sonifier_kwargs())
        return self.sonifier

    def leave(self, member) -> RunResult | None:
        """``member`` is done; the last member to leave closes the Sonifier."""
        if member in self.members:
            self.members.remove(member)
        if self.members or self.closed:
            return self.result
        self.closed = True
        if self.sonifier is not None and not self._keep_open:
            self.result = self.sonifier.close()
        for m in self._everyone:
            m._session_closed(self.result)
        return self.result

_UNSET = object()


def _same(a, b) -> bool:
    if isinstance(a, (str, PathLike)) and isinstance(b, (str, PathLike)):
        return Path(a) == Path(b)    # "runs/x" and Path("runs/x") are one folder
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - values that do not compare are different
        return False


def _name(member, others: list) -> str:
    kind = type(member).__name__
    n = sum(type(m) is type(member) for m in others)
    return kind if n == 0 else f"{kind} #{n + 1}"
