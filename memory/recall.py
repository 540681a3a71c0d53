"""What one avatar remembers about one person, for one turn: profile, memory cards, chunks.

``Recaller.recall(query)`` embeds the person's turn once and searches both cards and past
conversation chunks with it; ``Recollection.message()`` renders the single delimited system
message the retrieval processor places in the context. Everything is scoped to one
``(user_id, avatar_id)`` pair fixed at construction, so a session can only ever read its own
person's memories.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from memory.extract import profile_name, render_profile
from memory.store import Card, Chunk, MemoryStore

T = TypeVar("T", Card, Chunk)

MAX_CACHED_ROWS = 50_000
"""A session keeps its person's cards and past chunks (and their vectors) in memory and
searches them with one matrix product: ~0.1 ms at 1k rows and ~2 ms at 20k, against 8-12 ms
per LanceDB query even at 1k rows (bench/results/memory_retrieval.md), which alone would break
the 30 ms per-turn budget. Beyond this many rows (~75 MB) it searches LanceDB's index instead.
The store stays the record: every change bumps a per-person version and the copy is reloaded."""

MEMORY_BEGIN = "[Memory: what you remember about the person you are talking with]"
MEMORY_END = "[End of memory]"
MEMORY_INSTRUCTION = (
    "Use these facts when they help answer; don't mention having a memory unless asked."
)
SCAFFOLDING = (MEMORY_BEGIN, MEMORY_END, MEMORY_INSTRUCTION)
"""The memory block's own wording: never to be spoken (``processors.scaffolding_guard``)."""


def _ago(ts: float, now: float) -> str:
    days = int((now - ts) // 86400)
    if days <= 0:
        return "earlier today"
    if days == 1:
        return "yesterday"
    if days < 14:
        return f"{days} days ago"
    return f"{days // 7} weeks ago"


def _quoted(line: str, avatar_name: str, max_chars: int = 160) -> str:
    """``User: text`` as ``- They said: "text"``, long lines cut (the block stays small)."""
    speaker, _, text = line.partition(": ")
    who = "They" if speaker == "User" else "You"
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0] + "..."
    return f'- {who} said: "{text}"'


def newest_per_key(cards: list[Card]) -> list[Card]:
    """The person's keyed cards, only the newest of each slot (a changed fact replaces one)."""
    by_key: dict[str, Card] = {}
    for card in cards:
        if not (card.scope == "user" and card.key):
            continue
        if card.key not in by_key or card.updated > by_key[card.key].updated:
            by_key[card.key] = card
    return list(by_key.values())


def _nearest(items: list[T], vectors: np.ndarray, query: np.ndarray, k: int) -> list[T]:
    """The ``k`` items whose (unit) vectors are closest to ``query``, scored by cosine."""
    if not items:
        return []
    scores = vectors @ query
    top = np.argsort(-scores)[:k]
    return [replace(items[i], score=float(scores[i])) for i in top]


@dataclass
class Recollection:
    """The memories found for one turn."""

    profile: str = ""
    cards: list[Card] = field(default_factory=list)
    """Relevant cards not in the profile."""
    profile_cards: list[Card] = field(default_factory=list)
    """The keyed cards the profile is made of (newest of each slot)."""
    chunks: list[Chunk] = field(default_factory=list)
    elapsed_ms: float = 0.0

    def message(self, avatar_name: str) -> str:
        """The delimited memory block ('' when there is nothing to say)."""
        parts = []
        if self.profile:
            parts.append("About them:\n" + self.profile)
        if self.cards:
            parts.append("Things they told you:\n" + "\n".join(f"- {c.text}" for c in self.cards))
        now = time.time()
        for chunk in self.chunks:
            # Quoted as reported speech, not "Name: line" script, which small models continue.
            lines = [_quoted(line, avatar_name) for line in chunk.text.splitlines()]
            said = "\n".join(lines)
            parts.append(f"From a conversation {_ago(chunk.started, now)}:\n{said}")
        if not parts:
            return ""
        body = "\n\n".join(parts)
        return f"{MEMORY_BEGIN}\n{body}\n{MEMORY_INSTRUCTION}\n{MEMORY_END}"


