"""Hear a Hugging Face ``Trainer``: ``auralize.transformers.SonifyCallback``.

Quick start::

    from auralize.transformers import SonifyCallback

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      callbacks=[SonifyCallback(mappings=["loss", "gradients", "alarm", "speech"])])
    trainer.train()      # args.output_dir/auralize/run-1/sonification.wav, telemetry.jsonl, ...

One record per optimizer step (a :class:`~auralize.sonify.TrainingStep`):

- **Gradients** (``grad_norms``, per layer, see :mod:`auralize.torch`): read in
  ``on_pre_optimizer_step``.  transformers 5's Trainer calls it after the last
  micro-batch's backward (gradients accumulated over
  ``gradient_accumulation_steps`` micro-batches and, under DDP, all-reduced),
  after Accelerate unscaled fp16 gradients (inside ``accelerator.clip_grad_norm_``,
  which the Trainer calls every step, with ``max_norm=inf`` when clipping is
  off), and before clipping: the Watch reads the gradients inside
  ``clip_grad_norm_`` as it is about to scale them (:mod:`auralize.amp_steps`),
  so the per-layer norms are the pre-clip ones, what clipping saw, of the gradient
  the optimizer then applies clipped.  The Trainer's own pre-clip total norm
  arrives with its logs (metric ``grad_norm``, below), and a step whose gradient
  was clipped carries ``grad_clipped = 1`` (its total norm reached
  ``max_grad_norm`` within 1e-5), other steps ``grad_clipped = 0``.
- **Loss and metrics** from ``on_log``: the Trainer logs every ``logging_steps``
  optimizer steps (default 500) the *mean* loss since its last log; that value
  goes to the record of the step at which it was logged (steps between logs
  have ``loss = None``: the loss tone holds, nothing is invented).  Use
  ``logging_steps=1`` for a loss per step.  Every other number the Trainer logs
  with it (``grad_norm``: the pre-clip total norm; user ``self.log`` values)
  goes to that record's ``metrics``; the learning rate is ``lr`` (the one this
  step applied, read at the pre-step).
- **Evaluation** (``on_evaluate``): the metrics (``eval_loss``...) join the
  record of the step they evaluated.  An evaluation at an epoch end
  (``eval_strategy="epoch"``) makes them part of the epoch end: the ``speech``
  mapping says "epoch 2, evaluation loss 3.1" and "new best evaluation loss
  3.0", ``earcons`` plays its epoch sound.  Evaluations within an epoch
  (``eval_strategy="steps"``) are in the telemetry and ``metrics.csv`` only:
  announcements are made at epoch ends.
- **Epochs**: the record of an epoch's last step has ``epoch_end = True`` and
  ``epoch`` counts the Trainer's epochs.  ``step`` is the number of optimizer
  steps done before this one (the Trainer's logs call this step ``step + 1``).
- **Skipped steps** (fp16 GradScaler found inf/NaN gradients, Accelerate's
  ``optimizer.step_was_skipped``): ``optimizer_step_skipped = 1``.

One run folder per ``train()``: ``out_dir`` if given (later ``train()`` calls of
the same callback write ``out_dir-2``, ``out_dir-3``...), else the first free
``args.output_dir/auralize/run-N``.  It is written at ``on_train_end``; an
exception inside training (the Trainer tells callbacks nothing then) leaves the
telemetry and the audio written so far; the next ``train()`` of the same
callback, or the session's garbage collection, finishes that folder.
Distributed: only the world process zero (``state.is_world_process_zero``) makes
a Sonifier; the others write nothing.

DeepSpeed ZeRO 1-3 through the Trainer: every rank joins one all-reduce per
step, rank 0 hears the global pre-clip norms; FSDP (GPU only in Accelerate) and
DeepSpeed without ZeRO: said once, gradients and weights left out
(:mod:`auralize.transformers_sharded`).

auralize never breaks training: a failure inside the callback (an unwritable
folder, a dead audio device...) warns once, stops the sound, and the Trainer
goes on (under DeepSpeed that rank still joins the all-reduce: no rank waits).
Wrong arguments (an unknown mapping or keyword) are an
:class:`~auralize.AuralizeError` when the callback is made, before training.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from pathlib import Path

from auralize.deepspeed_zero import zero_view
from auralize.errors import AuralizeError

try:  # the real Hugging Face package (an absolute import), not this module
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover - tested in a subprocess that hides transformers
    raise AuralizeError("auralize.transformers needs Hugging Face transformers: "
                        "pip install auralize[hf]") from None

from auralize.sonify.mappings import make_mapping
from auralize.sonify.session import Sonifier
from auralize.sonify.telemetry import TrainingStep
from auralize.torch import Watch
from auralize.transformers_sharded import ZeroStepHook, join_all_reduce, unread_stack

__all__ = ["DEFAULT_MAPPINGS", "SonifyCallback"]

#: heard by default: the loss tone, a tone per layer's gradient norm, the alarm, and an
#: earcon at each epoch end (with its evaluation).  No weight chord: a language model's
#: last Linear layer has a unit per vocabulary entry.
DEFAULT_MAPPINGS = ("loss", "gradients", "alarm", "earcons")
#: logged keys that are not per-step metrics (the record has them as fields)
_NOT_METRICS = ("loss", "epoch", "step", "learning_rate")
#: a clipped gradient's total norm is max_grad_norm * T / (T + 1e-6): within this (relative)
_CLIP_TOL = 1e-5


class _LearningRate:
    """The learning rate a step applied, in the shape :class:`Watch` reads it."""

    __slots__ = ("param_groups",)

    def __init__(self, lr) -> None:
        self.param_groups = [{"lr": lr}]


class _MarkClipped:
    """Between the Watch's step buffer and the Sonifier: marks clipped steps (host values)."""

    def __init__(self, sonifier, max_norm: float) -> None:
        self.sonifier = sonifier
        self.max_norm = max_norm

    def log(self, record: TrainingStep) -> None:
        if record.grad_norms:
            total = math.sqrt(sum(v * v for v in record.grad_norms.values()))
            clipped = total >= self.max_norm * (1 - _CLIP_TOL)
            record.metrics["grad_clipped"] = float(clipped)
            if record.clipped is None:   # DeepSpeed clips inside its step: no clipping call seen
                record.clipped = clipped
        self.sonifier.log(record)


