"""How many streaming flushes per second each store takes: one at a time or batched.

The conversation recorder flushes every streaming answer's text every 0.5 s (or 32
tokens); 10,000 streams are 20,000 flushes a second. Its writer applies them one
after another, which against a database server is one round trip each. This
scenario measures the real stores (``SQLiteStore`` in a temporary directory,
``PostgresStore`` on a real PostgreSQL from ``tests/services.py``): ``ANSWERS``
streaming answers (1 KB of text each), flushed ``ROUNDS`` times, either with
``update_message`` one by one (today's writer) or with one ``update_messages`` call
per round. Client CPU per update is this process (``time.process_time``, which
includes SQLite's worker thread); the PostgreSQL server's is read from ``/proc``.

Run: ``python -m bench store_flushes [--quick]``.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.services import PostgresServer

from bench.procs import cpu_seconds, use_uvloop
from bench.report import print_table
from bench.scenarios import Options
from lmstream.store import Conversation, MessageUpdate, Store, StoredMessage, new_id, now
from lmstream.store.postgres import PostgresStore
from lmstream.store.sqlite import SQLiteStore

NAME = "store_flushes"
TITLE = "Streaming flushes per second per store: one update per call vs one call per round"

ANSWERS = 500
TEXT = "x" * 1024


async def flushes(store: Store, *, rounds: int, batched: bool, server_pid: int | None) -> dict[str, Any]:
    ids: list[str] = []
    for i in range(ANSWERS):
        stamp = now()
        c = Conversation(new_id("conv"), f"c{i}", stamp, stamp)
        await store.create_conversation(c)
        answer = StoredMessage(new_id("msg"), c.id, "assistant", "", "streaming", now(), instance_id="bench")
        await store.add_messages(c.id, [answer])
        ids.append(answer.id)
    cpu0, t0 = time.process_time(), time.perf_counter()
    server0 = cpu_seconds(server_pid) if server_pid else 0.0
    for n in range(rounds):
        update = MessageUpdate(TEXT[: 64 + n], "streaming")
        if batched:
            await store.update_messages([(i, update) for i in ids])
        else:
            for i in ids:
                await store.update_message(i, update)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    server = (cpu_seconds(server_pid) - server0) if server_pid else 0.0
    updates = rounds * ANSWERS
    return {
        "updates_per_s": round(updates / wall),
        "client_cpu_us_per_update": round(cpu / updates * 1e6, 1),
        "server_cpu_us_per_update": round(server / updates * 1e6, 1) if server_pid else None,
        "updates": updates,
    }


async def _run(options: Options) -> dict[str, Any]:
    rounds = 2 if options.quick else 10
    results: dict[str, Any] = {}
    with PostgresServer() as pg, tempfile.TemporaryDirectory(prefix="lmflush-") as tmp:
        assert pg.process is not None
        for batched in (False, True):
            mode = "batched" if batched else "one by one"
            sqlite = SQLiteStore(Path(tmp) / f"{mode}.db")
            await sqlite.open()
            results[f"sqlite, {mode}"] = await flushes(sqlite, rounds=rounds, batched=batched, server_pid=None)
            await sqlite.aclose()
            postgres = PostgresStore(pg.create_database(f"flush_{int(batched)}"))
            await postgres.open()
            results[f"postgres, {mode}"] = await flushes(
                postgres, rounds=rounds, batched=batched, server_pid=pg.process.pid
            )
            await postgres.aclose()
    print_table(
        f"{ANSWERS} streaming answers, {rounds} flushes each",
        ["store, writes", "updates/s", "client CPU µs/update", "server CPU µs/update"],
        [[k, v["updates_per_s"], v["client_cpu_us_per_update"], v["server_cpu_us_per_update"]] for k, v in results.items()],
    )
    return {"answers": ANSWERS, "rounds": rounds, "results": results}


def run(options: Options) -> dict[str, Any]:
    use_uvloop()
    return asyncio.run(_run(options))
