"""The rules :class:`~tornado_mongo_session.settings.SessionSettings` checks across fields and
in the environment: settings that contradict each other, the cookie-name prefixes' conditions,
and a misspelled ``TORNADO_SESSION_*`` variable. Each raises ``ValueError`` naming the settings,
which pydantic reports as a ``ValidationError``."""

from __future__ import annotations

import difflib
import os
from collections.abc import Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tornado_mongo_session.settings import SessionSettings

__all__ = ["ENV_PREFIX", "check_contradictions", "check_cookie_rules", "check_environment_names"]

ENV_PREFIX = "TORNADO_SESSION_"
# How close (difflib's ratio) an unknown variable must be to a setting to be called a typo:
# IDLE_TIMOUT is 0.96 from IDLE_TIMEOUT; the test suite's TEST_MONGODB_URL is 0.81 from
# MONGODB_URL and must pass.
_NEAR = 0.85


def check_environment_names(fields: Collection[str]) -> None:
    """Refuse a ``TORNADO_SESSION_*`` variable that names none of ``fields`` but is close to
    one; leave the others alone (other tools, such as the test suite, share the prefix)."""
    # A misspelled variable would otherwise be ignored in silence (the model's extra="ignore"
    # is needed for those other tools).
    for name in os.environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX):
            continue
        field = upper[len(ENV_PREFIX) :].lower()
        if field in fields:
            continue
        near = difflib.get_close_matches(field, fields, n=1, cutoff=_NEAR)
        if near:
            raise ValueError(
                f"environment variable {name} names no setting; did you mean "
                f"{ENV_PREFIX}{near[0].upper()}?"
            )


def check_contradictions(settings: SessionSettings) -> None:
    """Refuse timeouts that defeat each other (an ``absolute_timeout`` below ``idle_timeout``
    is allowed: the earlier deadline simply wins)."""
    idle = settings.idle_timeout
    if settings.touch_interval >= idle:
        raise ValueError(
            f"touch_interval ({settings.touch_interval:g} s) must be below idle_timeout "
            f"({idle:g} s): a session that is only read would expire before its first touch"
        )
    if settings.token_ttl >= idle:
        raise ValueError(
            f"token_ttl ({settings.token_ttl:g} s) must be below idle_timeout ({idle:g} s): "
            "a token would never rotate before its session expires"
        )
    if settings.write_concern_timeout_ms >= settings.socket_timeout_ms:
        raise ValueError(
            f"write_concern_timeout_ms ({settings.write_concern_timeout_ms}) must be below "
            f"socket_timeout_ms ({settings.socket_timeout_ms}): the socket would time out first "
            "and the write's outcome would be unknown"
        )


def check_cookie_rules(settings: SessionSettings) -> None:
    """Refuse cookie attributes that browsers would reject together (``SameSite=None`` without
    Secure; a ``__Host-`` or ``__Secure-`` name without its conditions)."""
    if settings.cookie_samesite == "None" and not settings.cookie_secure:
        raise ValueError("cookie_samesite='None' requires cookie_secure=True")
    name = settings.cookie_name
    if name.startswith("__Host-"):
        if not settings.cookie_secure or settings.cookie_path != "/" or settings.cookie_domain:
            raise ValueError(
                "cookie_name with the __Host- prefix requires cookie_secure=True, "
                "cookie_path='/' and no cookie_domain"
            )
    elif name.startswith("__Secure-") and not settings.cookie_secure:
        raise ValueError("cookie_name with the __Secure- prefix requires cookie_secure=True")