def _guarded(hook):
    """A callback hook that never raises into the Trainer (see the module docstring)."""

    @functools.wraps(hook)
    def run(self, args, state, control, **kwargs):
        if hook.__name__ == "on_train_begin":   # each train() starts afresh
            self._failed = False
        elif hook.__name__ == "on_train_end" and (self._failed or self._watch is None):
            self._remove_zero_hook()            # a failed rank joined the all-reduce until now
            return None
        elif self._failed or self._watch is None:
            return None
        try:
            hook(self, args, state, control, **kwargs)
        except Exception as err:  # noqa: BLE001 - auralize must not end a training run
            self._fail(err)
        return None

    return run


class SonifyCallback(TrainerCallback):
    """Sonify a Hugging Face ``Trainer`` run (a ``transformers.TrainerCallback``).

    Parameters
    ----------
    out_dir : str or Path, optional
        The run folder of the first ``train()`` (see the module docstring);
        default ``args.output_dir/auralize/run-N``.
    mappings : sequence
        What is heard (names, config dicts or mapping objects; see
        :mod:`auralize.sonify.mappings`); default :data:`DEFAULT_MAPPINGS`.  Add
        ``"speech"`` to hear evaluations spoken.
    grads, weights : bool
        Collect per-layer gradient norms / weight statistics each optimizer step.
    weights_every : int or "auto"
        Weight statistics every n-th step (see :func:`auralize.torch.watch`).
    **sonifier_kwargs
        ``live``, ``clock``, ``step_s``, ``web``... for the :class:`~auralize.Sonifier`.

    Attributes
    ----------
    result : RunResult or None
        The last ``train()``'s run folder files, after it ended (process zero).
    run_dirs : list of Path
        The run folders written, one per ``train()``.

    Raises
    ------
    AuralizeError
        An unknown mapping or Sonifier argument (one line, before training).
    """

    def __init__(self, out_dir: str | Path | None = None, *, mappings=DEFAULT_MAPPINGS,
                 grads: bool = True, weights: bool = True, weights_every: int | str = "auto",
                 groups=None, **sonifier_kwargs) -> None:
        self.groups = groups   # gradient voices (auralize.layer_groups.group_layers)
        # config dicts: each train() gets fresh mapping objects (they hold per-run state)
        self.mappings = [make_mapping(m).config() for m in mappings]
        if "out_dir" in sonifier_kwargs:
            raise AuralizeError("give the folder once, as SonifyCallback(out_dir=...)")
        names = [n for n in inspect.signature(Sonifier).parameters if n not in ("out_dir", "mappings")]
        unknown = sorted(set(sonifier_kwargs) - set(names))
        if unknown:
            raise AuralizeError(f"SonifyCallback got an unknown argument {unknown[0]!r}; "
                                f"the Sonifier takes: {', '.join(names)}")
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.grads = grads
        self.weights = weights
        self.weights_every = weights_every
        self.sonifier_kwargs = sonifier_kwargs
        self.result = None
        self.run_dirs: list[Path] = []
        self._watch: Watch | None = None
        self._failed = False
        self._zero_hook: ZeroStepHook | None = None   # DeepSpeed: the ZeRO optimizer's step
        self._reset_step()

    @property
    def sonifier(self):
        """The session of the ``train()`` in progress (None outside it and off process zero)."""
        return self._watch.sonifier if self._watch is not None else None

    def _run_dir(self, args) -> Path:
        if self.out_dir is not None:
            n = len(self.run_dirs)
            return self.out_dir if n == 0 else self.out_dir.with_name(f"{self.out_dir.name}-{n + 1}")
        root = Path(args.output_dir or "trainer_output") / "auralize"
        n = 1
        while (root / f"run-{n}").exists():
            n += 1
        return root / f"run-{n}"

    def _reset_step(self) -> None:
        self._step_open = False          # this optimizer step's gradients were taken
        self._loss = None                # what on_log said for the open step
        self._metrics: dict[str, float] = {}
        self._epoch_ending = False       # on_epoch_end came; its evaluation may follow

    # -- the Trainer's events ---------------------------------------------------------------
    @_guarded
    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self._watch is not None:   # the previous train() raised: finish its run folder
            watch, self._watch = self._watch, None
            watch.close()
        self._remove_zero_hook()
        self.result = None
        self._reset_step()
        zero = zero_view(model, optimizer)   # DeepSpeed ZeRO: the engine's step hook
        rank_zero = bool(state.is_world_process_zero)
        grads, weights = self.grads, self.weights
        unread = None if zero is not None else unread_stack(args, model)
        if unread and (grads or weights):
            if rank_zero:
                warnings.warn(f"auralize: under {unread} the Trainer's gradients cannot be read "
                              f"as the optimizer applies them: gradient norms and weight "
                              f"statistics are left out (loss, learning rate and evaluations "
                              f"are heard)", stacklevel=2)
            grads = weights = False
        if not rank_zero:
            if zero is not None and (grads or weights):   # every rank joins the all-reduce
                self._watch, self._zero_hook = join_all_reduce(self, zero, grads, weights)
            return
        out_dir = self._run_dir(args)
        self.run_dirs.append(out_dir)
        try:
            sonifier = Sonifier(out_dir, mappings=self.mappings, **self.sonifier_kwargs)
            try:
                watch = Watch(zero or model, None, sonifier, grads=grads, weights=weights,
                              weights_every=self.weights_every, groups=self.groups,
                              rank_zero=True, close_sonifier=True)
            except BaseException:
                sonifier.close()
                raise
        except Exception:
            if zero is not None and (grads or weights):
                # no sound on this rank, but the others wait for its share of the
                # all-reduce at every step: it keeps joining (ZeroStepHook)
                _, self._zero_hook = join_all_reduce(self, zero, grads, weights)
            raise
        max_norm = float(args.max_grad_norm or 0.0)
        if zero is not None:   # DeepSpeed clips inside its step, as its config says
            max_norm = float(getattr(zero.optimizer, "clip_grad", 0.0) or 0.0)
        if max_norm > 0 and grads:
            watch.buffer.sonifier = _MarkClipped(sonifier, max_norm)
        # a resumed run goes on counting where its checkpoint left off
        watch.buffer.step = int(state.global_step)
        watch.buffer.epoch = int(state.epoch or 0)
        self._watch = watch
        if zero is not None and (grads or weights):
            self._zero_hook = ZeroStepHook(self, zero, watch.telemetry)

    @_guarded
    def on_epoch_begin(self, args, state, control, **kwargs):
        self._emit()

    @_guarded
    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        if self._zero_hook is not None:   # DeepSpeed: its step ran inside backward (ZeroStepHook)
            return
        self._open_step(optimizer)

    def _open_step(self, optimizer) -> None:
        """Send the previous step's record; read this step's gradients (and weights)."""
        self._emit()
        groups = getattr(optimizer, "param_groups", None) or [{}]
        self._watch.take_gradients(_LearningRate(groups[0].get("lr")))
        self._step_open = True

    @_guarded
    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        if getattr(optimizer, "step_was_skipped", False):  # Accelerate: the GradScaler skipped it
            self._metrics["optimizer_step_skipped"] = 1.0

    @_guarded
    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self._loss = _number(logs["loss"])
        self._add_metrics(logs)

    @_guarded
    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self._add_metrics(metrics or {})

    @_guarded
    def on_epoch_end(self, args, state, control, **kwargs):
        # the epoch's evaluation comes after this event: its record waits for it
        self._epoch_ending = True

    @_guarded
    def on_train_end(self, args, state, control, **kwargs):
        self._remove_zero_hook()
        self._emit()
        watch, self._watch = self._watch, None
        self.result = watch.close()

    def _remove_zero_hook(self) -> None:
        hook, self._zero_hook = self._zero_hook, None
        if hook is not None:
            hook.remove()

    # -- records ----------------------------------------------------------------------------
    def _add_metrics(self, values: dict) -> None:
        for key, value in values.items():
            number = _number(value)
            if key not in _NOT_METRICS and number is not None:
                self._metrics[key] = number

    def _emit(self) -> None:
        """Send the open optimizer step's record: its gradients and what was logged for it."""
        if self._step_open:
            self._watch.log_loss(self._loss, **self._metrics)
            self._step_open = False
            self._loss, self._metrics = None, {}
        if self._epoch_ending:
            self._watch.end_epoch()
            self._epoch_ending = False

    def _fail(self, err: Exception) -> None:
        self._failed = True
        warnings.warn(f"auralize: the sound of this training run stopped ({type(err).__name__}: "
                      f"{err}); training goes on", stacklevel=3)
        watch, self._watch = self._watch, None
        if watch is not None:
            try:
                self.result = watch.close()
            except Exception:  # noqa: BLE001 - already failing: the first error is the news
                pass


def _number(value) -> float | None:
    """A finite or non-finite float from a logged value; None for text and the like."""
    if isinstance(value, str):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
