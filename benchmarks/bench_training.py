"""What hearing training costs: step time with and without sonification.

1. Step-time overhead of full sonification — loss + all-layer gradient norms +
   weight statistics per step, the per-unit means WeightChord needs at epoch
   ends, all four mappings (loss, gradients, weights, alarm), file sink (the
   renderer child process writing ``sonification.wav``) and the live sink when
   a sound device exists — against the same training without it, **side by
   side in one run**: two identical copies of the model (same initial weights,
   same batches), one under :func:`auralize.torch.watch`, trained in alternating
   steps so that both see the same machine load.  Two figures per model:

   - *A/B*: mean over pairs of (watched step - neighbouring plain step) / mean
     plain step, with a 95% confidence interval — what the issue asks for, but
     on a shared machine a single step's time is noisy;
   - *work in the loop*: the CPU time spent inside auralize's calls (the step
     pre-hook, ``log_loss``, ``end_epoch``, ``Sonifier.log``), counted directly,
     per plain step — what sonification adds to the training thread, without
     the noise.  The renderer child's CPU (another process, on another core
     when one is free) is reported next to it.

   Models, CPU:

   - the soNNify demo CNN (Conv32 3x3 relu, MaxPool2, Conv64 3x3 relu, MaxPool2,
     Flatten, Dropout 0.5, Dense 10) on scikit-learn's 8x8 digits upsampled to
     28x28, batch 128, Adam;
   - a ResNet-18 (11.2 M parameters, 62 parameter tensors; CIFAR stem) on random
     3x32x32 images, batch 16, SGD with momentum.

   Torch runs one intra-op thread and each step's *CPU time* of the training
   process is the figure (wall time is reported too): the benchmark machine may
   be shared, and CPU time of a single-threaded step does not count other
   people's work.  The renderer child's CPU per step is read from /proc and
   reported next to it (it runs on another core when one is free).

   Closing the session (finishing the WAV, drawing the spectrogram) happens once
   at the end of a run; its time is reported separately.

2. Telemetry collection — per-layer gradient norms on the host — by
   :class:`auralize.torch.LayerTelemetry` (one ``_foreach_norm``, one transfer)
   against the per-parameter ``p.grad.norm().item()`` loop of Perone's code and
   Lightning's ``grad_norm``, on models with >= 100 parameter tensors
   (gradients filled with random numbers; median of repeats).

   On the CPU both are bound by memory bandwidth (each reads every gradient
   once), so the fused path saves only the per-tensor dispatch and ``.item()``
   costs: expect ~1.2x for a big model and ~2x for many small tensors.  The
   >= 5x target is about devices where every ``.item()`` is a host-device
   synchronisation: with CUDA present the rows are repeated on the GPU.

Target (issue 3): overhead <= 3 %; collection >= 5x faster than the loop.
Full run ~6 min on 2 busy cores (``--quick``: ~1.5 min).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

TARGET_OVERHEAD_PCT = 3.0
TARGET_SPEEDUP = 5.0


# -- models -------------------------------------------------------------------------
def demo_cnn() -> nn.Module:
    """soNNify's demo CNN (Keras layout) in torch, for 1x28x28 inputs."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(64 * 5 * 5, 10))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    """ResNet-18 ([2, 2, 2, 2]) / ResNet-34 ([3, 4, 6, 3]) with a CIFAR stem."""

    def __init__(self, blocks=(2, 2, 2, 2), classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, cin = [], 64
        for i, (n, cout) in enumerate(zip(blocks, (64, 128, 256, 512))):
            stage = []
            for j in range(n):
                stage.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def small_tensor_net(depth: int = 24, width: int = 128) -> nn.Module:
    """Transformer-like MLP blocks (Linear + LayerNorm): many small parameter tensors."""
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.LayerNorm(width)]
    return nn.Sequential(*layers)


# -- data -----------------------------------------------------------------------------
def digits_28(batch: int, n_batches: int):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    y = torch.tensor(d.target)
    out = []
    for k in range(n_batches):
        idx = torch.arange(k * batch, (k + 1) * batch) % len(x)
        out.append((x[idx], y[idx]))
    return out


