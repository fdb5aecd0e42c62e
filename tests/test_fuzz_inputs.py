"""Every command's file inputs, broken: no traceback, no hang, one line, exit 1, nothing lost.

Each input kind (WAV, image, CSV, JSONL, JSON, TensorBoard event file, checkpoint,
NumPy archive, TOML) comes in five bad variants: empty, truncated, only its first
bytes, another format's bytes, and a header claiming something huge (a WAV of 2**31
channels-frames, a PNG of 2**31 x 2**31 pixels, a 1 MB CSV field, 100 000 nested
JSON brackets, a TensorBoard record of 2**62 bytes, a zip entry of 2**62 bytes...).
Each command that reads that kind is run on each variant in this process (a
traceback fails the test, as does a hang: ``timeout``); it must exit 1 with one
``auralize: error:`` line, and what it had written before (an output file, a
converted dataset, a trained run) must be untouched.  Hypothesis then mutates
valid files (truncation and byte changes) for the readers that parse text and
headers: exit 0 or a one-line error, nothing else.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auralize.cli import main

pytestmark = pytest.mark.timeout(120)

TINY_TOML = """name = "tiny"
[audio]
sample_rate = 8000
block_size = 64
[model]
hidden = 8
depth = 1
[train]
seq_len = 4
batch_size = 4
"""


# -- valid files of each kind, and their broken variants ------------------------------

def _wav_bytes() -> bytes:
    buf = io.BytesIO()
    t = np.arange(4000) / 8000
    sf.write(buf, 0.5 * np.sin(2 * np.pi * 440 * t), 8000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((24, 24, 3), 120, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _jsonl_bytes() -> bytes:
    from auralize.sonify.telemetry import TrainingStep

    return "".join(TrainingStep(step=i, loss=1.0 / (i + 1)).to_json() + "\n"
                   for i in range(6)).encode()


def _tfevents_bytes(tmp: Path) -> bytes:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp)) as w:
        for i in range(5):
            w.add_scalar("loss", 1.0 / (i + 1), i)
    return next(tmp.glob("events.out.tfevents.*")).read_bytes()


def _ckpt_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(3)}, "epoch": 0}, buf)
    return buf.getvalue()


def _npz_bytes() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((2, 5, 126), np.float32))
    return buf.getvalue()


def _huge_wav(valid: bytes) -> bytes:
    # RIFF/fmt with 65535 channels at 4 GHz and a data chunk of 0xFFFFFFF0 bytes
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 65535, 4_000_000_000 & 0xFFFFFFFF,
                      0xFFFFFFFF, 65535, 16)
    return b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + b"WAVE" + fmt + b"data" + struct.pack(
        "<I", 0xFFFFFFF0) + valid[44:200]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _huge_png(valid: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", 2**31 - 1, 2**31 - 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + _png_chunk(b"IEND", b""))


def _huge_zip(valid: bytes) -> bytes:
    # a zip (torch checkpoint / npz container) whose one entry claims 2**62 bytes
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    raw = bytearray(buf.getvalue())
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = b"\xff\xff\xff\xff"  # uncompressed size
    raw[4 + 18 : 4 + 22] = b"\xff\xff\xff\xff"
    return bytes(raw)


def _huge_tfevents(valid: bytes) -> bytes:
    # a TFRecord whose length field says 2**62 bytes (and a matching-looking CRC)
    return struct.pack("<Q", 2**62) + b"\x00" * 4 + b"\x00" * 64


HUGE = {
    "wav": _huge_wav,
    "png": _huge_png,
    "csv": lambda v: b"step,loss\n0," + b"9" * (1 << 20) + b"\n",
    "jsonl": lambda v: b"[" * 100_000 + b"\n" + v,
    "json": lambda v: b"[" * 100_000,
    "toml": lambda v: b"x = " + b"[" * 100_000,
    "tfevents": _huge_tfevents,
    "ckpt": _huge_zip,
    "npz": _huge_zip,
}


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("valid")
    return {
        "wav": _wav_bytes(), "png": _png_bytes(), "csv": b"step,loss\n0,1.0\n1,0.5\n2,0.25\n",
        "jsonl": _jsonl_bytes(), "json": json.dumps({"mappings": ["loss"]}).encode(),
        "toml": TINY_TOML.encode(), "tfevents": _tfevents_bytes(tmp), "ckpt": _ckpt_bytes(),
        "npz": _npz_bytes(),
    }


VARIANTS = ("empty", "truncated", "first-bytes", "wrong-format", "huge-header")
# Half a WAV (libsndfile reads the frames that are there), half a CSV or JSONL log
# (whole rows remain; a killed run's log) are still inputs: those commands succeed.
STILL_READABLE = ("empty", "first-bytes", "wrong-format", "huge-header")


def broken(kind: str, variant: str, valid: dict[str, bytes]) -> bytes:
    good = valid[kind]
    if variant == "empty":
        return b""
    if variant == "truncated":
        return good[: len(good) // 2]
    if variant == "first-bytes":
        return good[:7]
    if variant == "wrong-format":
        return valid["png"] if kind != "png" else valid["wav"]
    return HUGE[kind](good)


# -- the commands and their inputs ------------------------------------------------------

MARK = b"written before: must survive"


@dataclass
class Case:
    """A command reading a file of ``kind``; ``argv(tmp, bad)`` puts the bad file in place."""

    name: str
    kind: str
    argv: object  # (tmp_path, bad_bytes) -> list[str]
    variants: tuple = VARIANTS


def _with_out(tmp: Path) -> Path:
    out = tmp / "out.wav"
    out.write_bytes(MARK)
    (tmp / "out_spectrogram.png").write_bytes(MARK)
    return out


def _file(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _gen_run(tmp: Path) -> Path:
    """A tiny trained generator run folder (made in code)."""
    from auralize.generate.config import GenConfig
    from auralize.generate.features import Normalizer
    from auralize.generate.model import BlockLSTM
    from auralize.generate.train import save_run

    cfg = GenConfig(name="tiny", sample_rate=8000, block_size=64, hidden=8, depth=1, seq_len=4)
    norm = Normalizer(np.zeros(cfg.feature_size, np.float32), np.ones(cfg.feature_size, np.float32))
    return save_run(tmp / "run", cfg, BlockLSTM(cfg.feature_size, 8, 1), norm)


def render(name):
    def argv(tmp, bad):
        return ["render", str(_file(tmp, name, bad)), "-o", str(_with_out(tmp))]
    return argv


def render_folder(name, with_telemetry=True):
    def argv(tmp, bad):
        folder = tmp / "log"
        if with_telemetry:
            _file(folder, "telemetry.jsonl", _jsonl_bytes())
        _file(folder, name, bad)
        return ["render", str(folder), "-o", str(_with_out(tmp))]
    return argv


def gen_sample_seed(tmp, bad):
    return ["generate", "sample", "--run", str(_gen_run(tmp)), "--seed-file",
            str(_file(tmp, "seed.wav", bad)), "-o", str(_with_out(tmp)), "--seconds", "0.2"]


def gen_sample_run(part):
    def argv(tmp, bad):
        run = _gen_run(tmp)
        _file(run, part, bad)
        return ["generate", "sample", "--run", str(run), "--seed-file",
                str(_file(tmp, "seed.wav", _wav_bytes())), "-o", str(_with_out(tmp))]
    return argv


def gen_convert_dir(tmp, bad):
    src = tmp / "takes"
    _file(src, "take.wav", bad)
    return ["generate", "convert", str(src), "--config", str(_file(tmp, "t.toml", TINY_TOML.encode())),
            "--root", str(tmp / "root")]


def gen_config(step):
    def argv(tmp, bad):
        cfg = str(_file(tmp, "bad.toml", bad))
        if step == "convert":
            return ["generate", "convert", "--config", cfg, "--root", str(tmp), "--demo-data",
                    "--piano-files", "1", "--piano-seconds", "1"]
        return ["generate", "live", "--run", str(_gen_run(tmp)), "--midi-map", cfg]
    return argv


def gen_train_data(name):
    def argv(tmp, bad):
        from auralize.generate.config import load_config

        cfg = _file(tmp, "t.toml", TINY_TOML.encode())
        folder = tmp / "root" / "datasets" / "piano" / load_config(cfg).data_tag()
        _file(folder, "meta.json", json.dumps({"dataset": "piano"}).encode())
        _file(folder, "norm.npz", _npz_bytes())
        _file(folder, "data.npz", _npz_bytes())
        _file(folder, name, bad)
        return ["generate", "train", "--config", str(cfg), "--root", str(tmp / "root"),
                "--no-progress", "--epochs", "1"]
    return argv


def gen_train_resume(tmp, bad):
    """Resuming a run whose last checkpoint is damaged: the run folder stays as it was."""
    from auralize.generate.config import load_config
    from auralize.generate.data import convert

    cfg_path = _file(tmp, "t.toml", TINY_TOML.encode())
    cfg = load_config(cfg_path)
    ds = convert(cfg, None, root=tmp / "root", demo_data=True, piano_files=1, piano_seconds=1.0)
    run = _gen_run(tmp / "root" / "runs")
    run.rename(tmp / "root" / "runs" / cfg.run_name(ds.name))
    _file(tmp / "root" / "runs" / cfg.run_name(ds.name), "checkpoints/last.ckpt", bad)
    return ["generate", "train", "--config", str(cfg_path), "--root", str(tmp / "root"),
            "--no-progress", "--epochs", "1"]


def activations_image(tmp, bad):
    return ["activations", "--dpath", str(_file(tmp, "img.png", bad)), "--no-plots",
            "--out", str(tmp / "acts")]


def activations_weights(tmp, bad):
    return ["activations", "--weights", str(_file(tmp, "w.pth", bad)), "--no-plots",
            "--image-size", "32", "--out", str(tmp / "acts")]


def dream_model(tmp, bad):
    return ["dream", "run", "--model", str(_file(tmp, "m.ckpt", bad)), "-o", str(_with_out(tmp))]


def serve_log(tmp, bad):
    return ["serve", "--run", str(_file(tmp, "log.jsonl", bad)), "--port", "0"]


SERVE_FAILS = ("empty", "wrong-format", "huge-header")  # a truncated log is a killed run: served

CASES = [
    Case("render-csv", "csv", render("m.csv"), STILL_READABLE),
    Case("render-jsonl", "jsonl", render("t.jsonl"), ("empty", "wrong-format", "huge-header")),
    Case("render-sonifier-json", "json", render_folder("sonifier.json")),
    Case("render-tensorboard", "tfevents",
         render_folder("events.out.tfevents.1.host", with_telemetry=False), STILL_READABLE),
    Case("serve-jsonl", "jsonl", serve_log, SERVE_FAILS),
    Case("generate-sample-seed-wav", "wav", gen_sample_seed, STILL_READABLE),
    Case("generate-sample-checkpoint", "ckpt", gen_sample_run("checkpoints/last.ckpt")),
    Case("generate-sample-config-json", "json", gen_sample_run("config.json")),
    Case("generate-sample-norm", "npz", gen_sample_run("norm.npz")),
    Case("generate-convert-wavs", "wav", gen_convert_dir, STILL_READABLE),
    Case("generate-convert-toml", "toml", gen_config("convert")),
    Case("generate-live-midi-map", "toml", gen_config("live")),
    Case("generate-train-data", "npz", gen_train_data("data.npz")),
    Case("generate-train-meta", "json", gen_train_data("meta.json")),
    Case("generate-train-resume-checkpoint", "ckpt", gen_train_resume),
    Case("activations-image", "png", activations_image),
    Case("activations-weights", "ckpt", activations_weights),
    Case("dream-run-model", "ckpt", dream_model),
]


def _snapshot(tmp: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in tmp.rglob("*") if p.is_file()}


def assert_one_line_error(rc: int, err: str, what: str) -> None:
    """Exit 1; stderr ends with exactly one ``auralize: error:`` line (progress bars and
    warnings may come before it), and holds no traceback."""
    assert "Traceback" not in err, what
    lines = [seg for line in err.splitlines() if (seg := line.split("\r")[-1].strip())]
    errors = [line for line in lines if line.startswith("auralize: error: ")]
    assert rc == 1 and len(errors) == 1 and lines[-1] == errors[0], (what, rc, err[-2000:])


@pytest.mark.parametrize("case, variant", [(c, v) for c in CASES for v in c.variants],
                         ids=lambda x: x.name if isinstance(x, Case) else x)
def test_broken_input_is_a_one_line_error(case, variant, valid, tmp_path, capsys):
    argv = case.argv(tmp_path, broken(case.kind, variant, valid))
    before = _snapshot(tmp_path)
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err
    assert_one_line_error(rc, err, f"{case.name} / {variant}")
    after = _snapshot(tmp_path)
    changed = [p for p, data in before.items() if after.get(p) != data]
    assert not changed, f"{case.name} / {variant} changed or removed {changed}"


# -- mutated valid files (hypothesis) ---------------------------------------------------

MUTATED = {  # kind -> the command that reads it
    "wav": gen_sample_seed,
    "csv": render("m.csv"),
    "jsonl": render("t.jsonl"),
    "toml": gen_config("convert"),
    "png": activations_image,
}


@st.composite
def mutations(draw, data: bytes) -> bytes:
    cut = draw(st.integers(0, len(data)))
    out = bytearray(data[:cut])
    for _ in range(draw(st.integers(0, 4))):
        if out:
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


@pytest.mark.parametrize("kind", sorted(MUTATED))
def test_mutated_inputs_never_raise(kind, valid, tmp_path_factory):
    if kind == "png":  # the model build makes each example slow; fewer of them
        n = 4
    else:
        n = 12

    @settings(max_examples=n, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=mutations(valid[kind]))
    def check(data):
        tmp = tmp_path_factory.mktemp(kind)
        argv = MUTATED[kind](tmp, data)
        import contextlib

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
        if rc != 0:
            assert_one_line_error(rc, err.getvalue(), f"{kind} mutated")

    check()
