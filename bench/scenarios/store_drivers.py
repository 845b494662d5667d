"""psycopg 3 (+ psycopg_pool) against asyncpg on the PostgreSQL store's own workload.

One real PostgreSQL (``tests/services.py``: Debian's server in a temporary directory,
``fsync=off`` so the disk does not hide the drivers; ``--durable`` turns it on), a
fresh database per driver and round, the drivers alternated ``rounds`` times. The
workload is what the conversation recorder and the REST routes do, through
``bench/pg_drivers.py`` (the store's statements, each driver's idiomatic calls):

  one turn = [create a conversation (every 4th turn; the others continue one)]
             + add the user's message and the streaming answer (one transaction)
             + 8 flushes of the growing answer (up to ~2 KB) + the final update
             + list the newest 20 conversations + a title search + read the messages

Phases: ``serial`` — one operation at a time, as the recorder's single write queue
applies them; ``c16`` — 16 turns at once (several instances, REST readers). Each
reports operations per second, the client's CPU per operation (this process:
``time.process_time``) and the server's (the postmaster's tree, ``/proc``).

``outage``: the server is stopped under a warm pool for 5 s: how long an operation
takes to fail while it is down (one every 0.1 s), and how long after the server is
back the first operation succeeds (operations retried back to back).

Run: ``python -m bench store_drivers [--rounds N] [--quick]``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
import time
from typing import Any

from tests.services import PostgresServer

from bench.pg_drivers import DRIVERS, Driver
from bench.procs import cpu_seconds, use_uvloop
from bench.report import print_table
from bench.scenarios import Options
from lmstream.store import Conversation, MessageUpdate, StoredMessage, new_id, now

NAME = "store_drivers"
TITLE = "PostgreSQL store drivers: psycopg 3 + psycopg_pool vs asyncpg (the store's workload)"

FLUSHES = 8
ANSWER = ("All work and no play makes the stream a dull stream. " * 40)[:2048]
WORDS = ["rust", "python", "paris", "stream", "redis", "tokens", "weather", "lists"]
POOL_SIZE = 16
OUTAGE_S = 5.0


async def turn(db: Driver, conversations: list[str], rng: random.Random) -> int:
    """One user turn and the reads around it; the number of store operations."""
    ops = 0
    if not conversations or rng.random() < 0.25:
        stamp = now()
        c = Conversation(new_id("conv"), f"{rng.choice(WORDS)} question {len(conversations)}", stamp, stamp)
        await db.create(c)
        conversations.append(c.id)
        ops += 1
    conversation_id = rng.choice(conversations)
    answer_id = new_id("msg")
    user = StoredMessage(new_id("msg"), conversation_id, "user", "tell me about " + rng.choice(WORDS), "complete", now())
    answer = StoredMessage(
        answer_id, conversation_id, "assistant", "", "streaming", now(), model="m", generation_id=new_id("gen"),
        instance_id="bench",
    )  # fmt: skip
    await db.add(conversation_id, [user, answer])
    for flush in range(1, FLUSHES + 1):
        await db.update(answer_id, MessageUpdate(ANSWER[: len(ANSWER) * flush // (FLUSHES + 1)], "streaming"))
    await db.update(
        answer_id,
        MessageUpdate(ANSWER, "complete", prompt_tokens=12, completion_tokens=400, ttft_ms=80.0, tokens_per_second=30.0),
    )
    await db.page(20, None)
    await db.page(20, rng.choice(WORDS))
    await db.messages(conversation_id)
    return ops + 1 + FLUSHES + 1 + 3


async def run_phase(pg: PostgresServer, driver: str, *, turns: int, concurrency: int, seed: int) -> dict[str, float]:
    db: Driver = DRIVERS[driver]()
    database = f"bench_{driver}_{seed}"
    pg.drop_database(database)
    url = pg.create_database(database)
    pg.psql(open_schema_sql(), database)
    await db.open(url, POOL_SIZE)
    rng = random.Random(seed)
    for _ in range(10):  # warm up: connections, prepared statements
        await turn(db, [], rng)
    done = 0
    latencies: list[float] = []

    async def worker(count: int) -> None:
        nonlocal done
        conversations: list[str] = []  # one user's: a conversation has one turn at a time
        for _ in range(count):
            t0 = time.perf_counter()
            ops = await turn(db, conversations, rng)
            latencies.append(time.perf_counter() - t0)
            done += ops

    cpu0, server0, t0 = time.process_time(), cpu_seconds(pg_pid(pg)), time.perf_counter()
    await asyncio.gather(*(worker(turns // concurrency) for _ in range(concurrency)))
    wall, cpu, server = time.perf_counter() - t0, time.process_time() - cpu0, cpu_seconds(pg_pid(pg)) - server0
    await db.close()
    pg.drop_database(database)
    return {"ops": done, "wall_s": wall, "client_cpu_s": cpu, "server_cpu_s": server, "turn_p50_ms": statistics.median(latencies) * 1000}


async def outage(pg: PostgresServer, driver: str) -> dict[str, Any]:
    db: Driver = DRIVERS[driver]()
    database = f"outage_{driver}"
    pg.drop_database(database)
    url = pg.create_database(database)
    pg.psql(open_schema_sql(), database)
    await db.open(url, 4)
    await db.page(1, None)
    pg.stop()
    failures: list[float] = []
    errors: set[str] = set()
    down = time.perf_counter()
    while time.perf_counter() - down < OUTAGE_S:  # operations while the server is down
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(db.page(1, None), 30)
        except Exception as exc:
            errors.add(f"{type(exc).__name__}: {str(exc).splitlines()[0][:60] if str(exc) else ''}")
        failures.append(time.perf_counter() - t0)
        await asyncio.sleep(0.1)  # pacing of the probe, not a wait for a signal
    pg.start()
    back = time.perf_counter()
    attempts = 0
    recovered: float | None = None
    while time.perf_counter() - back < 60:
        attempts += 1
        try:
            await asyncio.wait_for(db.page(1, None), 30)
        except Exception as exc:
            errors.add(f"{type(exc).__name__}: {str(exc).splitlines()[0][:60] if str(exc) else ''}")
            continue
        recovered = time.perf_counter() - back
        break
    await db.close()
    pg.drop_database(database)
    return {
        "fail_p50_s": round(statistics.median(failures), 3),
        "fail_max_s": round(max(failures), 3),
        "recovered_after_s": None if recovered is None else round(recovered, 3),
        "attempts": attempts,
        "errors": sorted(errors),
    }


def pg_pid(pg: PostgresServer) -> int:
    assert pg.process is not None
    return pg.process.pid


def open_schema_sql() -> str:
    from lmstream.store.postgres_sql import MIGRATIONS

    return "\n".join(script for _, script in MIGRATIONS)


def run(options: Options) -> dict[str, Any]:
    use_uvloop()
    # The pools log every failed reconnect during the outage; the table says what happened.
    for name in ("asyncpg", "asyncpg.pool", "psycopg", "psycopg.pool"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return asyncio.run(_run(options))


async def _run(options: Options, *, durable: bool = False) -> dict[str, Any]:
    turns = 40 if options.quick else 400
    phases = {"serial": 1, "c16": 16}
    totals: dict[tuple[str, str], dict[str, float]] = {}
    with PostgresServer(durable=durable) as pg:
        for round_ in range(options.rounds):
            for phase, concurrency in phases.items():
                order = list(DRIVERS) if round_ % 2 == 0 else list(reversed(DRIVERS))
                for driver in order:
                    r = await run_phase(pg, driver, turns=turns, concurrency=concurrency, seed=round_)
                    total = totals.setdefault((phase, driver), {})
                    for key, value in r.items():
                        total.setdefault(key, 0.0)
                        total[key] += value
                    print(f"  round {round_ + 1} {phase:6} {driver:8} {r['ops'] / r['wall_s']:8.0f} ops/s", flush=True)
        outages = {driver: await outage(pg, driver) for driver in DRIVERS}
    rows = []
    data: dict[str, Any] = {"phases": {}, "outage": outages, "turns": turns, "pool_size": POOL_SIZE, "durable": durable}
    for (phase, driver), t in totals.items():
        row = {
            "ops_per_s": round(t["ops"] / t["wall_s"]),
            "client_cpu_us_per_op": round(t["client_cpu_s"] / t["ops"] * 1e6, 1),
            "server_cpu_us_per_op": round(t["server_cpu_s"] / t["ops"] * 1e6, 1),
            "turn_p50_ms": round(t["turn_p50_ms"] / options.rounds, 2),
            "ops": int(t["ops"]),
        }
        data["phases"].setdefault(phase, {})[driver] = row
        rows.append([phase, driver, *row.values()])
    print_table(
        "store workload (per operation)",
        ["phase", "driver", "ops/s", "client CPU µs/op", "server CPU µs/op", "turn p50 ms", "ops"],
        rows,
    )
    print_table(
        "server stopped under a warm pool",
        ["driver", "fails after p50 (s)", "max (s)", "first success after restart (s)", "attempts", "errors"],
        [
            [d, o["fail_p50_s"], o["fail_max_s"], o["recovered_after_s"], o["attempts"], ", ".join(o["errors"])]
            for d, o in outages.items()
        ],
    )
    return data