def random_images(batch: int, n_batches: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, 3, 32, 32, generator=g), torch.randint(0, 10, (batch,),
                                                                        generator=g))
            for _ in range(n_batches)]


# -- 1. step-time overhead ------------------------------------------------------------------
def live_device_exists() -> bool:
    try:
        from auralize.audio.live import devices

        if devices.load_sounddevice(warn=False) is None:
            return False
        return devices.choose_output_device(None, warn=False) is not None
    except Exception:  # noqa: BLE001
        return False


def _proc_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux /proc)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _timed_watch_class():
    """A Watch that adds up the CPU time spent in auralize's own calls."""
    from auralize.torch import Watch

    class TimedWatch(Watch):
        spent_s = 0.0

        def _pre_step(self, *args):
            c = time.process_time()
            try:
                return super()._pre_step(*args)
            finally:
                self.spent_s += time.process_time() - c

        def log_loss(self, *args, **kwargs):
            c = time.process_time()
            try:
                return super().log_loss(*args, **kwargs)
            finally:
                self.spent_s += time.process_time() - c

        def end_epoch(self, **kwargs):
            c = time.process_time()
            try:
                return super().end_epoch(**kwargs)
            finally:
                self.spent_s += time.process_time() - c

    return TimedWatch


def overhead(name: str, make_model, make_opt, batches, warmup: int, epochs_every: int,
             out_root: str) -> list[dict]:
    """Alternate plain and watched steps on two identical models; time each step.

    Two figures: the A/B difference of step CPU time (paired: each watched step
    against the plain step next to it, with a 95% confidence interval, since a
    shared machine makes single steps noisy), and the CPU time spent inside
    auralize's calls (hook, log_loss, end_epoch, Sonifier.log), counted directly.
    """
    torch.manual_seed(0)
    plain = make_model()
    watched = make_model()
    watched.load_state_dict(plain.state_dict())
    opt_p, opt_w = make_opt(plain), make_opt(watched)
    live = live_device_exists()
    wall = {0: [], 1: []}
    cpu = {0: [], 1: []}
    t0 = time.perf_counter()
    w = _timed_watch_class()(
        watched, opt_w, None, out_dir=os.path.join(out_root, name.split(" (")[0].replace(" ", "_")),
        mappings=("loss", "gradients", "weights", "alarm"), clock="step",
        live="auto" if live else False)
    setup_s = time.perf_counter() - t0
    renderer = getattr(getattr(getattr(w.sonifier, "_renderer", None), "process", None), "pid",
                       None)
    r0 = r_warm = _proc_cpu_s(renderer)
    spent_warm = 0.0

    def step(model, opt, x, y, handle=None):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if handle is not None:
            handle.log_loss(loss)

    load = os.getloadavg()[0]
    with torch.random.fork_rng():
        for k, (x, y) in enumerate(batches):
            if k == warmup:   # the renderer child has imported its modules by now
                r_warm = _proc_cpu_s(renderer)
                spent_warm = w.spent_s
            order = (0, 1) if k % 2 == 0 else (1, 0)   # neither always goes first
            for which in order:
                torch.manual_seed(k)                     # same dropout masks for both
                c, t = time.process_time(), time.perf_counter()
                if which == 0:
                    step(plain, opt_p, x, y)
                else:
                    step(watched, opt_w, x, y, w)
                    if (k + 1) % epochs_every == 0:
                        w.end_epoch()
                dt, dc = time.perf_counter() - t, time.process_time() - c
                if k >= warmup:
                    wall[which].append(dt)
                    cpu[which].append(dc)
    load = max(load, os.getloadavg()[0])
    r1 = _proc_cpu_s(renderer)
    t = time.perf_counter()
    result = w.close()
    close_s = time.perf_counter() - t
    timed = len(batches) - warmup
    render_cpu = (r1 - r_warm) / timed if r_warm is not None and r1 is not None else None
    render_start = (r_warm - r0) if r_warm is not None and r0 is not None else None
    spent = (w.spent_s - spent_warm) / timed
    p_cpu, w_cpu = np.array(cpu[0]), np.array(cpu[1])
    diff = w_cpu - p_cpu
    base = float(p_cpu.mean())
    pct = 100.0 * float(diff.mean()) / base
    ci = 100.0 * 1.96 * float(diff.std(ddof=1)) / np.sqrt(len(diff)) / base
    pct_med = 100.0 * (float(np.median(w_cpu)) / float(np.median(p_cpu)) - 1.0)
    pct_wall = 100.0 * (float(np.mean(wall[1])) / float(np.mean(wall[0])) - 1.0)
    pct_spent = 100.0 * spent / base
    pct_total = (100.0 * (spent + render_cpu) / base) if render_cpu is not None else None
    n_params = sum(p.numel() for p in plain.parameters())
    n_tensors = sum(1 for _ in plain.parameters())
    where = (f"{n_tensors} tensors, {n_params / 1e6:.2f} M params; sinks: file"
             + (" + live" if live else " (no sound device: live sink off)")
             + f"; torch threads {torch.get_num_threads()}; load average {load:.1f} on "
               f"{os.cpu_count()} CPUs")
    ab_verdict = "PASS" if pct <= TARGET_OVERHEAD_PCT else "FAIL"
    direct_verdict = "PASS" if pct_spent <= TARGET_OVERHEAD_PCT else "FAIL"
    return [{
        "name": f"sonification overhead A/B, {name}", "value": pct, "unit": "% step time",
        "baseline": base * 1e3, "ratio": 1.0 + pct / 100.0,
        "notes": (f"{ab_verdict} (target <= {TARGET_OVERHEAD_PCT:g}%); training process CPU per "
                  f"step: plain {base * 1e3:.1f} ms, sonified - plain {diff.mean() * 1e3:+.2f} ms "
                  f"(paired, {len(diff)} pairs, 95% CI +-{ci:.2f} points; median-based "
                  f"{pct_med:+.2f}%); wall clock {pct_wall:+.2f}% (machine load included); "
                  + where),
        "plain_cpu_ms": base * 1e3, "sonified_cpu_ms": float(w_cpu.mean()) * 1e3,
        "ci95_pct": float(ci), "overhead_pct_median": pct_med, "overhead_pct_wall": pct_wall,
        "steps_timed": len(diff), "live": live, "load_average": load,
    }, {
        "name": f"sonification work in the loop, {name}", "value": pct_spent,
        "unit": "% step time", "baseline": base * 1e3, "ratio": 1.0 + pct_spent / 100.0,
        "notes": (f"{direct_verdict} (target <= {TARGET_OVERHEAD_PCT:g}%); CPU time inside "
                  f"auralize's calls (step pre-hook, log_loss, end_epoch, Sonifier.log) "
                  f"{spent * 1e3:.2f} ms per step vs a plain step's {base * 1e3:.1f} ms"
                  + (f"; renderer child (another process) {render_cpu * 1e3:.2f} ms CPU per "
                     f"step, both together {pct_total:.2f}%; its start-up, imports included, "
                     f"{render_start:.2f} s CPU" if render_cpu is not None else "")
                  + f"; session start {setup_s:.2f} s, close (WAV+spectrogram) {close_s:.2f} s; "
                  f"{result.steps} steps sonified; " + where),
        "auralize_cpu_ms_per_step": spent * 1e3,
        "renderer_cpu_ms_per_step": None if render_cpu is None else render_cpu * 1e3,
        "renderer_start_cpu_s": render_start, "overhead_pct_with_renderer": pct_total,
        "close_s": close_s,
    }]


