"""The default recipe's end: plateau schedule, stop rule, fitted patience, time budget."""

from __future__ import annotations

import math

import pytest

from cxrseg.errors import InputError
from cxrseg.training.config import TrainConfig
from cxrseg.training.defaults import pick_patience
from cxrseg.training.duration import format_seconds, parse_duration
from cxrseg.training.schedule import COOLDOWN_FRACTION, LRSchedule, StopRule, lr_factor


def _feed(rule: StopRule, scores: list[float], epoch_s: float = 10.0, setup_s: float = 0.0) -> int:
    """Give the rule one score per epoch (each taking ``epoch_s``); return the last epoch run."""
    for epoch, score in enumerate(scores, start=1):
        if rule.update(epoch, score, epoch_s, setup_s + epoch * epoch_s):
            return epoch
    return len(scores)


def test_plateau_schedule_holds_the_peak_until_the_decay_starts() -> None:
    held = [lr_factor(s, 100, 5, "plateau", 0.01) for s in range(5, 100)]
    assert held == [1.0] * len(held)
    schedule = LRSchedule("plateau", total_steps=100, warmup_steps=5, min_ratio=0.01)
    schedule.decay_start = 60
    assert schedule(59) == 1.0
    assert schedule(80) == pytest.approx(0.01 + 0.99 * 0.5)  # half-way down the cosine
    assert schedule(100) == pytest.approx(0.01)


def test_rising_dice_never_stops_before_the_cooldown_of_the_last_epochs() -> None:
    rule = StopRule(max_epochs=20, patience=3)
    last = _feed(rule, [0.5 + 0.02 * e for e in range(30)])
    cooldown = math.ceil(COOLDOWN_FRACTION * 20)
    assert (last, rule.cooldown_from, rule.stopped) == (20, 20 - cooldown, "completed")
    assert "maximum of 20 epochs" in rule.reason and "annealed over epochs 17-20" in rule.reason


def test_a_flat_smoothed_curve_starts_a_cooldown_of_a_fifth_of_the_epochs_then_stops() -> None:
    rule = StopRule(max_epochs=300, patience=5, min_delta=1e-3)
    scores = [0.5 + 0.04 * e for e in range(10)] + [0.86] * 100
    last = _feed(rule, scores)
    plateau = rule.cooldown_from
    assert plateau is not None and 10 < plateau <= 20
    assert last == plateau + math.ceil(COOLDOWN_FRACTION * plateau)
    assert rule.stopped == "converged"
    assert "has not improved by 0.001 for 5 epochs" in rule.reason


def test_one_bad_epoch_does_not_end_a_rising_run() -> None:
    scores = [0.5 + 0.02 * e for e in range(12)]
    scores[6] = 0.1  # a single unlucky validation
    rule = StopRule(max_epochs=100, patience=2, anneal=False)
    assert _feed(rule, scores) == 12 and not rule.done


def test_without_annealing_a_plateau_stops_at_once() -> None:
    rule = StopRule(max_epochs=300, patience=4, anneal=False)
    last = _feed(rule, [0.6, 0.7, 0.8] + [0.8] * 50)
    assert rule.stopped == "early_stopping" and rule.cooldown_from is None
    assert last < 12 and "early stopping after epoch" in rule.reason


def test_time_budget_fits_the_last_epoch_to_the_measured_epoch_time() -> None:
    # 100 s budget, 5 s of setup, 10 s epochs: the 9th epoch ends at 95 s and is the last.
    rule = StopRule(max_epochs=300, patience=0, budget_s=100)
    last = _feed(rule, [0.5 + 0.01 * e for e in range(50)], epoch_s=10.0, setup_s=5.0)
    assert last == 9 and rule.stopped == "time_budget"
    assert rule.cooldown_from == 9 - math.ceil(COOLDOWN_FRACTION * 9)
    assert "time budget of 1m40s" in rule.reason and "about 10 s" in rule.reason


def test_the_budget_keeps_back_the_reserve_for_the_end_of_the_run() -> None:
    rule = StopRule(max_epochs=300, patience=0, budget_s=100)
    for epoch in range(1, 50):
        if rule.update(epoch, 0.5 + 0.01 * epoch, 10.0, 10.0 * epoch, reserve_s=25.0):
            break
    assert epoch == 7  # 7 epochs + 25 s of reserve fit in 100 s, 8 would not


def test_slower_epochs_cut_a_cooldown_short() -> None:
    rule = StopRule(max_epochs=300, patience=0, budget_s=200)
    elapsed = 0.0
    for epoch in range(1, 50):
        seconds = 10.0 if epoch <= 16 else 40.0  # the machine gets busy mid-cooldown
        elapsed += seconds
        if rule.update(epoch, 0.9, seconds, elapsed):
            break
    assert rule.stopped == "time_budget" and elapsed <= 200
    assert "cut at epoch" in rule.reason


def test_a_run_cut_short_and_restored_decides_like_an_uninterrupted_one() -> None:
    scores = [0.5 + 0.04 * e for e in range(10)] + [0.86] * 40
    whole = StopRule(max_epochs=300, patience=5)
    end = _feed(whole, scores)
    first = StopRule(max_epochs=300, patience=5)
    _feed(first, scores[:12])
    second = StopRule(max_epochs=300, patience=5)
    second.load_state_dict(first.state_dict())
    for epoch in range(13, 60):
        if second.update(epoch, scores[epoch - 1], 10.0, 10.0 * epoch):
            break
    assert (epoch, second.stopped, second.reason) == (end, whole.stopped, whole.reason)


def test_lr_schedule_follows_the_cooldown_the_rule_decided() -> None:
    rule = StopRule(max_epochs=300, patience=2)
    _feed(rule, [0.5, 0.6, 0.6, 0.6, 0.6])
    schedule = LRSchedule("plateau", total_steps=300 * 4, warmup_steps=4, min_ratio=0.0)
    schedule.follow(rule, steps_per_epoch=4)
    assert rule.cooldown_from is not None
    assert schedule.decay_start == rule.cooldown_from * 4
    assert schedule(rule.schedule_end * 4) == pytest.approx(0.0)


@pytest.mark.parametrize(("steps", "expected"), [(1, 30), (18, 30), (44, 23), (94, 11), (500, 8)])
def test_patience_is_about_a_thousand_steps_within_8_to_30_epochs(
    steps: int, expected: int
) -> None:
    patience, why = pick_patience(steps)
    assert patience == expected and f"{steps} steps per epoch" in why


@pytest.mark.parametrize(
    ("text", "seconds"), [("20m", 1200), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), (45, 45)]
)
def test_durations_are_read_as_people_write_them(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_seconds(seconds)) == seconds


@pytest.mark.parametrize("bad", ["soon", "20x", "0", "-5m", "m"])
def test_a_bad_time_budget_is_refused_with_the_accepted_forms(bad: str) -> None:
    with pytest.raises(InputError, match="20m, 1h30m or 90s"):
        TrainConfig(time_budget=bad)  # type: ignore[arg-type]


def test_the_default_recipe_trains_until_it_converges() -> None:
    config = TrainConfig()
    assert (config.schedule, config.patience, config.time_budget) == ("plateau", None, None)
    assert config.epochs >= 200
    assert TrainConfig(time_budget="20m").time_budget == 1200  # type: ignore[arg-type]
