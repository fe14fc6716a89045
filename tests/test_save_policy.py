"""The save policy (policy/): what a request writes, as a table of cases. No HTTP, no store,
no clock.

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
    SessionEnded,
    SessionRecord,
    SessionTooLarge,
    SessionUpdate,
    TokenRotator,
)
from tornado_mongo_session.policy import (
    SLOW_REQUEST,
    SaveContext,
    SavePlan,
    SaveRules,
    TokenVerdict,
    arrival,
    judge_token,
    nothing_due,
    plan_after_error,
    plan_save,
)

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
    *,
    created: float = 3600,
    rotated: float = 1,
    accessed: float = 1,
    in_cookie: bool = False,
    newest: bool = True,
    retired: float | None = None,
) -> SessionRecord:
    """A loaded record whose times are the given seconds before NOW; ``newest``: the client
    presented the newest token; ``retired``: its token was retired that many seconds ago."""
    return SessionRecord(
        token_newest=newest and retired is None,
        token_retired_at=None if retired is None else NOW - timedelta(seconds=retired),
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
    stale: bool = False  # the request proved its cookie stale (a reused token)


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
    ("cookie that opened nothing, looked at: left alone", Case(handler=read), None),
    (
        "cookie proven stale (reuse), untouched",
        Case(stale=True),
        {"clear": True, "before": True},
    ),
    (
        "cookie proven stale (reuse), looked at",
        Case(handler=read, stale=True),
        {"clear": True, "before": True},
    ),
    ("cookie proven stale, headers gone", Case(handler=read, headers_open=False, stale=True), None),
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
        "loaded with an older kept token, token due: no rotation",
        Case(loaded=stored(rotated=5, newest=False), handler=read),
        None,
    ),
    (
        "loaded with a token retired after the request arrived, due, write: no rotation",
        Case(loaded=stored(rotated=5, retired=1), handler=assign("n", 2)),
        {"save": "update", "changed": ["n"]},
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


def handled(case: Case) -> Session | None:
    """The session as the case's handler leaves it; ``None`` when it never touched it."""
    if case.handler is None:
        return None
    loaded = case.loaded
    # On a copy of the data: the session takes the record's dict as its own, and the table's
    # records are shared by the tests.
    session = (
        Session()
        if loaded is None
        else Session.from_record(replace(loaded, data=dict(loaded.data)))
    )
    case.handler(session)
    return session


