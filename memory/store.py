"""The memory store: an embedded LanceDB database of turns, recall chunks and memory cards.

``MemoryStore(uri)`` opens (or creates) the database at a directory path or any LanceDB URI
(``s3://...`` works the same way). Every read and delete takes the ``user_id`` and filters on
it inside the query, so one person's memories can never come back for another.

Tables:
    turns   every finished turn as it was spoken (interrupted replies truncated and flagged),
            with the turn's latency breakdown
    chunks  3-6 consecutive turns of one conversation, embedded, for "what did we talk about"
    cards   short distilled facts, embedded. Scope ``user``: about the person, seen by every
            avatar they talk to. Scope ``avatar``: shared history with one avatar only. A card
            may have a ``key`` (``"name"``, ``"pet:dog"``, ``"likes:jazz"``): a newer card with
            the same key replaces the older one, which is how a changed fact is updated.
    meta    ``schema_version``

Schema versions: ``SCHEMA_VERSION`` is what this code writes; ``_migrate`` brings an older
database up to date when it is opened (1 -> 2 added ``cards.key`` and the ``chunks`` table).
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pyarrow as pa
from lancedb.query import LanceVectorQueryBuilder
from loguru import logger

from memory.embedder import DIMENSIONS, Embedder

SCHEMA_VERSION = 2
MIN_FREE_BYTES = 64 * 1024 * 1024
"""Below this much free disk, memory health turns red before writes start failing."""
Scope = Literal["user", "avatar"]

DUPLICATE_SIMILARITY = 0.9
"""Two keyless cards this similar (cosine) say the same thing: the newer one replaces the
older. Measured on MiniLM: paraphrases of one fact score 0.90-0.97, different facts about the
same thing ("likes jazz" / "likes jazz and blues") ~0.85."""

REFINE_FACTOR = 30
"""Once a table has an IVF-PQ index, re-rank 30x the candidates on the full vectors. At 100k
cards the top-1 matched the exact search for ~50% of queries without it, 94-100% at x10 and
99-100% at x30, for +0-3 ms (bench/results/memory_retrieval.md; nprobes made no difference:
the loss is PQ's). Flat searches are exact and ignore it."""

_VECTOR = pa.list_(pa.float32(), DIMENSIONS)
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
_CHUNKS = pa.schema(
    [
        ("id", pa.string()),
        ("user_id", pa.string()),
        ("avatar_id", pa.string()),
        ("session_id", pa.string()),
        ("turn_ids", pa.list_(pa.string())),
        ("text", pa.string()),
        ("started", pa.float64()),
        ("ended", pa.float64()),
        ("vector", _VECTOR),
    ]
)
_CARDS = pa.schema(
    [
        ("id", pa.string()),
        ("user_id", pa.string()),
        ("avatar_id", pa.string()),  # "" for scope "user"
        ("scope", pa.string()),
        ("key", pa.string()),  # "" when the card has no slot (then similarity dedupes)
        ("text", pa.string()),
        ("source_turn_ids", pa.list_(pa.string())),
        ("created", pa.float64()),
        ("updated", pa.float64()),
        ("vector", _VECTOR),
    ]
)
_META = pa.schema([("key", pa.string()), ("value", pa.string())])


def _quote(value: str) -> str:
    """A SQL string literal for LanceDB filters (ids come from people: escape quotes)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass
class Turn:
    """One stored turn."""

    id: str
    session_id: str
    avatar_id: str
    role: str
    text: str
    started: float
    ended: float
    interrupted: bool = False
    latency_json: str = ""


@dataclass
class Card:
    """A distilled fact (``score``: cosine similarity to the query, when searched)."""

    id: str
    text: str
    scope: str
    avatar_id: str
    key: str
    source_turn_ids: list[str]
    created: float = 0.0
    updated: float = 0.0
    score: float = 0.0


@dataclass
class Chunk:
    """A few consecutive turns of one conversation."""

    id: str
    session_id: str
    avatar_id: str
    text: str
    turn_ids: list[str]
    started: float
    ended: float
    score: float = 0.0


@dataclass
class CardChange:
    """What ``upsert_card`` did: ``added``, ``replaced`` (a changed fact) or ``merged``."""

    action: Literal["added", "replaced", "merged"]
    card_id: str
    old_text: str = ""


@dataclass
class Conversation:
    """One session with one avatar, summarized for listing."""

    session_id: str
    avatar_id: str
    started: float
    ended: float
    turns: int
    preview: str = ""
    interrupted: int = 0


def _card(row: dict, score: float = 0.0) -> Card:
    return Card(
        id=row["id"],
        text=row["text"],
        scope=row["scope"],
        avatar_id=row["avatar_id"],
        key=row.get("key") or "",
        source_turn_ids=list(row["source_turn_ids"] or []),
        created=row["created"],
        updated=row["updated"],
        score=score,
    )


def _turn(row: dict) -> Turn:
    return Turn(
        id=row["id"],
        session_id=row["session_id"],
        avatar_id=row["avatar_id"],
        role=row["role"],
        text=row["text"],
        started=row["started"],
        ended=row["ended"],
        interrupted=bool(row["interrupted"]),
        latency_json=row["latency_json"] or "",
    )


def _chunk(row: dict, score: float = 0.0) -> Chunk:
    return Chunk(
        id=row["id"],
        session_id=row["session_id"],
        avatar_id=row["avatar_id"],
        text=row["text"],
        turn_ids=list(row["turn_ids"] or []),
        started=row["started"],
        ended=row["ended"],
        score=score,
    )


def _card_avatar(scope: str, avatar_id: str) -> str:
    """The ``avatar_id`` a card is stored with: its avatar's for scope ``avatar``, else ''."""
    if scope == "avatar" and not avatar_id:
        raise ValueError("an avatar-scoped card needs avatar_id")
    return avatar_id if scope == "avatar" else ""


def _new_card(
    user_id: str,
    text: str,
    scope: str,
    avatar_id: str,
    key: str,
    source_turn_ids: list[str] | None,
    vector: np.ndarray,
) -> dict:
    """A fresh ``cards`` row."""
    now = time.time()
    return {
        "id": uuid.uuid4().hex,
        "user_id": user_id,
        "avatar_id": _card_avatar(scope, avatar_id),
        "scope": scope,
        "key": key,
        "text": text,
        "source_turn_ids": source_turn_ids or [],
        "created": now,
        "updated": now,
        "vector": vector,
    }


def _nearest(table: Any, vector: np.ndarray) -> LanceVectorQueryBuilder:
    """A vector search on ``table`` by inner product (unit vectors: cosine similarity)."""
    return cast(LanceVectorQueryBuilder, table.search(vector)).distance_type("dot")


def chunk_text(turns: list[Turn], avatar_name: str = "Assistant") -> str:
    """How a chunk reads (and is embedded): one ``Speaker: words`` line per turn."""
    return "\n".join(
        f"{'User' if t.role == 'user' else avatar_name}: {t.text}" for t in turns if t.text
    )


class MemoryStore:
    """Turns, recall chunks and memory cards in LanceDB.

    Methods are blocking (LanceDB and the embedder are); call them from a worker thread on an
    event loop. Writes are serialized by a lock so a read-modify-write (``upsert_card``) can't
    interleave with another.

    Args:
        uri: a directory (created if missing) or a LanceDB URI.
        embedder: the sentence embedder (the process's MiniLM, from the ``Runtime``).
    """

    def __init__(self, uri: str, embedder: Embedder):
        import lancedb

        self.uri = uri
        # Every read looks for the latest version: other processes (the room's workers) write
        # and forget in the same database, and an old version would still show what they
        # forgot, or point at files their compaction removed.
        self._db = lancedb.connect(uri, read_consistency_interval=timedelta(0))
        self._embedder = embedder
        self._write_lock = threading.Lock()
        self._versions: dict[str, int] = {}
        self.write_failure: str | None = None
        """Why the last write failed (``note_write``), until one succeeds again."""
        existing = set(self._db.list_tables().tables)
        self._meta = self._open("meta", _META, existing)
        self.turns = self._open("turns", _TURNS, existing)
        self.cards = self._open("cards", _CARDS, existing)
        self.chunks = self._open("chunks", _CHUNKS, existing)
        self._migrate()

    def _open(self, name: str, schema: pa.Schema, existing: set[str]):
        if name in existing:
            return self._db.open_table(name)
        try:
            return self._db.create_table(name, schema=schema, exist_ok=True)
        except ValueError:  # another process (a room worker) made it a moment ago
            return self._db.open_table(name)

    def schema_version(self) -> int:
        """The version the database on disk is at."""
        rows = self._meta.search().where("key = 'schema_version'").to_list()
        return int(rows[0]["value"]) if rows else 0

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the memory database at {self.uri} has schema {version}, newer than this code "
                f"({SCHEMA_VERSION}): upgrade local-avatars, or point AVATARS_MEMORY_URI elsewhere"
            )
        if version == SCHEMA_VERSION:
            return
        if version >= 1 and "key" not in self.cards.schema.names:
            # 1 -> 2: cards gained a dedupe key; chunks is a new table (created by _open).
            self.cards.add_columns({"key": "CAST('' AS STRING)"})
        self._meta.delete("key = 'schema_version'")
        self._meta.add([{"key": "schema_version", "value": str(SCHEMA_VERSION)}])

    def version(self, user_id: str) -> int:
        """A counter bumped by every change to this user's cards or chunks via this object.

        Sessions keep what they search in memory and reload it when this moves
        (``memory.recall``).
        """
        return self._versions.get(user_id, 0)

    def _touch(self, user_id: str) -> None:
        self._versions[user_id] = self._versions.get(user_id, 0) + 1

    def embed(self, text: str) -> np.ndarray:
        """One unit-length query vector."""
        return self._embedder.embed([text])[0]

    # -- writing -------------------------------------------------------------------------

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
    ) -> Turn:
        """Store one finished turn as it was spoken."""
        turn = Turn(
            id=uuid.uuid4().hex,
            session_id=session_id,
            avatar_id=avatar_id,
            role=role,
            text=text,
            started=started,
            ended=ended if ended is not None else started,
            interrupted=interrupted,
            latency_json=latency_json,
        )
        with self._write_lock:
            self.turns.add([{"user_id": user_id, **turn.__dict__}])
        return turn

    def add_chunk(self, *, user_id: str, turns: list[Turn], avatar_name: str = "Assistant") -> str:
        """Store (and embed) consecutive turns of one conversation; returns the chunk id."""
        if not turns:
            raise ValueError("a chunk needs at least one turn")
        text = chunk_text(turns, avatar_name)
        chunk_id = uuid.uuid4().hex
        row = {
            "id": chunk_id,
            "user_id": user_id,
            "avatar_id": turns[0].avatar_id,
            "session_id": turns[0].session_id,
            "turn_ids": [t.id for t in turns],
            "text": text,
            "started": turns[0].started,
            "ended": turns[-1].ended,
            "vector": self.embed(text),
        }
        with self._write_lock:
            self.chunks.add([row])
            self._touch(user_id)
        return chunk_id

    def add_card(
        self,
        *,
        user_id: str,
        text: str,
        scope: Scope,
        avatar_id: str = "",
        key: str = "",
        source_turn_ids: list[str] | None = None,
    ) -> str:
        """Store a memory card as is (no dedupe; see ``upsert_card``). Returns its id."""
        row = _new_card(user_id, text, scope, avatar_id, key, source_turn_ids, self.embed(text))
        with self._write_lock:
            self.cards.add([row])
            self._touch(user_id)
        return row["id"]

    def upsert_card(
        self,
        *,
        user_id: str,
        text: str,
        scope: Scope,
        avatar_id: str = "",
        key: str = "",
        source_turn_ids: list[str] | None = None,
    ) -> CardChange:
        """Add a card, or update the card it supersedes.

        The same ``key`` (same user, scope and avatar) means the same slot: the new text
        replaces the old ("my dog is called Rex" after "... Biscuit"). Without a key, a card
        whose text is nearly the same (``DUPLICATE_SIMILARITY``) is the same fact said again.
        Either way the source turns of both are kept.
        """
        avatar = _card_avatar(scope, avatar_id)
        vector = self.embed(text)
        same_slot = (
            f"user_id = {_quote(user_id)} AND scope = {_quote(scope)}"
            f" AND avatar_id = {_quote(avatar)}"
        )
        with self._write_lock:
            self._touch(user_id)
            old: dict | None = None
            if key:
                rows = self.cards.search().where(f"{same_slot} AND key = {_quote(key)}").to_list()
                old = rows[0] if rows else None
            else:
                rows = (
                    _nearest(self.cards, vector)
                    .refine_factor(REFINE_FACTOR)
                    .where(same_slot, prefilter=True)
                    .limit(1)
                    .to_list()
                )
                if rows and 1.0 - float(rows[0]["_distance"]) >= DUPLICATE_SIMILARITY:
                    old = rows[0]
            if old is None:
                row = _new_card(user_id, text, scope, avatar, key, source_turn_ids, vector)
                self.cards.add([row])
                return CardChange("added", row["id"])
            sources = list(
                dict.fromkeys([*(old["source_turn_ids"] or []), *(source_turn_ids or [])])
            )
            # Rewrite the row (same id and created time): LanceDB's SQL update can't set an
            # empty list, and a card is one small row.
            self._replace_card(
                old, text=text, vector=vector, updated=time.time(), source_turn_ids=sources
            )
            same = old["text"].strip().lower() == text.strip().lower()
            return CardChange("merged" if same else "replaced", old["id"], old["text"])

    def _replace_card(self, row: dict, **changes: Any) -> None:
        """Rewrite one card row with some fields changed (call with the write lock held).

        One merge on the id: the old row and the new one are never both missing, as they
        were with delete-then-add when the add failed.
        """
        new = {name: row[name] for name in _CARDS.names} | changes
        self.cards.merge_insert("id").when_matched_update_all().execute(
            pa.Table.from_pylist([new], schema=_CARDS)
        )

    # -- reading -------------------------------------------------------------------------

    def _visible(self, user_id: str, avatar_id: str) -> str:
        """The filter for what one avatar may recall about one user."""
        return (
            f"user_id = {_quote(user_id)} AND (scope = 'user' OR avatar_id = {_quote(avatar_id)})"
        )

    def search_cards(
        self, user_id: str, avatar_id: str, query: str | np.ndarray, k: int = 5
    ) -> list[Card]:
        """The ``k`` cards most similar to ``query`` that this avatar may see of this user."""
        vector = self.embed(query) if isinstance(query, str) else query
        rows = (
            _nearest(self.cards, vector)
            .refine_factor(REFINE_FACTOR)
            .where(self._visible(user_id, avatar_id), prefilter=True)
            .limit(k)
            .to_list()
        )
        return [_card(r, 1.0 - float(r["_distance"])) for r in rows]

    def search_chunks(
        self,
        user_id: str,
        avatar_id: str,
        query: str | np.ndarray,
        k: int = 2,
        *,
        exclude_sessions: list[str] | tuple[str, ...] = (),
    ) -> list[Chunk]:
        """The ``k`` past conversation chunks with this avatar most similar to ``query``.

        ``exclude_sessions``: conversations to leave out (those already in the context).
        """
        vector = self.embed(query) if isinstance(query, str) else query
        where = f"user_id = {_quote(user_id)} AND avatar_id = {_quote(avatar_id)}"
        if exclude_sessions:
            where += f" AND session_id NOT IN ({', '.join(_quote(x) for x in exclude_sessions)})"
        rows = (
            _nearest(self.chunks, vector)
            .refine_factor(REFINE_FACTOR)
            .where(where, prefilter=True)
            .limit(k)
            .to_list()
        )
        return [_chunk(r, 1.0 - float(r["_distance"])) for r in rows]

    def visible_cards(self, user_id: str, avatar_id: str) -> tuple[list[Card], np.ndarray]:
        """Every card this avatar may see of this user, with its vectors (n x 384)."""
        return self._with_vectors(self.cards, self._visible(user_id, avatar_id), _card)

    def past_chunks(
        self, user_id: str, avatar_id: str, exclude_sessions: list[str]
    ) -> tuple[list[Chunk], np.ndarray]:
        """This user's chunks with this avatar outside ``exclude_sessions``, with vectors."""
        where = f"user_id = {_quote(user_id)} AND avatar_id = {_quote(avatar_id)}"
        if exclude_sessions:
            where += f" AND session_id NOT IN ({', '.join(_quote(x) for x in exclude_sessions)})"
        return self._with_vectors(self.chunks, where, _chunk)

    @staticmethod
    def _with_vectors(table, where: str, convert):
        data = table.search().where(where).limit(None).to_arrow()
        vectors = (
            data.column("vector").combine_chunks().flatten().to_numpy().reshape(-1, DIMENSIONS)
        )
        return [convert(r) for r in data.drop_columns(["vector"]).to_pylist()], vectors

    def list_cards(self, user_id: str, avatar_id: str | None = None) -> list[Card]:
        """Every card of a user (that ``avatar_id`` may see, if given), newest first."""
        where = (
            self._visible(user_id, avatar_id)
            if avatar_id is not None
            else f"user_id = {_quote(user_id)}"
        )
        rows = self.cards.search().where(where).limit(None).to_list()
        return sorted((_card(r) for r in rows), key=lambda c: c.updated, reverse=True)

    def get_turns(self, user_id: str, turn_ids: list[str]) -> list[Turn]:
        """Turns by id (only this user's), in the order they were said."""
        if not turn_ids:
            return []
        ids = ", ".join(_quote(t) for t in turn_ids)
        rows = (
            self.turns.search()
            .where(f"user_id = {_quote(user_id)} AND id IN ({ids})")
            .limit(None)
            .to_list()
        )
        return sorted((_turn(r) for r in rows), key=lambda t: t.started)

    def conversation(self, user_id: str, session_id: str) -> list[Turn]:
        """Every turn of one conversation, in order."""
        rows = (
            self.turns.search()
            .where(f"user_id = {_quote(user_id)} AND session_id = {_quote(session_id)}")
            .limit(None)
            .to_list()
        )
        return sorted((_turn(r) for r in rows), key=lambda t: t.started)

    def conversations(self, user_id: str, avatar_id: str | None = None) -> list[Conversation]:
        """A user's conversations (with one avatar, if given), newest first."""
        where = f"user_id = {_quote(user_id)}"
        if avatar_id is not None:
            where += f" AND avatar_id = {_quote(avatar_id)}"
        rows = (
            self.turns.search()
            .where(where)
            .select(["session_id", "avatar_id", "role", "text", "started", "ended", "interrupted"])
            .limit(None)
            .to_list()
        )
        by_session: dict[str, list[dict]] = {}
        for r in rows:
            by_session.setdefault(r["session_id"], []).append(r)
        out = []
        for sid, turns in by_session.items():
            turns.sort(key=lambda r: r["started"])
            first_user = next((t["text"] for t in turns if t["role"] == "user"), "")
            out.append(
                Conversation(
                    session_id=sid,
                    avatar_id=turns[0]["avatar_id"],
                    started=turns[0]["started"],
                    ended=max(t["ended"] for t in turns),
                    turns=len(turns),
                    preview=first_user[:120],
                    interrupted=sum(1 for t in turns if t["interrupted"]),
                )
            )
        return sorted(out, key=lambda c: c.started, reverse=True)

    def recent_turns(self, user_id: str, avatar_id: str, limit: int = 40) -> list[Turn]:
        """The last ``limit`` turns between this user and this avatar, oldest first."""
        rows = (
            self.turns.search()
            .where(f"user_id = {_quote(user_id)} AND avatar_id = {_quote(avatar_id)}")
            .limit(None)
            .to_list()
        )
        turns = sorted((_turn(r) for r in rows), key=lambda t: t.started)
        return turns[-limit:]

    def count(self, user_id: str) -> dict[str, int]:
        """How many turns, chunks and cards are stored for a user."""
        where = f"user_id = {_quote(user_id)}"
        return {
            "turns": self.turns.count_rows(where),
            "chunks": self.chunks.count_rows(where),
            "cards": self.cards.count_rows(where),
        }

    # -- deleting ------------------------------------------------------------------------

    def delete_card(self, user_id: str, card_id: str) -> bool:
        """Delete one card (only if it is this user's); whether it existed."""
        where = f"user_id = {_quote(user_id)} AND id = {_quote(card_id)}"
        with self._write_lock:
            self._touch(user_id)
            found = self.cards.count_rows(where) > 0
            self.cards.delete(where)
        self.purge_history()
        return found

    def delete_conversation(self, user_id: str, session_id: str) -> dict[str, int]:
        """Delete one conversation: its turns, its chunks, and what was learned only from it.

        A card whose every source turn was in this conversation goes too (deleting a talk
        should take back what the avatar learned in it); a card also confirmed in another
        conversation stays, without the deleted sources. Returns how many rows went; the
        rows are gone from every version of the tables (``purge_history``).
        """
        deleted = self._delete_conversation(user_id, session_id)
        if deleted["turns"]:
            self.purge_history()
        return deleted

    def _delete_conversation(self, user_id: str, session_id: str) -> dict[str, int]:
        """What ``delete_conversation`` deletes, without the purge (callers purge once)."""
        mine = f"user_id = {_quote(user_id)}"
        with self._write_lock:
            self._touch(user_id)
            gone = {
                r["id"]
                for r in self.turns.search()
                .where(f"{mine} AND session_id = {_quote(session_id)}")
                .select(["id"])
                .limit(None)
                .to_list()
            }
            deleted = {"turns": len(gone), "chunks": 0, "cards": 0}
            if not gone:
                return deleted
            where = f"{mine} AND session_id = {_quote(session_id)}"
            deleted["chunks"] = self.chunks.count_rows(where)
            self.chunks.delete(where)
            self.turns.delete(where)
            rows = (
                self.cards.search()
                .where(mine)
                .select(["id", "source_turn_ids"])
                .limit(None)
                .to_list()
            )
            for r in rows:
                sources = list(r["source_turn_ids"] or [])
                kept = [s for s in sources if s not in gone]
                if len(kept) == len(sources):
                    continue
                if not kept:
                    self.cards.delete(f"id = {_quote(r['id'])}")
                    deleted["cards"] += 1
                else:
                    full = self.cards.search().where(f"id = {_quote(r['id'])}").to_list()[0]
                    self._replace_card(full, source_turn_ids=kept)
            return deleted

    def forget_avatar(self, avatar_id: str) -> int:
        """Delete every conversation anyone had with ``avatar_id`` and what it learned.

        For an avatar that is being deleted: each conversation goes as
        :meth:`delete_conversation` deletes one (so a fact also learned with another avatar
        stays), then the cards only this avatar kept. Returns how many conversations went.
        """
        pairs = {
            (r["user_id"], r["session_id"])
            for r in self.turns.search()
            .where(f"avatar_id = {_quote(avatar_id)}")
            .select(["user_id", "session_id"])
            .limit(None)
            .to_list()
        }
        for user_id, session_id in pairs:
            self._delete_conversation(user_id, session_id)
        where = f"scope = 'avatar' AND avatar_id = {_quote(avatar_id)}"
        with self._write_lock:
            for r in self.cards.search().where(where).select(["user_id"]).limit(None).to_list():
                self._touch(r["user_id"])
            self.cards.delete(where)
            # Chunks without turns (none expected) must not outlive the avatar either.
            self.chunks.delete(f"avatar_id = {_quote(avatar_id)}")
        self.purge_history()
        return len(pairs)

    def forget_user(self, user_id: str) -> None:
        """Delete everything stored about ``user_id``, in every table and every version."""
        with self._write_lock:
            self._touch(user_id)
            for table in (self.turns, self.chunks, self.cards):
                table.delete(f"user_id = {_quote(user_id)}")
        self.purge_history()

    def purge_history(self) -> None:
        """Make deletions final: rewrite the data without deleted rows, drop old versions.

        LanceDB deletes by marking rows, and every write keeps the table's earlier versions
        (time travel): a forgotten fact stays on disk in both until compacted and cleaned up.
        Called after every deletion, so "forget" means gone from the files at once.
        """
        with self._write_lock:
            for table in (self.turns, self.chunks, self.cards):
                table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)

    def note_write(self, error: Exception | None) -> None:
        """Record how a write went, for the health report (``None``: it worked)."""
        self.write_failure = None if error is None else f"{type(error).__name__}: {error}"

    def writable(self) -> str | None:
        """Why writes would fail now (read-only folder, full disk), or None; cheap to call."""
        if "://" in self.uri:  # object storage: only a real write can tell
            return self.write_failure
        folder = Path(self.uri)
        if not os.access(folder, os.W_OK):
            return "its folder is read-only"
        if shutil.disk_usage(folder).free < MIN_FREE_BYTES:
            return "the disk is full"
        return self.write_failure

    # -- upkeep --------------------------------------------------------------------------

    def optimize(self, *, vector_index_min_rows: int = 20_000) -> None:
        """Index for speed once tables are big; safe to call any time (e.g. at start-up).

        A scalar index on ``user_id`` makes the per-person prefilter cheap, and past
        ``vector_index_min_rows`` rows an IVF-PQ index replaces the flat scan (see
        ``bench/memory_retrieval.py`` for what each buys). New rows are searched flat until
        the next call, so results stay exact for recent memories.
        """
        for table in (self.cards, self.chunks, self.turns):
            rows = table.count_rows()
            if rows == 0:
                continue
            indexed = {tuple(i.columns) for i in table.list_indices()}
            if ("user_id",) not in indexed:
                table.create_scalar_index("user_id", index_type="BTREE")
            searchable = table is not self.turns and ("vector",) not in indexed
            if searchable and rows >= vector_index_min_rows:
                # LanceDB's default IVF-PQ parameters: built in 63 s at 100k cards vs 138 s for
                # sqrt(rows) partitions x 48 sub-vectors, same latency and accuracy once
                # re-ranked (bench/memory_retrieval.py --alt-indexes).
                table.create_index(metric="dot", vector_column_name="vector", index_type="IVF_PQ")
            table.optimize()


def _refreshed_on_missing_files(method: Any) -> Any:
    """Retry a read once on the latest table versions if files it expected are gone.

    Several processes share one database (the room's workers, the launcher and the room in
    tests). A deletion compacts at once and removes old versions' files (so forgotten words
    are gone from disk); another process still holding an old version then fails with
    LanceDB's "Not found" on a data or index file. Its tables are checked out at the latest
    version and the read runs again.
    """

    @functools.wraps(method)
    def read(self: MemoryStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as e:
            if "Not found" not in str(e):
                raise
            logger.info(f"memory: the store was compacted elsewhere; reading it afresh ({e!s:.80})")
            for table in (self._meta, self.turns, self.cards, self.chunks):
                table.checkout_latest()
            return method(self, *args, **kwargs)

    return read


for _name in (
    "schema_version",
    "version",
    "search_cards",
    "search_chunks",
    "visible_cards",
    "past_chunks",
    "list_cards",
    "get_turns",
    "conversation",
    "conversations",
    "recent_turns",
    "count",
):
    setattr(MemoryStore, _name, _refreshed_on_missing_files(getattr(MemoryStore, _name)))
