"""The PostgreSQL store's SQL: its numbered migrations and every statement it runs.

Kept apart from the driver code (``store/postgres.py``) so the statements can be read
in one place, and so ``bench/scenarios/store_drivers.py`` runs exactly these
statements through each candidate driver. Parameters are positional ``%s``
(``numbered()`` turns them into ``$1, $2, …`` for drivers that want that).

The schema is SQLite's (``store/sqlite_schema.py``) in PostgreSQL's types — ``timestamptz``
for times, ``double precision`` for rates — plus one thing several writers need:

* ``conversations.last_seq`` numbers a conversation's messages. ``add_messages`` bumps
  it with ``UPDATE … RETURNING``, which takes the conversation's row lock and reads
  the latest committed value, so two instances appending to one conversation at once
  get consecutive, distinct ``seq`` ranges (``MAX(seq) + 1`` would read a snapshot and
  collide).
* ``messages.instance_id`` (m002) is the instance whose generation is writing a
  ``streaming`` answer, so a survivor can mark a dead instance's answers interrupted
  without touching the live ones of others.
* ``messages.tool_calls`` (JSON text), ``tool_call_id`` and ``name`` (m004) keep a
  generation's tool steps and a team member's name; an update that leaves them NULL
  keeps what the row has.
* ``messages.sources`` (m005) is the JSON of an answer's numbered sources; an update
  that carries none leaves them (``COALESCE``).

m003 adds what API keys need (``store/keys.py``): ``conversations.owner`` and the
``api_keys`` table, SQLite's columns with ``boolean`` for ``admin`` and ``text[]`` for
``models`` (NULL: every model).

Add a migration, never edit one: a database records the names it has applied.
"""

from __future__ import annotations

import re

from lmstream.store import rows

__all__ = [
    "ADD_MESSAGE",
    "BUMP_SEQ",
    "CREATE_CONVERSATION",
    "CREATE_KEY",
    "DELETE_CONVERSATION",
    "FIND_KEY",
    "GET_CONVERSATION",
    "GET_KEY",
    "HAS_KEYS",
    "INTERRUPT_ALL",
    "INTERRUPT_INSTANCE",
    "INTERRUPT_UNLESS_ALIVE",
    "KEY_COLUMNS",
    "LIST_KEYS",
    "LIST_MESSAGES",
    "LIST_OWNER_KEYS",
    "LOCK_CONVERSATION_MESSAGES",
    "LOCK_MESSAGES",
    "MESSAGE_COLUMNS",
    "MIGRATIONS",
    "MIGRATION_LOCK",
    "REVOKE_KEY",
    "TOUCH_CONVERSATIONS",
    "TOUCH_KEY",
    "UPDATE_CONVERSATION",
    "UPDATE_MESSAGE",
    "UPDATE_MESSAGES",
    "list_conversations_sql",
    "numbered",
]

