"""The gradient-sonification seed's sweep: models x learning rates x optimizers x activations.

Each run trains in its own process (one torch thread each) and writes a run
folder; the sweep then draws every run's spectrogram into one grid PNG and
writes ``index.html``, a gallery to listen to the runs side by side.
"""

from __future__ import annotations

import csv
import html
import itertools
import math
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from auralize.errors import AuralizeError

#: what each run of the sweep sonifies (its run folder's sonification.wav): the gradient
#: seed's sound, Perone's linear pitch, so runs compare by absolute gradient size
RUN_MAPPINGS = ({"kind": "gradients", "scale": "linear"}, "alarm")


@dataclass(frozen=True)
class RunSpec:
    model: str
    lr: float
    optimizer: str
    activation: str

    @property
    def name(self) -> str:
        return f"{self.model}_{self.optimizer}_lr{self.lr:g}_{self.activation}"


def grid(models, lrs, optimizers, activations) -> list[RunSpec]:
    from auralize.digits import ACTIVATIONS, MODELS, OPTIMIZERS

    for values, known, what in ((models, MODELS, "model"), (optimizers, OPTIMIZERS, "optimizer"),
                                (activations, ACTIVATIONS, "activation")):
        for value in values:
            if value not in known:
                raise AuralizeError(f"unknown {what} {value!r}; choose from {', '.join(known)}")
    for lr in lrs:
        if not lr > 0:
            raise AuralizeError(f"learning rates must be positive, got {lr}")
    return [RunSpec(*combo) for combo in itertools.product(models, lrs, optimizers, activations)]


def run_one(spec: RunSpec, out_dir: str, epochs: int, batch_size: int, seed: int,
            sonifier=None) -> dict:
    """Train one configuration (in a worker process) and return its summary row.

    The run folder is ``out_dir/spec.name``.  ``sonifier``: a session writing that
    folder (the Ray engine passes a :class:`~auralize.sweeps.ray_tune.TuneReporter`);
    default: a plain file-only Sonifier.
    """
    import torch

    from auralize.digits import build_model, build_optimizer, load_digits_data, train

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    data = load_digits_data(seed=seed)
    model = build_model(spec.model, spec.activation)
    optimizer = build_optimizer(spec.optimizer, model.parameters(), spec.lr)
    if sonifier is None:
        watch_kwargs = {"out_dir": str(Path(out_dir) / spec.name), "live": False,
                        "mappings": list(RUN_MAPPINGS)}
    else:
        watch_kwargs = {"sonifier": sonifier}
    out = train(model, optimizer, data, epochs=epochs, batch_size=batch_size, seed=seed,
                progress=False, watch_kwargs=watch_kwargs)
    result = out["result"] if sonifier is None else sonifier.close()
    alarms = result.stats.get("alarms", {})
    return {"run": spec.name, "model": spec.model, "lr": spec.lr, "optimizer": spec.optimizer,
            "activation": spec.activation, "val_accuracy": round(out["val_accuracy"], 4),
            "val_loss": out["val_loss"], "steps": out["steps"],
            "alarms": sum(alarms.values())}


def error_row(spec: RunSpec, error: str) -> dict:
    """The summary row of a run that raised."""
    return {"run": spec.name, "model": spec.model, "lr": spec.lr, "optimizer": spec.optimizer,
            "activation": spec.activation, "error": error}


def stopped_row(spec: RunSpec, steps: int) -> dict:
    """The summary row of a run a scheduler stopped early (no final validation)."""
    return {"run": spec.name, "model": spec.model, "lr": spec.lr, "optimizer": spec.optimizer,
            "activation": spec.activation, "steps": steps, "stopped": True}


def repair_run_folder(run_dir: Path) -> int:
    """Make a run folder whose process was killed readable; return its steps.

    Telemetry is written line by line, so it survives; a ``sonification.wav`` that
    is missing or unfinished is rendered again from it with the recorded settings
    (``sonifier.json``), as ``auralize render`` would.
    """
    import soundfile as sf

    from auralize.sonify.log_stream import open_log
    from auralize.sonify.rerender import render_config, render_log
    from auralize.sonify.run_folder import SPECTROGRAM_NAME, TELEMETRY_NAME, WAV_NAME
    from auralize.sonify.stream import count_lines

    telemetry = run_dir / TELEMETRY_NAME
    steps = count_lines(telemetry) if telemetry.exists() else 0
    if not steps:
        return 0
    wav = run_dir / WAV_NAME
    try:
        complete = sf.info(str(wav)).frames > 0
    except (RuntimeError, sf.LibsndfileError):
        complete = False
    if not complete:  # streamed: a killed run of any length is repaired in bounded memory
        log = open_log(run_dir)
        steps = render_log(log, render_config(
            log, None if log.config is not None else list(RUN_MAPPINGS)), wav)[0]
    if not (run_dir / SPECTROGRAM_NAME).exists():
        from auralize.audio.file_spectrogram import save_file_spectrogram

        save_file_spectrogram(wav, run_dir / SPECTROGRAM_NAME, title="training sonification")
    return steps


