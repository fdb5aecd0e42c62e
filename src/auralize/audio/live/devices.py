"""Audio devices: host APIs, devices, and which output auralize plays to.

``sounddevice`` (PortAudio) is imported lazily: a machine without the PortAudio
library gets one clear warning and no live sound, never an exception; file
output works everywhere.

Output choice (:func:`choose_output_device`):

1. an explicit ``device`` (index, or a case-insensitive substring of the device
   name or of ``"<host API>: <device>"``);
2. else the system default output device;
3. else, when the default host API has no output device (common on Linux: ALSA
   empty while a JACK server runs), the first host API that has one;
4. else ``None`` with one warning.
"""

from __future__ import annotations

import sys
import threading
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from types import ModuleType

from auralize.errors import AuralizeError

_lock = threading.Lock()
_sd: ModuleType | None = None
_sd_error: str | None = None
_warned: set[str] = set()


class AudioUnavailableWarning(UserWarning):
    """Live audio is not possible (no PortAudio, no device, device lost)."""


def warn_once(key: str, message: str, stacklevel: int = 3) -> None:
    """Issue ``message`` as an :class:`AudioUnavailableWarning` once per ``key``."""
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(message, AudioUnavailableWarning, stacklevel=stacklevel)


def load_sounddevice(warn: bool = True) -> ModuleType | None:
    """Import ``sounddevice``; return it, or ``None`` (one warning) if PortAudio is missing.

    When auralize is the first to import it, PortAudio is terminated again right
    away: a process holds PortAudio (and, with JACK, a JACK client) only inside
    :func:`portaudio` blocks.  A process that kept a JACK client open past the JACK
    server's death aborts at exit (PortAudio's JACK teardown asserts), which must
    never happen to the host process.
    """
    global _sd, _sd_error
    if _sd is not None:
        return _sd
    if _sd_error is None:
        first = "sounddevice" not in sys.modules
        try:
            import sounddevice  # noqa: PLC0415  (lazy on purpose)
        except (ImportError, OSError) as exc:
            _sd_error = (
                f"live audio disabled: cannot load PortAudio via sounddevice ({exc}); "
                "install libportaudio2 (Debian/Ubuntu) or portaudio; file output still works"
            )
        else:
            if first and getattr(sounddevice, "_initialized", 0) > 0:
                try:
                    sounddevice._terminate()  # noqa: SLF001  (see docstring)
                except Exception:  # noqa: BLE001
                    pass
            _sd = sounddevice
            return _sd
    if warn:
        warn_once("portaudio", _sd_error)
    return None


def portaudio_error() -> str | None:
    """Why PortAudio could not be loaded (``None`` if it loaded or was not tried)."""
    return _sd_error


