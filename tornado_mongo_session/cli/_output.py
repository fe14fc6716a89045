"""What the commands print: one JSON document (``--json``), or lines and tables for people."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

import click

__all__ = ["emit_json", "shorten", "table", "when"]


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it: dataclasses as objects, datetimes as ISO 8601."""
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def emit_json(value: Any) -> None:
    """Print ``value`` as one line of JSON."""
    click.echo(json.dumps(_plain(value), ensure_ascii=False))


def when(value: Any) -> str:
    """A time to the second, for a table."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else str(value or "")


def shorten(value: Any, width: int) -> str:
    """``value`` as text of at most ``width`` characters (an ellipsis marks a cut)."""
    text = str(value or "")
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: Iterable[Iterable[Any]], headers: list[str]) -> str:
    """Rows under their headers, in columns as wide as their widest cell."""
    lines = [headers, *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
