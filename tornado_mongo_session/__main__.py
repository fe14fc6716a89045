"""``python -m tornado_mongo_session``: the ``tornado-session`` command line."""

from __future__ import annotations

from tornado_mongo_session.cli import main

raise SystemExit(main())
