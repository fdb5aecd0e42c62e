"""The page's gradient chart for a run of many layers: at most 24 series, each a true group norm.

A log with a norm per layer for 1000 layers is served by the real ``auralize
serve``; the history a page gets over the WebSocket is checked against norms
computed here from the log's own per-layer values.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from auralize.sonify.telemetry import TrainingStep
from auralize.web.records import MAX_GRAD_SERIES, compact_record
from serveutil import page_history, served_run

ROOT = Path(__file__).resolve().parents[1]
LAYERS = 1000
STEPS = 120
NAN_STEP, NAN_LAYER = 50, 500


def _write_run(folder: Path) -> list[dict]:
    """A 1000-layer log (each layer its own norm, spread over 1e-6..1e3; one NaN); the per-layer
    values as written."""
    rng = np.random.default_rng(19)
    folder.mkdir(parents=True)
    written = []
    with open(folder / "telemetry.jsonl", "w") as handle:
        for s in range(STEPS):
            norms = {f"h.{i}.mlp": float(10.0 ** rng.uniform(-6, 3)) for i in range(LAYERS)}
            if s == NAN_STEP:
                norms[f"h.{NAN_LAYER}.mlp"] = float("nan")
            handle.write(TrainingStep(step=s, loss=1.0 / (1 + s), grad_norms=norms).to_json()
                         + "\n")
            written.append(norms)
    (folder / "sonifier.json").write_text(json.dumps(
        {"mappings": ["loss"], "clock": "step", "step_s": 0.02, "sample_rate": 8000}))
    return written


def _history(run: Path) -> list[dict]:
    """The records a page gets from ``auralize serve --run RUN`` over its WebSocket."""
    with served_run(run) as (_, url):
        return page_history(url)


def _members(label: str) -> range:
    """The layer indices a label such as ``h.42-83 (42 layers)`` names (its count checked)."""
    m = re.fullmatch(r"h\.(\d+)-(\d+) \((\d+) layers\)", label)
    assert m, label
    first, last, count = map(int, m.groups())
    assert last - first + 1 == count, label
    return range(first, last + 1)


def test_served_history_of_a_thousand_layers_carries_true_group_norms(tmp_path):
    written = _write_run(tmp_path / "run")
    records = _history(tmp_path / "run")
    assert [r["step"] for r in records] == list(range(STEPS))  # short: kept whole
    labels = list(records[0]["grad_norms"])
    assert 2 <= len(labels) <= MAX_GRAD_SERIES
    covered = [i for label in labels for i in _members(label)]
    assert covered == list(range(LAYERS))  # every layer in exactly one group, in order
    for r in records:
        assert list(r["grad_norms"]) == labels and r["grad_layers"] == LAYERS
        norms = written[r["step"]]
        for label, value in r["grad_norms"].items():
            members = [norms[f"h.{i}.mlp"] for i in _members(label)]
            if r["step"] == NAN_STEP and NAN_LAYER in _members(label):
                assert value is None  # a NaN member: the group's norm is not a number
                continue
            true = math.sqrt(math.fsum(v * v for v in members))
            assert value == pytest.approx(true, rel=1e-12), (r["step"], label)


def test_up_to_the_bound_every_layer_keeps_its_own_series():
    norms = {f"block{i}": 0.1 * (i + 1) for i in range(MAX_GRAD_SERIES)}
    norms["block3"] = float("inf")
    doc = compact_record(TrainingStep(step=0, loss=1.0, grad_norms=norms), 0.0)
    assert list(doc["grad_norms"]) == list(norms) and "grad_layers" not in doc
    assert doc["grad_norms"]["block3"] is None and doc["grad_norms"]["block4"] == 0.5
    norms["block_extra"] = 2.0  # one past the bound: grouped, the count said
    doc = compact_record(TrainingStep(step=1, loss=1.0, grad_norms=norms), 0.0)
    assert len(doc["grad_norms"]) <= MAX_GRAD_SERIES and doc["grad_layers"] == MAX_GRAD_SERIES + 1


def test_decimated_history_keeps_the_bound_and_each_value_is_a_steps_group_norm():
    """Buckets merge (min and max per series): every point still has <= 24 series, and each
    value is the group's true norm at one of the run's steps (a min or max, never a mean)."""
    from auralize.web.history import ChartHistory

    rng = np.random.default_rng(7)
    steps = 3000
    values = 10.0 ** rng.uniform(-4, 2, size=(steps, LAYERS))
    names = [f"h.{i}.mlp" for i in range(LAYERS)]
    history = ChartHistory(max_points=60)
    for s in range(steps):
        history.append(compact_record(TrainingStep(step=s, loss=float(rng.uniform(0.5, 1.5)),
                                                   grad_norms=dict(zip(names, values[s]))),
                                      s * 0.05))
    docs = list(history)
    assert 20 <= len(docs) <= 60 and history.width > 1  # merged
    for doc in docs:
        assert len(doc["grad_norms"]) <= MAX_GRAD_SERIES and doc["grad_layers"] == LAYERS
        for label, value in doc["grad_norms"].items():
            members = list(_members(label))
            true = np.sqrt(np.sum(values[:, members] ** 2, axis=1))  # per step
            assert np.min(np.abs(true - value) / true) < 1e-12, label
