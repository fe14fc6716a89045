"""Session stores: where session records live. None of them imports tornado.

Each store is a module (``mongo``, ``memory``, ``cookie``, ``tiered``); ``base`` holds the
:class:`~tornado_mongo_session.stores.base.SessionStore` protocol and the records that cross it.
Import them from :mod:`tornado_mongo_session`.
"""