# -- 2. telemetry collection ------------------------------------------------------------------
def _per_parameter_norms_loop(model: nn.Module) -> dict[str, float]:
    """The baseline: per-layer gradient norms as Perone's code and Lightning's ``grad_norm``
    take them, one reduction and one host transfer per parameter."""
    out = {}
    for name, mod in model.named_modules():
        grads = [p.grad for p in mod.parameters(recurse=False)
                 if p.requires_grad and p.grad is not None]
        if grads:
            out[name or type(mod).__name__] = float(
                np.sqrt(sum(float(g.norm().item()) ** 2 for g in grads)))
    return out


def collection(name: str, model: nn.Module, repeats: int) -> dict:
    from auralize.torch import LayerTelemetry

    torch.manual_seed(0)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    tel = LayerTelemetry.from_module(model)
    fast = tel.grad_norms

    def slow():
        return _per_parameter_norms_loop(model)

    a, b = fast(), slow()
    worst = max(abs(a[k] - b[k]) / max(b[k], 1e-12) for k in b)
    t_fast, t_slow = [], []
    for _ in range(repeats):          # alternate, as above
        t = time.perf_counter()
        slow()
        t_slow.append(time.perf_counter() - t)
        t = time.perf_counter()
        fast()
        t_fast.append(time.perf_counter() - t)
    m_fast, m_slow = statistics.median(t_fast), statistics.median(t_slow)
    speedup = m_slow / m_fast
    n_tensors = len(tel.params)
    n_params = sum(p.numel() for p in tel.params)
    verdict = "PASS" if speedup >= TARGET_SPEEDUP else "FAIL"
    return {
        "name": f"grad-norm collection, {name}", "value": speedup, "unit": "x loop",
        "baseline": m_slow * 1e3, "ratio": speedup,
        "notes": (f"{verdict} (target >= {TARGET_SPEEDUP:g}x); fused {m_fast * 1e3:.3f} ms vs "
                  f"p.grad.norm().item() loop {m_slow * 1e3:.3f} ms (median of {repeats}); "
                  f"{n_tensors} tensors, {n_params / 1e6:.2f} M params, {len(tel.names)} layers; "
                  f"max rel. difference {worst:.1e}; device {tel.params[0].device.type}"),
        "fused_ms": m_fast * 1e3, "loop_ms": m_slow * 1e3, "tensors": n_tensors,
    }


