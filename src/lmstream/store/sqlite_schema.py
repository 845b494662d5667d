"""The embedded database's schema: its numbered migrations and how they are applied.

The schema evolves through numbered migrations (``m001_initial``, ``m002_…``) in the
manner of simonw/llm: each runs once, in order, inside a transaction, and is recorded
in the ``schema_migrations`` table. Add a migration, never edit one
(``RENAMED_MIGRATIONS`` records a renumbering). Another module that keeps its tables in
the same file (``lmstream.rag``) passes ``migrate`` a list of its own.

``migrate`` reads ``MIGRATIONS`` from this module when it is called, so a test that
patches the list patches it here (``store/sqlite.py`` re-exports the names, for
reading). ``transaction`` is the one way every SQLite writer here (the store, the
document index) makes a write atomic on an autocommit connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from lmstream.store.base import now

__all__ = ["MIGRATIONS", "RENAMED_MIGRATIONS", "migrate", "transaction"]

MIGRATIONS: list[tuple[str, str]] = [
    (
        "m001_initial",
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            profile TEXT,
            model TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX conversations_by_update ON conversations (updated_at DESC, id DESC);
        CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            status TEXT NOT NULL,
            model TEXT,
            generation_id TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            ttft_ms REAL,
            tokens_per_second REAL,
            error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (conversation_id, seq)
        );
        CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';
        """,
    ),
    (
        # The instance whose generation writes a streaming answer (several instances,
        # one database): see Store.interrupt_streaming.
        "m002_streaming_owner",
        """
        ALTER TABLE messages ADD COLUMN instance_id TEXT;
        DROP INDEX messages_streaming;
        CREATE INDEX messages_streaming ON messages (instance_id) WHERE status = 'streaming';
        """,
    ),
    (
        # Who a conversation belongs to (an API key's owner; NULL: made with no keys on),
        # and the stored API keys (store/keys.py).
        "m003_owners_and_keys",
        """
        ALTER TABLE conversations ADD COLUMN owner TEXT;
        CREATE INDEX conversations_by_owner ON conversations (owner, updated_at DESC, id DESC);
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            prefix TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            owner TEXT NOT NULL,
            admin INTEGER NOT NULL DEFAULT 0,
            models TEXT,
            requests_per_minute INTEGER,
            concurrent_streams INTEGER,
            tokens_per_minute INTEGER,
            created_at TEXT NOT NULL,
            expires_at TEXT,
            last_used_at TEXT,
            revoked_at TEXT
        );
        CREATE INDEX api_keys_by_owner ON api_keys (owner);
        """,
    ),
    (
        # A generation's steps: an assistant's tool calls (JSON), the call a tool message
        # answers, and a name (the tool's; a team member's).
        "m004_tool_steps",
        """
        ALTER TABLE messages ADD COLUMN tool_calls TEXT;
        ALTER TABLE messages ADD COLUMN tool_call_id TEXT;
        ALTER TABLE messages ADD COLUMN name TEXT;
        """,
    ),
    (
        # The numbered sources an answer grounded in documents was given (lmstream.rag),
        # as JSON.
        "m005_message_sources",
        """
        ALTER TABLE messages ADD COLUMN sources TEXT;
        """,
    ),
]

# Migrations that were renumbered after some database had applied them under their old
# name: old name -> the name in MIGRATIONS (same script). The keys branch (issue 14)
# shipped its migration as m002 while m002_streaming_owner landed first; a database it
# made holds m001 + m002_owners_and_keys, so it gets m002_streaming_owner and nothing twice.
# Likewise the documents branch (issue 11) shipped m004_message_sources before the tools
# branch's m004_tool_steps landed.
RENAMED_MIGRATIONS: dict[str, str] = {
    "m002_owners_and_keys": "m003_owners_and_keys",
    "m004_message_sources": "m005_message_sources",
}


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _statements(sql: str) -> Iterator[str]:
    """The complete statements of a script (a trigger's inner ``;`` does not split it)."""
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:80]!r}")


def migrate(db: sqlite3.Connection, migrations: Sequence[tuple[str, str]] | None = None) -> list[str]:
    """Apply the migrations not yet recorded; the names of those applied now.

    Another module that keeps its tables in the same file (``lmstream.rag``) passes its
    own list, with names of its own, recorded in the same ``schema_migrations`` table.
    """
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    with transaction(db):
        for old, new in RENAMED_MIGRATIONS.items():
            db.execute("UPDATE schema_migrations SET name = ? WHERE name = ?", (new, old))
    done = {row[0] for row in db.execute("SELECT name FROM schema_migrations")}
    applied: list[str] = []
    for name, sql in MIGRATIONS if migrations is None else migrations:
        if name in done:
            continue
        with transaction(db):  # all of a migration or none of it (DDL included)
            for statement in _statements(sql):
                db.execute(statement)
            db.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", (name, now()))
        applied.append(name)
    return applied
