"""training.events.TrainEvent: a small dataclass that still reads like the old event dicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrseg.training import TrainEvent, train
from training_builders import tiny_config


def test_an_event_reads_like_a_mapping_with_its_kind_under_event() -> None:
    event = TrainEvent("loading", {"done": 2, "total": 5})
    assert event["event"] == "loading" and event["done"] == 2
    assert dict(event) == {"event": "loading", "done": 2, "total": 5}
    assert event == {"event": "loading", "done": 2, "total": 5}
    with pytest.raises(KeyError):
        event["epoch"]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_a_run_sends_only_train_events_in_order(phantoms: Path, tmp_path: Path) -> None:
    events: list[TrainEvent] = []
    train(phantoms, tmp_path / "run", tiny_config(epochs=1), on_event=events.append)
    assert all(isinstance(e, TrainEvent) for e in events)
    kinds = [e.kind for e in events if e.kind != "step"]
    assert kinds[0] == "loading" and "start" in kinds
    assert kinds.index("start") < kinds.index("epoch") < kinds.index("end")