def run(quick: bool) -> list[dict]:
    # One intra-op thread: per-step CPU time is then the work done, whatever else
    # the (possibly shared) machine runs; the renderer child gets the other cores.
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="auralize-bench-training-") as tmp:
        n_cnn = 24 if quick else 150
        rows.extend(overhead(
            "demo CNN (digits 28x28, batch 128)", demo_cnn,
            lambda m: torch.optim.Adam(m.parameters(), 1e-3),
            digits_28(128, n_cnn), warmup=4, epochs_every=12 if quick else 30, out_root=tmp))
        n_res = 6 if quick else 30
        rows.extend(overhead(
            "ResNet-18 (3x32x32, batch 16)", ResNet,
            lambda m: torch.optim.SGD(m.parameters(), 0.05, momentum=0.9),
            random_images(16, n_res), warmup=1, epochs_every=3 if quick else 10, out_root=tmp))
    reps = 10 if quick else 40
    rows.append(collection("ResNet-34 (110 tensors, 21 M params)", ResNet((3, 4, 6, 3)), reps))
    rows.append(collection("48 Linear+LayerNorm blocks (192 tensors)",
                           small_tensor_net(48, 128), reps * 3))
    if torch.cuda.is_available():   # the issue: "where a GPU is available, repeat on it"
        for name, model, n in (("ResNet-34, CUDA", ResNet((3, 4, 6, 3)), reps),
                               ("48 Linear+LayerNorm blocks, CUDA", small_tensor_net(48, 128),
                                reps * 3)):
            try:
                rows.append(collection(name, model.cuda(), n))
            except Exception as exc:  # noqa: BLE001 - a row, not a crash
                rows.append({"name": f"grad-norm collection, {name}", "value": None,
                             "unit": "x loop", "notes": f"error: {exc}"})
    return rows


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
