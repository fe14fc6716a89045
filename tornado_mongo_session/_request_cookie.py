"""The session cookie's values in a request's ``Cookie`` header (the mixin reads them)."""

from __future__ import annotations

from tornado.httputil import parse_cookie

__all__ = ["MAX_COOKIE_VALUES", "cookie_values"]

MAX_COOKIE_VALUES = 4
"""How many values of the session cookie's name one request may have tried (cookie tossing)."""


def cookie_values(header: str, name: str) -> list[str]:
    """The values of cookie ``name`` in a ``Cookie`` header, in order, at most
    :data:`MAX_COOKIE_VALUES`.

    Not ``get_cookie()`` (Tornado builds a SimpleCookie of every cookie for it, which costs
    more than the rest of a read) nor ``parse_cookie`` (a dict: it keeps only the last value of
    a name, which a sibling subdomain can plant). Splits as ``parse_cookie`` does.
    """
    if name not in header:
        return []
    values: list[str] = []
    for chunk in header.split(";"):
        key, equals, value = chunk.partition("=")
        if not equals or key.strip() != name:
            continue
        value = value.strip()
        if value.startswith('"'):
            value = parse_cookie(chunk).get(name, "")  # unquoted as Tornado would
        if value:
            values.append(value)
            if len(values) == MAX_COOKIE_VALUES:
                break
    return values