class Recaller:
    """Memory retrieval for one person talking with one avatar.

    Args:
        store: the memory store.
        user_id: whose memories (the only ones this object can read).
        avatar_id: which avatar (its ``avatar`` cards and chunks are included).
        session_id: the current conversation (its chunks are in the context already).
        k_cards: most memory cards per turn.
        k_chunks: most past-conversation chunks per turn.
        min_card_score: cosine similarity a card needs to be brought in.
        min_chunk_score: the same for chunks (they are longer, so noisier).
    """

    def __init__(
        self,
        store: MemoryStore,
        *,
        user_id: str,
        avatar_id: str,
        session_id: str,
        k_cards: int = 3,
        k_chunks: int = 1,
        min_card_score: float = 0.3,
        min_chunk_score: float = 0.4,
    ):
        self.store = store
        self.user_id = user_id
        self.avatar_id = avatar_id
        self.session_id = session_id
        self.k_cards = k_cards
        self.k_chunks = k_chunks
        self.min_card_score = min_card_score
        self.min_chunk_score = min_chunk_score
        self.in_context = {session_id}
        """Conversations already in the LLM context (this one, and any restored one): their
        chunks would only repeat it."""
        self._profile = ""
        self._profile_keys: set[str] = set()
        self._profile_cards: list[Card] = []
        self.name: str | None = None
        self._lock = threading.Lock()
        self._version = -1
        self._cards: list[Card] = []
        self._card_vectors: np.ndarray | None = None
        self._chunks: list[Chunk] = []
        self._chunk_vectors: np.ndarray | None = None

    def refresh_profile(self) -> str:
        """Reload this person's cards and past chunks, and rebuild the profile (blocking).

        The writer calls it after each change, in its worker thread, so the turn itself
        rarely has to (``recall`` reloads only if the store changed since).
        """
        version = self.store.version(self.user_id)  # before reading: a later write reloads
        cards, card_vectors = self.store.visible_cards(self.user_id, self.avatar_id)
        chunks, chunk_vectors = self.store.past_chunks(
            self.user_id, self.avatar_id, sorted(self.in_context)
        )
        profile = render_profile(cards)
        small = len(cards) + len(chunks) <= MAX_CACHED_ROWS
        with self._lock:
            self._profile = profile
            self._profile_keys = {c.id for c in cards if c.scope == "user" and c.key}
            self._profile_cards = newest_per_key(cards)
            self.name = profile_name(cards)
            self._cards, self._chunks = (cards, chunks) if small else ([], [])
            self._card_vectors = card_vectors if small else None
            self._chunk_vectors = chunk_vectors if small else None
            self._version = version
        return profile

    @property
    def stale(self) -> bool:
        """Whether the person's memories changed since they were last loaded."""
        return self.store.version(self.user_id) != self._version

    @property
    def profile(self) -> str:
        """The pinned "about you" block, as last refreshed."""
        return self._profile

    def recall(self, query: str) -> Recollection:
        """Profile plus the cards and chunks relevant to ``query`` (blocking; ~20 ms)."""
        start = time.perf_counter()
        if self.stale:
            self.refresh_profile()
        vector = self.store.embed(query)
        with self._lock:
            profile, in_profile = self._profile, self._profile_keys
            profile_cards = self._profile_cards
            cards, card_vectors = self._cards, self._card_vectors
            chunks, chunk_vectors = self._chunks, self._chunk_vectors
        if card_vectors is not None and chunk_vectors is not None:
            found_cards = _nearest(cards, card_vectors, vector, self.k_cards + 4)
            found_chunks = _nearest(chunks, chunk_vectors, vector, self.k_chunks)
        else:  # too many to keep in memory: LanceDB's indexed search
            found_cards = self.store.search_cards(
                self.user_id, self.avatar_id, vector, k=self.k_cards + 4
            )
            found_chunks = self.store.search_chunks(
                self.user_id,
                self.avatar_id,
                vector,
                k=self.k_chunks,
                exclude_sessions=sorted(self.in_context),
            )
        # Cards already in the profile block would only be said twice.
        cards = [
            c for c in found_cards if c.score >= self.min_card_score and c.id not in in_profile
        ]
        chunks = [c for c in found_chunks if c.score >= self.min_chunk_score]
        return Recollection(
            profile=profile,
            cards=cards[: self.k_cards],
            profile_cards=profile_cards,
            chunks=chunks,
            elapsed_ms=(time.perf_counter() - start) * 1000,
        )
