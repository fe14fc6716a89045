"""SessionSettings: the one configuration model, read from ``TORNADO_SESSION_*`` variables."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tornado_mongo_session._settings_rules import (
    ENV_PREFIX,
    check_contradictions,
    check_cookie_rules,
    check_environment_names,
)

__all__ = ["SessionSettings"]


class SessionSettings(BaseSettings):
    """Every setting of the library, validated at construction.

    Values come from keyword arguments, then ``TORNADO_SESSION_<NAME>`` environment variables,
    then a ``.env`` file in the working directory, then the defaults below. An invalid value
    raises pydantic's ``ValidationError`` naming the field. In the environment, ``none`` means
    ``None`` (``TORNADO_SESSION_ABSOLUTE_TIMEOUT=none`` turns the absolute timeout off).

    Also a ``ValidationError``, naming the settings: values that contradict each other
    (``touch_interval`` not below ``idle_timeout``, ``token_ttl`` not below ``idle_timeout``,
    ``write_concern_timeout_ms`` not below ``socket_timeout_ms``; an ``absolute_timeout`` below
    ``idle_timeout`` is allowed: the earlier deadline simply wins), and a
    ``TORNADO_SESSION_*`` environment variable that names no setting but is close to one
    (``TORNADO_SESSION_IDLE_TIMOUT``: the error names ``TORNADO_SESSION_IDLE_TIMEOUT``).
    Variables not close to any setting are left alone: other tools may share the prefix.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
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
    cookie_host_prefix: bool = Field(
        default=True,
        description="Send the cookie as `__Host-<cookie_name>` when cookie_secure is on, "
        "cookie_path is `/` and cookie_domain is unset (the defaults): browsers refuse that "
        "name from a sibling subdomain, so none can plant or shadow the session cookie "
        "(cookie tossing). Off, or with plain-HTTP development (cookie_secure off), a domain "
        "or another path, the name is cookie_name as given. Turning it on or off changes the "
        "name, so current sessions are not found once.",
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
    reuse_detection: Literal["revoke", "log"] = Field(
        default="revoke",
        description="What a request carrying a token retired more than reuse_leeway seconds "
        "before it arrived sets off (a copy of the cookie is in use beside the one that moved "
        "on: theft). `revoke`: the session ends for every holder, thief and user alike, and "
        "a security event is logged; `log`: only the event is logged. Either way that request "
        "is refused and its cookie cleared.",
    )
    reuse_leeway: float = Field(
        default=30.0,
        ge=0,
        description="Seconds after its retirement during which a token is not yet taken for "
        "reuse: a request sent before the browser received newer tokens (queued by a proxy, "
        "a slow network, clocks of several app hosts a little apart) is refused without "
        "ending the session or clearing the cookie. A request that arrived before its token "
        "was retired (a slow upload) is still served, while the session remembers that token "
        "(its last 16 retired ones).",
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

    @property
    def effective_cookie_name(self) -> str:
        """The name the session cookie travels under: ``__Host-`` + ``cookie_name`` when
        ``cookie_host_prefix`` holds and the browser's conditions for it (Secure, ``Path=/``,
        no Domain) are met; ``cookie_name`` as given otherwise, and when it has a prefix."""
        name = self.cookie_name
        if (
            self.cookie_host_prefix
            and self.cookie_secure
            and self.cookie_path == "/"
            and not self.cookie_domain
            and not name.startswith(("__Host-", "__Secure-"))
        ):
            return "__Host-" + name
        return name

    @model_validator(mode="before")
    @classmethod
    def _check_environment_names(cls, values: Any) -> Any:
        check_environment_names(cls.model_fields)
        return values

    @model_validator(mode="after")
    def _check_across_fields(self) -> SessionSettings:
        check_contradictions(self)
        check_cookie_rules(self)
        return self
