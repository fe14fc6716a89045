"""Change tracking: a value changed in place is saved, whichever way the handler got it.

The session encodes a stored value only when it hands it out (only a value handed out can be
changed in place) or when it is assigned or deleted. So every path of the mapping API that hands
a value out is covered: on the Session alone, then through HTTP, where the stored document must
hold the change, with no flag set by the handler.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
import tornado.web
from bson import ObjectId
from helpers import Clock, serve
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from tornado_mongo_session import (
    MemorySessionStore,
    NewSession,
    SaveResult,
    Session,
    SessionMixin,
    SessionSettings,
)
from tornado_mongo_session._bson import encode
from tornado_mongo_session.tokens import parse_cookie

HAND_OUTS: dict[str, Callable[[Session], Any]] = {
    "item": lambda s: s["cart"],
    "get": lambda s: s.get("cart"),
    "setdefault": lambda s: s.setdefault("cart", {}),
    "values": lambda s: next(v for v in s.values() if isinstance(v, dict)),
    "items": lambda s: next(v for k, v in s.items() if k == "cart"),
    "iteration": lambda s: next(s[k] for k in s if k == "cart"),
    "dict()": lambda s: dict(s)["cart"],
    "unpacking": lambda s: {**s}["cart"],
    "pop": lambda s: s.pop("cart"),
}


def stored() -> Session:
    data = {"n": 1, "cart": {"items": [1]}, "when": datetime.datetime(2030, 1, 1)}
    return Session(data, session_id="s" * 24, is_new=False)


@pytest.mark.parametrize("hand_out", list(HAND_OUTS))
def test_a_nested_change_in_place_is_found(hand_out: str) -> None:
    session = stored()
    cart = HAND_OUTS[hand_out](session)
    cart["items"].append(2)
    if hand_out == "pop":
        assert session.changes() == ({}, ["cart"])
        session["cart"] = cart  # put back, changed: written as a change, not a removal
    assert session.changes() == ({"cart": {"items": [1, 2]}}, [])


@pytest.mark.parametrize("hand_out", [name for name in HAND_OUTS if name != "pop"])
def test_a_value_looked_at_but_not_changed_is_no_change(hand_out: str) -> None:
    session = stored()
    HAND_OUTS[hand_out](session)
    assert session["n"] == 1
    assert session.get("when") == datetime.datetime(2030, 1, 1)
    assert session.changes() == ({}, [])


def test_deleted_and_set_again_counts_only_if_it_differs() -> None:
    session = stored()
    del session["n"]
    session["n"] = 1
    assert session.changes() == ({}, [])
    del session["cart"]
    session["cart"] = {"items": [1, 2]}
    assert session.changes() == ({"cart": {"items": [1, 2]}}, [])


# A value assigned again is a change only if BSON stores it differently: equal values of one
# type are no change, unless BSON tells them apart (the sign of a zero, a datetime's
# microseconds); another type is a change, even when equal in Python (1 == 1.0 == True).
REASSIGNED = [
    (1, 1, False),
    (1, 2, True),
    (1, 1.0, True),
    (1, True, True),
    (0, False, True),
    ("a", "a", False),
    ("a", "b", True),
    (b"x", b"x", False),
    (b"x", "x", True),
    (None, None, False),
    (None, 0, True),
    (2**40, 2**40, False),
    (0.0, 0.0, False),
    (0.0, -0.0, True),
    (1.5, 1.5, False),
    (float("nan"), float("nan"), False),
    (datetime.datetime(2030, 1, 1), datetime.datetime(2030, 1, 1), False),
    (
        datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc),
        datetime.datetime(2030, 1, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=1))),
        False,
    ),
    (datetime.datetime(2030, 1, 1), datetime.datetime(2030, 1, 1, 0, 0, 1), True),
    (
        datetime.datetime(2030, 1, 1, 0, 0, 0, 5000),
        datetime.datetime(2030, 1, 1, 0, 0, 0, 5999),
        False,
    ),
    (
        datetime.datetime(2030, 1, 1, 0, 0, 0, 5999),
        datetime.datetime(2030, 1, 1, 0, 0, 0, 6000),
        True,
    ),
    (
        datetime.datetime(1969, 12, 31, 23, 59, 59, 999),
        datetime.datetime(1969, 12, 31, 23, 59, 59),
        False,
    ),
    (float("nan"), -float("nan"), True),
    (ObjectId("64f1c2a9e4b0a1b2c3d4e5f6"), ObjectId("64f1c2a9e4b0a1b2c3d4e5f6"), False),
    (ObjectId("64f1c2a9e4b0a1b2c3d4e5f6"), "64f1c2a9e4b0a1b2c3d4e5f6", True),
    (1, [1], True),
    ([1], 1, True),
]


@pytest.mark.parametrize(("before", "after", "changed"), REASSIGNED, ids=repr)
def test_an_immutable_value_assigned_again_is_a_change_only_if_it_is_stored_differently(
    before: Any, after: Any, changed: bool
) -> None:
    session = Session({"k": before, "other": 1}, session_id="s" * 24, is_new=False)
    session["k"] = after
    found, removed = session.changes()
    assert removed == []
    if changed:
        assert list(found) == ["k"]
        assert found["k"] is after
    else:
        assert found == {}


def _variants(value: Any) -> list[Any]:
    """Values close to ``value`` that BSON may or may not store as it: another type, the other
    zero, a neighbour, the same instant in another zone or a few microseconds on."""
    near: list[Any] = [value]
    if isinstance(value, bool) or value is None:
        near += [int(bool(value)), not value, None, 0.0]
    elif isinstance(value, int):
        near += [value + 1, value - 1, -value, float(value), bool(value), str(value)]
    elif isinstance(value, float):
        near += [-value, value * (1 + 2**-52), int(value) if math.isfinite(value) else 0]
    elif isinstance(value, datetime.datetime):
        zone = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
        aware = value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
        near += [aware, aware.astimezone(zone), value.replace(tzinfo=None)]
        near += [value + datetime.timedelta(microseconds=n) for n in (1, 999, 1000, -1)]
    elif isinstance(value, (str, bytes)):
        near += [value + value[:1], value[::-1], value.encode() if isinstance(value, str) else None]
    elif isinstance(value, ObjectId):
        near += [ObjectId(value.binary), str(value), value.binary]
    return near


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, math.nan, -math.nan, math.inf, -math.inf, 5e-324]),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.binary(min_size=12, max_size=12).map(ObjectId),
    st.datetimes(
        min_value=datetime.datetime(1900, 1, 1),
        max_value=datetime.datetime(2200, 1, 1),
        timezones=st.one_of(
            st.none(),
            st.builds(
                datetime.timezone,
                st.timedeltas(
                    min_value=datetime.timedelta(hours=-23), max_value=datetime.timedelta(hours=23)
                ),
            ),
        ),
    ),
)


@given(
    SCALARS.flatmap(
        lambda old: st.tuples(
            st.just(old),
            st.sampled_from(_variants(old)) | st.sampled_from(_variants(old)) | SCALARS,
        )
    )
)
@settings(max_examples=1500, deadline=None)
def test_an_immutable_value_is_told_changed_exactly_when_its_bson_differs(
    pair: tuple[Any, Any],
) -> None:
    """An immutable value is remembered as itself, not as its BSON (an encoding per assignment
    saved): the comparison must agree with BSON's bytes on every pair."""
    before, after = pair
    try:
        stored_after = encode({"k": after})
    except TypeError:  # a neighbour BSON refuses (an int past 64 bits): nothing to compare
        reject()
    session = Session({"k": before}, session_id="s" * 24, is_new=False)
    session["k"] = after
    found, _removed = session.changes()
    assert ("k" in found) == (encode({"k": before}) != stored_after)


