"""What hearing gradients costs inside Keras's jit-compiled JAX train step.

On Keras's jax backend auralize computes what it hears inside the compiled train
step (:mod:`auralize.keras_step`): the batch loss, the per-layer gradient norms
and the per-layer weight sums and squares, and copies one small vector to the
host per step.  This measures that against Keras's own train step, **side by side
in one process**: one identical copy of the model per variant, all compiled, each
with its own training state, stepped in turn (Keras, loss, loss + gradients,
loss + gradients + weights, Keras, ...) on the same batch, so all see the same
machine load.  A step is the compiled function, blocking on its logs, plus (for
the tapped ones) the host copy of the vector and its decoding (``StepTap.take``);
Keras's own per-step Python (callbacks, log conversion) is in neither.

Figures per model: Keras's CPU time per step, and per variant the mean over
rounds of (variant - Keras) / mean Keras with a 95 % confidence interval; process
CPU time (XLA runs single-threaded here, so CPU time counts little of other
people's work), wall time in the notes.  Models: an MLP 784-1024-1024-10
(1.9 M parameters in 6 tensors, batch 256) and 24 Dense(128) layers + Dense(10)
(0.4 M parameters in 50 tensors, batch 64), Adam, fp32.
"""

from __future__ import annotations

import os
import statistics
import time

VARIANTS = (("Keras's own step", None),
            ("loss (ListenToLoss alone)", (False, False)),
            ("loss + gradient norms", (True, False)),
            ("loss + gradient norms + weight statistics (all three callbacks)", (True, True)))


def _overhead(a: list[float], b: list[float]) -> tuple[float, float]:
    base = statistics.fmean(a)
    diffs = [(y - x) / base * 100 for x, y in zip(a, b)]
    mean = statistics.fmean(diffs)
    ci = 1.96 * statistics.stdev(diffs) / len(diffs) ** 0.5
    return mean, ci


def _measure(name: str, build, data, steps: int) -> list[dict]:
    """One identical copy of the model per variant, stepped in turn on the same batch."""
    import jax
    import jax.numpy as jnp

    from auralize import keras as ak

    keras = ak.keras
    runs = []
    for _label, taps in VARIANTS:
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        model._symbolic_build(data_batch=data)
        state = jax.tree.map(jnp.copy, model._get_jax_state(
            trainable_variables=True, non_trainable_variables=True,
            optimizer_variables=True, metrics_variables=True))
        model.make_train_function(force=True)
        take = None
        if taps is not None:
            tap = ak._ModelTelemetry(model).tap
            tap.attach(grads=taps[0], weights=taps[1])
            take = tap.take
        runs.append({"model": model, "fn": model.train_function, "state": state, "take": take,
                     "cpu": [], "wall": []})

    def step(run, record: bool):
        t0, c0 = time.perf_counter(), time.process_time()
        logs, run["state"] = run["fn"](run["state"], iter([data]))
        jax.block_until_ready(logs)
        if run["take"] is not None:
            numbers = run["take"]()
            assert numbers is not None and numbers.loss is not None
        if record:
            run["cpu"].append(time.process_time() - c0)
            run["wall"].append(time.perf_counter() - t0)

    for i in range(steps + 5):            # 5 warm-up rounds (the first traces)
        for run in runs:
            step(run, record=i >= 5)
    base = runs[0]
    rows = [{"name": f"keras jax {name}: {VARIANTS[0][0]}, CPU per step",
             "value": round(statistics.fmean(base["cpu"]) * 1e3, 3), "unit": "ms",
             "notes": f"wall {statistics.fmean(base['wall']) * 1e3:.2f} ms"}]
    for (label, _), run in zip(VARIANTS[1:], runs[1:]):
        mean, ci = _overhead(base["cpu"], run["cpu"])
        wall, wall_ci = _overhead(base["wall"], run["wall"])
        rows.append({"name": f"keras jax {name}: {label}, CPU overhead",
                     "value": round(mean, 2), "unit": "%",
                     "baseline": round(statistics.fmean(base["cpu"]) * 1e3, 3),
                     "notes": f"+-{ci:.2f} (95% CI), {len(run['cpu'])} rounds; "
                              f"{statistics.fmean(run['cpu']) * 1e3:.2f} ms CPU per step; "
                              f"wall {wall:+.1f} % +-{wall_ci:.1f}"})
    return rows


def run(quick: bool = False) -> list[dict]:
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                       "intra_op_parallelism_threads=1")
    from auralize import keras as ak

    keras = ak.keras
    if keras.backend.backend() != "jax":
        raise RuntimeError(f"keras was imported on {keras.backend.backend()!r} before this benchmark")
    import numpy as np

    rng = np.random.default_rng(0)
    steps = 60 if quick else 300
    rows = []

    def wide():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((784,)), keras.layers.Dense(1024, activation="relu"),
                                 keras.layers.Dense(1024, activation="relu"),
                                 keras.layers.Dense(10, activation="softmax")])

    def deep():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((128,))]
                                + [keras.layers.Dense(128, activation="relu") for _ in range(24)]
                                + [keras.layers.Dense(10, activation="softmax")])

    data = (rng.normal(size=(256, 784)).astype("float32"), rng.integers(0, 10, 256))
    rows += _measure("MLP 784-1024-1024-10, batch 256", wide, data, steps)
    data = (rng.normal(size=(64, 128)).astype("float32"), rng.integers(0, 10, 64))
    rows += _measure("24 x Dense(128), batch 64", deep, data, steps)
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
