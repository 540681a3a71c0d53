"""The memory store: an embedded LanceDB database with turns and memory cards, scoped per user.

``MemoryStore(uri)`` opens (or creates) the database at a directory path or any LanceDB URI.
Every read and delete takes the ``user_id`` and filters on it inside the query, so one
person's memories can never come back for another. Cards have a scope: ``user`` (about the
person, seen by every avatar they talk to) or ``avatar`` (history with one avatar only).

Schema versions live in a ``meta`` table; ``SCHEMA_VERSION`` is what this code writes, and
``_migrate`` is where an older database is brought up to date when it is opened.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from memory.embedder import DIMENSIONS, Embedder, shared_embedder

SCHEMA_VERSION = 1
Scope = Literal["user", "avatar"]

_TURNS = pa.schema(
    [
        ("id", pa.string()),
        ("user_id", pa.string()),
        ("avatar_id", pa.string()),
        ("session_id", pa.string()),
        ("role", pa.string()),
        ("text", pa.string()),
        ("started", pa.float64()),
        ("ended", pa.float64()),
        ("interrupted", pa.bool_()),
        ("latency_json", pa.string()),
    ]
)
_CARDS = pa.schema(
    [
        ("id", pa.string()),
        ("user_id", pa.string()),
        ("avatar_id", pa.string()),  # "" for scope "user"
        ("scope", pa.string()),
        ("text", pa.string()),
        ("source_turn_ids", pa.list_(pa.string())),
        ("created", pa.float64()),
        ("updated", pa.float64()),
        ("vector", pa.list_(pa.float32(), DIMENSIONS)),
    ]
)
_META = pa.schema([("key", pa.string()), ("value", pa.string())])


def _quote(value: str) -> str:
    """A SQL string literal for LanceDB filters (ids come from people: escape quotes)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass
class Card:
    """A distilled fact, as found by a search (``score``: cosine similarity)."""

    id: str
    text: str
    scope: str
    avatar_id: str
    source_turn_ids: list[str]
    score: float = 0.0


class MemoryStore:
    """Turns and memory cards in LanceDB.

    Args:
        uri: a directory (created if missing) or a LanceDB URI.
        embedder: sentence embedder (default: the process-wide MiniLM).
    """

    def __init__(self, uri: str, embedder: Embedder | None = None):
        import lancedb

        self._db = lancedb.connect(uri)
        self._embedder = embedder or shared_embedder()
        existing = set(self._db.table_names())
        self.turns = self._open("turns", _TURNS, existing)
        self.cards = self._open("cards", _CARDS, existing)
        self._meta = self._open("meta", _META, existing)
        self._migrate()

    def _open(self, name: str, schema: pa.Schema, existing: set[str]):
        if name in existing:
            return self._db.open_table(name)
        return self._db.create_table(name, schema=schema)

    def _migrate(self) -> None:
        rows = self._meta.search().where("key = 'schema_version'").to_list()
        version = int(rows[0]["value"]) if rows else 0
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"memory database schema {version} is newer than this code ({SCHEMA_VERSION});"
                " upgrade local-avatars"
            )
        if version < SCHEMA_VERSION:  # 0 -> 1: a fresh database, nothing to convert
            self._meta.delete("key = 'schema_version'")
            self._meta.add([{"key": "schema_version", "value": str(SCHEMA_VERSION)}])

    def add_turn(
        self,
        *,
        user_id: str,
        avatar_id: str,
        session_id: str,
        role: str,
        text: str,
        started: float,
        ended: float | None = None,
        interrupted: bool = False,
        latency_json: str = "",
    ) -> str:
        """Store one finished turn as it was spoken; returns its id."""
        turn_id = uuid.uuid4().hex
        self.turns.add(
            [
                {
                    "id": turn_id,
                    "user_id": user_id,
                    "avatar_id": avatar_id,
                    "session_id": session_id,
                    "role": role,
                    "text": text,
                    "started": started,
                    "ended": ended if ended is not None else started,
                    "interrupted": interrupted,
                    "latency_json": latency_json,
                }
            ]
        )
        return turn_id

    def add_card(
        self,
        *,
        user_id: str,
        text: str,
        scope: Scope,
        avatar_id: str = "",
        source_turn_ids: list[str] | None = None,
    ) -> str:
        """Store a memory card; ``avatar_id`` is required for scope ``avatar``."""
        if scope == "avatar" and not avatar_id:
            raise ValueError("an avatar-scoped card needs avatar_id")
        now = time.time()
        card_id = uuid.uuid4().hex
        self.cards.add(
            [
                {
                    "id": card_id,
                    "user_id": user_id,
                    "avatar_id": avatar_id if scope == "avatar" else "",
                    "scope": scope,
                    "text": text,
                    "source_turn_ids": source_turn_ids or [],
                    "created": now,
                    "updated": now,
                    "vector": self._embedder.embed([text])[0],
                }
            ]
        )
        return card_id

    def _visible(self, user_id: str, avatar_id: str) -> str:
        """The filter for what one avatar may recall about one user."""
        return (
            f"user_id = {_quote(user_id)} AND (scope = 'user' OR avatar_id = {_quote(avatar_id)})"
        )

    def search_cards(self, user_id: str, avatar_id: str, query: str, k: int = 5) -> list[Card]:
        """The ``k`` cards most similar to ``query`` that this avatar may see of this user."""
        vector = self._embedder.embed([query])[0]
        rows = (
            self.cards.search(vector)
            .metric("dot")
            .where(self._visible(user_id, avatar_id), prefilter=True)
            .limit(k)
            .to_list()
        )
        return [
            Card(
                id=r["id"],
                text=r["text"],
                scope=r["scope"],
                avatar_id=r["avatar_id"],
                source_turn_ids=list(r["source_turn_ids"]),
                score=1.0 - float(r["_distance"]),
            )
            for r in rows
        ]

    def delete_card(self, user_id: str, card_id: str) -> None:
        """Delete one card (only if it is this user's)."""
        self.cards.delete(f"user_id = {_quote(user_id)} AND id = {_quote(card_id)}")

    def forget_user(self, user_id: str) -> None:
        """Delete everything stored about ``user_id``, in every table."""
        for table in (self.turns, self.cards):
            table.delete(f"user_id = {_quote(user_id)}")

    def count(self, user_id: str) -> dict[str, int]:
        """How many turns and cards are stored for a user."""
        where = f"user_id = {_quote(user_id)}"
        return {"turns": self.turns.count_rows(where), "cards": self.cards.count_rows(where)}