MIGRATIONS: list[tuple[str, str]] = [
    (
        "m001_initial",
        """
        CREATE TABLE conversations (
            id text PRIMARY KEY,
            title text NOT NULL DEFAULT '',
            profile text,
            model text,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            last_seq integer NOT NULL DEFAULT 0
        );
        CREATE INDEX conversations_by_update ON conversations (updated_at DESC, id DESC);
        CREATE TABLE messages (
            id text PRIMARY KEY,
            conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            seq integer NOT NULL,
            role text NOT NULL,
            content text NOT NULL,
            status text NOT NULL,
            model text,
            generation_id text,
            prompt_tokens integer,
            completion_tokens integer,
            ttft_ms double precision,
            tokens_per_second double precision,
            error text,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            UNIQUE (conversation_id, seq)
        );
        CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';
        """,
    ),
    (
        "m002_streaming_owner",
        """
        ALTER TABLE messages ADD COLUMN instance_id text;
        DROP INDEX messages_streaming;
        CREATE INDEX messages_streaming ON messages (instance_id) WHERE status = 'streaming';
        """,
    ),
    (
        # Who a conversation belongs to (an API key's owner; NULL: made with no keys on),
        # and the stored API keys (store/keys.py): SQLite's m003_owners_and_keys.
        "m003_owners_and_keys",
        """
        ALTER TABLE conversations ADD COLUMN owner text;
        CREATE INDEX conversations_by_owner ON conversations (owner, updated_at DESC, id DESC);
        CREATE TABLE api_keys (
            id text PRIMARY KEY,
            prefix text NOT NULL,
            hash text NOT NULL UNIQUE,
            name text NOT NULL,
            owner text NOT NULL,
            admin boolean NOT NULL DEFAULT false,
            models text[],
            requests_per_minute integer,
            concurrent_streams integer,
            tokens_per_minute integer,
            created_at timestamptz NOT NULL,
            expires_at timestamptz,
            last_used_at timestamptz,
            revoked_at timestamptz
        );
        CREATE INDEX api_keys_by_owner ON api_keys (owner);
        """,
    ),
    (
        # A generation's steps: an assistant's tool calls (JSON), the call a tool message
        # answers, and a name (the tool's; a team member's).
        "m004_tool_steps",
        """
        ALTER TABLE messages ADD COLUMN tool_calls text;
        ALTER TABLE messages ADD COLUMN tool_call_id text;
        ALTER TABLE messages ADD COLUMN name text;
        """,
    ),
    (
        # SQLite's m005: the numbered sources of an answer grounded in documents, JSON text.
        # (IF NOT EXISTS: the documents branch shipped it as m004_message_sources.)
        "m005_message_sources",
        """
        ALTER TABLE messages ADD COLUMN IF NOT EXISTS sources text;
        """,
    ),
]

# The pg_advisory_xact_lock key of "migrating lmstream's schema" (any fixed bigint will
# do): instances that start at once take turns, and the later ones find nothing to do.
MIGRATION_LOCK = int.from_bytes(b"lmstream", "big") >> 1

MESSAGE_COLUMNS = rows.MESSAGE_COLUMNS  # the order of rows.message_values

_CONVERSATION = """
    SELECT c.id, c.title, c.created_at, c.updated_at, c.model, c.profile,
           (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count, c.owner
    FROM conversations c
"""

