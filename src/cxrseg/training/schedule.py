"""How long a run trains and how its learning rate ends: schedules, the stop rule, the budget.

The default recipe trains until the model stops improving, not for a fixed count of epochs:

- :class:`LRSchedule` (``schedule: plateau``, the default) warms up, holds the peak learning
  rate, and only decays it (a cosine to ``min_lr_ratio``) once :class:`StopRule` says the run is
  ending: a warmup-stable-decay schedule, which matches a cosine of the same length without
  knowing that length in advance. ``cosine`` and ``poly`` decay from the warm-up to the last
  epoch the run can afford (``epochs``, or fewer under a time budget); ``constant`` never decays.
- :class:`StopRule` watches the validation Dice smoothed by a running median of 5 epochs (a
  single lucky or unlucky epoch neither resets nor triggers it, and a flat curve reads flat
  within 3 epochs, where a moving average would keep creeping up). When the smoothed curve has not
  improved by ``min_delta`` for ``patience`` epochs, a ``plateau`` run cools down for a fifth of
  the epochs trained so far and stops (``converged``); the other schedules stop at once
  (``early_stopping``). The cool-down also starts by itself when the run would otherwise reach
  ``epochs`` or its time budget before finishing one.
- Under a time budget the rule measures each epoch's wall time and fits the last epoch to what
  is left, keeping back time for the final post-processing choice.

Every decision is explained in a sentence that ``train.log`` records.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from cxrseg.training.duration import format_seconds

__all__ = [
    "COOLDOWN_FRACTION",
    "EarlyStopping",
    "LRSchedule",
    "StopRule",
    "build_scheduler",
    "lr_factor",
]

#: Length of the learning-rate cool-down as a fraction of the epochs trained before it.
COOLDOWN_FRACTION = 0.2
#: Epochs whose median is the smoothed validation Dice (one outlier epoch cannot move it).
WINDOW = 5
#: Epochs whose mean wall time predicts the next one.
_TIMED_EPOCHS = 3


def lr_factor(
    step: int,
    total_steps: int,
    warmup_steps: int,
    schedule: str,
    min_ratio: float,
    decay_start: int | None = None,
) -> float:
    """Learning-rate multiplier at optimisation step ``step`` (0-based).

    Linear warm-up from ``1 / (warmup_steps + 1)`` to 1 over ``warmup_steps`` steps, then
    ``"cosine"`` decay, ``"poly"`` decay (power 0.9) or ``"constant"``, ending at ``min_ratio``
    after ``total_steps``. ``"plateau"`` holds 1 until ``decay_start`` (``None``: not yet) and
    then decays as a cosine to ``min_ratio`` at ``total_steps``.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    start = warmup_steps
    if schedule == "plateau":
        if decay_start is None or step < decay_start:
            return 1.0
        start = decay_start
    elif schedule not in ("cosine", "poly"):
        raise ValueError(f"schedule {schedule!r} is not plateau, cosine, poly or constant.")
    t = min(1.0, (step - start) / max(1, total_steps - start))
    shape = (1.0 - t) ** 0.9 if schedule == "poly" else 0.5 * (1.0 + math.cos(math.pi * t))
    return min_ratio + (1.0 - min_ratio) * shape


