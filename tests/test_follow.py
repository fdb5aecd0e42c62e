"""``auralize follow``: a growing CSV, run folder or TensorBoard folder heard as it grows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from auralize import Sonifier, TrainingStep
from auralize.cli import main
from auralize.errors import AuralizeError
from auralize.sonify.follow import ArrivalClock, follow
from auralize.sonify.logs import CsvTail, LogTail

SRC = str(Path(__file__).resolve().parents[1] / "src")


def follow_in_thread(path, out_dir, **kwargs):
    """Start following ``path`` into a Sonifier (no device); return (thread, stop, sonifier, box)."""
    son = Sonifier(out_dir, mappings=["loss"], clock="wall", live=False, plot=False)
    stop, started = threading.Event(), threading.Event()
    box = {"times": []}

    def run():
        box["result"] = follow(path, son, poll_s=0.05, stop=stop, on_started=started.set,
                               on_step=lambda r: box["times"].append(time.perf_counter()),
                               **kwargs)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30), "follow did not open the log"
    return thread, stop, son, box


def wait_heard(box, count: int, timeout_s: float = 30.0) -> None:
    """Wait until ``count`` steps were heard (a condition, not a duration: a loaded
    machine polls late)."""
    deadline = time.monotonic() + timeout_s
    while len(box["times"]) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(box["times"]) >= count, (len(box["times"]), count)


def test_arrival_clock_spreads_bursts_and_follows_slow_steps():
    clock = ArrivalClock(min_gap_s=0.05)
    times = [clock.stamp(TrainingStep(step=i), now).wall_time_s
             for i, now in enumerate([10.0, 10.0, 10.0, 12.0])]
    assert times == pytest.approx([0.0, 0.05, 0.1, 2.0], abs=1e-9)


def test_csv_tail_reads_appended_and_rewritten_files(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train_loss_step,val_loss\n0,0,1.0,\n0,1,0.9")
    tail = CsvTail(path)
    assert [r.loss for r in tail.poll()] == [1.0]  # the unfinished line waits
    with open(path, "a") as handle:
        handle.write("\n0,1,,0.8\n")
    news = tail.poll()
    assert [(r.loss, r.epoch_end) for r in news] == [(0.9, False), (None, True)]
    assert news[1].metrics == {"val_loss": 0.8}
    # Lightning rewrites the whole file with a wider header: only new rows come back
    path.write_text("epoch,step,train_loss_step,val_loss,val_acc\n0,0,1.0,,\n0,1,0.9,,\n"
                    "0,1,,0.8,0.5\n1,2,0.7,,\n")
    assert [r.step for r in tail.poll()] == [2]
    # Keras' CSVLogger: one row per epoch, no step column: every row is an epoch end
    keras_csv = tmp_path / "k.csv"
    keras_csv.write_text("epoch,accuracy,loss,val_loss\n0,0.5,1.2,1.3\n1,0.7,0.8,0.9\n")
    rows = CsvTail(keras_csv).poll()
    assert all(r.epoch_end for r in rows) and rows[1].metrics["accuracy"] == 0.7


def test_follow_hears_a_csv_while_it_is_appended(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n0,5.0\n")  # history: skipped by default
    thread, stop, son, box = follow_in_thread(path, tmp_path / "heard")
    for step in range(1, 11):
        with open(path, "a") as handle:
            handle.write(f"{step},{1.0 if step <= 5 else 0.25}\n")
        # each row is heard before the next exists: heard as the log grows, not at
        # the end (how soon is a matter of load; the poll period is in follow's docs)
        wait_heard(box, step)
    stop.set()
    thread.join(5)
    result = son.close()
    assert box["result"].skipped == 1 and box["result"].steps == 10
    assert box["result"].kind == "csv"
    audio, rate = sf.read(str(result.wav_path), dtype="float32")
    assert result.steps == 10 and len(audio) > rate
    # the session's folder is an ordinary run folder: it re-renders bit for bit
    assert main(["render", str(tmp_path / "heard"), "-o", str(tmp_path / "again.wav"),
                 "--no-plot"]) == 0
    assert (tmp_path / "again.wav").read_bytes() == result.wav_path.read_bytes()


def test_follow_hears_a_run_folder_another_sonifier_writes(tmp_path):
    source = Sonifier(tmp_path / "train", mappings=["loss"], live=False, plot=False)
    thread, stop, son, box = follow_in_thread(tmp_path / "train", tmp_path / "heard",
                                              from_start=True)
    for step in range(12):
        source.log(TrainingStep(step=step, loss=1.0 / (step + 1)))
        time.sleep(0.05)
    wait_heard(box, 12)
    stop.set()
    thread.join(5)
    son.close()
    source.close()
    assert box["result"].kind == "telemetry" and box["result"].steps == 12
    heard = [line for line in (tmp_path / "heard/telemetry.jsonl").read_text().splitlines()]
    assert len(heard) == 12


def test_follow_of_a_missing_log_is_a_one_line_error(tmp_path, capsys):
    assert main(["follow", str(tmp_path / "nope"), "--live", "off"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("auralize: error: log not found") and err.count("\n") == 1
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(AuralizeError, match="cannot tell what"):
        LogTail(tmp_path / "x.txt")


def test_ctrl_c_ends_follow_with_complete_files(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n")
    # PYTHONFAULTHANDLER: if it hangs, SIGABRT prints every thread's stack (see below)
    env = dict(os.environ, PYTHONPATH=SRC, PYTHONFAULTHANDLER="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "auralize", "follow", str(path), "--live", "off", "--sound",
         "earcons", "-o", str(tmp_path / "out"), "--poll-s", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert "following" in proc.stdout.readline()
    for step in range(8):
        with open(path, "a") as handle:
            handle.write(f"{step},{1.0 / (step + 1)}\n")
        time.sleep(0.1)
    telemetry = tmp_path / "out/telemetry.jsonl"
    deadline = time.monotonic() + 30  # a loaded machine polls late; Ctrl-C after all 8 are in
    while time.monotonic() < deadline and (
            not telemetry.exists() or len(telemetry.read_text().splitlines()) < 8):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # seen once (stage 1, load 3): say where it waits
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        for pid in [proc.pid, *map(int, children)]:
            os.kill(pid, signal.SIGABRT)
        out, _ = proc.communicate(timeout=30)
        pytest.fail(f"follow did not end within 60 s of Ctrl-C; its threads:\n{out[-8000:]}")
    assert proc.returncode == 0, out
    assert "stopped" in out and "heard" in out
    info = sf.info(str(tmp_path / "out/sonification.wav"))
    assert info.frames > 0.3 * info.samplerate
    assert len(telemetry.read_text().splitlines()) == 8


def test_tensorboard_tail_groups_scalars_and_prefers_the_training_run(tmp_path):
    from auralize.sonify.logs import TensorBoardTail
    from auralize.sonify.tensorboard import write_tensorboard

    # Keras' TensorBoard callback: train/ and validation/ runs; the training one is followed
    write_tensorboard(tmp_path / "validation", [{"step": 0, "epoch_loss": 9.0}], np.zeros(0), 8000)
    write_tensorboard(tmp_path / "train", [{"step": 0, "epoch_loss": 1.0, "grad_norm/fc": 0.5},
                                           {"step": 1, "epoch_loss": 0.5, "eval/loss": 0.7}],
                      np.zeros(0), 8000)
    records = TensorBoardTail(tmp_path).poll()
    assert [(r.loss, r.epoch_end) for r in records] == [(1.0, False), (0.5, True)]
    assert records[0].grad_norms == {"fc": 0.5} and records[1].metrics == {"eval/loss": pytest.approx(0.7)}
    from auralize.sonify.announce import Announcer

    say = Announcer()
    say.step(TrainingStep(step=0, epoch_end=True, loss=1.0, metrics={"eval/loss": 0.9}))
    news = say.step(records[1])
    assert news[0].text == "new best evaluation loss 0.7"
