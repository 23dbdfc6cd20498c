"""Progress counted in environment frames: a bar in a terminal, timed lines in a log."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from typing_extensions import override

from rl_lightning.errors import ConfigError

#: (metric, label, format) shown after the bar when present.
_SHOWN = (
    ("time/fps", "fps", "{:.0f}"),
    ("train/episode_return", "return", "{:.1f}"),
    ("eval/return_mean", "eval", "{:.1f}"),
)
#: (metric, label) shown in the log lines when present.
_LINE_SHOWN = (("train/episode_return", "return"), ("eval/return_mean", "eval"))
#: The bar is redrawn at most once per this many seconds (and at the end).
BAR_INTERVAL_S = 0.25


class FrameProgressBar(TQDMProgressBar):
    """Frames collected out of ``data.total_frames``, with frames/s, the latest training
    episode return and the latest evaluation return.

    In a terminal (or a notebook) it is a bar, redrawn at most 4 times a second. When standard
    output is not a terminal (a cluster job, ``nohup``, CI, ``| tee log``) it writes one line every
    ``every_s`` seconds instead, plus one at the start and one at the end, e.g.
    ``[train] frames 20,480/100,000 (20%) | 4,010 frames/s | return 187.3 | eval 500.0 | 0:05 elapsed, 0:20 left``.
    A resumed run counts the frames of the whole run (e.g. 60,000/100,000).

    Args:
        refresh_rate: ``0`` hides all progress (bar and lines); any other value shows it.
        every_s: seconds between two progress lines when the output is not a terminal.
        style: ``auto`` (a bar in a terminal, lines otherwise), ``bar`` or ``lines``.
    """

    def __init__(self, refresh_rate: int = 1, every_s: float = 30.0,
                 style: Literal["auto", "bar", "lines"] = "auto") -> None:
        if not every_s > 0:
            raise ConfigError(f"progress_bar.every_s must be > 0 seconds, got {every_s}.")
        if style not in ("auto", "bar", "lines"):
            raise ConfigError(f"progress_bar.style must be auto, bar or lines, got {style!r}.")
        super().__init__(refresh_rate=refresh_rate)
        self.every_s = float(every_s)
        self.style = style
        #: the clock of the bar throttle and of the lines (seconds; replaceable in tests)
        self.clock: Callable[[], float] = time.monotonic
        self._last_draw = -float("inf")
        self._start: tuple[float, int, int | None] | None = None  # (clock, frames, total frames) at the start

    @property
    def lines(self) -> bool:
        """Whether progress is written as lines (``style``; ``auto``: stdout is neither a terminal
        nor a Jupyter notebook's output, which redraws a bar in place too)."""
        if self.style != "auto":
            return self.style == "lines"
        if type(sys.stdout).__module__.startswith("ipykernel"):
            return False
        isatty = getattr(sys.stdout, "isatty", None)
        try:
            return not (callable(isatty) and isatty())
        except ValueError:  # a closed stream
            return True

    @property
    @override
    def is_disabled(self) -> bool:
        """No tqdm bar (training, validation, test) when hidden or writing lines."""
        return not self.is_enabled or self.lines

    # --- training ------------------------------------------------------------------------
    @override
    def init_train_tqdm(self) -> Tqdm:
        """The training bar, in frames out of ``data.total_frames``; a resumed run's bar starts at
        its frames (its rate and time left count the new frames only)."""
        frames = self._start[1] if self._start else 0
        return Tqdm(desc="Training", position=2 * self.process_position, disable=self.is_disabled, leave=True,
                    dynamic_ncols=True, file=sys.stdout, smoothing=0, bar_format=self.BAR_FORMAT, unit="frames",
                    total=self._start[2] if self._start else None, initial=frames)

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        frames = int(getattr(pl_module, "frames", 0))
        self._start = (self.clock(), frames, _total(trainer))
        self._last_draw = -float("inf")
        super().on_train_start(trainer, pl_module)
        if self._writes_lines():
            self._line(trainer, frames, "resuming" if frames else "starting")

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        """Nothing: the bar counts the frames of the whole run, not batches of an epoch."""

    @override
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not getattr(pl_module, "at_boundary", True) or not self.is_enabled:
            return
        frames, now = int(pl_module.frames), self.clock()
        if self._writes_lines():
            total = _total(trainer)
            if now - self._last_draw >= self.every_s and (total is None or frames < total):  # the end has its line
                self._line(trainer, frames)
            return
        bar = self.train_progress_bar
        if bar is None or bar.disable:
            return
        bar.n = frames
        bar.total = max(bar.total or 0, bar.n)
        if now - self._last_draw < BAR_INTERVAL_S and bar.n < bar.total:
            return
        self._last_draw = now
        metrics = trainer.callback_metrics
        bar.set_postfix(
            {label: fmt.format(float(metrics[key])) for key, label, fmt in _SHOWN if key in metrics}, refresh=False
        )
        bar.refresh()

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        bar = self.train_progress_bar
        if not bar.disable:
            metrics = trainer.callback_metrics
            bar.set_postfix(
                {label: fmt.format(float(metrics[key])) for key, label, fmt in _SHOWN if key in metrics}, refresh=False
            )
        bar.close()

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        super().on_train_end(trainer, pl_module)
        self._last_line(trainer, pl_module)

    @override
    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        """A run stopped by Ctrl-C/SIGTERM (or an error) still ends its log with a line."""
        self._last_line(trainer, pl_module)

    def _last_line(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self._writes_lines() and self._start is not None:
            frames, total = int(getattr(pl_module, "frames", 0)), _total(trainer)
            self._line(trainer, frames, end="done" if total is None or frames >= total else "stopped")
        self._start = None  # one last line per run

    # --- lines ---------------------------------------------------------------------------
    def _writes_lines(self) -> bool:
        return self.is_enabled and self.lines

    def _line(self, trainer: L.Trainer, frames: int, state: str | None = None, end: str | None = None) -> None:
        """Print one progress line (``state`` instead of rates at the start)."""
        now = self.clock()
        self._last_draw = now
        total = _total(trainer)
        parts = [f"[train] frames {frames:,}" + (f"/{total:,} ({100 * frames / max(total, 1):.0f}%)" if total else "")]
        if state is not None:
            parts.append(state)
        else:
            started, frames0, _ = self._start or (now, frames, total)
            elapsed = now - started
            rate = (frames - frames0) / elapsed if elapsed > 0 else 0.0
            parts.append(f"{rate:,.0f} frames/s")
            metrics = trainer.callback_metrics
            parts += [f"{label} {float(metrics[key]):.1f}" for key, label in _LINE_SHOWN if key in metrics]
            if end is not None:
                parts.append(f"{_duration(elapsed)} elapsed, {end}")
            else:
                left = _duration((total - frames) / rate) if total and rate > 0 else "?"
                parts.append(f"{_duration(elapsed)} elapsed, {left} left")
        print(" | ".join(parts), flush=True)


def _total(trainer: L.Trainer) -> int | None:
    total = getattr(trainer.datamodule, "total_frames", None)
    return int(total) if isinstance(total, (int, float)) else None


def _duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    minutes, secs = divmod(round(max(seconds, 0.0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
