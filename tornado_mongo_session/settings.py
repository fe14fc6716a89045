"""SessionSettings: the one configuration model, read from ``TORNADO_SESSION_*`` variables."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SessionSettings"]


class SessionSettings(BaseSettings):
    """Every setting of the library, validated at construction.

    Values come from keyword arguments, then ``TORNADO_SESSION_<NAME>`` environment variables,
    then a ``.env`` file in the working directory, then the defaults below. An invalid value
    raises pydantic's ``ValidationError`` naming the field. In the environment, ``none`` means
    ``None`` (``TORNADO_SESSION_ABSOLUTE_TIMEOUT=none`` turns the absolute timeout off).
    """

    model_config = SettingsConfigDict(
        env_prefix="TORNADO_SESSION_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_parse_none_str="none",
        extra="ignore",
        frozen=True,
    )

    mongodb_url: str = Field(
        default="mongodb://127.0.0.1:27017", description="Connection string for MongoSessionStore."
    )
    database: str = Field(default="tornado_session", min_length=1)
    collection: str = Field(default="sessions", min_length=1)

    cookie_name: str = Field(
        default="session", min_length=1, pattern=r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
    )
    cookie_path: str = "/"
    cookie_domain: str | None = None
    cookie_secure: bool = True
    cookie_httponly: bool = True
    cookie_samesite: Literal["Lax", "Strict", "None"] | None = "Lax"
    persistent_cookie: bool = Field(
        default=True,
        description="True: Max-Age follows idle_timeout. False: a browser-session cookie.",
    )

    token_ttl: float = Field(default=5.0, gt=0, description="Seconds before a token is rotated.")
    tokens_kept: int = Field(
        default=3, ge=1, le=100, description="How many newest tokens stay valid."
    )
    idle_timeout: float = Field(
        default=7200.0, gt=0, description="Seconds without use before expiry."
    )
    absolute_timeout: float | None = Field(
        default=30 * 24 * 3600.0,
        gt=0,
        description="Seconds after creation before expiry; None: off.",
    )
    touch_interval: float = Field(
        default=60.0,
        ge=0,
        description="How often an unchanged session's expiry may be pushed forward.",
    )
    write_mode: Literal["before_response", "after_response"] = "before_response"
    max_session_bytes: int = Field(default=256 * 1024, gt=0, le=15 * 1024 * 1024)

    server_selection_timeout_ms: int = Field(default=5000, gt=0)
    connect_timeout_ms: int = Field(default=5000, gt=0)
    socket_timeout_ms: int = Field(default=10000, gt=0)
    write_concern: Literal["majority"] | Annotated[int, Field(ge=1)] = Field(
        default="majority",
        description='Acknowledgement of every write of MongoSessionStore: "majority" or a '
        "number of replica set members (>= 1); see docs/deployment.md.",
    )
    write_concern_timeout_ms: int = Field(
        default=5000,
        gt=0,
        description="How long a write waits for write_concern before it fails (wtimeout); "
        "keep it below socket_timeout_ms.",
    )

    @model_validator(mode="after")
    def _check_cookie_rules(self) -> SessionSettings:
        if self.cookie_samesite == "None" and not self.cookie_secure:
            raise ValueError("cookie_samesite='None' requires cookie_secure=True")
        if self.cookie_name.startswith("__Host-"):
            if not self.cookie_secure or self.cookie_path != "/" or self.cookie_domain:
                raise ValueError(
                    "cookie_name with the __Host- prefix requires cookie_secure=True, "
                    "cookie_path='/' and no cookie_domain"
                )
        elif self.cookie_name.startswith("__Secure-") and not self.cookie_secure:
            raise ValueError("cookie_name with the __Secure- prefix requires cookie_secure=True")
        return self
