"""Training's progress messages to its caller (the CLI prints them; training never prints).

Each message is a :class:`TrainEvent`: its ``kind`` and the values of that kind. It reads like
the mapping it replaces, so ``event["event"]`` is the kind and ``event["epoch"]`` a value.

=============== ===================================================================
kind            values
=============== ===================================================================
``loading``     ``done``, ``total``: cases loaded so far
``start``       ``run_dir``, ``config``, the device and the options picked, with why
``step``        ``epoch``, ``step``, ``steps``, ``loss`` after each batch
``epoch``       the ``metrics.csv`` row, ``epochs``, ``best`` (improved), ...
``end``         ``stopped`` (why), ``epoch``, ``reason``, ...
``postprocess`` ``postprocessing`` chosen on validation, ``report``
``fold``        ``fold``, ``k``, ``status`` (``start``, ``resume``, ``done``): cross-validation
``crossval``    the cross-validation summary
=============== ===================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventCallback", "TrainEvent", "ignore"]


@dataclass(frozen=True, eq=False)
class TrainEvent(Mapping[str, Any]):
    """One progress message: ``kind`` (see the module table) and its ``fields``."""

    kind: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.kind if key == "event" else self.fields[key]

    def __iter__(self) -> Iterator[str]:
        yield "event"
        yield from self.fields

    def __len__(self) -> int:
        return 1 + len(self.fields)


EventCallback = Callable[[TrainEvent], None]
"""What ``train(on_event=...)`` and ``train_folds(on_event=...)`` call with each event."""


def ignore(event: TrainEvent) -> None:
    """The default callback: drop the event."""
