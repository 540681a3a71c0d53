"""Memory in the frame graph: the retrieval processor and the session's writer, on a real store.

The retrieval processor runs in a real Pipecat worker (``run_test``) against a LanceDB store
with the real MiniLM embedder; failure cases break the store for real (its files deleted, its
embedder slowed) rather than mocking the processor's collaborators away.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import pytest
from loguru import logger
from pipecat.frames.frames import LLMContextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from memory.jobs import BackgroundJobs
from memory.recall import MEMORY_BEGIN, MEMORY_END, Recaller
from memory.session import SessionMemory, restorable
from memory.store import MemoryStore, Turn
from processors.memory_retrieval import MemoryRetrieval


@pytest.fixture
def store(tmp_path, embedder) -> MemoryStore:
    return MemoryStore(str(tmp_path / "memory"), embedder)


def recaller(store: MemoryStore, user: str = "priya", avatar: str = "lumina") -> Recaller:
    r = Recaller(store, user_id=user, avatar_id=avatar, session_id="now")
    r.refresh_profile()
    return r


async def through(processor: MemoryRetrieval, context: LLMContext) -> list[dict]:
    """Send one context through the processor; the messages the LLM would get."""
    down, _ = await run_test(
        processor, frames_to_send=[LLMContextFrame(context)], expected_down_frames=[LLMContextFrame]
    )
    return list(down[0].context.get_messages())


def conversation(*lines: str) -> LLMContext:
    roles = ["user", "assistant"]
    return LLMContext([{"role": roles[i % 2], "content": t} for i, t in enumerate(lines)])


async def test_memories_go_in_one_block_before_the_latest_turn_and_never_pile_up(store):
    store.upsert_card(
        user_id="priya", text="Priya's dog is called Biscuit.", scope="user", key="named:dog"
    )
    store.upsert_card(user_id="priya", text="Priya sails on weekends.", scope="user")
    retrieval = MemoryRetrieval(recaller(store), avatar_name="Lumina")
    context = conversation("Hi!", "Hello! How can I help?", "What is my dog called?")

    sent = await through(retrieval, context)
    assert [m["role"] for m in sent] == ["user", "assistant", "system", "user"]
    block = sent[2]["content"]
    assert block.startswith(MEMORY_BEGIN) and block.endswith(MEMORY_END)
    assert "Priya's dog is called Biscuit." in block
    assert len(context.get_messages()) == 3, "the shared context is left as it was"

    context.add_messages(
        [{"role": "assistant", "content": "Biscuit!"}, {"role": "user", "content": "Thanks"}]
    )
    again = await through(retrieval, context)
    blocks = [m for m in again if m["role"] == "system"]
    assert len(blocks) == 1 and again[-2] is blocks[0], "one block, rebuilt each turn"


async def test_a_turn_gets_nothing_of_another_person_or_another_avatar(store):
    store.upsert_card(user_id="sam", text="Sam's dog is called Rex.", scope="user")
    store.upsert_card(
        user_id="priya", text="We planned a sailing trip.", scope="avatar", avatar_id="captain"
    )
    store.upsert_card(user_id="priya", text="Priya's dog is called Biscuit.", scope="user")
    lumina = await through(
        MemoryRetrieval(recaller(store), avatar_name="Lumina"),
        conversation("What is my dog called? Any trips planned?"),
    )
    block = lumina[0]["content"]
    assert "Biscuit" in block and "Rex" not in block and "sailing" not in block
    captain = await through(
        MemoryRetrieval(recaller(store, avatar="captain"), avatar_name="Captain"),
        conversation("Any trips planned? What is my dog called?"),
    )
    assert "sailing trip" in captain[0]["content"] and "Rex" not in captain[0]["content"]
    stranger = await through(
        MemoryRetrieval(recaller(store, user="nobody"), avatar_name="Lumina"),
        conversation("What is my dog called?"),
    )
    assert [m["role"] for m in stranger] == ["user"], "no block when nothing is remembered"


async def test_a_prefetched_search_is_ready_when_the_turn_ends(store):
    store.upsert_card(user_id="priya", text="Priya's dog is called Biscuit.", scope="user")
    retrieval = MemoryRetrieval(recaller(store), avatar_name="Lumina")
    question = "What is my dog called?"
    await through(retrieval, conversation("warm up the embedder"))

    async def prefetch_then_send():
        retrieval.prefetch(question)
        await asyncio.sleep(0.3)  # smart-turn deciding the turn is over
        return await through(retrieval, conversation(question))

    sent = await prefetch_then_send()
    assert "Biscuit" in sent[0]["content"]
    assert retrieval.last is not None
    assert retrieval.waited_ms[-1] < retrieval.last.elapsed_ms, "the search ran before the turn"


@pytest.fixture
def warnings():
    seen: list[str] = []
    handler = logger.add(lambda m: seen.append(m.record["message"]), level="WARNING")
    yield seen
    logger.remove(handler)


async def test_a_broken_store_costs_the_turn_its_memories_not_the_turn(
    tmp_path, warnings, embedder
):
    path = tmp_path / "memory"
    store = MemoryStore(str(path), embedder)
    store.upsert_card(user_id="priya", text="Priya's dog is called Biscuit.", scope="user")
    retrieval = MemoryRetrieval(recaller(store), avatar_name="Lumina")
    shutil.rmtree(path)
    # A session keeps its person's memories in memory; a change makes it read the store again.
    store._touch("priya")
    sent = await through(retrieval, conversation("What is my dog called?"))
    assert sent == [{"role": "user", "content": "What is my dog called?"}]
    assert any("going on without memories" in w for w in warnings)


async def test_a_slow_store_is_not_waited_for(store, warnings):
    retrieval = MemoryRetrieval(recaller(store), avatar_name="Lumina", timeout_secs=0.1)
    embed = store.embed

    def slow_embed(text):
        time.sleep(1.0)  # a disk or object store having a bad moment
        return embed(text)

    store.embed = slow_embed
    started = time.perf_counter()
    sent = await through(retrieval, conversation("What is my dog called?"))
    assert time.perf_counter() - started < 0.9
    assert [m["role"] for m in sent] == ["user"]
    assert any("without memories" in w for w in warnings)


async def test_the_writer_stores_turns_learns_facts_and_chunks_as_it_goes(store):
    memory = SessionMemory(
        store,
        BackgroundJobs(),
        user_id="priya",
        avatar_id="lumina",
        avatar_name="Lumina",
        session_id="s1",
    )
    await memory.open()
    now = time.time()
    lines = [
        ("user", "Hi, I'm Priya.", False),
        ("assistant", "Nice to meet you, Priya!", False),
        ("user", "My dog is called Biscuit.", False),
        ("assistant", "What a lovely name for a", True),  # cut off by the next turn
        ("user", "I love jazz.", False),
    ]
    for i, (role, text, interrupted) in enumerate(lines):
        memory.writer.turn(
            role, text, started=now + i, ended=now + i + 0.5, interrupted=interrupted,
            latency={"total": 900} if role == "assistant" else None,
        )  # fmt: skip
    await asyncio.sleep(0)  # turn() only queues
    await memory.close()

    turns = store.conversation("priya", "s1")
    assert [(t.role, t.text, t.interrupted) for t in turns] == lines
    assert json.loads(turns[1].latency_json) == {"total": 900}
    texts = {c.text for c in store.list_cards("priya", "lumina")}
    assert texts == {
        "The user's name is Priya.",
        "Priya's dog is called Biscuit.",
        "Priya likes jazz.",
    }
    assert memory.name == "Priya"
    assert "Likes: jazz." in memory.recaller.profile
    chunks = store.chunks.search().where("user_id = 'priya'").to_list()
    assert sorted(len(c["turn_ids"]) for c in chunks) == [3, 4], "4 while talking, then 3"


async def test_forget_me_mid_session_stops_every_later_write(store):
    memory = SessionMemory(
        store,
        BackgroundJobs(),
        user_id="gone",
        avatar_id="lumina",
        avatar_name="Lumina",
        session_id="s9",
    )
    await memory.open()
    now = time.time()
    for i, text in enumerate(["My name is Ola.", "I love tea.", "My cat is called Miso."]):
        memory.writer.turn("user", text, started=now + i, ended=now + i + 0.5)
    await memory.writer.discard()  # what "forget me" does to a live session, before deleting
    store.forget_user("gone")
    memory.writer.turn("user", "I live in Oslo.", started=now + 9, ended=now + 9.5)
    await memory.close()  # the session ends: no last chunk, no late turn
    assert store.count("gone") == {"turns": 0, "chunks": 0, "cards": 0}


def test_reconnecting_restores_the_latest_turns_within_the_budget():
    turns = [
        Turn(str(i), "s", "lumina", "user" if i % 2 == 0 else "assistant", "x" * 80, i, i)
        for i in range(20)
    ]
    kept = restorable(turns, budget_tokens=100)
    assert kept == turns[-4:]  # 24 "tokens" each
    assert kept[0].role == "user"
    assert restorable(turns, 0) == []


async def test_a_sentence_split_by_a_pause_still_teaches_the_fact(store):
    """The VAD can cut "Hi, my | name is Sarah." into two user turns."""
    memory = SessionMemory(
        store,
        BackgroundJobs(),
        user_id="sarah",
        avatar_id="lumina",
        avatar_name="Lumina",
        session_id="s1",
    )
    now = time.time()
    memory.writer.turn("user", "Hi, my", started=now, ended=now + 0.5)
    memory.writer.turn("user", "name is Sarah.", started=now + 1, ended=now + 2)
    await asyncio.sleep(0)
    await memory.close()
    (card,) = store.list_cards("sarah", "lumina")
    assert card.text == "The user's name is Sarah."
    assert len(card.source_turn_ids) == 2


async def test_a_deleted_memory_is_gone_from_a_live_session_at_once(store):
    card = store.upsert_card(user_id="priya", text="Priya's dog is called Biscuit.", scope="user")
    retrieval = MemoryRetrieval(recaller(store), avatar_name="Lumina")
    assert "Biscuit" in (await through(retrieval, conversation("My dog?")))[0]["content"]
    store.delete_card("priya", card.card_id)  # e.g. from the memory page, mid-conversation
    assert [m["role"] for m in await through(retrieval, conversation("My dog?"))] == ["user"]


async def test_people_with_too_many_memories_to_cache_are_searched_in_lancedb(store, monkeypatch):
    monkeypatch.setattr("memory.recall.MAX_CACHED_ROWS", 0)
    store.upsert_card(user_id="sam", text="Sam's dog is called Rex.", scope="user")
    store.upsert_card(user_id="priya", text="Priya's dog is called Biscuit.", scope="user")
    sent = await through(
        MemoryRetrieval(recaller(store), avatar_name="Lumina"), conversation("My dog?")
    )
    assert "Biscuit" in sent[0]["content"] and "Rex" not in sent[0]["content"]


async def test_a_small_model_gets_the_facts_in_the_turn_and_its_answer_started(store):
    """The ``small`` profile (the bundled 135M model): second-person facts inside the turn,
    and a question a fact answers gets the reply started with it; the kept context is not
    touched, and a question no fact answers gets no prefill."""
    for text, key in (("Priya's name is Priya.", "name"), ("Priya lives in Boston.", "home")):
        store.upsert_card(user_id="priya", text=text, scope="user", key=key)
    retrieval = MemoryRetrieval(recaller(store), avatar_name="Lumina", profile="small")
    context = conversation("Hi!", "Hello there!", "Where do I live?")

    sent = await through(retrieval, context)
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant"]
    assert "You live in Boston." in sent[2]["content"] and sent[2]["content"].endswith(
        "Where do I live?"
    )
    assert sent[3] == {"role": "assistant", "content": "You live in Boston."}
    assert retrieval.prefill == "You live in Boston."
    assert context.get_messages()[-1] == {"role": "user", "content": "Where do I live?"}

    other = await through(retrieval, conversation("Tell me a joke."))
    assert [m["role"] for m in other] == ["user"] and retrieval.prefill == ""
