"""The store a command works on: settings from the environment, the store they name (or
``--store``'s), a command's work run on it, and the store's optional methods found by name."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from tornado_mongo_session.cli._exits import UNSUPPORTED, USAGE, CliError
from tornado_mongo_session.settings import SessionSettings

__all__ = ["Options", "method", "run"]

_T = TypeVar("_T")


@dataclass
class Options:
    """The group's options, which every command's store is built from."""

    store_factory: str | None


def _settings() -> SessionSettings:
    try:
        return SessionSettings()
    except ValidationError as exc:
        problems = "; ".join(
            # A rule across fields (the cookie rules) has no location: its message names them.
            f"TORNADO_SESSION_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            if e["loc"]
            else e["msg"]
            for e in exc.errors()
        )
        raise CliError(f"invalid settings: {problems}", USAGE) from None


def _make_store(settings: SessionSettings, factory: str | None) -> Any:
    if factory is None:
        from tornado_mongo_session.stores.mongo import MongoSessionStore

        return MongoSessionStore.from_settings(settings)
    module_name, _, name = factory.partition(":")
    try:
        made = getattr(importlib.import_module(module_name), name or "make_store")
        return made(settings)
    except Exception as exc:  # any import or construction failure is the option's fault
        raise CliError(f"--store {factory!r}: {type(exc).__name__}: {exc}", USAGE) from None


def run(ctx: click.Context, work: Callable[[Any], Awaitable[_T]]) -> _T:
    """Build the store, run ``work(store)`` on an event loop, close the store."""
    options: Options = ctx.find_object(Options) or Options(None)
    settings = _settings()
    store = _make_store(settings, options.store_factory)

    async def work_then_close() -> _T:
        try:
            return await work(store)
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                await close()

    return asyncio.run(work_then_close())


def method(store: Any, name: str, command: str) -> Callable[..., Awaitable[Any]]:
    """The store's method ``name``, or a CliError: this store does not support ``command``."""
    found = getattr(store, name, None)
    if not callable(found):
        raise CliError(
            f"this store does not support {command}: {type(store).__name__} has no {name}()",
            UNSUPPORTED,
        )
    return found  # type: ignore[no-any-return]