@dataclass
class LRSchedule:
    """The per-step factor of :func:`lr_factor` as a callable object.

    ``torch.optim.lr_scheduler.LambdaLR`` saves a callable object's attributes with its state,
    so the decay start and the fitted length travel with ``--resume``.
    """

    schedule: str
    total_steps: int
    warmup_steps: int
    min_ratio: float
    decay_start: int | None = None

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.total_steps, self.warmup_steps, self.schedule,
                         self.min_ratio, self.decay_start)  # fmt: skip

    def follow(self, rule: StopRule, steps_per_epoch: int) -> None:
        """Take the decay start and end the stop rule decided, in steps."""
        self.total_steps = max(1, rule.schedule_end * steps_per_epoch)
        if rule.cooldown_from is not None:
            self.decay_start = rule.cooldown_from * steps_per_epoch


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: Any, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule spanning ``config.epochs`` epochs until a :class:`StopRule` refits it."""
    total = config.epochs * steps_per_epoch
    warmup = max(0, min(total - 1, round(config.warmup_epochs * steps_per_epoch)))
    factor = LRSchedule(config.schedule, total, warmup, config.min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class EarlyStopping:
    """The best raw validation score, for the ``best/`` checkpoint; stops after ``patience``.

    Attributes:
        patience: Epochs to wait; 0 never stops.
        min_delta: Smallest increase of the watched score that counts.
        best: Best score so far (``-inf`` before the first epoch).
        best_epoch: Epoch of ``best`` (0 before the first epoch).
        bad_epochs: Epochs since ``best``.
    """

    patience: int
    min_delta: float = 0.0
    best: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, score: float, epoch: int) -> bool:
        """Record an epoch's score; return whether it is the new best."""
        if score > self.best + self.min_delta or (self.best_epoch == 0 and math.isfinite(score)):
            self.best, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        """Whether patience has run out."""
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state for the resume file."""
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])


@dataclass
class StopRule:
    """Decides after every epoch whether the run goes on, cools down, or stops, and why.

    Attributes:
        max_epochs: The most epochs the run may train.
        patience: Epochs without an improvement of the smoothed Dice that end the run; 0 never.
        min_delta: Smallest rise of the smoothed Dice that counts as an improvement.
        anneal: Cool the learning rate down before stopping (the ``plateau`` schedule).
        budget_s: Wall-clock seconds for the whole run, or ``None``.
        recent: The latest validation Dice values (up to ``WINDOW``).
        smoothed: Their median.
        best_smoothed: Its best value so far.
        stale: Epochs since ``best_smoothed``.
        cooldown_from: Epoch after which the cool-down began (``None``: not begun).
        schedule_end: Last epoch of the learning-rate schedule as now planned.
        stopped: Why the run ends (``completed``, ``converged``, ``early_stopping``,
            ``time_budget``), set once it does.
        reason: The sentence for ``train.log``.
        epoch_seconds: Wall time of the latest epochs.
        done: Whether the run has ended.
    """

    max_epochs: int
    patience: int
    min_delta: float = 1e-4
    anneal: bool = True
    budget_s: float | None = None
    recent: list[float] = field(default_factory=list)
    smoothed: float | None = None
    best_smoothed: float = -math.inf
    stale: int = 0
    cooldown_from: int | None = None
    schedule_end: int = 0
    stopped: str = ""
    reason: str = ""
    epoch_seconds: list[float] = field(default_factory=list)
    done: bool = False

    def __post_init__(self) -> None:
        self.schedule_end = self.schedule_end or self.max_epochs

    def update(self, epoch: int, score: float, epoch_s: float, elapsed_s: float,
               reserve_s: float = 0.0) -> bool:  # fmt: skip
        """Record epoch ``epoch``; return whether the run stops after it.

        Args:
            epoch: The epoch just finished (1-based).
            score: Its mean validation Dice.
            epoch_s: Its wall time (training, validation, checkpoints).
            elapsed_s: Wall time of the whole run so far, setup included.
            reserve_s: Time to keep back for what follows the last epoch.
        """
        self._smooth(score)
        self.epoch_seconds = [*self.epoch_seconds, float(epoch_s)][-_TIMED_EPOCHS:]
        self.done = self._decide(epoch, elapsed_s, reserve_s)
        return self.done

    def _decide(self, epoch: int, elapsed_s: float, reserve_s: float) -> bool:
        last, limit = self._last_affordable(epoch, elapsed_s, reserve_s)
        if self.cooldown_from is not None:
            if last < self.schedule_end:  # the epochs grew slower: the budget ends it sooner
                self.schedule_end, self.stopped = last, "time_budget"
                self.reason = (
                    self.reason.split("; cut")[0] + f"; cut at epoch {last} by the "
                    f"time budget of {format_seconds(self.budget_s or 0)}"
                )
            return epoch >= self.schedule_end
        if epoch >= last:
            return self._stop(limit, self._limit_reason(limit, epoch, elapsed_s))
        plateau = self.patience > 0 and self.stale >= self.patience
        if plateau and not self.anneal:
            return self._stop("early_stopping", f"early stopping after epoch {epoch}: "
                              + self._plateau_reason())  # fmt: skip
        if not self.anneal:
            self.schedule_end = last
        elif plateau:
            end = min(last, epoch + max(1, math.ceil(COOLDOWN_FRACTION * epoch)))
            self._begin_cooldown(epoch, end, "converged", "converged: " + self._plateau_reason())
        elif last - epoch <= max(1, math.ceil(COOLDOWN_FRACTION * last)):
            self._begin_cooldown(epoch, last, limit, self._limit_reason(limit, last, elapsed_s))
        return False

    def _begin_cooldown(self, epoch: int, end: int, stopped: str, why: str) -> None:
        self.cooldown_from, self.schedule_end = epoch, end
        self.stopped = stopped
        self.reason = f"{why}; the learning rate was annealed over epochs {epoch + 1}-" + str(
            self.schedule_end
        )

    def _plateau_reason(self) -> str:
        return (
            f"the smoothed validation Dice has not improved by {self.min_delta:g} for "
            f"{self.stale} epochs (best {self.best_smoothed:.4f}, patience {self.patience})"
        )

    def _smooth(self, score: float) -> None:
        self.recent = [*self.recent, score if math.isfinite(score) else 0.0][-WINDOW:]
        self.smoothed = statistics.median(self.recent)
        if self.smoothed > self.best_smoothed + self.min_delta:
            self.best_smoothed, self.stale = self.smoothed, 0
        else:
            self.stale += 1

    def epoch_estimate(self) -> float:
        """Predicted wall time of the next epoch (mean of the latest ones)."""
        return sum(self.epoch_seconds) / len(self.epoch_seconds) if self.epoch_seconds else 0.0

    def _last_affordable(self, epoch: int, elapsed_s: float, reserve_s: float) -> tuple[int, str]:
        """The last epoch the run can reach, and which limit sets it."""
        if self.budget_s is None or not self.epoch_seconds:
            return self.max_epochs, "completed"
        left = self.budget_s - elapsed_s - reserve_s
        fits = epoch + max(0, math.floor(left / max(self.epoch_estimate(), 1e-9)))
        if fits < self.max_epochs:
            return fits, "time_budget"
        return self.max_epochs, "completed"

    def _limit_reason(self, limit: str, last: int, elapsed_s: float) -> str:
        if limit == "completed":
            return f"reached the maximum of {self.max_epochs} epochs"
        assert self.budget_s is not None
        return (f"time budget of {format_seconds(self.budget_s)}: epochs take about "
                f"{self.epoch_estimate():.0f} s, so epoch {last} is the last that fits "
                f"({format_seconds(elapsed_s)} used after the latest epoch)")  # fmt: skip

    def _stop(self, stopped: str, reason: str) -> bool:
        self.stopped, self.reason = stopped, reason
        return True

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state for the resume file."""
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the limits stay those of this run's config)."""
        for name in ("recent", "smoothed", "best_smoothed", "stale", "cooldown_from",
                     "schedule_end", "stopped", "reason", "epoch_seconds", "done"):  # fmt: skip
            setattr(self, name, state[name])
