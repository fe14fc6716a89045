"""settings.py: defaults, environment variables, validation naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tornado_mongo_session import SessionSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")  # no .env file
    s = SessionSettings()
    assert s.mongodb_url == "mongodb://127.0.0.1:27017"
    assert (s.database, s.collection, s.cookie_name) == ("tornado_session", "sessions", "session")
    assert (s.cookie_secure, s.cookie_httponly, s.cookie_samesite) == (True, True, "Lax")
    assert (s.token_ttl, s.tokens_kept) == (5.0, 3)
    assert (s.idle_timeout, s.absolute_timeout, s.touch_interval) == (7200, 30 * 86400, 60)
    assert s.write_mode == "before_response"
    assert s.max_session_bytes == 256 * 1024
    assert s.persistent_cookie is True


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORNADO_SESSION_TOKEN_TTL", "30")
    monkeypatch.setenv("TORNADO_SESSION_COOKIE_NAME", "sid")
    monkeypatch.setenv("TORNADO_SESSION_ABSOLUTE_TIMEOUT", "none")
    monkeypatch.setenv("TORNADO_SESSION_WRITE_MODE", "after_response")
    s = SessionSettings()
    assert s.token_ttl == 30
    assert s.cookie_name == "sid"
    assert s.write_mode == "after_response"
    assert s.absolute_timeout is None


def test_dotenv_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("TORNADO_SESSION_DATABASE=from_dotenv\n")
    monkeypatch.chdir(tmp_path)
    assert SessionSettings().database == "from_dotenv"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"token_ttl": 0}, "token_ttl"),
        ({"tokens_kept": 0}, "tokens_kept"),
        ({"idle_timeout": -1}, "idle_timeout"),
        ({"write_mode": "sometimes"}, "write_mode"),
        ({"cookie_samesite": "Loose"}, "cookie_samesite"),
        ({"cookie_name": "bad name;"}, "cookie_name"),
        ({"max_session_bytes": 0}, "max_session_bytes"),
        ({"max_session_bytes": 17 * 1024 * 1024}, "max_session_bytes"),
        ({"server_selection_timeout_ms": 0}, "server_selection_timeout_ms"),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        SessionSettings(**kwargs)
    assert field in str(info.value)


def test_samesite_none_requires_secure() -> None:
    with pytest.raises(ValidationError, match="cookie_secure"):
        SessionSettings(cookie_samesite="None", cookie_secure=False)
    assert SessionSettings(cookie_samesite="None", cookie_secure=True).cookie_samesite == "None"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cookie_secure": False},
        {"cookie_path": "/app"},
        {"cookie_domain": "example.com"},
    ],
)
def test_host_prefix_rules(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="__Host-"):
        SessionSettings(cookie_name="__Host-session", **kwargs)
    assert SessionSettings(cookie_name="__Host-session").cookie_name == "__Host-session"


def test_secure_prefix_requires_secure() -> None:
    with pytest.raises(ValidationError, match="__Secure-"):
        SessionSettings(cookie_name="__Secure-s", cookie_secure=False)


def test_settings_are_immutable() -> None:
    s = SessionSettings()
    with pytest.raises(ValidationError):
        s.token_ttl = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"idle_timeout": 60, "touch_interval": 60}, ("touch_interval", "idle_timeout")),
        ({"idle_timeout": 30, "touch_interval": 60}, ("touch_interval", "idle_timeout")),
        ({"idle_timeout": 100, "touch_interval": 10, "token_ttl": 100}, ("token_ttl",)),
        (
            {"write_concern_timeout_ms": 10000, "socket_timeout_ms": 10000},
            ("write_concern_timeout_ms", "socket_timeout_ms"),
        ),
    ],
)
def test_contradictory_settings_are_errors_naming_them(
    kwargs: dict[str, Any], named: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as info:
        SessionSettings(**kwargs)
    for name in named:
        assert name in str(info.value)


def test_contradiction_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORNADO_SESSION_IDLE_TIMEOUT", "30")
    with pytest.raises(ValidationError, match="touch_interval"):
        SessionSettings()
    assert SessionSettings(touch_interval=10, token_ttl=5).idle_timeout == 30


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("TORNADO_SESSION_IDLE_TIMOUT", "TORNADO_SESSION_IDLE_TIMEOUT"),
        ("TORNADO_SESSION_COOKIE_SECURED", "TORNADO_SESSION_COOKIE_SECURE"),
        ("tornado_session_token_tl", "TORNADO_SESSION_TOKEN_TTL"),
    ],
)
def test_misspelled_environment_variable_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, meant: str
) -> None:
    monkeypatch.setenv(variable, "1")
    with pytest.raises(ValidationError) as info:
        SessionSettings()
    assert variable in str(info.value)
    assert f"did you mean {meant}?" in str(info.value)


@pytest.mark.parametrize(
    "variable",
    [
        "TORNADO_SESSION_TEST_MONGODB_URL",
        "TORNADO_SESSION_TEST_SERVER_KIND",
        "TORNADO_SESSION_TEST_VENDOR_DIR",
        "TORNADO_SESSION_SOMETHING_ELSE",
    ],
)
def test_unrelated_variables_with_the_prefix_are_not_errors(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "mongodb://127.0.0.1:1/")
    assert SessionSettings().cookie_name == "session"
