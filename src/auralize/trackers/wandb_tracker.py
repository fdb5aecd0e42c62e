"""The session's sound in the active Weights & Biases run (online or offline alike).

Each epoch end logs ``auralize/recording`` (``wandb.Audio`` of that epoch) and
``auralize/spectrogram`` (``wandb.Image``); close logs the whole recording and
its spectrogram under the same keys (so the run's summary holds the whole) and
saves ``sonifier.json`` with the run's files.  W&B's own process uploads them
(offline runs keep them for ``wandb sync``).
"""

from __future__ import annotations

from auralize.trackers.uploader import Tracker

AUDIO_KEY = "auralize/recording"
IMAGE_KEY = "auralize/spectrogram"


class WandbTracker(Tracker):
    """Logs to one ``wandb`` run object (its ``log`` is safe from another thread)."""

    label = "Weights & Biases"

    def __init__(self, run) -> None:
        self.run = run
        super().__init__()
        self.stats.extra["run_id"] = run.id

    @classmethod
    def if_active(cls) -> WandbTracker | None:
        """A tracker for ``wandb.run`` (None when no run is active)."""
        import wandb

        return None if wandb.run is None else cls(wandb.run)

    def send(self, kind, epoch, wav, png, config, samples, sample_rate) -> None:
        import wandb

        caption = f"epoch {epoch}" if kind == "epoch" else "whole run"
        self.run.log({AUDIO_KEY: wandb.Audio(samples, sample_rate=sample_rate, caption=caption),
                      IMAGE_KEY: wandb.Image(str(png), caption=caption)})
        if config is not None:  # into the run's own folder: W&B links files, ours are temporary
            import shutil
            from pathlib import Path

            kept = Path(self.run.dir) / "auralize" / "sonifier.json"
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(config, kept)
            self.run.save(str(kept), base_path=self.run.dir, policy="now")
