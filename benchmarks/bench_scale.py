"""Long runs at scale: memory, time and files for 10-1000 layers x 1k-1M steps.

Each cell logs a synthetic run (``Sonifier.log`` of ``TrainingStep`` records as
fast as Python makes them: a loss falling from 1 to 0.1, one gradient norm per
layer, a NaN at 40 % and a x1000 loss spike at 70 % of the run) into a run
folder with the mappings ``loss`` and ``alarm`` (the gradient norms are
recorded in the telemetry, metrics and page, not sounded: the audio per step of
per-layer tones is issue 19 item 1, not run length), then measures, each in a
fresh process:

- the training process: peak RSS while logging and closing, the renderer
  process's peak, time to log, time to close (which renders the recording's
  backlog: synthetic logging outruns synthesis, a real run would not);
- ``auralize render RUN --digest 3min``: peak RSS, time;
- ``auralize serve``: peak RSS once a page has its history (fetched over the
  WebSocket; its length is reported);
- ``auralize follow RUN``: peak RSS while it skips the history and hears 300
  appended steps;
- file sizes: WAV, telemetry, digest.

The baseline is the code before this change (``--baseline-src /work/main/src``
or ``AURALIZE_BASELINE_SRC``), run where it finishes (1k steps).

    python benchmarks/bench_scale.py [--quick] [--cells 10x1000,10x100000]
    python benchmarks/bench_scale.py --cells 75x1000000     # the million-step run (~20 min)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_SRC = os.environ.get("AURALIZE_BASELINE_SRC", "/work/main/src")
QUICK_CELLS = ["10x1000", "1000x1000"]
#: what ``make bench`` runs (about 8 minutes on an idle 2-core machine, baselines included);
#: the rest of the table and the million-step run: ``--cells`` (figures in BENCHMARKS.md)
FULL_CELLS = ["10x1000", "75x1000", "1000x1000", "10x100000"]
TABLE_CELLS = ["10x1000", "75x1000", "300x1000", "1000x1000", "10x100000", "75x100000",
               "300x100000", "1000x100000", "75x1000000"]
BASELINE_CELLS = {"10x1000", "75x1000", "300x1000", "1000x1000", "10x100000", "75x100000"}

_LOG_CHILD = r"""
import math, resource, sys, time, json
from auralize import Sonifier, TrainingStep
out, steps, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = [f"h.{i}.mlp" for i in range(layers)]
nan_at, spike_at = int(steps * 0.4), int(steps * 0.7)
t0 = time.perf_counter()
son = Sonifier(out, mappings=["loss", "alarm"], live=False, plot=True)
for s in range(steps):
    loss = 1.0 / (1.0 + 9.0 * s / steps) * (1.0 + 0.01 * math.sin(s))
    if s == nan_at:
        loss = float("nan")
    elif s == spike_at:
        loss *= 1000.0
    g = 0.5 + 0.1 * math.sin(s * 0.01)
    son.log(TrainingStep(step=s, epoch=s // 1000, loss=loss,
                         grad_norms={n: g * (1 + 0.001 * i) for i, n in enumerate(names)}))