@contextmanager
def portaudio(warn: bool = True):
    """``with portaudio() as sd:`` PortAudio initialised inside the block (``sd`` may be None).

    Each outermost block enumerates devices afresh (PortAudio lists them only at
    initialisation), so a JACK server started after import is seen.  Blocks nest.
    """
    sd = load_sounddevice(warn=warn)
    if sd is None:
        yield None
        return
    try:
        sd._initialize()  # noqa: SLF001
    except Exception as exc:  # noqa: BLE001  (PortAudioError)
        warn_once("pa-init", f"live audio disabled: PortAudio failed to start ({exc})")
        yield None
        return
    try:
        yield sd
    finally:
        try:
            sd._terminate()  # noqa: SLF001
        except Exception:  # noqa: BLE001
            pass


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device."""

    index: int
    name: str
    hostapi: int
    hostapi_name: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    default_low_output_latency: float

    @property
    def label(self) -> str:
        return f"{self.hostapi_name}: {self.name}"

    def to_dict(self) -> dict:
        return asdict(self)


def host_apis() -> list[dict]:
    """Host APIs as dicts: index, name, devices, default_input_device, default_output_device."""
    with portaudio() as sd:
        if sd is None:
            return []
        apis = sd.query_hostapis()
    out = []
    for i, api in enumerate(apis):
        out.append(
            {
                "index": i,
                "name": api["name"],
                "devices": list(api["devices"]),
                "default_input_device": int(api["default_input_device"]),
                "default_output_device": int(api["default_output_device"]),
            }
        )
    return out


def list_devices() -> list[DeviceInfo]:
    """All devices PortAudio knows (empty without PortAudio)."""
    with portaudio() as sd:
        if sd is None:
            return []
        apis = sd.query_hostapis()
        raw = sd.query_devices()
    devs = []
    for d in raw:
        devs.append(
            DeviceInfo(
                index=int(d["index"]),
                name=str(d["name"]),
                hostapi=int(d["hostapi"]),
                hostapi_name=str(apis[d["hostapi"]]["name"]),
                max_input_channels=int(d["max_input_channels"]),
                max_output_channels=int(d["max_output_channels"]),
                default_samplerate=float(d["default_samplerate"]),
                default_low_output_latency=float(d["default_low_output_latency"]),
            )
        )
    return devs


def _default_index(sd: ModuleType, kind: str) -> int:
    """The system default device index for ``kind`` ('input'/'output'), or -1."""
    try:
        idx = sd.default.device[0 if kind == "input" else 1]
        return -1 if idx is None else int(idx)
    except Exception:  # noqa: BLE001  (PortAudio errors vary by host)
        return -1


def _choose(device: int | str | None, kind: str) -> tuple[DeviceInfo | None, str]:
    with portaudio(warn=True) as sd:
        if sd is None:
            return None, "PortAudio is not available"
        return _choose_in(sd, device, kind)


def _choose_in(
    sd: ModuleType, device: int | str | None, kind: str
) -> tuple[DeviceInfo | None, str]:
    chan = "max_output_channels" if kind == "output" else "max_input_channels"
    devs = list_devices()
    usable = [d for d in devs if getattr(d, chan) > 0]
    if device is not None and device != "":
        if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
            idx = int(device)
            for d in usable:
                if d.index == idx:
                    return d, "explicit index"
            raise AuralizeError(
                f"no {kind} device with index {idx}; run `auralize devices` to list them"
            )
        needle = str(device).lower()
        for d in usable:
            if needle in d.name.lower() or needle in d.label.lower():
                return d, f"explicit name {device!r}"
        names = ", ".join(repr(d.label) for d in usable) or "none"
        raise AuralizeError(
            f"no {kind} device matches {device!r} (available: {names}); "
            "run `auralize devices` to list them"
        )
    by_index = {d.index: d for d in devs}
    idx = _default_index(sd, kind)
    if idx >= 0 and idx in by_index and getattr(by_index[idx], chan) > 0:
        return by_index[idx], "system default"
    # The default host API has no such device: take the first host API that has one.
    key = f"default_{kind}_device"
    for api in host_apis():
        cand = api[key]
        if cand >= 0 and cand in by_index and getattr(by_index[cand], chan) > 0:
            return by_index[cand], f"first host API with an {kind} device ({api['name']})"
        for i in api["devices"]:
            if i in by_index and getattr(by_index[i], chan) > 0:
                return by_index[i], f"first host API with an {kind} device ({api['name']})"
    return None, f"no {kind} device found"


def choose_output_device(device: int | str | None = None, *, warn: bool = True):
    """Return the :class:`DeviceInfo` auralize would play to, or ``None``.

    Parameters
    ----------
    device : int or str, optional
        Device index, or a case-insensitive substring of its name (or of
        ``"<host API>: <name>"``).  ``None``: the automatic choice (module docstring).
    warn : bool
        Issue one warning when there is no output device at all.

    Raises
    ------
    AuralizeError
        An explicit ``device`` that matches no output device.
    """
    info, _why = _choose(device, "output")
    if info is None and warn and load_sounddevice(warn=False) is not None:
        warn_once(
            "no-output",
            "live audio disabled: no audio output device found (is a sound server such as "
            "JACK running?); file output still works",
        )
    return info


def choose_input_device(device: int | str | None = None) -> DeviceInfo | None:
    """Like :func:`choose_output_device` for input (used by ``check-audio --loopback``)."""
    return _choose(device, "input")[0]


def explain_choice(device: int | str | None = None) -> str:
    """Why :func:`choose_output_device` picks what it picks (one line)."""
    try:
        info, why = _choose(device, "output")
    except AuralizeError as exc:
        return str(exc)
    if info is None:
        return why
    return f"[{info.index}] {info.label} ({why})"