def test_an_immutable_value_deleted_is_removed_and_set_back_is_no_change() -> None:
    session = Session({"k": "v", "j": 2}, session_id="s" * 24, is_new=False)
    del session["k"]
    session["j"] = 3
    assert session.changes() == ({"j": 3}, ["k"])
    session["k"] = "v"
    assert session.changes() == ({"j": 3}, [])


@pytest.mark.parametrize("is_new", [True, False], ids=["new", "loaded"])
def test_a_value_handed_out_before_a_save_and_changed_after_it_is_found(is_new: bool) -> None:
    session = Session() if is_new else stored()
    if is_new:
        session["cart"] = {"items": [1]}
    cart = session.get("cart")
    changed, _removed = session.changes()
    now = datetime.datetime.now(datetime.timezone.utc)
    save = NewSession(data=changed, created_at=now, now=now, expires_at=now)
    session.saved(save, SaveResult(session_id=session.id, rotated=True))
    assert session.changes() == ({}, [])
    cart["items"].append(3)
    assert session.changes() == ({"cart": {"items": [1, 3]}}, [])


class Start(SessionMixin, tornado.web.RequestHandler):
    def get(self) -> None:
        self.session.update(n=1, cart={"items": [1]})


class Change(SessionMixin, tornado.web.RequestHandler):
    def get(self, hand_out: str) -> None:
        cart = HAND_OUTS[hand_out](self.session)
        cart["items"].append(2)
        if hand_out == "pop":
            self.session["cart"] = cart


