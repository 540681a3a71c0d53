"""Memory policy as pure logic: chunking, fact extraction, the profile block, grounding."""

from __future__ import annotations

import pytest

from memory.chunking import MAX_TURNS, MIN_TURNS, plan_chunks
from memory.distill import grounded_facts
from memory.extract import extract_facts, profile_name, render_profile
from memory.store import Card, Turn


def facts(text: str) -> dict[str, str]:
    return {f.key: f.text for f in extract_facts(text)}


# -- chunking ----------------------------------------------------------------------------


def test_chunks_are_written_every_four_turns_while_talking():
    assert plan_chunks(3, 0, final=False) == []
    assert plan_chunks(4, 0, final=False) == [(0, 4)]
    assert plan_chunks(9, 4, final=False) == [(4, 8)]


def test_the_end_of_a_conversation_is_always_chunked_with_3_to_6_turns():
    assert plan_chunks(7, 4, final=True) == [(4, 7)]
    # One or two turns left: chunked with the turns before them (overlapping).
    assert plan_chunks(9, 8, final=True) == [(6, 9)]
    assert plan_chunks(2, 0, final=True) == []  # too short to be a chunk; turns are kept
    for total in range(3, 40):
        for size in range(MIN_TURNS, MAX_TURNS + 1):
            done, ranges = 0, []
            for n in range(1, total + 1):
                new = plan_chunks(n, done, final=False, size=size)
                ranges += new
                done = new[-1][1] if new else done
            ranges += plan_chunks(total, done, final=True, size=size)
            assert all(MIN_TURNS <= end - start <= MAX_TURNS for start, end in ranges)
            covered = {i for start, end in ranges for i in range(start, end)}
            assert covered == set(range(total)), (total, size, ranges)


def test_chunk_size_outside_3_to_6_is_refused():
    with pytest.raises(ValueError, match="3-6"):
        plan_chunks(10, 0, final=False, size=8)


# -- extraction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "key", "text"),
    [
        ("My dog is called Biscuit.", "named:dog", "The user's dog is called Biscuit."),
        ("I have a cat named Pepper.", "named:cat", "The user's cat is called Pepper."),
        ("My sister's name is Ana.", "named:sister", "The user's sister is called Ana."),
        ("Hi, I'm Priya.", "name", "The user's name is Priya."),
        ("my name is priya", "name", "The user's name is Priya."),
        ("Please call me Pri.", "address", "The user likes to be called Pri."),
        ("I love jazz.", "pref:jazz", "The user likes jazz."),
        ("I don't like mushrooms.", "pref:mushrooms", "The user dislikes mushrooms."),
        ("I live in Lisbon.", "home", "The user lives in Lisbon."),
        ("I work as a nurse.", "work", "The user works as a nurse."),
        ("I'm 34 years old.", "age", "The user is 34 years old."),
        ("My favorite color is green.", "favorite:color", "The user's favorite color is green."),
        ("My birthday is in May.", "my:birthday", "The user's birthday is in May."),
    ],
)
def test_stock_phrasings_become_facts(said, key, text):
    assert facts(said).get(key) == text


@pytest.mark.parametrize(
    "said",
    [
        "I'm tired.",
        "I'm fine, thanks.",
        "I'm going to Paris.",
        "I like that idea.",
        "I have a question.",
        "My question is, what is AI?",
        "What is my dog called?",
        "I'd like to know more about stars.",
    ],
)
def test_chatter_is_not_a_fact(said):
    assert facts(said) == {}


def test_a_like_and_a_dislike_of_the_same_thing_share_a_slot():
    """So "I hate jazz now" replaces "I love jazz" in the store."""
    assert facts("I love jazz.").keys() == facts("I hate jazz.").keys() == {"pref:jazz"}


def test_one_sentence_can_hold_several_facts():
    assert facts("I am Sam and my dog is named Rex.") == {
        "name": "The user's name is Sam.",
        "named:dog": "The user's dog is called Rex.",
    }


def test_facts_read_with_the_persons_name_once_known():
    (fact,) = extract_facts("My dog is called Biscuit.")
    assert fact.render("Priya") == "Priya's dog is called Biscuit."
    assert fact.render(None) == "The user's dog is called Biscuit."


# -- the profile block -------------------------------------------------------------------


def card(key: str, text: str, updated: float = 1.0, scope: str = "user") -> Card:
    return Card(
        id=key, text=text, scope=scope, avatar_id="", key=key, source_turn_ids=[], updated=updated
    )


def test_profile_names_the_person_and_lists_what_they_like():
    cards = [
        card("name", "The user's name is Priya.", 1),
        card("address", "The user likes to be called Pri.", 2),
        card("named:dog", "The user's dog is called Biscuit.", 3),
        card("pref:jazz", "The user likes jazz.", 4),
        card("pref:mushrooms", "The user dislikes mushrooms.", 5),
        card("home", "The user lives in Lisbon.", 6),
        card("", "We planned a trip.", 7, scope="avatar"),
    ]
    profile = render_profile(cards)
    assert profile.splitlines()[0] == "Name: Priya (prefers to be called Pri)."
    assert "Priya's dog is called Biscuit." in profile
    assert "Priya lives in Lisbon." in profile
    assert "Likes: jazz." in profile and "Dislikes: mushrooms." in profile
    assert "trip" not in profile  # avatar history is searched, not pinned
    assert profile_name(cards) == "Priya"


