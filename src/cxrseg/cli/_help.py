"""Help pages that read well in an 80-column terminal.

Typer's rich help draws boxed tables that cut long option names (``--gaussian-distorti…``),
shows on/off flags as ``<bool>``, and its plain help writes ``{data}`` and ``<path>``. The
application turns rich help off (click's formatter wraps to the terminal, never cuts a name,
shows flags without a value and rewraps the docstrings' paragraphs), and :class:`HelpCommand`
writes click's classic metavars: arguments in capitals (``DATA``, ``[NAME]``, ``INPUT...``)
and option values by type (``INTEGER``, ``FLOAT``, ``TEXT``, ``PATH``) unless an option names
its own (``--out DIR``).
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand

#: Type labels (typer's ``<int>``, click's ``integer``) -> the metavar shown for a value.
_TYPE_METAVARS = {"int": "INTEGER", "integer": "INTEGER", "float": "FLOAT", "str": "TEXT",
                  "text": "TEXT", "path": "PATH", "file": "FILE", "directory": "DIR",
                  "bool": "BOOLEAN", "boolean": "BOOLEAN"}  # fmt: skip


def argument_metavar(param: Any) -> str:
    """``DATA``, ``[NAME]`` or ``INPUT...``: an argument as the usage line and help show it."""
    if param.metavar is not None:
        return str(param.metavar)
    name = str(param.name).upper() + ("..." if param.nargs == -1 else "")
    return name if param.required else f"[{name}]"


def option_metavar(param: Any, ctx: Any) -> str:
    """The value of an option that names none: its type in capitals, e.g. ``INTEGER``."""
    if hasattr(param, "display_type"):  # typer >= 0.2x: "<int>", "<int range>", "<a|b>"
        label = str(param.display_type(ctx)).strip("<>")
    else:  # click's parameter types: "integer", "integer range", "choice"
        label = str(getattr(getattr(param, "type", None), "name", "value"))
    if label.startswith("list[") and label.endswith("]"):
        label = label[5:-1]
    if "|" in label:
        return f"[{label}]"
    label = label.removesuffix(" range")
    return _TYPE_METAVARS.get(label, label.upper())


class HelpCommand(TyperCommand):
    """A command whose usage line and option list use real metavars (see the module)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        arguments = [p for p in self.get_params(ctx) if p.param_type_name == "argument"]
        return pieces + [argument_metavar(p) for p in arguments]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            kind = param.param_type_name
            if kind == "option" and param.metavar is None and not _is_flag(param):
                param.metavar = option_metavar(param, ctx)
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if kind == "argument":
                arguments.append((argument_metavar(param), record[1]))
            else:
                options.append((record[0], _plain_default(param, record[1])))
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _plain_default(param: Any, text: str) -> str:
    """``[default: 30]``, not click's ``[default: (30)]``, for a default given as words."""
    shown = getattr(param, "show_default", None)
    return text.replace(f"({shown})", shown) if isinstance(shown, str) else text


def _is_flag(param: Any) -> bool:
    return bool(getattr(param, "is_flag", False) or getattr(param, "count", False))


class App(typer.Typer):
    """``typer.Typer`` whose commands are :class:`HelpCommand` unless told otherwise."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("cls") is None:
            kwargs["cls"] = HelpCommand
        return super().command(*args, **kwargs)
