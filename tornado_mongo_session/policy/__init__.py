"""The save policy: what one request must write, decided without I/O and without tornado.

:func:`plan_save` takes a :class:`SaveContext` (what the request loaded, the session as the
handler left it, the clock's now, the rotator, the settings as :class:`SaveRules`, whether
headers can still be set) and returns an immutable :class:`SavePlan`, or ``None`` when there
is nothing to do. Each decision is a named function (``should_rotate``, ``should_touch``, …),
so it can be read, and tested, on its own; the mixin only carries the plan out. The most common
request (a loaded session, nothing changed, nothing due) is told first and cheaper, by
:func:`nothing_due`, without building a context.

By job: ``_records`` (the rules, the context and the plan), ``_verdict`` (what a retired token
says about its request, judged at load), ``_decisions`` (the named decisions), ``_plan`` (the
plans of a new session, an update, and a failed response).
"""

from __future__ import annotations

from tornado_mongo_session.policy._decisions import nothing_due
from tornado_mongo_session.policy._plan import plan_after_error, plan_save
from tornado_mongo_session.policy._records import SaveContext, SavePlan, SaveRules
from tornado_mongo_session.policy._verdict import SLOW_REQUEST, TokenVerdict, arrival, judge_token

__all__ = [
    "SLOW_REQUEST",
    "SaveContext",
    "SavePlan",
    "SaveRules",
    "TokenVerdict",
    "arrival",
    "judge_token",
    "nothing_due",
    "plan_after_error",
    "plan_save",
]
