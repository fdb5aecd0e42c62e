"""What hearing gradients costs inside Keras's jit-compiled JAX train step.

On Keras's jax backend auralize computes the per-layer gradient norms (and the
batch loss and per-variable weight norms and sums) inside the compiled train
step (:mod:`auralize.keras_step`) and copies one small vector to the host per
step.  This measures that against Keras's own train step, **side by side in one
process**: both compiled train functions of the same model exist at once and
are called in alternating steps (A, B, A, B...) on the same batch, each from its
own training state, so both see the same machine load.

- A: Keras's own ``train_function`` (what ``fit`` runs without auralize), the
  step's logs blocked on (Keras converts each to a float for the callbacks);
- B: the tapped function with gradient norms, loss and weight statistics, plus
  the host copy of the vector and its decoding (``StepTap.take``).

Figures per model: mean step time of A, of B, and the mean over pairs of
(B - A) / mean A with a 95 % confidence interval; process CPU time per step
(XLA runs single-threaded here, so CPU time does not count other people's work)
and wall time.  Models: an MLP 784-1024-1024-10 (1.9 M parameters, batch 256)
and 24 Dense(128) layers (0.4 M parameters in 48 tensors, batch 64), Adam, fp32.
"""

from __future__ import annotations

import os
import statistics
import time


def _pairs(fa, fb, state_a, state_b, data, steps: int, take):
    import jax

    cpu_a, cpu_b, wall_a, wall_b = [], [], [], []
    for _ in range(steps):
        for which in "ab":
            t0, c0 = time.perf_counter(), time.process_time()
            if which == "a":
                logs, state_a = fa(state_a, iter([data]))
                jax.block_until_ready(logs)
            else:
                logs, state_b = fb(state_b, iter([data]))
                jax.block_until_ready(logs)
                take()
            c1, t1 = time.process_time(), time.perf_counter()
            (cpu_a if which == "a" else cpu_b).append(c1 - c0)
            (wall_a if which == "a" else wall_b).append(t1 - t0)
    return cpu_a, cpu_b, wall_a, wall_b, state_a, state_b


def _overhead(a: list[float], b: list[float]) -> tuple[float, float]:
    base = statistics.fmean(a)
    diffs = [(y - x) / base * 100 for x, y in zip(a, b)]
    mean = statistics.fmean(diffs)
    ci = 1.96 * statistics.stdev(diffs) / len(diffs) ** 0.5
    return mean, ci


def _measure(name: str, model, data, steps: int) -> list[dict]:
    from auralize import keras as ak
    from auralize.keras_step import StepTap

    keras = ak.keras
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model._symbolic_build(data_batch=data)

    def state():
        """A copy of the training state (each function donates the state it is given)."""
        import jax
        import jax.numpy as jnp

        return jax.tree.map(jnp.copy, model._get_jax_state(
            trainable_variables=True, non_trainable_variables=True,
            optimizer_variables=True, metrics_variables=True))

    model.make_train_function(force=True)
    fa = model.train_function
    state_a, state_b = state(), state()
    _, state_a = fa(state_a, iter([data]))            # trace Keras's own step first
    tel = ak._ModelTelemetry(model)
    tap: StepTap = tel.tap
    tap.attach(grads=True, weights=True)
    fb = model.train_function
    _, state_b = fb(state_b, iter([data]))            # the tapped step
    assert tap.take().grad_norms, "the tap gave no gradient norms"
    *_, state_a, state_b = _pairs(fa, fb, state_a, state_b, data, 5, tap.take)   # warm up
    cpu_a, cpu_b, wall_a, wall_b, _, _ = _pairs(fa, fb, state_a, state_b, data, steps, tap.take)
    tap.detach()
    rows = []
    for kind, a, b in (("CPU", cpu_a, cpu_b), ("wall", wall_a, wall_b)):
        mean, ci = _overhead(a, b)
        rows.append({"name": f"keras jax {name}: gradient norms in the jit step, {kind} overhead",
                     "value": round(mean, 2), "unit": "%",
                     "notes": f"+-{ci:.2f} (95% CI), {len(a)} A/B pairs; step "
                              f"{statistics.fmean(a) * 1e3:.2f} ms without, "
                              f"{statistics.fmean(b) * 1e3:.2f} ms with"})
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
    keras.utils.set_random_seed(0)
    wide = keras.Sequential([keras.Input((784,)), keras.layers.Dense(1024, activation="relu"),
                             keras.layers.Dense(1024, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")])
    data = (rng.normal(size=(256, 784)).astype("float32"), rng.integers(0, 10, 256))
    rows += _measure("MLP 784-1024-1024-10, batch 256", wide, data, steps)
    deep = keras.Sequential([keras.Input((128,))]
                            + [keras.layers.Dense(128, activation="relu") for _ in range(24)]
                            + [keras.layers.Dense(10, activation="softmax")])
    data = (rng.normal(size=(64, 128)).astype("float32"), rng.integers(0, 10, 64))
    rows += _measure("24 x Dense(128), batch 64", deep, data, steps)
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