t1 = time.perf_counter()
rss_log = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = son.close()
t2 = time.perf_counter()
print(json.dumps({"log_s": t1 - t0, "close_s": t2 - t1, "audio_s": result.duration_s,
                  "rss_log_mb": rss_log / 1024,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "renderer_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "digest": str(getattr(result, "digest_path", None))}))
"""

_CLI_CHILD = r"""
import json, resource, sys, time
from auralize.cli import main
t0 = time.perf_counter()
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t0,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "children_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def _env(src: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), PYTHONUNBUFFERED="1")
    env.pop("AURALIZE_REQUIRE_AUDIO", None)
    return env


def _last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no result in output:\n{text[-2000:]}")


def _py(src: Path, code: str, *args, timeout_s: float = 7200.0) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=_env(src),
                          capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr[-3000:]}")
    return _last_json(proc.stdout)


def _vm_hwm_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024


def _serve(src: Path, run: Path, timeout_s: float = 3600.0) -> dict:
    """Start ``auralize serve``, fetch the page's history over the socket, read its peak RSS."""
    import asyncio

    import aiohttp

    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "auralize.cli", "serve", "--run", str(run),
                             "--port", "0"], env=_env(src), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        while url is None:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("serve exited before printing its URL")
            if line.startswith("open "):
                url = line.split()[1]
            if time.perf_counter() - t0 > timeout_s:
                raise RuntimeError("serve did not start")
        ready_s = time.perf_counter() - t0

        sent = {"bytes": 0, "series": 0}

        async def history() -> int:
            got = 0
            # no message size limit: a history of 300-1000 layers passes aiohttp's 4 MB default
            async with aiohttp.ClientSession() as session, \
                    session.ws_connect(url + "ws", max_msg_size=0) as ws:
                while True:
                    # a replay's history ends with its captions; under load the first history
                    # message of a big run can take tens of seconds (a short timeout measured
                    # a server that had not sent it yet)
                    try:
                        msg = await ws.receive(timeout=timeout_s)
                    except TimeoutError:
                        raise RuntimeError(f"no captions after {timeout_s} s ({got} points)") \
                            from None
                    if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        raise RuntimeError(f"the page's socket closed: {msg}")
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    doc = json.loads(msg.data)
                    if doc["type"] == "history":
                        got += len(doc["records"])
                        sent["bytes"] += len(msg.data)
                        sent["series"] = max([sent["series"]] + [len(r.get("grad_norms") or {})
                                                                 for r in doc["records"]])
                    elif doc["type"] == "captions":
                        return got

        points = asyncio.run(history())
        return {"seconds": ready_s, "rss_mb": _vm_hwm_mb(proc.pid), "history_points": points,
                "history_mb": sent["bytes"] / 1e6, "grad_series": sent["series"]}
    finally:
        proc.terminate()
        proc.wait(10)


def _follow(src: Path, run: Path, tmp: Path) -> dict:
    """``auralize follow RUN`` (history skipped) hearing 300 appended steps; its peak RSS."""
    out = tmp / "follow"
    proc = subprocess.Popen([sys.executable, "-c", _CLI_CHILD, "follow", str(run), "-o", str(out),
                             "--live", "off", "--poll-s", "0.1", "--idle-exit-s", "3"],
                            env=_env(src), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    t0 = time.perf_counter()
    while "following" not in (proc.stdout.readline() or "following"):
        pass
    time.sleep(2.0)  # it skips the history before it reads what comes next
    lines = (run / "telemetry.jsonl").open("rb")
    lines.seek(0)
    sample = lines.readline()
    lines.close()
    doc = json.loads(sample)
    with (run / "telemetry.jsonl").open("a") as handle:
        for i in range(300):
            handle.write(json.dumps(dict(doc, step=10**9 + i)) + "\n")
            handle.flush()
            time.sleep(0.005)
    rest, _ = proc.communicate(timeout=600)
    result = _last_json(rest)
    result["seconds"] = time.perf_counter() - t0
    return result


def _size_mb(path: Path) -> float | None:
    return path.stat().st_size / 1e6 if path.exists() else None


def cell(src: Path, layers: int, steps: int, tmp: Path, tag: str = "run") -> dict:
    run = tmp / f"{tag}_{layers}x{steps}"
    log = _py(src, _LOG_CHILD, run, steps, layers)
    digest = _py(src, _CLI_CHILD, "render", run, "--digest", "3min", "-o", tmp / "digest.wav")
    out = {"log": log, "digest_render": digest,
           "wav_mb": _size_mb(run / "sonification.wav"),
           "telemetry_mb": _size_mb(run / "telemetry.jsonl"),
           "digest_mb": _size_mb(run / "digest.wav")}
    out["serve"] = _serve(src, run)
    out["follow"] = _follow(src, run, tmp)
    # what the million-step check is: it closed (a digest for a long run), rendered a
    # digest of the asked length, and served a page with its history
    problems = []
    if log["audio_s"] > 600 and not (run / "digest.wav").exists():
        problems.append("no digest.wav at close")
    if digest["rc"] != 0 or not (tmp / "digest.wav").exists():
        problems.append(f"render --digest failed (exit {digest['rc']})")
    if not out["serve"]["history_points"]:
        problems.append("the page got no history")
    if problems:
        raise RuntimeError(f"{layers} x {steps}: " + "; ".join(problems))
    return out


def _baseline_cell(src: Path, layers: int, steps: int, tmp: Path) -> dict:
    """The pre-change code has no ``--digest``: its ``render`` is the full re-render."""
    run = tmp / f"base_{layers}x{steps}"
    log = _py(src, _LOG_CHILD, run, steps, layers)
    render = _py(src, _CLI_CHILD, "render", run, "-o", tmp / "base.wav")
    return {"log": log, "render": render, "wav_mb": _size_mb(run / "sonification.wav"),
            "telemetry_mb": _size_mb(run / "telemetry.jsonl"), "serve": _serve(src, run),
            "follow": _follow(src, run, tmp)}


def serve_ab(cells: list[str], baseline_src: str, rounds: int = 2) -> None:
    """Each cell logged once (this code), then ``serve`` of that run folder by this code and by
    ``baseline_src`` alternated ``rounds`` times: the page's history from the same log."""
    with tempfile.TemporaryDirectory(prefix="auralize-serve-ab-") as tmp_name:
        tmp = Path(tmp_name)
        for spec in cells:
            layers, steps = map(int, spec.split("x"))
            run = tmp / f"run_{spec}"
            log = _py(ROOT / "src", _LOG_CHILD, run, steps, layers)
            size = _size_mb(run / "telemetry.jsonl")
            for r in range(rounds):
                for tag, src in (("new", ROOT / "src"), ("baseline", Path(baseline_src))):
                    got = _serve(src, run)
                    print(json.dumps({"cell": spec, "round": r, "code": tag, **got,
                                      "telemetry_mb": size, "log_s": log["log_s"],
                                      "load": os.getloadavg()}), flush=True)
            subprocess.run(["rm", "-rf", str(run)], check=False)


def _rows(name: str, new: dict, base: dict | None) -> list[dict]:
    def row(key: str, value, unit: str, base_value=None, notes: str = "") -> dict:
        r = {"name": f"{name} {key}", "value": value, "unit": unit, "notes": notes}
        if base_value is not None:
            r["baseline"] = base_value
            if value:
                r["ratio"] = base_value / value
        return r

    b = base or {}
    return [
        row("training process peak RSS while logging", new["log"]["rss_log_mb"], "MB",
            b.get("log", {}).get("rss_log_mb")),
        row("training process peak RSS", new["log"]["rss_mb"], "MB",
            b.get("log", {}).get("rss_mb")),
        row("renderer peak RSS", new["log"]["renderer_rss_mb"], "MB",
            b.get("log", {}).get("renderer_rss_mb")),
        row("log time", new["log"]["log_s"], "s", b.get("log", {}).get("log_s")),
        row("close time", new["log"]["close_s"], "s", b.get("log", {}).get("close_s"),
            f"{new['log']['audio_s']:.0f} s of audio rendered"),
        row("render --digest 3min peak RSS", new["digest_render"]["rss_mb"], "MB",
            b.get("digest_render", b.get("render", {})).get("rss_mb"),
            "" if "digest_render" in b else "baseline: full render (no --digest)"),
        row("render --digest 3min time", new["digest_render"]["seconds"], "s",
            b.get("digest_render", b.get("render", {})).get("seconds"),
            "" if "digest_render" in b else "baseline: full render (no --digest)"),
        row("serve peak RSS", new["serve"]["rss_mb"], "MB", b.get("serve", {}).get("rss_mb"),
            f"history points {new['serve']['history_points']} "
            f"(baseline {b.get('serve', {}).get('history_points')})"),
        row("serve start", new["serve"]["seconds"], "s", b.get("serve", {}).get("seconds")),
        row("follow peak RSS", new["follow"]["rss_mb"], "MB", b.get("follow", {}).get("rss_mb")),
        row("WAV", new["wav_mb"], "MB", b.get("wav_mb")),
        row("telemetry.jsonl", new["telemetry_mb"], "MB", b.get("telemetry_mb")),
        row("digest.wav", new["digest_mb"], "MB"),
    ]


def run(quick: bool = False, cells: list[str] | None = None,
        baseline_src: str | None = BASELINE_SRC, keep: str | None = None) -> list[dict]:
    """``keep``: a folder for the run folders, left in place after each cell (to serve or read
    them again with other code); the caller deletes them."""
    cells = cells or (QUICK_CELLS if quick else FULL_CELLS)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="auralize-scale-") as tmp_name:
        tmp = Path(keep) if keep else Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        for spec in cells:
            layers, steps = map(int, spec.split("x"))
            new = cell(ROOT / "src", layers, steps, tmp)
            base = None
            if baseline_src and Path(baseline_src).exists() and spec in BASELINE_CELLS:
                if (Path(baseline_src) / "auralize" / "sonify" / "digest.py").exists():
                    subprocess.run(["rm", "-rf", str(tmp / f"run_{spec}")], check=False)
                    base = cell(Path(baseline_src), layers, steps, tmp, "base")  # has --digest
                else:
                    base = _baseline_cell(Path(baseline_src), layers, steps, tmp)
            print(json.dumps({"cell": spec, "new": new, "baseline": base}), flush=True)
            rows += _rows(f"{layers} layers x {steps} steps:", new, base)
            for path in tmp.glob("*"):  # keep the disk free between cells
                if not keep:
                    subprocess.run(["rm", "-rf", str(path)], check=False)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cells", default=None,
                        help="LAYERSxSTEPS,... or 'table' (BENCHMARKS.md's; default: make bench's)")
    parser.add_argument("--baseline-src", default=BASELINE_SRC)
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="write the run folders under DIR and leave them there")
    parser.add_argument("--serve-ab", action="store_true",
                        help="only serve: each cell's log served by this code and the baseline, "
                             "alternated twice")
    args = parser.parse_args()
    if args.serve_ab:
        serve_ab((args.cells or "1000x1000").split(","), args.baseline_src)
        return
    cells = TABLE_CELLS if args.cells == "table" else (args.cells.split(",") if args.cells else None)
    rows = run(args.quick, cells, args.baseline_src, args.keep)
    for r in rows:
        base = f"  (baseline {r['baseline']:.1f})" if r.get("baseline") is not None else ""
        value = "-" if r["value"] is None else f"{r['value']:.1f}"
        print(f"{r['name']:<60} {value:>9} {r['unit']}{base}  {r.get('notes', '')}")


if __name__ == "__main__":
    main()
