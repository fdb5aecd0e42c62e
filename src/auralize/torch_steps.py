"""One optimizer step's reads, and the step records made of them, for :class:`auralize.torch.Watch`.

A step's device reads (:class:`_StepRead`: gradient and weight norms, loss-scale
scalars, clipping totals) wait until the losses logged for that step are known;
then :class:`StepRecords` stacks them with the losses into one vector, brings it
to the host in one transfer (:class:`_Transfer`: non-blocking on CUDA) and makes
the step's one :class:`~auralize.sonify.TrainingStep`.
"""

from __future__ import annotations

import math
import time

import torch

from auralize.amp_steps import MAX_MICRO_BATCHES, decode_extras, mean_by_key, snapshot

__all__ = ["StepRecords"]


class _Transfer:
    """One step's vector on its way to the host."""

    __slots__ = ("event", "finish", "host")

    def __init__(self, vec: torch.Tensor | None, finish):
        self.finish = finish
        if vec is None:
            self.host = None
            self.event = None
        elif vec.is_cuda:
            self.host = torch.empty(vec.shape, dtype=vec.dtype, pin_memory=True)
            self.host.copy_(vec, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.host = vec.detach().cpu()
            self.event = None

    def ready(self) -> bool:
        return self.event is None or self.event.query()

    def complete(self):
        if self.event is not None:
            self.event.synchronize()
        self.finish(self.host.tolist() if self.host is not None else [])


class _StepRead:
    """One optimizer step's device reads, held until its record is made.

    ``segments``: ``(parts, layout)`` pairs from :meth:`LayerTelemetry.device_parts`
    (gradients and weights, read at different moments when clipping is seen);
    ``extra_keys``/``extra_vec``: the loss-scale scalars (:mod:`auralize.amp_steps`);
    ``clips``: ``(total_norm tensor, max_norm)`` of each clipping call.
    """

    __slots__ = ("clips", "extra_keys", "extra_vec", "forwards", "group", "optimizer",
                 "scaled_by", "segments", "t_s", "until_clip")

    def __init__(self, optimizer, forwards: int, until_clip: bool = False):
        self.optimizer = optimizer
        self.segments: list = []
        self.extra_keys: list[str] = []
        self.extra_vec = None
        self.clips: list = []
        self.t_s = time.perf_counter()
        self.forwards = forwards
        self.until_clip = until_clip   # read before clipping (Lightning): clipping adds its flag
        self.scaled_by = None          # read before the step: the scale its gradients carried
        self.group = None              # its losses, when taken before the record is made

    def set_extras(self, extras: dict) -> None:
        self.extra_keys, self.extra_vec = snapshot(extras)


class StepRecords:
    """The record-making half of :class:`auralize.torch.Watch` (a mixin: it uses the
    Watch's ``buffer``, ``telemetry``, ``optimizer``, ``_micro``, ``_pending_grads``,
    ``_inflight``, ``_forwards`` and unit-mean requests)."""

    def _step_taken(self, read: _StepRead) -> None:
        pending = self._pending_grads
        if self.loss_after_step is None:
            if pending is None:
                if not self._micro:      # nothing logged before the first step: after it
                    self.loss_after_step = True
                else:                    # its losses; the next step says where the next goes
                    read.group = self._micro.take()
                self._pending_grads = read
                return
            # Second step.  Logging before the step, every step gets all its
            # micro-batches' losses before it; logging after it, the first step lacks
            # one (its last micro-batch's, logged right after it).
            after = len(self._micro) == len(pending.group) + 1
            self.loss_after_step = after
            if after:
                pending.group.append(self._micro.entries.pop(0))
            self._flush(pending, [])
            self._pending_grads = read
            if not after:
                self._flush()
            return
        if pending is not None:   # two optimizer steps without log_loss
            self._flush()
        self._pending_grads = read
        if self.loss_after_step is False:    # the step's losses came before it: complete
            self._flush()
    def log_loss(self, loss, **metrics) -> None:
        """Log this micro-batch's loss (a tensor or number) and other scalars.

        Call once per batch, before or after ``optimizer.step()``.  With gradient
        accumulation, call it every micro-batch: the losses (and metrics) logged
        for one optimizer step are averaged into that step's record.  Tensors are
        not read here: they travel to the host together with the step's gradient
        norms, in one transfer.
        """
        if not self.rank_zero or self.closed:
            return
        if self.optimizer is None and not self.loss_after_step:
            self._micro.add(loss, metrics)     # no optimizer steps to group by
            self._flush()
            return
        if self._pending_grads is not None and self.loss_after_step is not None:
            if self.loss_after_step:
                self._micro.add(loss, metrics)
                self._flush()
                return
            self._flush()
        self._micro.add(loss, metrics)
        if len(self._micro) >= MAX_MICRO_BATCHES:
            self._flush()

    def end_epoch(self, **metrics) -> None:
        """Mark the last logged step as its epoch's end.

        ``metrics`` (e.g. ``val_loss=0.31``) are added to that step's record; the
        per-unit weight means that the Sonifier's mappings asked for (WeightChord)
        are computed now.  The next step starts the next epoch.
        """
        if not self.rank_zero or self.closed:
            return
        self._flush()
        self._drain(block=True)
        # weights_every > 1: the next epoch's first step reads them.  Not read now for
        # this epoch's last record: its step has updated them (a record's weights are
        # those its step started from).
        self._weights_due = True
        units = self.telemetry.unit_means(self._unit_epoch) if self._unit_epoch else None
        self.buffer.end_epoch(metrics, units)

    def _flush(self, read=None, entries=None) -> None:
        """Send the held step and the losses logged for it as one step record."""
        if entries is None:
            read, entries = self._pending_grads, self._micro.take()
            self._pending_grads = None
        if read is not None and read.group is not None:
            entries = read.group + entries
        if read is None and not entries:
            return
        if read is None:
            read = _StepRead(None, self._forwards)
        opt = read.optimizer if read.optimizer is not None else (
            self.optimizer[0] if isinstance(self.optimizer, (list, tuple)) else self.optimizer)
        parts: list[torch.Tensor] = []
        for seg_parts, _ in read.segments:
            parts.extend(seg_parts)
        n_seg = [len(p) for p, _ in read.segments]
        parts.extend(total for total, _ in read.clips)
        pairs: list[tuple[str, object]] = []
        for value, metrics in entries:
            pairs.append(("__loss__", value))
            pairs.extend(metrics.items())
        if opt is not None and getattr(opt, "param_groups", None):
            pairs.append(("__lr__", opt.param_groups[0].get("lr")))   # may be a tensor
        tensor_keys: list[str] = []
        floats: list[tuple[str, float]] = []
        for key, value in pairs:
            if torch.is_tensor(value):
                parts.append(value.detach().reshape(-1)[0].float() if value.numel()
                             else torch.tensor(math.nan))
                tensor_keys.append(key)
            elif value is not None:
                try:
                    floats.append((key, float(value)))
                except (TypeError, ValueError):
                    continue
        # The first step also carries the per-epoch layers' unit means, so the
        # weight chord sounds from the initial weights on (as soNNify's did).
        unit_layers = self._unit_step or ([] if self._units_started else self._unit_epoch)
        self._units_started = True
        units_step = None
        if unit_layers:
            units_step = [self.telemetry.unit_mean_tensor(n) for n in unit_layers]
        rec = self.buffer.new()
        rec.wall_time_s = read.t_s - self.buffer.t0   # when the step was taken
        has_loss = bool(entries)
        n_parts = len(parts)
        extra_keys = read.extra_keys
        clip_max = [m for _, m in read.clips]

        def finish(values, rec=rec, read=read, n_seg=n_seg, tensor_keys=tensor_keys,
                   floats=floats, has_loss=has_loss, unit_layers=unit_layers):
            pos = 0
            for (_, layout), n in zip(read.segments, n_seg):
                g, w = self.telemetry.decode(values[pos:pos + n], layout)
                pos += n
                rec.grad_norms.update(g)
                rec.weight_stats.update(w)
            totals = values[pos:pos + len(clip_max)]
            pos += len(clip_max)
            scalars = floats + list(zip(tensor_keys, values[pos:pos + len(tensor_keys)]))
            pos = n_parts
            extras = dict(zip(extra_keys, values[pos:pos + len(extra_keys)]))
            pos += len(extra_keys)
            if units_step:
                for name, t in zip(unit_layers, units_step):
                    n = t.numel()
                    rec.unit_means[name] = [float(v) for v in values[pos:pos + n]]
                    pos += n
            if totals:   # several clipping calls (parameter groups): clipped if any was
                over = [i for i, (t, m) in enumerate(zip(totals, clip_max)) if m < t + 1e-6]
                i = over[0] if over else 0
                extras["clip_total"], extras["clip_max"] = totals[i], clip_max[i]
            rec.grad_norms, fields = decode_extras(extras, rec.grad_norms)
            for name, value in fields.items():
                setattr(rec, name, value)
            means = mean_by_key(scalars)
            rec.loss = means.pop("__loss__", None) if has_loss else None
            rec.lr = means.pop("__lr__", None)
            rec.metrics = means
            rec.micro_batches = len(entries)
            self.buffer.push(rec)

        vec = None
        pieces = []
        if parts:
            dev = parts[0].device
            pieces.append(torch.stack([p if p.device == dev else p.to(dev) for p in parts]))
        if read.extra_vec is not None:
            dev = pieces[0].device if pieces else read.extra_vec.device
            pieces.append(read.extra_vec.to(dev))
        if units_step:
            dev = pieces[0].device if pieces else units_step[0].device
            pieces.extend(u.to(dev) for u in units_step)
        if pieces:
            vec = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        self._inflight.append(_Transfer(vec, finish))
        self._drain(block=False)

    def _drain(self, block: bool) -> None:
        while self._inflight and (block or self._inflight[0].ready()):
            self._inflight.popleft().complete()

    # -- end ---------------------------------------------------------------------------
