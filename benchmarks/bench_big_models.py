"""What hearing a transformer costs: step time of GPT-2 models with and without sonification.

Issue 19: ``watch(model, opt)`` with its **default mappings** (loss, gradients,
weights, alarm; file sink) on GPT-2 language models of 6 and 12 blocks
(``transformers.GPT2LMHeadModel`` from a config, random weights, n_embd 128,
4 heads, vocabulary 8000, sequences of 64 tokens, batch 8, AdamW), against the
same training without it, **side by side in one run**: two identical copies of
the model, trained in alternating steps after a warm-up (as
``bench_training.py`` does), torch on one intra-op thread, each step's CPU time
of the training process.  Rows per model:

- *A/B*: mean over pairs of (watched step - neighbouring plain step) / mean
  plain step, with a 95 % confidence interval;
- *work in the loop*: CPU time inside auralize's calls (step pre-hook,
  ``log_loss``, ``end_epoch``, ``Sonifier.log``) per plain step; the renderer
  child's CPU per step (another process) is in the notes;
- with ``--full`` settings only: the same A/B for the settings the issue
  measured before the change (one voice per layer at Perone's linear pitch,
  weight statistics every step, the chord on the LM head with all its units),
  for comparison in the same run.

Target: overhead of the default mappings <= 3 %.  Full run ~15 min on 2 cores
shared with other work (``--quick``: ~4 min, 6-block model only, no "before"
rows); pass ``--timeout 1800`` to ``run.py`` on a busy machine.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import _proc_cpu_s, _timed_watch_class  # noqa: E402

TARGET_OVERHEAD_PCT = 3.0
BEFORE = {   # the settings before issue 19, as far as options can express them
    "groups": "layers", "weights": True,
    "mappings": ["loss", {"kind": "gradients", "scale": "linear"},
                 {"kind": "weights", "which_layer": -1, "max_partials": 100000}, "alarm"],
}


def gpt2(n_layer: int):
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    config = GPT2Config(n_layer=n_layer, n_embd=128, n_head=4, vocab_size=8000,
                        n_positions=64, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


def batches(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 8000, (8, 64), generator=g) for _ in range(n)]


def overhead(label: str, n_layer: int, data, warmup: int, epoch_every: int, out_root: str,
             settings: dict | None = None) -> list[dict]:
    torch.manual_seed(0)
    plain = gpt2(n_layer)
    watched = gpt2(n_layer)
    watched.load_state_dict(plain.state_dict())
    opt_p = torch.optim.AdamW(plain.parameters(), 1e-4)
    opt_w = torch.optim.AdamW(watched.parameters(), 1e-4)
    settings = dict(settings or {})
    t0 = time.perf_counter()
    w = _timed_watch_class()(watched, opt_w, None, out_dir=os.path.join(out_root, label),
                             live=False, plot=False, **settings)
    setup_s = time.perf_counter() - t0
    renderer = getattr(getattr(getattr(w.sonifier, "_renderer", None), "process", None), "pid",
                       None)
    r_warm = _proc_cpu_s(renderer)
    spent_warm = 0.0
    cpu = {0: [], 1: []}

    def step(model, opt, ids, handle=None):
        opt.zero_grad(set_to_none=True)
        loss = model(ids, labels=ids).loss
        loss.backward()
        opt.step()
        if handle is not None:
            handle.log_loss(loss)

    load = os.getloadavg()[0]
    for k, ids in enumerate(data):
        if k == warmup:
            r_warm = _proc_cpu_s(renderer)
            spent_warm = w.spent_s
        for which in ((0, 1) if k % 2 == 0 else (1, 0)):
            torch.manual_seed(k)                         # same dropout masks for both
            c = time.process_time()
            if which == 0:
                step(plain, opt_p, ids)
            else:
                step(watched, opt_w, ids, w)
                if (k + 1) % epoch_every == 0:
                    w.end_epoch()
            if k >= warmup:
                cpu[which].append(time.process_time() - c)
    load = max(load, os.getloadavg()[0])
    r1 = _proc_cpu_s(renderer)
    t = time.perf_counter()
    result = w.close()
    close_s = time.perf_counter() - t
    timed = len(data) - warmup
    render_cpu = (r1 - r_warm) / timed if r_warm is not None and r1 is not None else None
    spent = (w.spent_s - spent_warm) / timed
    p_cpu, w_cpu = np.array(cpu[0]), np.array(cpu[1])
    diff = w_cpu - p_cpu
    base = float(p_cpu.mean())
    pct = 100.0 * float(diff.mean()) / base
    ci = 100.0 * 1.96 * float(diff.std(ddof=1)) / np.sqrt(len(diff)) / base
    pct_spent = 100.0 * spent / base
    rec_lines = (Path(out_root) / label / "telemetry.jsonl").read_text().splitlines()
    row_kb = max(len(line) for line in rec_lines) / 1000
    voices = len(w.telemetry.names)
    step_s = w.sonifier.timeline.step_s
    where = (f"{voices} gradient voices of {len(w.telemetry.layer_names)} layers, "
             f"{step_s * 1e3:.0f} ms of audio per step, telemetry rows <= {row_kb:.1f} KB; "
             f"{sum(p.numel() for p in plain.parameters()) / 1e6:.2f} M params; file sink; "
             f"torch threads {torch.get_num_threads()}; load average {load:.1f} on "
             f"{os.cpu_count()} CPUs")
    verdict = "PASS" if pct <= TARGET_OVERHEAD_PCT else "FAIL"
    return [{
        "name": f"GPT-2 overhead A/B, {label}", "value": pct, "unit": "% step time",
        "baseline": base * 1e3, "ratio": 1.0 + pct / 100.0,
        "notes": (f"{verdict} (target <= {TARGET_OVERHEAD_PCT:g}%); CPU per step: plain "
                  f"{base * 1e3:.1f} ms, sonified - plain {diff.mean() * 1e3:+.2f} ms (paired, "
                  f"{len(diff)} pairs, 95% CI +-{ci:.2f} points); " + where),
        "ci95_pct": ci, "voices": voices, "audio_per_step_s": step_s, "row_kb": row_kb,
        "load_average": load,
    }, {
        "name": f"GPT-2 work in the loop, {label}", "value": pct_spent, "unit": "% step time",
        "baseline": base * 1e3, "ratio": 1.0 + pct_spent / 100.0,
        "notes": (f"CPU inside auralize's calls {spent * 1e3:.2f} ms per step"
                  + (f"; renderer child {render_cpu * 1e3:.2f} ms CPU per step"
                     if render_cpu is not None else "")
                  + f"; session start {setup_s:.2f} s, close {close_s:.2f} s; "
                  f"{result.steps} steps sonified"),
    }]


FULL_PLAN = [(6, 80, None), (12, 60, None), (6, 40, BEFORE), (12, 30, BEFORE)]


def run(quick: bool, plan=None) -> list[dict]:
    """Rows for ``plan``: (blocks, steps, settings or None for the defaults) per measurement."""
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rows = []
    plan = plan or ([(6, 40, None)] if quick else FULL_PLAN)
    with tempfile.TemporaryDirectory(prefix="auralize-bench-big-") as tmp:
        for n_layer, n_steps, settings in plan:
            label = f"{n_layer} blocks, " + ("settings before issue 19" if settings
                                              else "default mappings")
            new = overhead(label, n_layer, batches(n_steps), 5, 20, tmp, settings)
            for row in new:     # as they come: a long run on a busy machine shows progress
                print(f"{row['name']}: {row['value']:+.2f} {row['unit']}; {row['notes']}",
                      file=sys.stderr, flush=True)
            rows.extend(new)
    return rows


if __name__ == "__main__":
    # python benchmarks/bench_big_models.py [--quick] [BLOCKS:STEPS[:before] ...]
    chosen = [(int(p.split(":")[0]), int(p.split(":")[1]),
               BEFORE if p.endswith(":before") else None)
              for p in sys.argv[1:] if not p.startswith("--")]
    for row in run(quick="--quick" in sys.argv, plan=chosen or None):
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
