"""MkDocs hook: the parts of the site that are generated from the code, so they cannot drift.

- ``<!-- generated: settings -->`` (configuration.md) becomes the table of every field of
  ``SessionSettings``: its environment variable, default, allowed values and description. A
  field without a description is a warning, which fails ``mkdocs build --strict``.
- ``<!-- generated: api -->`` (api.md) becomes one mkdocstrings block per name in
  ``tornado_mongo_session.__all__``, grouped by the module that defines it, then the names of
  ``tornado_mongo_session.compat.__all__``.

Runs at build time with the package imported from the checkout; it fetches nothing.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any

from pydantic.fields import FieldInfo

log = logging.getLogger("mkdocs.hooks.generated")

SETTINGS_MARK = "<!-- generated: settings -->"
API_MARK = "<!-- generated: api -->"

# Section titles of the API page, by the module (under tornado_mongo_session) that defines a
# public name; a module missing here gets a section named after it.
API_SECTIONS = {
    "mixin": "Request handlers",
    "session": "The session",
    "settings": "Settings",
    "rotation": "Token rotation",
    "stores": "Stores and their records",
    "errors": "Errors",
    "events": "Events",
}


def on_page_markdown(markdown: str, /, *, page: Any, **_: Any) -> str:
    if SETTINGS_MARK in markdown:
        markdown = markdown.replace(SETTINGS_MARK, settings_markdown())
    if API_MARK in markdown:
        markdown = markdown.replace(API_MARK, api_markdown())
    return markdown


# -- configuration ------------------------------------------------------------------------------


def settings_markdown() -> str:
    from tornado_mongo_session import SessionSettings

    config = SessionSettings.model_config
    prefix = str(config.get("env_prefix", ""))
    none_word = str(config.get("env_parse_none_str", "none"))
    rows = ["| setting | environment variable | default |", "|---|---|---|"]
    sections = []
    for name, field in SessionSettings.model_fields.items():
        env = f"{prefix}{name}".upper()
        default = show_value(field.default, none_word)
        rows.append(f"| [`{name}`](#{name}) | `{env}` | {default} |")
        if not field.description:
            log.warning("SessionSettings.%s has no description: add description=...", name)
        allowed = allowed_values(field)
        sections.append(
            "\n".join(
                [
                    f"### `{name}` {{#{name}}}",
                    "",
                    f"`{env}` · default {default}" + (f" · {allowed}" if allowed else ""),
                    "",
                    field.description or "",
                ]
            )
        )
    return "\n".join(rows) + "\n\n" + "\n\n".join(sections) + "\n"


def show_value(value: Any, none_word: str) -> str:
    if value is None:
        return f"`{none_word}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def allowed_values(field: FieldInfo) -> str:
    """The field's type and constraints in words: ``a number > 0``, ``Lax, Strict, None``."""
    annotation = field.annotation
    text = type_words(annotation)
    bounds = []
    for item in field.metadata:
        for attr, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(item, attr, None)
            if bound is not None:
                bounds.append(
                    f"{symbol} {bound:g}" if isinstance(bound, float) else f"{symbol} {bound}"
                )
        if getattr(item, "min_length", None):
            bounds.append("not empty")
        if getattr(item, "pattern", None):
            bounds.append("a cookie-name token")
    return text + (" " + ", ".join(bounds) if bounds else "")


def type_words(annotation: Any) -> str:
    import typing

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if args and origin is not None and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner = " or ".join(type_words(a) for a in rest)
        return f"{inner}, or none"
    if origin is typing.Annotated:
        return type_words(args[0])
    if args and origin is not None:  # a union of other kinds
        return " or ".join(type_words(a) for a in args)
    return {bool: "true or false", int: "an integer", float: "a number", str: "text"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )


# -- API reference ------------------------------------------------------------------------------


def api_markdown() -> str:
    package = importlib.import_module("tornado_mongo_session")
    grouped: dict[str, list[str]] = {}
    for name in package.__all__:
        obj = getattr(package, name)
        defined_in = inspect.getmodule(obj)
        where = (defined_in.__name__ if defined_in else "").removeprefix("tornado_mongo_session.")
        grouped.setdefault(where.split(".")[0], []).append(name)
    order = [m for m in API_SECTIONS if m in grouped] + sorted(set(grouped) - set(API_SECTIONS))
    parts = []
    for section in order:
        parts.append(f"## {API_SECTIONS.get(section, section)}\n")
        parts.extend(f"::: tornado_mongo_session.{name}\n" for name in grouped[section])
    compat = importlib.import_module("tornado_mongo_session.compat")
    parts.append("## The legacy path: `tornado_mongo_session.compat`\n")
    parts.extend(f"::: tornado_mongo_session.compat.{name}\n" for name in compat.__all__)
    return "\n".join(parts)