CREATE_CONVERSATION = (
    "INSERT INTO conversations (id, title, profile, model, created_at, updated_at, owner) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
GET_CONVERSATION = _CONVERSATION + " WHERE c.id = %s"

# title, model (NULL: leave it), id, only_untitled
UPDATE_CONVERSATION = (
    "UPDATE conversations SET title = COALESCE(%s, title), model = COALESCE(%s, model) "
    "WHERE id = %s AND (NOT %s OR title = '')"
)
DELETE_CONVERSATION = "DELETE FROM conversations WHERE id = %s"  # after LOCK_CONVERSATION_MESSAGES

# how many messages, updated_at, conversation id → the conversation's new last seq
BUMP_SEQ = "UPDATE conversations SET last_seq = last_seq + %s, updated_at = %s WHERE id = %s RETURNING last_seq"
ADD_MESSAGE = (
    f"INSERT INTO messages (seq, updated_at, {MESSAGE_COLUMNS}) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)

# One statement, so one round trip for the hot path (a flush while an answer streams).
UPDATE_MESSAGE = """
    WITH changed AS (
        UPDATE messages SET content = %s, status = %s, prompt_tokens = %s, completion_tokens = %s,
               ttft_ms = %s, tokens_per_second = %s, error = %s, tool_calls = COALESCE(%s, tool_calls),
               name = COALESCE(%s, name), sources = COALESCE(%s, sources), updated_at = %s
        WHERE id = %s
        RETURNING conversation_id, updated_at
    )
    UPDATE conversations c SET updated_at = changed.updated_at
    FROM changed WHERE c.id = changed.conversation_id
"""
# Many flushes in one transaction. Rows are locked in one order everywhere — messages
# in id order, then their conversations in id order — so writers that touch the same
# rows (two instances, a delete while an answer streams) wait for each other instead
# of deadlocking.
LOCK_MESSAGES = "SELECT conversation_id FROM messages WHERE id = ANY (%s) ORDER BY id FOR UPDATE"
UPDATE_MESSAGES = """
    UPDATE messages m SET content = u.content, status = u.status, prompt_tokens = u.prompt_tokens,
           completion_tokens = u.completion_tokens, ttft_ms = u.ttft_ms,
           tokens_per_second = u.tokens_per_second, error = u.error,
           tool_calls = COALESCE(u.tool_calls, m.tool_calls), name = COALESCE(u.name, m.name),
           sources = COALESCE(u.sources, m.sources), updated_at = %s
    FROM unnest(%s::text[], %s::text[], %s::text[], %s::integer[], %s::integer[],
                %s::double precision[], %s::double precision[], %s::text[], %s::text[], %s::text[],
                %s::text[])
         AS u (id, content, status, prompt_tokens, completion_tokens, ttft_ms, tokens_per_second, error,
               tool_calls, name, sources)
    WHERE m.id = u.id
"""
TOUCH_CONVERSATIONS = """
    UPDATE conversations SET updated_at = %s
    WHERE id IN (SELECT id FROM conversations WHERE id = ANY (%s) ORDER BY id FOR UPDATE)
"""
LOCK_CONVERSATION_MESSAGES = "SELECT 1 FROM messages WHERE conversation_id = %s ORDER BY id FOR UPDATE"
LIST_MESSAGES = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = %s ORDER BY seq"

# The rows are locked in id order, so two survivors sweeping the same dead instance
# wait for each other instead of deadlocking.
_INTERRUPT = """
    UPDATE messages SET status = 'interrupted', updated_at = %s
    WHERE id IN (SELECT id FROM messages WHERE status = 'streaming' {} ORDER BY id FOR UPDATE)
"""
INTERRUPT_ALL = _INTERRUPT.format("")
INTERRUPT_INSTANCE = _INTERRUPT.format("AND instance_id = %s")
INTERRUPT_UNLESS_ALIVE = _INTERRUPT.format("AND (instance_id IS NULL OR NOT instance_id = ANY (%s))")


# API keys (store/keys.py): one statement each.
KEY_COLUMNS = rows.KEY_COLUMNS  # the order of rows.key_values
CREATE_KEY = f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
FIND_KEY = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = %s"
GET_KEY = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = %s"
LIST_KEYS = f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at DESC, id DESC"
LIST_OWNER_KEYS = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE owner = %s ORDER BY created_at DESC, id DESC"
# revoked_at, id: the row as it is now, revoked before or just now (COALESCE keeps the first time)
REVOKE_KEY = (
    f"UPDATE api_keys SET revoked_at = COALESCE(revoked_at, %s) WHERE id = %s RETURNING {KEY_COLUMNS}"
)
TOUCH_KEY = "UPDATE api_keys SET last_used_at = %s WHERE id = %s"
HAS_KEYS = "SELECT EXISTS (SELECT 1 FROM api_keys)"


def list_conversations_sql(*, after: bool, query: bool, owner: bool = False) -> str:
    """Newest first; ``after``: past a cursor ``(updated_at, id)``; ``query``: title
    substring; ``owner``: only that owner's (its parameter comes first)."""
    where = []
    if owner:
        where.append("c.owner = %s")
    if after:
        where.append("(c.updated_at, c.id) < (%s, %s)")
    if query:
        # A literal substring in any case: no pattern, so nothing to escape or to blow up.
        where.append("strpos(lower(c.title), lower(%s)) > 0")
    sql = _CONVERSATION + (" WHERE " + " AND ".join(where) if where else "")
    return sql + " ORDER BY c.updated_at DESC, c.id DESC LIMIT %s"


def numbered(sql: str) -> str:
    """``%s`` placeholders as ``$1, $2, …`` (asyncpg's, and the server's own)."""
    counter = iter(range(1, 1_000))
    return re.sub(r"%s", lambda _: f"${next(counter)}", sql)