def test_profile_is_bounded_and_empty_without_facts():
    assert render_profile([]) == ""
    many = [card(f"pref:thing {i}", f"The user likes thing number {i}.", i) for i in range(200)]
    assert len(render_profile(many, max_chars=300)) <= 300


# -- LLM distillation: only grounded facts survive ---------------------------------------


def test_distilled_lines_must_rest_on_what_the_person_said():
    turns = [
        Turn("t1", "s", "lumina", "user", "We adopted a puppy called Biscuit last week.", 1, 1),
        Turn("t2", "s", "lumina", "assistant", "How lovely! What breed?", 2, 2),
        Turn("t3", "s", "lumina", "user", "A beagle. We're planning a trip to Lisbon.", 3, 3),
    ]
    reply = (
        "- Priya adopted a puppy called Biscuit.\n"
        "- Priya is a software engineer in Berlin.\n"  # invented
        "- We talked about a trip to Lisbon.\n"
        "- none\n"
        "Sure! Here are the facts:"
    )
    found = grounded_facts(reply, turns, "Priya", "Lumina")
    assert [(f.text, f.scope) for f in found] == [
        ("Priya adopted a puppy called Biscuit.", "user"),
        ("We talked about a trip to Lisbon.", "avatar"),
    ]
    assert found[0].source_turn_ids == ["t1"]


def test_a_changed_fact_said_with_now_replaces_the_slot_without_the_now():
    assert facts("My dog is called Rex now.") == {"named:dog": "The user's dog is called Rex."}
    assert facts("I live in Seattle now.") == {"home": "The user lives in Seattle."}
    assert facts("My name is Mary Ann.") == {"name": "The user's name is Mary Ann."}


# -- how memories are put to a small model (memory.prompting) ------------------------------


def _card(key: str, text: str, updated: float = 1.0) -> Card:
    return Card(
        id=key, text=text, scope="user", avatar_id="", key=key, source_turn_ids=[],
        updated=updated,
    )  # fmt: skip


CARDS = [
    _card("name", "Priya's name is Priya."),
    _card("home", "Priya lives in Boston."),
    _card("named:dog", "Priya's dog is called Biscuit."),
    _card("pref:jazz", "Priya likes jazz."),
    _card("pref:mushrooms", "Priya dislikes mushrooms."),
    _card("favorite:color", "Priya's favorite color is green."),
    _card("work", "Priya works as a nurse."),
    _card("age", "Priya is 34 years old."),
    _card("origin", "Priya is from Pune."),
    _card("favorite:food", "Priya's favorite food is dosa."),
]


@pytest.mark.parametrize(
    "question, start",
    [
        ("Where do I live?", "You live in Boston."),
        ("Do you remember what my dog is called?", "Your dog is called Biscuit."),
        ("What's my favorite color?", "Your favorite color is green."),
        ("How old am I?", "You are 34 years old."),
        ("What music do I like?", "You like jazz."),
        ("What food do I hate?", "You dislike mushrooms."),
        ("Is it cold where I live right now?", "Since you live in Boston,"),
        ("What should I wear to work tomorrow?", "Since you work as a nurse,"),
        ("Where are I from?", "You are from Pune."),  # whisper's "Where am I from?"
        ("What should I cook tonight?", "Since your favorite food is dosa,"),
        ("Tell me a joke.", ""),
        ("How are you today?", ""),
    ],
)
def test_a_question_a_fact_answers_gets_its_answer_started(question, start):
    from memory.prompting import prefill

    assert prefill(question, CARDS, "Priya") == start


def test_the_newest_card_of_a_changed_slot_is_the_one_said():
    from memory.prompting import prefill

    cards = [*CARDS, _card("named:dog", "Priya's dog is called Rex.", updated=2.0)]
    assert prefill("What is my dog called?", cards, "Priya") == "Your dog is called Rex."


def test_profiles_follow_the_engine_and_the_model_size():
    from memory.prompting import profile_for

    assert profile_for("embedded", "local") == "small"
    assert profile_for("ollama", "llama3.2:3b") == "capable"
    for small in ("smollm2:135m", "qwen2.5:0.5b", "llama3.2:1b"):
        assert profile_for("ollama", small) == "small", small
    assert profile_for("embedded", "local", "capable") == "capable"


def test_a_name_the_stt_lost_is_not_a_fact():
    assert facts("My son is called.") == {}


def test_live_in_misheard_as_like_in_is_still_where_they_live():
    assert facts("I like in Boston.") == {"home": "The user lives in Boston."}
    assert facts("I love in Boston.") == {"home": "The user lives in Boston."}
    assert facts("I like in the morning to run.") == {}
