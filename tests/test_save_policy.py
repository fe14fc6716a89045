"""policy.py: what a request writes, as a table of cases. No HTTP, no store, no clock.

Each row is what the request loaded, what the handler did with the session, and the state of
the response; the expected plan is written as the fields that differ from "nothing to do".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tornado_mongo_session import (
    IntervalRotator,
    NeverRotator,
    NewSession,
    Session,
    SessionRecord,
    SessionTooLarge,
    SessionUpdate,
    TokenRotator,
)
from tornado_mongo_session.policy import SavePlan, SaveRules, plan_save

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
COOKIE = "i" * 24 + "." + "t" * 43
RULES = SaveRules(
    idle=timedelta(hours=2),
    absolute=timedelta(days=30),
    touch=timedelta(seconds=60),
    max_session_bytes=1024,
    persistent_cookie=True,
)


def stored(
    *, created: float = 3600, rotated: float = 1, accessed: float = 1, in_cookie: bool = False
) -> SessionRecord:
    """A loaded record whose times are the given seconds before NOW."""
    return SessionRecord(
        id="i" * 24,
        data={"n": 1, "cart": {"items": [1]}, "name": "x"},
        created_at=NOW - timedelta(seconds=created),
        accessed_at=NOW - timedelta(seconds=accessed),
        rotated_at=NOW - timedelta(seconds=rotated),
        expires_at=NOW + timedelta(hours=1),
        in_cookie=in_cookie,
    )


def assign(key: str, value: Any) -> Callable[[Session], None]:
    return lambda session: session.__setitem__(key, value)


def mutate_cart(session: Session) -> None:
    session.get("cart", {})["items"].append(2)  # in place, no assignment


def regenerate(session: Session) -> None:
    session.regenerate()


def invalidate(session: Session) -> None:
    session.invalidate()


def invalidate_then_write(session: Session) -> None:
    session.invalidate()
    session["fresh"] = 1


def read(session: Session) -> None:
    session.get("n")


@dataclass
class Case:
    loaded: SessionRecord | None = None
    handler: Callable[[Session], None] | None = None  # None: the handler never touched it
    cookie: bool = True
    rotator: TokenRotator = field(default_factory=lambda: IntervalRotator(every=5, keep=3))
    rules: SaveRules = RULES
    headers_open: bool = True


NOTHING: dict[str, Any] = {
    "save": None,
    "changed": [],
    "removed": [],
    "rotate": False,
    "promote": False,
    "retire": False,
    "clear": False,
    "resend": False,
    "before": False,
    "unsaved": False,
}

TABLE: list[tuple[str, Case, dict[str, Any] | None]] = [
    # -- no session loaded ----------------------------------------------------------------
    ("no cookie, untouched", Case(cookie=False), None),
    ("no cookie, read only", Case(cookie=False, handler=read), None),
    (
        "no cookie, data written",
        Case(cookie=False, handler=assign("a", 1)),
        {"save": "new", "changed": ["a"], "before": True},
    ),
    (
        "no cookie, data written after the headers went out",
        Case(cookie=False, handler=assign("a", 1), headers_open=False),
        {"unsaved": True},
    ),
    ("stale cookie, untouched", Case(), None),
    ("stale cookie, session looked at", Case(handler=read), {"clear": True, "before": True}),
    ("stale cookie, headers gone", Case(handler=read, headers_open=False), None),
    # -- a loaded session ------------------------------------------------------------------
    ("loaded, untouched, nothing due", Case(loaded=stored()), None),
    ("loaded, read, nothing due", Case(loaded=stored(), handler=read), None),
    (
        "loaded, untouched, touch due",
        Case(loaded=stored(accessed=61)),
        {"save": "update"},
    ),
    (
        "loaded, untouched, token due",
        Case(loaded=stored(rotated=5)),
        {"save": "update", "rotate": True, "before": True},
    ),
    (
        "loaded, token due, headers gone",
        Case(loaded=stored(rotated=5), handler=read, headers_open=False),
        None,
    ),
    (
        "loaded, token due, headers gone, touch due",
        Case(loaded=stored(rotated=61, accessed=61), headers_open=False),
        {"save": "update"},
    ),
    (
        "loaded, one key set",
        Case(loaded=stored(), handler=assign("n", 2)),
        {"save": "update", "changed": ["n"]},
    ),
    ("loaded, a key set to what it was", Case(loaded=stored(), handler=assign("n", 1)), None),
    (
        "loaded, an int key set to a float",
        Case(loaded=stored(), handler=assign("n", 1.0)),
        {"save": "update", "changed": ["n"]},
    ),
    (
        "loaded, one key deleted",
        Case(loaded=stored(), handler=lambda s: s.pop("name")),
        {"save": "update", "removed": ["name"]},
    ),
    (
        "loaded, nested list changed in place",
        Case(loaded=stored(), handler=mutate_cart),
        {"save": "update", "changed": ["cart"]},
    ),
    (
        "loaded, write, never rotating: the cookie is resent to renew Max-Age",
        Case(loaded=stored(), handler=assign("n", 2), rotator=NeverRotator()),
        {"save": "update", "changed": ["n"], "resend": True},
    ),
    (
        "loaded, write, never rotating, browser-session cookie",
        Case(
            loaded=stored(),
            handler=assign("n", 2),
            rotator=NeverRotator(),
            rules=replace(RULES, persistent_cookie=False),
        ),
        {"save": "update", "changed": ["n"]},
    ),
    (
        "loaded from a cookie, write: the data travels in the response",
        Case(loaded=stored(in_cookie=True), handler=assign("n", 2)),
        {"save": "update", "changed": ["n"], "before": True},
    ),
    # -- regenerate and invalidate ---------------------------------------------------------
    (
        "regenerate: new id holds the data, the old one is retired",
        Case(loaded=stored(), handler=regenerate),
        {
            "save": "new",
            "changed": ["n", "cart", "name"],
            "promote": True,
            "retire": True,
            "before": True,
        },
    ),
    (
        "invalidate: retired, cookie expired",
        Case(loaded=stored(), handler=invalidate),
        {"retire": True, "clear": True, "before": True},
    ),
    (
        "invalidate after the headers went out: retired only",
        Case(loaded=stored(), handler=invalidate, headers_open=False),
        {"retire": True},
    ),
    (
        "invalidate, then new data: a fresh session replaces the old",
        Case(loaded=stored(), handler=invalidate_then_write),
        {"save": "new", "changed": ["fresh"], "retire": True, "before": True},
    ),
]


def run(case: Case) -> SavePlan | None:
    session: Session | None = None
    if case.handler is not None:
        session = Session() if case.loaded is None else Session.from_record(case.loaded)
        case.handler(session)
    return plan_save(
        loaded=case.loaded,
        session=session,
        cookie_in=COOKIE if case.cookie else None,
        now=NOW,
        rotator=case.rotator,
        rules=case.rules,
        headers_open=case.headers_open,
    )


def summary(plan: SavePlan | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    save = plan.save
    return {
        "save": None if save is None else "new" if isinstance(save, NewSession) else "update",
        "changed": []
        if save is None
        else list(save.changed if isinstance(save, SessionUpdate) else save.data),
        "removed": list(save.removed) if isinstance(save, SessionUpdate) else [],
        "rotate": isinstance(save, SessionUpdate) and save.rotation is not None,
        "promote": isinstance(save, NewSession) and save.promote,
        "retire": plan.retire is not None,
        "clear": plan.clear_cookie,
        "resend": plan.resend_cookie is not None,
        "before": plan.before_response,
        "unsaved": plan.unsaved_data,
    }


@pytest.mark.parametrize(
    ("case", "expected"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE]
)
def test_plan(case: Case, expected: dict[str, Any] | None) -> None:
    assert summary(run(case)) == (None if expected is None else {**NOTHING, **expected})


def test_a_plan_is_immutable() -> None:
    plan = run(Case(loaded=stored(rotated=5)))
    assert plan is not None
    with pytest.raises(AttributeError):
        plan.resend_cookie = COOKIE  # type: ignore[misc]


def test_times_of_an_update_and_its_rotation() -> None:
    loaded = stored(rotated=5)
    plan = run(Case(loaded=loaded, rotator=IntervalRotator(every=5, keep=2)))
    assert plan is not None
    assert isinstance(plan.save, SessionUpdate)
    assert plan.now == NOW
    assert plan.save.expires_at == NOW + RULES.idle
    assert plan.save.rotation is not None
    assert plan.save.rotation.keep == 2
    assert plan.save.rotated_at == NOW
    assert plan.save.created_at == loaded.created_at


def test_deadline_is_the_earlier_of_idle_and_absolute() -> None:
    old = stored(created=30 * 24 * 3600 - 60, accessed=61)  # 1 minute of absolute life left
    plan = run(Case(loaded=old))
    assert plan is not None
    assert plan.save is not None
    assert plan.save.expires_at == old.created_at + timedelta(days=30)
    never = run(Case(loaded=old, rules=replace(RULES, absolute=None)))
    assert never is not None
    assert never.save is not None
    assert never.save.expires_at == NOW + RULES.idle


def test_a_new_session_keeps_its_id_and_gets_the_idle_deadline() -> None:
    session = Session()
    session["a"] = 1
    plan = plan_save(
        loaded=None,
        session=session,
        cookie_in=None,
        now=NOW,
        rotator=NeverRotator(),
        rules=RULES,
        headers_open=True,
    )
    assert plan is not None
    assert isinstance(plan.save, NewSession)
    assert plan.save.session_id == session.id
    assert (plan.save.created_at, plan.save.now) == (NOW, NOW)
    assert plan.save.expires_at == NOW + RULES.idle


@pytest.mark.parametrize("loaded", [None, stored()], ids=["new", "loaded"])
def test_over_max_session_bytes_is_refused_with_the_size(loaded: SessionRecord | None) -> None:
    with pytest.raises(SessionTooLarge) as info:
        run(Case(loaded=loaded, handler=assign("big", "x" * 2000)))
    assert info.value.limit == 1024
    assert info.value.size > 2000


def test_a_value_made_unstorable_in_place_is_refused_naming_the_key() -> None:
    def spoil(session: Session) -> None:
        session["cart"]["items"].append(object())

    with pytest.raises(TypeError, match="'cart'"):
        run(Case(loaded=stored(), handler=spoil))
