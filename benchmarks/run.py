"""Run the auralize benchmarks and collect their figures.

    python benchmarks/run.py [--quick] [--only NAME ...] --out DIR

Every ``benchmarks/bench_*.py`` module exposes ``run(quick: bool) -> list[dict]``;
each row has ``name``, ``value``, ``unit`` and optionally ``baseline``, ``ratio``
and ``notes``.  Each module runs in its own subprocess, so a crash or a missing
dependency in one shows up as an error row and the others still run.  The
results are printed as one table and written to ``DIR/results.json`` together
with the machine (CPU, cores, Python, numpy, torch, BLAS) and the date; each
module's output goes to ``DIR/logs/NAME.log``.

Exit status: 0 when every module ran, 1 when any module failed (its error row
is still in the table and the JSON).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PREFIX = "bench_"


# -- discovery -----------------------------------------------------------------
def discover(only: list[str] | None = None) -> list[Path]:
    """Benchmark modules, sorted; ``only`` filters by name (``engine`` or ``bench_engine``)."""
    found = sorted(HERE.glob(f"{PREFIX}*.py"))
    if not only:
        return found
    wanted = {w.removesuffix(".py").removeprefix(PREFIX) for w in only}
    unknown = wanted - {short(p) for p in found}
    if unknown:
        names = ", ".join(short(p) for p in found) or "(none)"
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; have: {names}")
    return [p for p in found if short(p) in wanted]


def short(path: Path) -> str:
    return path.stem.removeprefix(PREFIX)


# -- child side: import one module, call run(quick), dump its rows ---------------
def _jsonable(value):
    """Plain JSON types for numpy scalars and non-finite floats (written as null)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        value = value.item()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def child(module_path: str, quick: bool, rows_file: str) -> int:
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
    spec = importlib.util.spec_from_file_location(Path(module_path).stem, module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.run(quick=quick)
    clean = []
    for i, row in enumerate(rows):
        row = _jsonable(dict(row))
        missing = [k for k in ("name", "value", "unit") if k not in row]
        if missing:  # keep the figures, flag the row (and the module) as malformed
            text = json.dumps(row)
            row = {"name": row.get("name", f"row {i}"), "value": row.get("value"),
                   "unit": row.get("unit", ""), "malformed": True, "raw": row,
                   "notes": f"error: row lacks {', '.join(missing)}: "
                            f"{text[:300]}{'...' if len(text) > 300 else ''}"}
        clean.append(row)
    Path(rows_file).write_text(json.dumps(clean))
    return 0


# -- parent side -----------------------------------------------------------------
def run_module(path: Path, quick: bool, timeout_s: float, log_dir: Path) -> dict:
    """Run one module in a subprocess; return its record (rows, seconds, error)."""
    name = short(path)
    with tempfile.TemporaryDirectory(prefix="auralize-bench-") as tmp:
        rows_file = Path(tmp) / "rows.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(path),
               "--rows-file", str(rows_file)]
        if quick:
            cmd.append("--quick")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT / "src"), str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        t0 = time.perf_counter()
        error = None
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=timeout_s, check=False)
            out, err, rc = proc.stdout, proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (
                exc.stdout or "")
            err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (
                exc.stderr or "")
            rc = None
            error = f"timed out after {timeout_s:.0f} s"
        seconds = time.perf_counter() - t0
        log = log_dir / f"{name}.log"
        log.write_text(f"$ {' '.join(cmd)}\n--- stdout ---\n{out}\n--- stderr ---\n{err}")
        rows: list[dict] = []
        if error is None and rc == 0 and rows_file.exists():
            try:
                rows = json.loads(rows_file.read_text())
            except ValueError as exc:
                error = f"unreadable rows: {exc}"
            bad = sum(1 for row in rows if row.get("malformed"))
            if bad:
                error = f"{bad} row(s) without name/value/unit (kept, flagged)"
        elif error is None:
            lines = [ln for ln in (err or out).strip().splitlines() if ln.strip()]
            error = f"exit {rc}: {lines[-1] if lines else 'no output'}"
    if error is not None and not rows:
        rows = [{"name": name, "value": None, "unit": "",
                 "notes": f"error: {error} (log: {log})"}]
    for row in rows:
        row["benchmark"] = name
    return {"rows": rows, "seconds": round(seconds, 2), "returncode": rc, "error": error,
            "log": str(log)}


