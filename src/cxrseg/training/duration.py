"""Wall-clock durations as people write them: ``20m``, ``1h30m``, ``90s``, ``1.5h``, ``600``."""

from __future__ import annotations

import math
import re

__all__ = ["format_seconds", "parse_duration"]

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([hms])")


def parse_duration(text: str | float) -> float:
    """Seconds of a duration: ``"20m"``, ``"1h30m"``, ``"90s"``, ``"1.5h"``, or a number of seconds.

    Raises:
        ValueError: Not a positive duration; the message shows the accepted forms.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration; write e.g. 20m, 1h30m or 90s.")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        compact = str(text).strip().lower().replace(" ", "")
        try:
            seconds = float(compact)
        except ValueError:
            parts = _PART.findall(compact)
            if not parts or "".join(n + u for n, u in parts) != compact:
                raise ValueError(
                    f"{text!r} is not a duration; write e.g. 20m, 1h30m or 90s."
                ) from None
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration; write e.g. 20m, 1h30m or 90s.")
    return seconds


def format_seconds(seconds: float) -> str:
    """``5400`` -> ``"1h30m"``, ``90`` -> ``"1m30s"``, ``20`` -> ``"20s"``."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "",
             f"{secs}s" if secs or not total else ""]  # fmt: skip
    return "".join(parts)
