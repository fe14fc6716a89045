"""The test server and fixtures themselves: real round trips with both drivers, and a server
that is stopped and restarted on the same data."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import mongo_server
import pymongo
import pytest
from mongo_helpers import CommandLog, close_async_client, make_async_client
from pymongo.database import Database
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError


async def test_insert_find_round_trip(
    collection: Any, command_log: CommandLog, sync_db: Database[Mapping[str, Any]]
) -> None:
    await collection.insert_one({"_id": "s1", "data": {"n": 1}})
    found = await collection.find_one({"_id": "s1"})

    assert found == {"_id": "s1", "data": {"n": 1}}
    assert command_log.names() == ["insert", "find"]
    assert command_log.commands("find")[0]["filter"] == {"_id": "s1"}
    assert sync_db["sessions"].find_one({"_id": "s1"}) == {"_id": "s1", "data": {"n": 1}}


async def test_command_log_counts_and_clears(collection: Any, command_log: CommandLog) -> None:
    await collection.insert_one({"_id": "a"})
    await collection.update_one({"_id": "a"}, {"$set": {"x": 1}})
    assert command_log.count() == 2
    assert command_log.count("update") == 1

    command_log.clear()
    assert command_log.names() == []
    await collection.find_one({"_id": "missing"})
    assert command_log.names() == ["find"]


async def test_command_log_leaves_out_handshake(mongo_client: Any, command_log: CommandLog) -> None:
    await mongo_client.admin.command("ping")
    await mongo_client.admin.command("hello")
    assert command_log.names() == []


def test_db_name_is_unique_and_fresh(
    db_name: str, sync_db: Database[Mapping[str, Any]], sync_client: pymongo.MongoClient[Any]
) -> None:
    assert re.fullmatch(r"tms_test_[0-9a-f]{12}", db_name)
    assert sync_db.name == db_name
    assert db_name not in sync_client.list_database_names()


async def test_client_fails_while_server_is_stopped_and_recovers(driver: str) -> None:
    """Stop a private server: operations fail fast; restart it: data still there, and the
    same client recovers."""
    docs_ns = ("tms_fault", "docs")
    server = mongo_server.PrivateServer()
    try:
        await asyncio.to_thread(server.start)
        port_before = server.port
        client = make_async_client(driver, server.url, serverSelectionTimeoutMS=1000)
        try:
            docs = client[docs_ns[0]][docs_ns[1]]
            await docs.insert_one({"_id": 1, "v": "kept"})

            await asyncio.to_thread(server.stop)
            with pytest.raises((ServerSelectionTimeoutError, AutoReconnect)):
                await docs.find_one({"_id": 1})

            await asyncio.to_thread(server.start)
            assert server.port == port_before
            assert await docs.find_one({"_id": 1}) == {"_id": 1, "v": "kept"}
        finally:
            await close_async_client(client)
    finally:
        await asyncio.to_thread(server.close)


def test_private_server_is_not_recorded(private_server: mongo_server.PrivateServer) -> None:
    state_before = mongo_server.read_state()
    with pymongo.MongoClient(private_server.url, serverSelectionTimeoutMS=5000) as client:
        client["tms_private"]["c"].insert_one({"_id": 1})
        assert client["tms_private"]["c"].count_documents({}) == 1
    assert mongo_server.read_state() == state_before
    assert private_server.running