# -- machine description ----------------------------------------------------------
def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git() -> dict:
    def git(*args):
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                             check=False)
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


def machine_info() -> dict:
    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "torch": _version("torch"),
        "pyo": _version("pyo"),
        "auralize": _version("auralize"),
        "blas": None,
    }
    try:
        import numpy  # noqa: F401  (loads the BLAS threadpoolctl reports)
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: lib.get(k) for k in ("internal_api", "version", "architecture",
                                     "threading_layer", "num_threads", "filepath")}
            for lib in threadpool_info() if lib.get("user_api") == "blas"
        ]
    except Exception as exc:  # noqa: BLE001  (machine info must never stop the run)
        info["blas"] = f"unknown ({exc})"
    info.update(_git())
    return info


# -- table ----------------------------------------------------------------------------
def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


COLUMNS = ("benchmark", "name", "value", "unit", "baseline", "ratio", "notes")


def print_table(rows: list[dict], title: str) -> None:
    cells = [[_fmt(row.get(c)) if c in ("value", "baseline", "ratio") else str(row.get(c) or "")
              for c in COLUMNS] for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c)
                  for i, c in enumerate(COLUMNS)]
        widths[-1] = len(COLUMNS[-1])  # notes: unpadded, last
        print(title)
        line = "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths))
        print(line)
        print("-" * len(line))
        for r in cells:
            right = {2, 4, 5}
            print("  ".join(v.rjust(w) if i in right else v.ljust(w)
                            for i, (v, w) in enumerate(zip(r, widths))).rstrip())
        return
    table = Table(title=title, show_lines=False)
    for c in COLUMNS:
        table.add_column(c, justify="right" if c in ("value", "baseline", "ratio") else "left",
                         overflow="fold")
    for r in cells:
        table.add_row(*r)
    Console(width=max(140, Console().width)).print(table)


# -- main ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only these benchmarks (e.g. engine live)")
    parser.add_argument("--out", default="bench-results", help="directory for results.json")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per module (default 120 quick, 900 full)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        return child(args.child, args.quick, args.rows_file)

    modules = discover(args.only)
    if args.list:
        print("\n".join(short(p) for p in modules))
        return 0
    if not modules:
        print("no benchmarks/bench_*.py modules found", file=sys.stderr)
        return 1
    timeout_s = args.timeout or (120.0 if args.quick else 900.0)
    out_dir = Path(args.out)
    log_dir = out_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    started = _dt.datetime.now(_dt.UTC)
    records: dict[str, dict] = {}
    for path in modules:
        print(f"running {short(path)} ...", end=" ", flush=True)
        records[short(path)] = rec = run_module(path, args.quick, timeout_s, log_dir)
        print(f"{'FAILED' if rec['error'] else 'done'} in {rec['seconds']:.1f} s", flush=True)

    rows = [row for rec in records.values() for row in rec["rows"]]
    results = {
        "date": started.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        "benchmarks": records,
        "rows": rows,
    }
    out_file = out_dir / "results.json"
    out_file.write_text(json.dumps(results, indent=1))
    m = results["machine"]
    print()
    print_table(rows, f"auralize benchmarks ({results['mode']}) {results['date']} | {m['cpu']}, "
                      f"{m['cores_available']}/{m['cores']} cores | Python {m['python']}, "
                      f"numpy {m['numpy']}, torch {m['torch']}")
    print(f"\nwrote {out_file}")
    failed = [name for name, rec in records.items() if rec["error"]]
    if failed:
        print(f"failed: {', '.join(failed)} (see {log_dir})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
