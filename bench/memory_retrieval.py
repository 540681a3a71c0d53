"""Memory retrieval latency at 1k, 10k and 100k stored memory cards.

    .venv/bin/python -m bench.memory_retrieval [--sizes 1000 10000 100000] [--queries 200]
        [--out bench/results] [--budget 15] [--alt-indexes]

About 11 minutes on 2 cores with the defaults (building the 100k IVF_PQ index alone takes
over 2); run it on an otherwise idle machine, the per-state load average is in the JSON.

For each size a fresh LanceDB database is built in a temporary directory through
``memory.store.MemoryStore`` and filled in bulk (``store.cards.add`` / ``store.chunks.add``
with the same columns ``add_card`` / ``add_chunk`` write): the cards belong to 100 users; one
queried user (``typical``) owns 1% of them, a second one (``heavy``, the worst case) owns 20%,
and the other 98 share the rest. 15% of the cards are ``avatar``-scoped, for one of three
avatars. There is one conversation chunk per five cards, with the same owners.

Card and chunk texts come from templates ("Maria's dog is called Biscuit", "Tom lives in
Lisbon", short User/Assistant exchanges). Embedding 100k texts with MiniLM on two cores would
take minutes, so a pool of distinct texts (3,000 cards, 800 chunks by default) is embedded with
the real embedder and every stored row reuses a pool text with its vector plus small Gaussian
noise (sigma 0.01 per dimension, about 0.98 cosine to the original), renormalized to unit
length. The query vectors are real MiniLM embeddings of distinct, realistic questions.

Measured per size, for both queried users, over ``--queries`` distinct questions (after a few
warm-up queries), as p50 / p95 / mean milliseconds. A series (one user, one state, one
measurement) that passes ``--budget`` seconds stops after at least ``MIN_QUERIES`` queries,
so the slow flat searches at 100k don't take the run past ~10 minutes; the Markdown marks
such cells with their ``n``.

* ``recall``: ``Recaller.recall(query)`` end to end (embedding + card search + chunk search);
* ``search``: the search part alone with the pre-embedded query vector (``search_cards`` with
  ``k_cards + 4`` and ``search_chunks``, as ``recall`` calls them), also split per table;
* ``embed``: ``store.embed(query)`` alone (independent of the database; measured per state).

Index states: ``none`` (a flat scan with the ``user_id`` prefilter evaluated over the table),
``scalar`` (``store.optimize`` with the vector index disabled: BTREE index on ``user_id``) and,
for sizes where a table reaches 20,000 rows, ``scalar+ivf_pq`` (``store.optimize()`` as is).

Accuracy: the hits of every search are compared with an exact brute-force (numpy) search over
the same rows and filters: flat searches should match it, the IVF_PQ index loses some. With the
index, the store's own query (``memory.store.REFINE_FACTOR`` re-ranking, if the store has it)
and a few other ``nprobes`` / ``refine_factor`` settings are measured for accuracy and latency.
``--alt-indexes`` also rebuilds the vector indexes with other settings (``ALT_INDEXES``).

Writes ``<out>/memory_retrieval.json`` (every number, machine, versions, date) and
``<out>/memory_retrieval.md``, and prints the Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from memory import store as memory_store
from memory.embedder import DIMENSIONS, Embedder
from memory.recall import Recaller
from memory.store import MemoryStore

OUT = Path(__file__).parent / "results"
Hit = tuple[str, str]  # (id, text) of a search result

USERS = 100
HEAVY_USER = "user-000"  # owns 20% of the cards: the worst case
TYPICAL_USER = "user-001"  # owns 1%
QUERIED = {"typical": (TYPICAL_USER, 0.01), "heavy": (HEAVY_USER, 0.20)}
AVATARS = ("lumina", "orion", "sage")
AVATAR = "lumina"  # the avatar the queried users talk with
SESSION = "bench-current-session"  # the conversation in progress (no stored chunk has it)
AVATAR_SCOPE_SHARE = 0.15
CHUNKS_PER_CARD = 0.2
CARD_POOL = 3000
CHUNK_POOL = 800
NOISE_SIGMA = 0.01
WARMUP = 5
MIN_QUERIES = 50  # a series stops early past its time budget, but not before this many queries
BUDGET_S = 15.0  # default time budget of one series (one user, one state, one measurement)
VECTOR_INDEX_MIN_ROWS = 20_000  # store.optimize's default
SEARCH_BUDGET_MS = 30.0
# Query parameters tried on the IVF_PQ index: (nprobes, refine_factor); None = LanceDB default.
# (The defaults themselves are what the "scalar+ivf_pq" state measures through the store.)
# The store's own setting is skipped here (the "scalar+ivf_pq" state measures it).
STORE_QUERY = (None, getattr(memory_store, "REFINE_FACTOR", None))
IVF_VARIANTS: tuple[tuple[int | None, int | None], ...] = tuple(
    v for v in ((None, None), (100, None), (None, 10), (None, 30)) if v != STORE_QUERY
)
# With --alt-indexes: other vector indexes tried in place of store.optimize's IVF_PQ.
ALT_INDEXES: dict[str, dict[str, Any]] = {
    "IVF_PQ, LanceDB default params": {"index_type": "IVF_PQ"},
    "IVF_HNSW_SQ": {"index_type": "IVF_HNSW_SQ"},
}
ALT_VARIANTS: tuple[tuple[int | None, int | None], ...] = ((None, None), (None, 10))

NAMES = (
    "Maria", "Tom", "Aisha", "Lukas", "Sofia", "Kenji", "Priya", "Daniel", "Elena", "Omar",
    "Grace", "Mateo", "Hannah", "Yusuf", "Chloe", "Ivan", "Leila", "Noah", "Mei", "Samuel",
    "Zara", "Felix", "Amara", "Jonas", "Ines", "Ravi", "Olivia", "Hugo", "Nadia", "Theo",
)  # fmt: skip
PETS = ("dog", "cat", "rabbit", "parrot", "hamster", "tortoise", "goldfish", "horse")
PET_NAMES = (
    "Biscuit", "Luna", "Max", "Pepper", "Rex", "Mochi", "Ziggy", "Bella", "Oscar", "Nala",
    "Pickles", "Coco", "Shadow", "Waffles", "Juniper", "Bruno", "Tofu", "Ginger", "Milo", "Pip",
)  # fmt: skip
THINGS = (
    "jazz", "hiking", "spicy food", "old science fiction films", "gardening", "chess",
    "baking bread", "rock climbing", "crossword puzzles", "classical piano", "football",
    "watercolour painting", "board games", "sushi", "long train journeys", "birdwatching",
    "knitting", "podcasts about history", "yoga", "vinyl records", "camping", "salsa dancing",
    "dark chocolate", "detective novels", "swimming in the sea", "cycling", "photography",
    "Italian cooking", "stand-up comedy", "astronomy",
)  # fmt: skip
CITIES = (
    "Lisbon", "Berlin", "Osaka", "Toronto", "Nairobi", "Melbourne", "Edinburgh", "Austin",
    "Buenos Aires", "Seoul", "Marseille", "Krakow", "Dublin", "Vancouver", "Cape Town",
    "Bologna", "Oslo", "Porto", "Manchester", "Denver",
)  # fmt: skip
JOBS = (
    "nurse", "software engineer", "teacher", "carpenter", "accountant", "chef", "architect",
    "pharmacist", "bus driver", "graphic designer", "lawyer", "electrician", "librarian",
    "physiotherapist", "journalist",
)  # fmt: skip
RELATIONS = ("sister", "brother", "mother", "father", "best friend", "partner", "son", "daughter")
ALLERGENS = ("peanuts", "cats", "pollen", "shellfish", "penicillin", "gluten", "dust")
FOODS = ("meat", "pork", "mushrooms", "olives", "coriander", "dairy", "fish")
SKILLS = ("Spanish", "Japanese", "the guitar", "to drive", "pottery", "Python", "sign language")
SPORTS = ("tennis", "badminton", "five-a-side football", "volleyball", "squash", "basketball")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
FAVOURITES = {
    "colour": ("green", "deep blue", "orange", "purple"),
    "book": ("Dune", "Middlemarch", "The Hobbit", "Beloved"),
    "band": ("Radiohead", "ABBA", "Fleetwood Mac", "The Beatles"),
    "film": ("Spirited Away", "Casablanca", "Alien", "Amelie"),
    "food": ("ramen", "lasagne", "tacos", "dumplings"),
}
TOPICS = (
    "dragons", "the moon landing", "a haunted lighthouse", "their grandmother's recipes",
    "a lost umbrella", "time travel", "the best pizza toppings", "learning to swim",
    "a trip to the mountains", "their first job",
)  # fmt: skip


def _user_card(rng: random.Random) -> str:
    """One user-scoped fact from the templates."""
    n, n2 = rng.choice(NAMES), rng.choice(NAMES)
    rel, city = rng.choice(RELATIONS), rng.choice(CITIES)
    templates: list[Callable[[], str]] = [
        lambda: f"{n}'s {rng.choice(PETS)} is called {rng.choice(PET_NAMES)}",
        lambda: f"{n} likes {rng.choice(THINGS)}",
        lambda: f"{n} lives in {city}",
        lambda: f"{n} works as a {rng.choice(JOBS)}",
        lambda: f"{n} is allergic to {rng.choice(ALLERGENS)}",
        lambda: f"{n}'s {rel} is called {n2}",
        lambda: f"{n}'s {rel} lives in {city}",
        lambda: f"{n}'s birthday is on {rng.choice(MONTHS)} {rng.randint(1, 28)}",
        lambda: f"{n} is learning {rng.choice(SKILLS)}",
        lambda: f"{n} plays {rng.choice(SPORTS)} on {rng.choice(DAYS)}s",
        lambda: f"{n} doesn't eat {rng.choice(FOODS)}",
        lambda: f"{n} grew up in {city}",
        lambda: f"{n} is planning a trip to {city} in {rng.choice(MONTHS)}",
        lambda: (lambda c: f"{n}'s favourite {c} is {rng.choice(FAVOURITES[c])}")(
            rng.choice(list(FAVOURITES))
        ),
        lambda: f"{n} dislikes {rng.choice(THINGS)}",
        lambda: f"{n}'s {rel} {n2} likes {rng.choice(THINGS)}",
    ]
    return rng.choice(templates)()


def _avatar_card(rng: random.Random) -> str:
    """One avatar-scoped fact (shared history with one avatar)."""
    n, topic = rng.choice(NAMES), rng.choice(TOPICS)
    templates: list[Callable[[], str]] = [
        lambda: f"You promised {n} a story about {topic}",
        lambda: f"You and {n} are making up a story about {topic}",
        lambda: f"{n} laughed at your joke about {topic}",
        lambda: f"You told {n} you would ask about their {rng.choice(RELATIONS)} next time",
        lambda: f"{n} asked you to remind them about {rng.choice(THINGS)} on {rng.choice(DAYS)}",
        lambda: f"You recommended {rng.choice(FAVOURITES['book'])} to {n}",
    ]
    return rng.choice(templates)()


def _chunk_text(rng: random.Random) -> str:
    """A few User/Assistant lines of a past conversation, as ``chunk_text`` renders them."""
    city, thing, rel = rng.choice(CITIES), rng.choice(THINGS), rng.choice(RELATIONS)
    pet, pet_name, day = rng.choice(PETS), rng.choice(PET_NAMES), rng.choice(DAYS)
    user_lines = [
        f"I just got back from {city}, it was wonderful.",
        f"My {rel} and I spent the whole {day} on {thing}.",
        f"I'm worried about my {pet} {pet_name}, he hasn't been eating.",
        "Work was exhausting today, I had three meetings before lunch.",
        f"I tried a new recipe with {rng.choice(FAVOURITES['food'])} last night.",
        f"Can you tell me a story about {rng.choice(TOPICS)}?",
        f"I've started getting into {thing}, any tips?",
        f"My {rel} is visiting from {city} next week.",
        f"I didn't sleep well, the neighbours were loud until {rng.randint(1, 4)} am.",
        f"We're thinking of adopting a {pet}.",
    ]
    replies = [
        "That sounds lovely, what was the best part?",
        "Oh no, I hope things get better soon.",
        "How exciting! Tell me more.",
        "I remember you mentioning that before.",
        "Maybe start small and see how it feels.",
        f"I'd love to hear more about {city}.",
        "That must have been tiring. Did you get some rest?",
        f"{pet_name} is lucky to have you.",
    ]
    lines = []
    for _ in range(rng.randint(2, 3)):
        lines.append(f"User: {rng.choice(user_lines)}")
        lines.append(f"Assistant: {rng.choice(replies)}")
    return "\n".join(lines[: rng.randint(3, 6)])


def make_queries(n: int, seed: int = 7) -> list[str]:
    """``n`` distinct questions a person might ask an avatar about themselves."""
    cands: set[str] = {
        "where do I live",
        "what do I do for work",
        "what am I allergic to",
        "when is my birthday",
        "what am I learning at the moment",
        "which sport do I play",
        "where did I grow up",
        "what food don't I eat",
        "what did I tell you about my family",
        "do you remember my name",
    }
    for pet in PETS:
        cands |= {f"what is my {pet} called", f"what's my {pet}'s name", f"do I have a {pet}"}
    for rel in RELATIONS:
        cands |= {
            f"where does my {rel} live",
            f"what's my {rel}'s name",
            f"what does my {rel} like",
            f"when is my {rel} visiting",
        }
    for cat in FAVOURITES:
        cands |= {f"what is my favourite {cat}", f"do you remember my favourite {cat}"}
    for thing in THINGS:
        cands |= {f"do I like {thing}", f"what did I say about {thing}"}
    for city in CITIES:
        cands |= {f"did I tell you about my trip to {city}", f"do I know anyone in {city}"}
    for topic in TOPICS:
        cands |= {f"what was that story about {topic}", f"remind me what we said about {topic}"}
    for day in DAYS:
        cands.add(f"what did we talk about last {day}")
    for month in MONTHS:
        cands.add(f"where am I travelling in {month}")
    pool = sorted(cands)
    if n > len(pool):
        raise ValueError(f"at most {len(pool)} distinct queries")
    return random.Random(seed).sample(pool, n)


class Pools:
    """Distinct card and chunk texts with their real MiniLM embeddings.

    Args:
        embedder: the sentence embedder.
        cards: how many distinct card texts (85% user-, 15% avatar-scoped).
        chunks: how many distinct chunk texts.
        seed: random seed for the templates.
    """

    def __init__(
        self, embedder: Embedder, cards: int = CARD_POOL, chunks: int = CHUNK_POOL, seed: int = 1
    ):
        rng = random.Random(seed)
        n_avatar = int(cards * AVATAR_SCOPE_SHARE)
        self.user_texts = self._distinct(lambda: _user_card(rng), cards - n_avatar)
        self.avatar_texts = self._distinct(lambda: _avatar_card(rng), n_avatar)
        self.chunk_texts = self._distinct(lambda: _chunk_text(rng), chunks)
        start = time.perf_counter()
        self.user_vecs = embedder.embed(self.user_texts)
        self.avatar_vecs = embedder.embed(self.avatar_texts)
        self.chunk_vecs = embedder.embed(self.chunk_texts)
        self.embed_s = time.perf_counter() - start

    @staticmethod
    def _distinct(make: Callable[[], str], n: int) -> list[str]:
        seen: dict[str, None] = {}
        for _ in range(n * 200):
            seen[make()] = None
            if len(seen) == n:
                return list(seen)
        raise RuntimeError(f"templates give only {len(seen)} distinct texts, wanted {n}")


def _owners(n: int, rng: np.random.Generator) -> np.ndarray:
    """User ids for ``n`` rows: 20% heavy, 1% typical, the rest over 98 other users, shuffled."""
    heavy, typical = round(n * 0.20), max(1, round(n * 0.01))
    others = np.array([f"user-{i:03d}" for i in range(2, USERS)])
    owners = np.concatenate(
        [
            np.full(heavy, HEAVY_USER),
            np.full(typical, TYPICAL_USER),
            rng.choice(others, n - heavy - typical),
        ]
    )
    rng.shuffle(owners)
    return owners


def _noisy(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``base`` rows plus Gaussian noise, renormalized to unit length (float32)."""
    vecs = base + rng.normal(0.0, NOISE_SIGMA, base.shape).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs.astype(np.float32)


