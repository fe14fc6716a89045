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
        default="mongodb://127.0.0.1:27017",
        description="Connection string for MongoSessionStore.from_settings. It may carry a "
        "password and TLS options: keep it secret like a password; in production use TLS "
        "(`tls=true`), never `tlsInsecure` or `tlsAllowInvalidCertificates`.",
    )
    database: str = Field(
        default="tornado_session", min_length=1, description="Database of the sessions collection."
    )
    collection: str = Field(
        default="sessions",
        min_length=1,
        description="Collection holding one document per session. The application's database "
        "user needs only find, insert, update, remove and createIndex on it.",
    )

    cookie_name: str = Field(
        default="session",
        min_length=1,
        pattern=r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$",
        description="Name of the session cookie. With the `__Host-` prefix browsers enforce "
        "Secure, `Path=/` and no Domain, so no subdomain can set or shadow the cookie "
        "(checked at construction); `__Secure-` requires cookie_secure.",
    )
    cookie_path: str = Field(
        default="/", description="Path attribute: the cookie is sent only to URLs under it."
    )
    cookie_domain: str | None = Field(
        default=None,
        description="Domain attribute. Unset, the cookie returns only to the host that set it; "
        "set, every subdomain receives the session token and can overwrite the cookie.",
    )
    cookie_secure: bool = Field(
        default=True,
        description="Secure attribute: the cookie travels over HTTPS only. Turn it off only "
        "for plain-HTTP development; off in production, anyone on the network path can read "
        "the token.",
    )
    cookie_httponly: bool = Field(
        default=True,
        description="HttpOnly attribute: page scripts cannot read the cookie, so a cross-site "
        "scripting bug cannot steal the token. Keep it on.",
    )
    cookie_samesite: Literal["Lax", "Strict", "None"] | None = Field(
        default="Lax",
        description="SameSite attribute. `Lax`: not sent with cross-site POSTs and "
        "subrequests, a first defence against request forgery; `Strict`: not with cross-site "
        "links either; `None`: sent everywhere (requires cookie_secure); none: left to the "
        "browser.",
    )
    persistent_cookie: bool = Field(
        default=True,
        description="True: the cookie's Max-Age runs to the session's deadline, so it outlives "
        "a browser restart. False: a browser-session cookie. The server-side timeouts apply "
        "either way.",
    )

    token_ttl: float = Field(
        default=5.0,
        gt=0,
        description="Seconds after which the token is replaced on the next request "
        "(rotation). Shorter: a stolen or planted token goes stale sooner, for one more write "
        "per token_ttl per active client.",
    )
    tokens_kept: int = Field(
        default=3,
        ge=1,
        le=100,
        description="How many of the newest tokens stay valid. A copied token dies after this "
        "many rotations of its session. Keep it at 2 or more, so that concurrent requests and a "
        "lost response never log a user out.",
    )
    idle_timeout: float = Field(
        default=7200.0,
        gt=0,
        description="Seconds without use after which a session is dead: never loaded again, "
        "deleted by the TTL index where the server has one. Bounds how long a forgotten or "
        "stolen session stays usable.",
    )
    absolute_timeout: float | None = Field(
        default=30 * 24 * 3600.0,
        gt=0,
        description="Seconds after creation after which a session is dead, however much it is "
        "used (a thief cannot keep a stolen session alive past it); none: off.",
    )
    touch_interval: float = Field(
        default=60.0,
        ge=0,
        description="How often (seconds) an unchanged session's idle deadline is pushed "
        "forward, which costs one write; 0: on every request.",
    )
    write_mode: Literal["before_response", "after_response"] = Field(
        default="before_response",
        description="`before_response`: the session is saved before the response is sent, so "
        "the client's next request sees it. `after_response`: data-only changes are saved "
        "after it (lower latency; the next request may read old data). Saves that change the "
        "cookie always come first.",
    )
    max_session_bytes: int = Field(
        default=256 * 1024,
        gt=0,
        le=15 * 1024 * 1024,
        description="Limit on the encoded (BSON) size of a session's data. A save over it fails "
        "(500) and writes nothing: it bounds what a client can make the server store.",
    )
    remember_device: bool = Field(
        default=True,
        description="Keep the client's IP address and User-Agent (truncated to 64 and 256 "
        "characters) with a session when `session.bind_user()` binds a user, so that a "
        '"your devices" page can tell the user\'s sessions apart. False: neither is stored.',
    )

    server_selection_timeout_ms: int = Field(
        default=5000,
        gt=0,
        description="How long (ms) a request waits for a usable server before its 503 "
        "(MongoSessionStore.from_settings' client).",
    )
    connect_timeout_ms: int = Field(
        default=5000, gt=0, description="Timeout (ms) for opening a connection to the server."
    )
    socket_timeout_ms: int = Field(
        default=10000,
        gt=0,
        description="Timeout (ms) for one command's reply; keep it well above the slowest "
        "command and above write_concern_timeout_ms.",
    )
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
