"""The live-audio tests' judge (tests/jackutil.py) can fail: it finds a lost, repeated or
altered sample, and excuses only what the host's late cycles explain."""

from __future__ import annotations

import numpy as np

from jackutil import Capture, cycles_not_rendered

SR, PERIOD = 44100, 512


def _capture(played: np.ndarray, lead_cycles: int = 3, probe_late_at: tuple = ()) -> Capture:
    """A recording of ``played`` after ``lead_cycles`` silent cycles, one block per cycle."""
    data = np.concatenate([np.zeros(lead_cycles * PERIOD, np.float32), played])
    data = data[: len(data) // PERIOD * PERIOD]
    n = len(data) // PERIOD
    frames = 1_000_000 + PERIOD * np.arange(n, dtype=np.int64)
    late = np.zeros(n)
    for c in probe_late_at:
        late[c] = 0.009  # 9 ms: the host kept the probe from running in time
    return Capture(np.stack([data, data], axis=1), SR, PERIOD * np.arange(n), np.arange(n) * 0.0116,
                   0, [], frames, frames.copy(), late)


def _reference(seconds: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(3)
    return (0.2 * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def test_exact_capture_passes_and_host_late_cycles_are_found():
    ref = _reference()
    cap = _capture(ref, probe_late_at=(40,))
    assert cycles_not_rendered(cap, ref, len(ref)) == []
    assert list(cap.host_late_cycles()) == [cap.cycle_frames[40]]


def test_a_repeated_or_altered_sample_is_found():
    ref = _reference()
    repeated = np.insert(ref, 30_000, ref[30_000])  # one sample played twice
    bad = cycles_not_rendered(_capture(repeated), ref, len(ref))
    assert bad and bad[0] == 1_000_000 + PERIOD * (3 + 30_000 // PERIOD)
    altered = ref.copy()
    altered[50_000] += 0.01
    assert len(cycles_not_rendered(_capture(altered), ref, len(ref))) == 1


def test_a_cycle_lost_while_the_host_kept_time_is_found_and_excused_when_it_did_not():
    ref = _reference()
    c = 60  # the player missed cycle c: its audio arrives one period later
    lost = np.concatenate([ref[: (c - 3) * PERIOD], np.zeros(PERIOD, np.float32),
                           ref[(c - 3) * PERIOD:]])
    assert cycles_not_rendered(_capture(lost), ref, len(ref))
    cap = _capture(lost, probe_late_at=(c,))
    assert cycles_not_rendered(cap, ref, len(ref), cap.host_late_cycles()) == []