class Read(SessionMixin, tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(json.dumps(self.session.get("cart")))


@pytest.mark.parametrize("hand_out", list(HAND_OUTS))
async def test_a_nested_change_reaches_the_store_through_http(hand_out: str) -> None:
    store = MemorySessionStore()
    handlers = [("/start", Start), ("/change/(.+)", Change), ("/read", Read)]
    settings = SessionSettings(cookie_secure=False)
    async with serve(
        handlers, session_store=store, session_settings=settings, session_clock=Clock()
    ) as server:
        cookie = (await server.fetch("/start")).cookie_value()
        assert cookie is not None
        changed = await server.fetch(f"/change/{hand_out}", cookie=cookie)
        assert changed.code == 200
        cookie = changed.cookie_value() or cookie
        parsed = parse_cookie(cookie)
        assert parsed is not None
        document = store.document(parsed[0])
        assert document is not None
        assert document["data"]["cart"] == {"items": [1, 2]}
        assert json.loads((await server.fetch("/read", cookie=cookie)).body) == {"items": [1, 2]}


class ChangeThenFail(SessionMixin, tornado.web.RequestHandler):
    def get(self, how: str) -> None:
        if how == "regenerate":
            self.session.regenerate()
        self.session["cart"]["items"].append(2)
        raise tornado.web.HTTPError(500)  # nothing is saved


@pytest.mark.parametrize("how", ["change", "regenerate"])
async def test_a_change_in_place_that_is_not_saved_leaves_the_store_as_it_was(how: str) -> None:
    """The memory store shares what it holds with the loaded record: a handler's change to a
    value it got must not reach the store unless the session is saved."""
    store = MemorySessionStore()
    handlers = [("/start", Start), ("/fail/(.+)", ChangeThenFail), ("/read", Read)]
    settings = SessionSettings(cookie_secure=False)
    async with serve(
        handlers, session_store=store, session_settings=settings, session_clock=Clock()
    ) as server:
        cookie = (await server.fetch("/start")).cookie_value()
        assert cookie is not None
        assert (await server.fetch(f"/fail/{how}", cookie=cookie)).code == 500
        parsed = parse_cookie(cookie)
        assert parsed is not None
        document = store.document(parsed[0])
        assert document is not None
        assert document["data"]["cart"] == {"items": [1]}
        assert json.loads((await server.fetch("/read", cookie=cookie)).body) == {"items": [1]}