def _vector_column(vecs: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), DIMENSIONS)


def _ids(n: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(n)]


def _table(columns: dict[str, Any], schema: pa.Schema) -> pa.Table:
    """A pyarrow table of ``schema`` from Python lists, numpy arrays or Arrow arrays."""
    arrays = [
        columns[f.name].cast(f.type)
        if isinstance(columns[f.name], pa.Array)
        else pa.array(columns[f.name], f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def card_table(n: int, pools: Pools, schema: pa.Schema, rng: np.random.Generator) -> pa.Table:
    """``n`` cards in the columns ``MemoryStore.add_card`` writes."""
    owners = _owners(n, rng)
    is_avatar = rng.random(n) < AVATAR_SCOPE_SHARE
    user_pick = rng.integers(0, len(pools.user_texts), n)
    avatar_pick = rng.integers(0, len(pools.avatar_texts), n)
    texts = np.where(
        is_avatar,
        np.array(pools.avatar_texts, dtype=object)[avatar_pick],
        np.array(pools.user_texts, dtype=object)[user_pick],
    )
    base = np.where(is_avatar[:, None], pools.avatar_vecs[avatar_pick], pools.user_vecs[user_pick])
    avatars = np.where(is_avatar, rng.choice(np.array(AVATARS), n), "")
    now = time.time()
    created = now - rng.uniform(0, 365 * 86400, n)
    updated = np.minimum(now, created + rng.exponential(5 * 86400, n))
    sources = [_ids(int(k)) for k in rng.integers(1, 4, n)]
    columns: dict[str, Any] = {
        "id": _ids(n),
        "user_id": owners.tolist(),
        "avatar_id": avatars.tolist(),
        "scope": np.where(is_avatar, "avatar", "user").tolist(),
        "key": [""] * n,
        "text": texts.tolist(),
        "source_turn_ids": sources,
        "created": created,
        "updated": updated,
        "vector": _vector_column(_noisy(base, rng)),
    }
    return _table(columns, schema)


def chunk_table(n: int, pools: Pools, schema: pa.Schema, rng: np.random.Generator) -> pa.Table:
    """``n`` conversation chunks in the columns ``MemoryStore.add_chunk`` writes."""
    owners = _owners(n, rng)
    pick = rng.integers(0, len(pools.chunk_texts), n)
    started = time.time() - rng.uniform(86400, 365 * 86400, n)
    columns: dict[str, Any] = {
        "id": _ids(n),
        "user_id": owners.tolist(),
        "avatar_id": rng.choice(np.array(AVATARS), n).tolist(),
        "session_id": [f"session-{k}" for k in rng.integers(0, max(1, n // 4), n)],
        "turn_ids": [_ids(int(k)) for k in rng.integers(3, 7, n)],
        "text": np.array(pools.chunk_texts, dtype=object)[pick].tolist(),
        "started": started,
        "ended": started + rng.uniform(20, 300, n),
        "vector": _vector_column(_noisy(pools.chunk_vecs[pick], rng)),
    }
    return _table(columns, schema)


def stats(ms: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / mean / max of a list of milliseconds, rounded to 0.01 ms."""
    a = np.asarray(ms, dtype=np.float64)
    return {
        "p50": round(float(np.percentile(a, 50)), 2),
        "p95": round(float(np.percentile(a, 95)), 2),
        "mean": round(float(a.mean()), 2),
        "max": round(float(a.max()), 2),
        "n": len(a),
    }


def series(n: int, budget_s: float) -> Iterator[int]:
    """Query indices ``0..n-1``, stopping once ``budget_s`` has passed and ``MIN_QUERIES`` ran.

    Queries are in random order, so a cut series is a random sample of them.
    """
    start = time.perf_counter()
    for i in range(n):
        if i >= MIN_QUERIES and time.perf_counter() - start > budget_s:
            return
        yield i


def timed(fn: Callable[[Any], Any], items: Sequence[Any], budget_s: float) -> list[float]:
    """Milliseconds of ``fn(item)`` per item (see ``series``), after ``WARMUP`` untimed calls."""
    for item in items[:WARMUP]:
        fn(item)
    out = []
    for i in series(len(items), budget_s):
        start = time.perf_counter()
        fn(items[i])
        out.append((time.perf_counter() - start) * 1000)
    return out


def time_search(
    store: MemoryStore,
    user: str,
    vectors: np.ndarray,
    k_cards: int,
    k_chunks: int,
    budget_s: float,
) -> tuple[list[float], list[float], list[list[Hit]], list[list[Hit]]]:
    """Time ``search_cards`` and ``search_chunks`` per query, as ``recall`` calls them.

    Pre-embedded vectors; ``WARMUP`` untimed queries first; ``budget_s``: see ``series``.

    Returns:
        Milliseconds of the card searches, of the chunk searches, and the hits of each.
    """
    cards_ms, chunks_ms, card_hits, chunk_hits = [], [], [], []
    warmup = list(range(min(WARMUP, len(vectors))))
    for i in [*warmup, *series(len(vectors), budget_s)]:
        t0 = time.perf_counter()
        cards = store.search_cards(user, AVATAR, vectors[i], k=k_cards)
        t1 = time.perf_counter()
        chunks = store.search_chunks(
            user, AVATAR, vectors[i], k=k_chunks, exclude_sessions=[SESSION]
        )
        t2 = time.perf_counter()
        cards_ms.append((t1 - t0) * 1000)
        chunks_ms.append((t2 - t1) * 1000)
        card_hits.append([(c.id, c.text) for c in cards])
        chunk_hits.append([(c.id, c.text) for c in chunks])
    skip = len(warmup)
    return cards_ms[skip:], chunks_ms[skip:], card_hits[skip:], chunk_hits[skip:]


def accuracy(
    cards: list[list[Hit]], chunks: list[list[Hit]], exact: dict[str, list[list[Hit]]]
) -> dict[str, float]:
    """How close searched hits are to the exact ones, over the first ``len(cards)`` queries.

    Returns:
        ``cards_top1``: the top card is the exact top card; ``cards_top1_text``: it has the
        same text (the data reuses texts, so near-duplicates can swap); ``cards_recall``: the
        fraction of the exact top-k found; ``chunks_top1``: the top chunk is the exact one.
    """
    want, want_chunks = exact["cards"][: len(cards)], exact["chunks"][: len(chunks)]
    pairs = list(zip(cards, want, strict=True))
    same_id = [bool(g) and bool(w) and g[0][0] == w[0][0] for g, w in pairs]
    same_text = [bool(g) and bool(w) and g[0][1] == w[0][1] for g, w in pairs]
    found = [len(set(g) & set(w)) / len(w) for g, w in pairs if w]
    chunk_ok = [g[:1] == w[:1] for g, w in zip(chunks, want_chunks, strict=True)]
    return {
        "cards_top1": round(float(np.mean(same_id)), 3),
        "cards_top1_text": round(float(np.mean(same_text)), 3),
        "cards_recall": round(float(np.mean(found)) if found else 1.0, 3),
        "chunks_top1": round(float(np.mean(chunk_ok)), 3),
    }


def ann_query(
    table: Any, where: str, vector: np.ndarray, k: int, nprobes: int | None, refine: int | None
) -> list[tuple[str, str]]:
    """The store's search (dot metric, prefilter) with optional IVF parameters.

    Args:
        table: ``store.cards`` or ``store.chunks``.
        where: the visibility filter the store's search method uses.
        vector: the unit query vector.
        k: how many results.
        nprobes: IVF partitions to search (None: LanceDB's default).
        refine: re-rank ``refine * k`` PQ candidates on the full vectors (None: no re-ranking).

    Returns:
        (id, text) per result, best first.
    """
    q = table.search(vector).metric("dot")
    if nprobes is not None:
        q = q.nprobes(nprobes)
    if refine is not None:
        q = q.refine_factor(refine)
    rows = q.where(where, prefilter=True).select(["id", "text", "_distance"]).limit(k).to_list()
    return [(r["id"], r["text"]) for r in rows]


def measure_state(
    store: MemoryStore, queries: list[str], vectors: np.ndarray, exact: dict, budget_s: float
) -> dict[str, Any]:
    """Embedding, search and recall latency (and search accuracy) for both queried users."""
    out: dict[str, Any] = {"load_avg_1m": round(os.getloadavg()[0], 2)}
    out |= {"embed": stats(timed(store.embed, queries, budget_s)), "users": {}}
    for label, (user, share) in QUERIED.items():
        recaller = Recaller(store, user_id=user, avatar_id=AVATAR, session_id=SESSION)
        cards_ms, chunks_ms, card_hits, chunk_hits = time_search(
            store, user, vectors, recaller.k_cards + 4, recaller.k_chunks, budget_s
        )
        search_ms = [a + b for a, b in zip(cards_ms, chunks_ms, strict=True)]
        recall_ms = timed(recaller.recall, queries, budget_s)
        out["users"][label] = {
            "user_id": user,
            "share": share,
            "visible_cards": store.cards.count_rows(store._visible(user, AVATAR)),
            "visible_chunks": store.chunks.count_rows(
                f"user_id = '{user}' AND avatar_id = '{AVATAR}'"
            ),
            "recall": stats(recall_ms),
            "search": stats(search_ms),
            "search_cards": stats(cards_ms),
            "search_chunks": stats(chunks_ms),
            "accuracy": accuracy(card_hits, chunk_hits, exact[label]),
        }
    return out


def _vectors(table: pa.Table) -> np.ndarray:
    return table.column("vector").combine_chunks().flatten().to_numpy().reshape(-1, DIMENSIONS)


def _column(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_pylist(), dtype=object)


def exact_top(cards: pa.Table, chunks: pa.Table, vectors: np.ndarray, k: int) -> dict:
    """Exact (brute-force numpy) top-``k`` cards and top-1 chunk per queried user and query.

    Returns:
        ``{label: {"cards": [[(id, text), ...] per query], "chunks": [[(id, text)] ...]}}``,
        with the visibility rules of ``search_cards`` / ``search_chunks``.
    """
    card_vecs, chunk_vecs = _vectors(cards), _vectors(chunks)
    c = {n: _column(cards, n) for n in ("id", "text", "user_id", "avatar_id", "scope")}
    h = {n: _column(chunks, n) for n in ("id", "text", "user_id", "avatar_id")}
    out = {}
    for label, (user, _) in QUERIED.items():
        card_rows = np.flatnonzero(
            (c["user_id"] == user) & ((c["scope"] == "user") | (c["avatar_id"] == AVATAR))
        )
        chunk_rows = np.flatnonzero((h["user_id"] == user) & (h["avatar_id"] == AVATAR))
        top_cards, top_chunks = [], []
        for q in vectors:
            best = card_rows[np.argsort(-(card_vecs[card_rows] @ q), kind="stable")[:k]]
            top_cards.append(list(zip(c["id"][best], c["text"][best], strict=True)))
            best = chunk_rows[np.argsort(-(chunk_vecs[chunk_rows] @ q), kind="stable")[:1]]
            top_chunks.append(list(zip(h["id"][best], h["text"][best], strict=True)))
        out[label] = {"cards": top_cards, "chunks": top_chunks}
    return out


def query_variants(
    store: MemoryStore,
    vectors: np.ndarray,
    exact: dict,
    k: int,
    variants: Sequence[tuple[int | None, int | None]],
    budget_s: float,
) -> list[dict[str, Any]]:
    """Accuracy and latency of the card and chunk searches per (nprobes, refine_factor)."""
    out = []
    for nprobes, refine in variants:
        for label, (user, _) in QUERIED.items():
            card_where = store._visible(user, AVATAR)
            chunk_where = (
                f"user_id = '{user}' AND avatar_id = '{AVATAR}' AND session_id NOT IN ('{SESSION}')"
            )
            for v in vectors[:WARMUP]:
                ann_query(store.cards, card_where, v, k, nprobes, refine)
                ann_query(store.chunks, chunk_where, v, 1, nprobes, refine)
            card_ms, chunk_ms, card_hits, chunk_hits = [], [], [], []
            for i in series(len(vectors), budget_s):
                v = vectors[i]
                t0 = time.perf_counter()
                card_hits.append(ann_query(store.cards, card_where, v, k, nprobes, refine))
                t1 = time.perf_counter()
                chunk_hits.append(ann_query(store.chunks, chunk_where, v, 1, nprobes, refine))
                t2 = time.perf_counter()
                card_ms.append((t1 - t0) * 1000)
                chunk_ms.append((t2 - t1) * 1000)
            out.append(
                {
                    "user": label,
                    "nprobes": nprobes,
                    "refine_factor": refine,
                    "accuracy": accuracy(card_hits, chunk_hits, exact[label]),
                    "search_cards": stats(card_ms),
                    "search_chunks": stats(chunk_ms),
                }
            )
    return out


def _index_names(store: MemoryStore) -> dict[str, list[str]]:
    return {
        name: [f"{i.index_type}:{','.join(i.columns)}" for i in table.list_indices()]
        for name, table in (("cards", store.cards), ("chunks", store.chunks))
    }


def run_size(
    n: int,
    embedder: Embedder,
    pools: Pools,
    queries: list[str],
    vectors: np.ndarray,
    alt_indexes: bool,
    budget_s: float,
) -> dict[str, Any]:
    """Build a database of ``n`` cards and ``n / 5`` chunks and measure every index state."""
    tmp = tempfile.mkdtemp(prefix=f"memory-bench-{n}-")
    try:
        store = MemoryStore(tmp, embedder=embedder)
        rng = np.random.default_rng(n)
        n_chunks = max(1, int(n * CHUNKS_PER_CARD))
        start = time.perf_counter()
        cards = card_table(n, pools, store.cards.schema, rng)
        chunks = chunk_table(n_chunks, pools, store.chunks.schema, rng)
        store.cards.add(cards)
        store.chunks.add(chunks)
        result: dict[str, Any] = {
            "cards": n,
            "chunks": n_chunks,
            "build_s": round(time.perf_counter() - start, 2),
            "states": {},
        }
        k = Recaller(store, user_id=TYPICAL_USER, avatar_id=AVATAR, session_id=SESSION).k_cards + 4
        result["k_cards"] = k
        exact = exact_top(cards, chunks, vectors, k)
        print(f"[{n:,} cards] built in {result['build_s']} s; no indexes", flush=True)
        result["states"]["none"] = measure_state(store, queries, vectors, exact, budget_s)

        start = time.perf_counter()
        store.optimize(vector_index_min_rows=10**12)
        state = {"optimize_s": round(time.perf_counter() - start, 2)}
        print(f"[{n:,} cards] scalar index in {state['optimize_s']} s", flush=True)
        result["states"]["scalar"] = state | measure_state(store, queries, vectors, exact, budget_s)

        big = [
            t for t, rows in (("cards", n), ("chunks", n_chunks)) if rows >= VECTOR_INDEX_MIN_ROWS
        ]
        if not big:
            return result
        start = time.perf_counter()
        store.optimize(vector_index_min_rows=VECTOR_INDEX_MIN_ROWS)
        state = {
            "optimize_s": round(time.perf_counter() - start, 2),
            "indices": _index_names(store),
            "num_partitions": {
                t: max(16, int(rows**0.5))
                for t, rows in (("cards", n), ("chunks", n_chunks))
                if t in big
            },
        }
        print(f"[{n:,} cards] store.optimize() IVF_PQ in {state['optimize_s']} s", flush=True)
        result["states"]["scalar+ivf_pq"] = state | measure_state(
            store, queries, vectors, exact, budget_s
        )
        print(f"[{n:,} cards] IVF_PQ query parameters", flush=True)
        result["ivf_variants"] = query_variants(store, vectors, exact, k, IVF_VARIANTS, budget_s)
        if alt_indexes:
            result["alt_indexes"] = []
            for name, params in ALT_INDEXES.items():
                build = {}
                for t in big:
                    start = time.perf_counter()
                    getattr(store, t).create_index(
                        metric="dot", vector_column_name="vector", replace=True, **params
                    )
                    build[t] = round(time.perf_counter() - start, 2)
                print(f"[{n:,} cards] {name} built in {build} s", flush=True)
                result["alt_indexes"].append(
                    {
                        "index": name,
                        "params": params,
                        "build_s": build,
                        "indices": _index_names(store),
                        "variants": query_variants(
                            store, vectors, exact, k, ALT_VARIANTS, budget_s
                        ),
                    }
                )
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cell(s: dict, queries: int) -> str:
    cut = f" (n={s['n']})" if s["n"] < queries else ""
    return f"{s['p50']:.1f} / {s['p95']:.1f} / {s['mean']:.1f}{cut}"


def _variant_row(n: int, index: str, v: dict, queries: int) -> str:
    a = v["accuracy"]
    return (
        f"| {n:,} | {index} | {v['user']} | {v['nprobes'] or 'default'} "
        f"| {v['refine_factor'] or '-'} | {a['cards_top1']:.0%} | {a['cards_top1_text']:.0%} "
        f"| {a['cards_recall']:.0%} | {a['chunks_top1']:.0%} "
        f"| {_cell(v['search_cards'], queries)} | {_cell(v['search_chunks'], queries)} |"
    )


def markdown(result: dict) -> str:
    """The latency table and the vector index accuracy table."""
    q = result["queries"]
    lines = [
        f"Milliseconds, p50 / p95 / mean over {result['queries']} distinct queries. `search` = "
        "`search_cards` + `search_chunks` with a pre-embedded query; `recall` = "
        "`Recaller.recall` (embedding + both searches). `top-1` = the top card of "
        "`search_cards` has the text of the exact (brute-force) top card. (n=...): a series "
        f"cut short by its {result['series_budget_s']:.0f} s time budget.",
        "",
        "| cards | chunks | indexes | queried user (cards visible) | embed | search cards "
        "| search chunks | search | recall | top-1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in result["sizes"]:
        for state, m in size["states"].items():
            for label, u in m["users"].items():
                lines.append(
                    f"| {size['cards']:,} | {size['chunks']:,} | {state} "
                    f"| {label} {u['share']:.0%} ({u['visible_cards']:,}) "
                    f"| {_cell(m['embed'], q)} | {_cell(u['search_cards'], q)} "
                    f"| {_cell(u['search_chunks'], q)} | {_cell(u['search'], q)} "
                    f"| {_cell(u['recall'], q)} "
                    f"| {u['accuracy']['cards_top1_text']:.0%} |"
                )
    rows = []
    for size in result["sizes"]:
        n = size["cards"]
        indexed = size["states"].get("scalar+ivf_pq")
        if indexed is None:
            continue
        name = "store.optimize() IVF_PQ"
        for label, u in indexed["users"].items():
            nprobes, refine = STORE_QUERY
            v = {"user": label, "nprobes": nprobes, "refine_factor": refine} | u
            rows.append(_variant_row(n, name + " (store query)", v, q))
        rows += [_variant_row(n, name, v, q) for v in size.get("ivf_variants", [])]
        for alt in size.get("alt_indexes", []):
            rows += [_variant_row(n, alt["index"], v, q) for v in alt["variants"]]
    if rows:
        lines += [
            "",
            "Vector index accuracy against the exact search (same data), by query parameters "
            "(`ann_query`: the store's query plus `.nprobes()` / `.refine_factor()`):",
            "",
            "| cards | index | queried user | nprobes | refine_factor | top-1 id | top-1 text "
            f"| cards recall@{result['sizes'][-1]['k_cards']} | chunks top-1 | search cards "
            "| search chunks |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    lines += ["", *(f"- {note}" for note in result["notes"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the benchmark and write the JSON and Markdown results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--budget",
        type=float,
        default=BUDGET_S,
        help=f"seconds per series before it stops early (but not before {MIN_QUERIES} queries)",
    )
    parser.add_argument(
        "--alt-indexes",
        action="store_true",
        help="also rebuild the vector indexes with the ALT_INDEXES settings and measure them",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    from bots.models import minilm_dir, minilm_onnx
    from bots.settings import load_settings

    embedder = Embedder(minilm_onnx(load_settings().cache_dir), minilm_dir())
    queries = make_queries(args.queries)
    vectors = embedder.embed(queries)
    pools = Pools(embedder)
    print(f"embedded the text pools in {pools.embed_s:.1f} s", flush=True)
    sizes = [
        run_size(n, embedder, pools, queries, vectors, args.alt_indexes, args.budget)
        for n in args.sizes
    ]
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
        },
        "versions": {p: version(p) for p in ("lancedb", "pyarrow", "sentence-transformers")},
        "queries": args.queries,
        "warmup": WARMUP,
        "store_query": {"nprobes": STORE_QUERY[0], "refine_factor": STORE_QUERY[1]},
        "series_budget_s": args.budget,
        "min_queries": MIN_QUERIES,
        "data": {
            "users": USERS,
            "queried_users": {k: {"user_id": u, "share": s} for k, (u, s) in QUERIED.items()},
            "avatars": list(AVATARS),
            "queried_avatar": AVATAR,
            "avatar_scope_share": AVATAR_SCOPE_SHARE,
            "chunks_per_card": CHUNKS_PER_CARD,
            "card_text_pool": len(pools.user_texts) + len(pools.avatar_texts),
            "chunk_text_pool": len(pools.chunk_texts),
            "noise_sigma": NOISE_SIGMA,
            "pool_embed_s": round(pools.embed_s, 1),
        },
        "notes": [
            f"Stored vectors: {len(pools.user_texts) + len(pools.avatar_texts):,} distinct card "
            f"texts and {len(pools.chunk_texts):,} chunk texts embedded with MiniLM; each row "
            f"reuses one with Gaussian noise (sigma {NOISE_SIGMA}/dim, ~0.98 cosine) "
            "renormalized to unit length. Queries are real MiniLM embeddings.",
            "Cards over 100 users: `typical` owns 1%, `heavy` (worst case) 20%, 98 others the "
            f"rest; {AVATAR_SCOPE_SHARE:.0%} avatar-scoped over {len(AVATARS)} avatars; one "
            "chunk per 5 cards, same owners. Queries as avatar "
            f"`{AVATAR}` (cards visible = user-scoped + its avatar-scoped).",
            "Indexes: `none` = no index; `scalar` = `store.optimize(vector_index_min_rows=10**12)`"
            " (BTREE on user_id); `scalar+ivf_pq` = `store.optimize()` (IVF_PQ on tables with "
            f">= {VECTOR_INDEX_MIN_ROWS:,} rows).",
            f"{os.cpu_count()} CPUs, lancedb {version('lancedb')}; one process, one query at a "
            "time.",
        ],
        "sizes": sizes,
        "total_s": round(time.perf_counter() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory_retrieval.json").write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    (args.out / "memory_retrieval.md").write_text(md)
    print(md)
    print(f"total {result['total_s']} s")


if __name__ == "__main__":
    main()
