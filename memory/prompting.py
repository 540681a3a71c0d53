"""How what the avatar remembers is put in front of the model, per model size.

A 135M model does not use a memory block the way a 3B one does. Measured on
``bench/recall.py`` (README, "Levers for recall"), the bundled SmolLM2-135M answered from a
system block 25 % of the time and copied the block's own wording aloud; it does much better
when the facts are short second-person sentences inside the person's own turn, and best when
the reply itself is started with the fact (*answer prefill*) for a question that asks for it.
A 3B model needs none of that and reads naturally from the system block. So there are two
profiles:

* ``small``: the relevant facts as "You live in Boston." lines inside the person's turn
  (in the request only: the kept context holds their words as said), and, when the question
  asks for something a fact answers ("Where do I live?", "Is it cold where I live?"), the
  assistant's reply is started with it ("You live in Boston." / "Since you live in Boston,")
  and the model continues in the avatar's voice. llama-server continues a final assistant
  message (and streams the prefix back); for engines that stream only the continuation,
  ``processors.answer_prefill`` speaks the prefix itself.
* ``capable``: the delimited memory block as a system message just before the turn
  (``Recollection.message``), nothing else.

Pure functions: the retrieval processor (``processors.memory_retrieval``) calls
:func:`memory_messages` on a copy of the context, and the recall bench calls the same code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from memory.recall import Recollection, newest_per_key
from memory.store import Card

Profile = Literal["small", "capable"]

FACTS_HEADER = "(What you know about me:"
"""Opens the facts inside the person's turn (and is in the output guard's list)."""

_SMALL_MODEL = re.compile(r"(?<![\d.])(\d{2,3}m|0\.\d+b|1(\.\d)?b)\b", re.IGNORECASE)


def profile_for(backend_kind: str, model: str, setting: str = "auto") -> Profile:
    """The prompt profile for a model: the avatar's ``llm.memory_prompt`` unless ``auto``.

    ``auto`` is ``small`` for the embedded engine (the bundled 135M model, or a GGUF a
    person chose: we cannot tell its size, and the crutches cost a 3B model little) and for
    models whose name says they have under ~1.5B parameters (``smollm2:360m``,
    ``qwen2.5:0.5b``, ``llama3.2:1b``); ``capable`` for the rest.
    """
    if setting in ("small", "capable"):
        return setting  # type: ignore[return-value]
    if backend_kind == "embedded" or _SMALL_MODEL.search(model):
        return "small"
    return "capable"


_SUBJECT = re.compile(r"^(?P<subject>.+?)(?P<poss>'s)? (?P<rest>.+)$")
_VERBS = {
    "is": "are", "lives": "live", "likes": "like", "dislikes": "dislike", "works": "work",
    "has": "have", "prefers": "prefer", "loves": "love",
}  # fmt: skip


def second_person(card: Card, name: str | None) -> str | None:
    """A keyed card as a sentence to the person ("You live in Boston."), or None.

    Cards are written about the person by name ("Priya lives in Boston.") or as "The user".
    Only keyed cards (from ``memory.extract``) have that fixed shape; others return None.
    """
    if not card.key:
        return None
    text = card.text.strip()
    for subject in (s for s in (name, "The user") if s):
        if text.startswith(subject + "'s "):
            return "Your " + text[len(subject) + 3 :]
        if text.startswith(subject + " "):
            verb, _, rest = text[len(subject) + 1 :].partition(" ")
            if verb in _VERBS:
                return f"You {_VERBS[verb]} {rest}"
    return None


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(patterns), re.IGNORECASE)


# Fixed slots. A question "asks for" a slot when a wh-word or "do you remember/know" is there
# too (``_ASKS``); otherwise the cue only mentions it ("Is it cold where I live?").
_CUES: dict[str, re.Pattern[str]] = {
    "name": _any(r"\bmy name\b", r"\bwho am i\b", r"\bwhat(?:'s| is) my name\b"),
    "address": _any(r"\bwhat (?:should|do) you call me\b", r"\bmy nickname\b"),
    "home": _any(r"\bwhere (?:do )?i live\b", r"\bmy (?:home ?town|city)\b", r"\bi live\b"),
    # "are my", "are I": whisper tiny's hearings of "am I" in a few voices.
    "origin": _any(r"\bwhere (?:am i|i'?m|i am|are (?:my|i)) from\b", r"\bwhere i come from\b"),
    "work": _any(
        r"\bwhere (?:do )?i work\b",
        r"\bmy (?:job|work)\b",
        r"\bwhat (?:do i do|i do) for (?:a )?(?:living|work)\b",
        r"\bwhat(?:'s| is) my job\b",
        r"\b(?:at|to|from|after|before) work\b",
    ),
    "age": _any(r"\bhow old (?:am i|i am)\b", r"\bmy age\b"),
}
_ASKS = re.compile(
    r"^\s*(?:what|where|who|how|when|which|do you (?:know|remember)|can you (?:tell|remind)"
    r"|remind me|tell me|did i (?:tell|mention)|have i told|do i)\b",
    re.IGNORECASE,
)


# "What should I wear to work?" asks for advice, not for the fact it mentions.
_ADVICE = re.compile(
    r"\b(?:should|could|would|suggest|recommend|ideas?|gift|buy|cook|wear|plan|is it|will it)\b",
    re.IGNORECASE,
)


def _slot_cues(card: Card) -> list[re.Pattern[str]]:
    """Cues for a keyed card of an open slot (``named:dog`` -> "my dog", ...)."""
    kind, _, thing = card.key.partition(":")
    if not thing:
        return []
    words = re.escape(thing).replace(r"\ ", r"\s+")
    if kind == "named":
        return [re.compile(rf"\bmy {words}(?:'s)?\b", re.IGNORECASE)]
    if kind == "favorite":
        cues = [re.compile(rf"\bfavou?rite {words}\b", re.IGNORECASE)]
        if thing in ("food", "dish", "meal"):  # "What should I cook tonight?"
            cues.append(_any(r"\b(?:cook|eat|dinner|lunch|supper|meal|hungry)\b"))
        return cues
    if kind == "my":
        return [re.compile(rf"\bmy {words}\b", re.IGNORECASE)]
    if kind == "has":
        noun = thing.split()[-1].rstrip("s")
        return [re.compile(rf"\bmy {re.escape(noun)}s?\b", re.IGNORECASE)]
    if kind == "pref":
        # "Do I like jazz?"; "What music do I like?" for likes, "what do I hate?" for dislikes.
        verbs = "hate|dislike|can't stand" if " dislikes " in card.text else "like|love|enjoy"
        return [
            re.compile(rf"\b{words}\b", re.IGNORECASE),
            re.compile(rf"\bwhat (?:\w+ ){{0,3}}(?:do i|i) (?:{verbs})\b", re.IGNORECASE),
        ]
    return []


def matching_cards(question: str, cards: list[Card]) -> tuple[list[Card], bool]:
    """The person's keyed cards a question points at, and whether it asks for them.

    ``("Where do I live?", cards)`` -> ``([home card], True)``; ``("Is it cold where I live
    right now?", cards)`` -> ``([home card], False)``.
    """
    found: list[Card] = []
    for card in cards:
        if not card.key:
            continue
        cues = [_CUES[card.key]] if card.key in _CUES else _slot_cues(card)
        if any(p.search(question) for p in cues):
            found.append(card)
    asks = bool(_ASKS.search(question)) and not _ADVICE.search(question)
    return newest_per_key(found), asks  # one per slot: a changed fact's newest card


def prefill(question: str, cards: list[Card], name: str | None) -> str:
    """How the reply starts for a question a known fact answers ('' for any other question).

    Asked for ("Where do I live?"): the fact, as said to them ("You live in Boston.").
    Mentioned ("Is it cold where I live right now?"): "Since you live in Boston," and the
    model goes on from there. The newest card of each slot is the one used.
    """
    found, asks = matching_cards(question, cards)
    if not found:
        return ""
    newest = max(found, key=lambda c: c.updated)
    said = second_person(newest, name)
    if not said:
        return ""
    if asks:
        if len(found) > 1:  # "what do I like?": every matching preference
            others = [s for c in found if c is not newest and (s := second_person(c, name))]
            said = " ".join([said, *others[:2]])
        return said
    return "Since " + said[0].lower() + said[1:].rstrip(".") + ","


def facts_for_turn(
    found: Recollection, name: str | None, question: str = "", max_facts: int = 6
) -> list[str]:
    """The facts to put inside the person's turn, as second-person sentences.

    Those the question points at first, then the search's best cards, then the rest of the
    profile, newest first; at most ``max_facts`` (a 135M model loses track of more).
    """
    pointed, _ = matching_cards(question, found.profile_cards + found.cards)
    profile = sorted(found.profile_cards, key=lambda c: c.updated, reverse=True)
    cards = [*pointed, *found.cards, *profile]
    lines: list[str] = []
    for card in cards:
        said = second_person(card, name) or card.text
        if said not in lines:
            lines.append(said)
    return lines[:max_facts]


@dataclass
class MemoryPrompt:
    """The request's messages with what the avatar remembers, and how the reply starts."""

    messages: list[dict]
    prefill: str = ""


def text_of(message: dict) -> str:
    """A chat message's text (string content, or the text parts of a list)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def memory_messages(
    messages: list[dict],
    found: Recollection | None,
    *,
    avatar_name: str,
    profile: Profile,
    name: str | None = None,
    prefill_answers: bool | None = None,
) -> MemoryPrompt:
    """A copy of ``messages`` for one request, carrying what the avatar remembers.

    The latest user message is the turn. ``capable``: the memory block as a system message
    just before it. ``small``: the facts inside it and, when they answer it, a prefill.
    Either way everything up to that turn is unchanged, so the LLM server's prompt cache
    still covers the history. ``prefill_answers`` overrides the profile's choice of prefill
    (the recall bench measures each lever alone).
    """
    if prefill_answers is None:
        prefill_answers = profile == "small"
    messages = list(messages)
    last_user = next(
        (
            i
            for i in range(len(messages) - 1, -1, -1)
            if isinstance(messages[i], dict) and messages[i].get("role") == "user"
        ),
        None,
    )
    if last_user is None or found is None:
        return MemoryPrompt(messages)
    question = text_of(messages[last_user])
    start = prefill(question, found.profile_cards + found.cards, name) if prefill_answers else ""
    if profile == "capable":
        block = found.message(avatar_name)
        if block:
            messages.insert(last_user, {"role": "system", "content": block})
            last_user += 1
    # With the answer started, only the facts it is about: a 135M model given the whole
    # profile recites it ("You like jazz, you work as a nurse, you live in Boston...").
    elif facts := facts_for_turn(found, name, question, max_facts=1 if start else 4):
        told = " ".join(facts)
        messages[last_user] = {
            **messages[last_user],
            "content": f"{FACTS_HEADER} {told})\n{question}",
        }
    if start and last_user == len(messages) - 1:
        messages.append({"role": "assistant", "content": start})
    return MemoryPrompt(messages, start)
