"""The two rich consoles: results on stdout, progress and errors on stderr.

Markup is on (tables use it); anything interpolated from a path, a file name or a message is
escaped with ``rich.markup.escape``, so a path such as ``runs/[/b]`` prints literally.
"""

from __future__ import annotations

from rich.console import Console

__all__ = ["console", "err_console"]

console = Console(stderr=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