def run(case: Case, session: Session | None = None) -> SavePlan | None:
    if case.handler is not None:
        session = handled(case)
    return plan_save(
        SaveContext(
            loaded=case.loaded,
            session=session,
            cookie_in=COOKIE if case.cookie else None,
            now=NOW,
            rotator=case.rotator,
            rules=case.rules,
            headers_open=case.headers_open,
            cookie_stale=case.stale,
        )
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


QUIET = {
    "loaded, untouched, nothing due",
    "loaded, read, nothing due",
    "loaded with an older kept token, token due: no rotation",
}
"""The rows that :func:`nothing_due` must tell by itself (every other row goes to the plan)."""


@pytest.mark.parametrize(
    ("case", "expected"),
    [row[1:] for row in TABLE if row[1].loaded is not None],
    ids=[row[0] for row in TABLE if row[1].loaded is not None],
)
def test_nothing_due_is_said_only_of_a_plan_of_nothing(
    request: pytest.FixtureRequest, case: Case, expected: dict[str, Any] | None
) -> None:
    assert case.loaded is not None
    quiet = nothing_due(case.loaded, handled(case), NOW, case.rotator, case.rules)
    assert quiet == (request.node.callspec.id in QUIET)
    if quiet:
        assert expected is None


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
    plan = run(Case(loaded=None, handler=None, cookie=False, rotator=NeverRotator()), session)
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


# -- tokens judged as of the request's arrival ---------------------------------------------------


@pytest.mark.parametrize(
    ("retired", "verdict"),
    [
        (None, TokenVerdict.OPENS),
        (-1, TokenVerdict.OPENS),  # retired a second after the request arrived
        (0, TokenVerdict.LATE),  # at the very instant: refused, never served
        (29, TokenVerdict.LATE),
        (30, TokenVerdict.REUSED),
        (3600, TokenVerdict.REUSED),
    ],
)
def test_judge_token_as_of_arrival(retired: float | None, verdict: TokenVerdict) -> None:
    assert judge_token(stored(retired=retired), arrived=NOW, rules=RULES) is verdict


def test_arrival_counts_only_a_slow_start() -> None:
    assert arrival(NOW, SLOW_REQUEST - 0.01) == NOW
    assert arrival(NOW, 18.0) == NOW - timedelta(seconds=18)


def test_after_an_error_only_a_logout_is_written() -> None:
    loaded = stored()
    cases = ((None, False), (read, False), (regenerate, False), (invalidate, True))
    for handler, expected in cases:
        session = Session.from_record(loaded)
        if handler is not None:
            handler(session)
        plan = plan_after_error(loaded=loaded, session=session, now=NOW, headers_open=True)
        assert (plan is not None) is expected
        if plan is not None:
            assert plan.retire is loaded
            assert plan.clear_cookie
            assert plan.save is None


@pytest.mark.parametrize(
    ("handler", "created"),
    [
        (regenerate, NOW - timedelta(seconds=3600)),
        (invalidate_then_write, NOW),
    ],
)
def test_a_regenerated_session_keeps_its_creation_time(
    handler: Callable[[Session], None], created: datetime
) -> None:
    session = Session.from_record(stored())
    handler(session)
    plan = run_with(session)
    assert plan is not None
    assert isinstance(plan.save, NewSession)
    assert plan.save.created_at == created
    assert plan.save.expires_at == RULES.deadline(created, NOW)


def test_regenerate_keeps_only_the_named_keys() -> None:
    session = Session.from_record(stored())
    session.regenerate(keep=("cart",))
    assert dict(session) == {"cart": {"items": [1]}}


def test_regenerate_is_refused_once_the_id_is_frozen() -> None:
    session = Session.from_record(stored())
    session.freeze_id()
    with pytest.raises(RuntimeError, match="once the response headers are sent"):
        session.regenerate()
    assert session.id == "i" * 24
    assert not session.is_new


def run_with(
    session: Session, *, loaded: SessionRecord | None = None, cookie_late: bool = False
) -> SavePlan | None:
    """The plan for ``session`` (loaded from ``loaded``, default :func:`stored`)."""
    return plan_save(
        SaveContext(
            loaded=stored() if loaded is None and not cookie_late else loaded,
            session=session,
            cookie_in=COOKIE,
            now=NOW,
            rotator=IntervalRotator(every=5, keep=3),
            rules=RULES,
            headers_open=True,
            cookie_late=cookie_late,
        )
    )


def test_a_late_cookie_refuses_a_new_sessions_data_but_not_a_read() -> None:
    def plan(handler: Callable[[Session], None]) -> SavePlan | None:
        session = Session()
        handler(session)
        return run_with(session, cookie_late=True)

    assert plan(read) is None  # nothing written, the cookie left alone
    with pytest.raises(SessionEnded, match="newer one"):
        plan(assign("cart", 1))


@pytest.mark.parametrize(("persistent", "max_age"), [(True, 7200), (False, None)])
def test_the_cookie_max_age_follows_the_deadline_unless_the_cookie_is_per_browser_session(
    persistent: bool, max_age: int | None
) -> None:
    rules = replace(RULES, persistent_cookie=persistent)
    for loaded, handler in ((None, assign("a", 1)), (stored(rotated=5), None)):
        plan = run(Case(loaded=loaded, handler=handler, rules=rules))
        assert plan is not None
        assert plan.save is not None
        assert plan.max_age == max_age
        assert plan.save.expires_at == NOW + RULES.idle


@pytest.mark.parametrize(
    ("stored_size", "value", "refused"),
    [
        (100, "x" * 10, False),  # the store's size proves it fits: nothing encoded whole
        (1000, "x" * 100, False),  # the bound (1000 + 100) is over, the exact size is not
        (100, "x" * 2000, True),
        (None, "x" * 2000, True),
    ],
)
def test_the_size_check_is_exact_whatever_the_store_knows(
    stored_size: int | None, value: str, refused: bool
) -> None:
    record = replace(stored(), size=stored_size)
    if refused:
        with pytest.raises(SessionTooLarge) as info:
            run(Case(loaded=record, handler=assign("big", value)))
        assert info.value.size == Session({**record.data, "big": value}).encoded_size()
    else:
        plan = run(Case(loaded=record, handler=assign("big", value)))
        assert plan is not None
        assert plan.save is not None
