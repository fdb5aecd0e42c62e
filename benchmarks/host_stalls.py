"""How often does this machine stop a real-time thread, and for how long?

A thread at real-time priority (SCHED_FIFO 50 where permitted) sleeps 1 ms at a
time and records every wake-up later than ``--gap-ms``; the kernel's steal time
(the hypervisor running someone else on our vCPUs, /proc/stat) is read before
and after.  On a quiet machine: no gaps.  On the shared 2-core CI VM, minutes
after heavy work, gaps of 20-80 ms and seconds of steal per 15 s were measured:
every live-audio figure taken then is the host's, not auralize's.

Run alone (it is not one of `make bench`'s modules)::

    .venv/bin/python benchmarks/host_stalls.py --seconds 15
"""

from __future__ import annotations

import argparse
import os
import time


def steal_s() -> float:
    """Steal time of all CPUs so far, seconds (Linux /proc/stat; 0 elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return 0.0
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def measure(seconds: float, gap_ms: float = 8.0) -> dict:
    """Late wake-ups of a 1 ms sleep loop: count, the worst ones (at s, ms), steal."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
        priority = "SCHED_FIFO 50"
    except (OSError, AttributeError):
        priority = "normal"
    s0, t0 = steal_s(), time.perf_counter()
    last, gaps = t0, []
    while last - t0 < seconds:
        time.sleep(0.001)
        now = time.perf_counter()
        if now - last > gap_ms / 1000:
            gaps.append((round(now - t0, 2), round(1000 * (now - last), 1)))
        last = now
    return {"seconds": seconds, "priority": priority, "gaps": len(gaps),
            "worst": sorted(gaps, key=lambda g: -g[1])[:6],
            "steal_s": round(steal_s() - s0, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--gap-ms", type=float, default=8.0, help="report wake-ups later than this")
    args = ap.parse_args()
    r = measure(args.seconds, args.gap_ms)
    print(f"{r['seconds']:g} s at {r['priority']}: {r['gaps']} wake-ups later than "
          f"{args.gap_ms:g} ms; worst (at s, ms): {r['worst']}; steal {r['steal_s']:.2f} s")


if __name__ == "__main__":
    main()