def run_sweep(specs: list[RunSpec], out_dir: Path, *, jobs: int, epochs: int, batch_size: int,
              seed: int = 0, progress: bool = True) -> list[dict]:
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with ProcessPoolExecutor(max_workers=max(1, jobs),
                             mp_context=_spawn_context()) as pool:
        futures = {pool.submit(run_one, spec, str(out_dir), epochs, batch_size, seed): spec
                   for spec in specs}
        for future in tqdm(as_completed(futures), total=len(futures), desc="sweep", unit="run",
                           disable=not progress):
            spec = futures[future]
            try:
                rows.append(future.result())
            except Exception as exc:  # noqa: BLE001 - one broken run must not end the sweep
                rows.append(error_row(spec, f"{type(exc).__name__}: {exc}"))
    order = {spec.name: i for i, spec in enumerate(specs)}
    rows.sort(key=lambda row: order[row["run"]])
    return rows


def _spawn_context():
    import multiprocessing as mp

    return mp.get_context("spawn")


def write_summary(rows: list[dict], out_dir: Path) -> Path:
    path = out_dir / "results.csv"
    columns = ["run", "model", "lr", "optimizer", "activation", "val_accuracy", "val_loss",
               "steps", "alarms", "stopped", "error"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in columns})
    return path


def save_grid(rows: list[dict], out_dir: Path, path: Path) -> Path:
    """All runs' spectrograms in one picture, one tile per run, titled with its settings."""
    from auralize.audio.files import read_audio
    from auralize.audio.plots import pyplot, spectrogram_db

    plt = pyplot()

    ok = [r for r in rows if "error" not in r]
    if not ok:
        raise AuralizeError("no run of the sweep finished; see results.csv")

    ncols = min(4, len(ok))
    nrows = math.ceil(len(ok) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False,
                             dpi=90)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, row in zip(axes.ravel(), ok):
        samples, rate = read_audio(out_dir / row["run"] / "sonification.wav", mono=True)
        freqs, times, db = spectrogram_db(samples, rate, nperseg=512)
        keep = (freqs > 50) & (freqs < 8000)
        ax.axis("on")
        ax.pcolormesh(times, freqs[keep], db[keep], shading="auto", cmap="magma",
                      vmin=db.max() - 80, vmax=db.max())
        ax.set_yscale("log")
        ax.set_title(f"{row['model']} {row['optimizer']} lr={row['lr']:g} {row['activation']}\n"
                     + _outcome(row) + (" ALARM" if row.get("alarms") else ""), fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle("gradient sonification sweep: spectrograms (time s, frequency Hz)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_gallery(rows: list[dict], out_dir: Path) -> Path:
    """``index.html``: a table of runs with audio players and spectrograms, to compare by ear."""
    cells = []
    for row in rows:
        run = html.escape(row["run"])
        if "error" in row:
            cells.append(f"<tr><td>{run}</td><td colspan=3>failed: "
                         f"{html.escape(row['error'])}</td></tr>")
            continue
        alarm = " <b class=alarm>alarm</b>" if row.get("alarms") else ""
        cells.append(
            f"<tr><td>{run}{alarm}<br>{html.escape(_outcome(row, long=True))}</td>"
            f"<td><audio controls preload=none src='{run}/sonification.wav'></audio></td>"
            f"<td><img loading=lazy src='{run}/spectrogram.png' width=420></td></tr>"
        )
    page = (
        "<!doctype html><meta charset=utf-8><title>auralize sweep</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:6px;border-bottom:1px solid"
        " #ddd;vertical-align:middle}.alarm{color:#c00}</style>"
        "<h1>Gradient sonification sweep</h1><p>One tone per layer per step; pitch = 200 Hz +"
        " 100 x gradient norm. <a href=grid.png>All spectrograms</a>,"
        " <a href=results.csv>results.csv</a>.</p>" + _whole_sweep(out_dir)
        + "<p>Every run is on the same step clock: to hear two of them step by step, A in the"
        " left ear and B in the right, run <code>auralize compare A B -o ab.wav</code>.</p>"
        "<table>" + "".join(cells) + "</table>"
    )
    path = out_dir / "index.html"
    path.write_text(page)
    return path


def _whole_sweep(out_dir: Path) -> str:
    """A player for the driver's recording of the whole sweep (Ray engine), if there is one."""
    if not (out_dir / "sweep.wav").exists():
        return ""
    return ("<p>The whole sweep as the driver heard it, every trial a voice (stereo; trial"
            " events in <a href=sweep.json>sweep.json</a>):<br><audio controls preload=none"
            " src='sweep.wav'></audio></p>")


def _outcome(row: dict, long: bool = False) -> str:
    if row.get("stopped"):
        return f"stopped early after {row.get('steps', 0)} steps"
    if long:
        return f"val acc {row['val_accuracy']:.3f}, loss {row['val_loss']:.3g}"
    return f"acc {row['val_accuracy']:.2f}"


def default_jobs() -> int:
    return max(1, (os.cpu_count() or 1))


def summarize(rows) -> str:
    ok = [r for r in rows if "error" not in r and not r.get("stopped")]
    best = max(ok, key=lambda r: r["val_accuracy"], default=None)
    stopped = sum(1 for r in rows if r.get("stopped"))
    text = f"{len(ok)}/{len(rows)} runs finished" + (
        f", {stopped} stopped early by the scheduler" if stopped else "")
    if best:
        text += f"; best {best['run']} (val acc {best['val_accuracy']:.3f})"
    diverged = [r["run"] for r in ok if r.get("alarms")]
    if diverged:
        text += f"; alarms in {len(diverged)} runs"
    return text


__all__ = ["RunSpec", "grid", "run_one", "run_sweep", "repair_run_folder", "error_row",
           "stopped_row", "save_grid", "write_gallery", "write_summary", "summarize",
           "default_jobs", "RUN_MAPPINGS"]
